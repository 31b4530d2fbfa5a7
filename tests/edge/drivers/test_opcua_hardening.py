"""OpcUaDriver against the OPC UA simulator: security, a restart, MaxNodesPerRead, scan classes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from device_profiles import profile_path
from edge.drivers.base import Endpoint
from edge.drivers.opcua import OpcUaDriver
from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.opcua import OpcUaLink
from protocols.profile import Profile, load_profile, parse_profile
from protocols.quality import Quality
from protocols.wire import Sample
from simulators.behaviour import MachineBehaviour
from simulators.opcua_server import OpcUaDeviceServer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TEMPERATURES = [
    "barrel_temperature_zone1", "barrel_temperature_zone2", "nozzle_temperature",
    "mould_temperature", "hydraulic_oil_temperature",
]  # fmt: skip


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def running(sim: OpcUaDeviceServer, step_s: float = 0.1) -> AsyncIterator[None]:
    """Step the simulator in real time (simulated time = wall clock since sim.epoch_s)."""
    sim.epoch_s = time.time()
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def step_forever() -> None:
        while True:
            await sim.step(loop.time() - t0)
            await asyncio.sleep(step_s)

    task = asyncio.create_task(step_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def press_profile() -> Profile:
    return load_profile(profile_path("sole_injection_press"))


def press(profile: Profile | None = None, **options: object) -> OpcUaDeviceServer:
    profile = profile or press_profile()
    return OpcUaDeviceServer("press-01", profile, MachineBehaviour(profile, seed=5), **options)  # type: ignore[arg-type]


async def test_security_and_login_come_from_the_endpoint(tmp_path: Path) -> None:
    sim = press(
        security=["Basic256Sha256/SignAndEncrypt"],
        users={"edge": "pl4nt-floor"},
        pki_dir=tmp_path / "sim",
    )
    await sim.start()
    try:
        endpoint = Endpoint(
            "press-01",
            endpoint_url=sim.endpoint_url,
            username="edge",
            password="pl4nt-floor",
            security_policy="Basic256Sha256",
            security_mode="SignAndEncrypt",
            pki_dir=str(tmp_path / "edge" / "pki"),
        )
        driver = OpcUaDriver(press_profile(), endpoint)
        with pytest.raises(DeviceRejected, match=r"move .*rejected.* to .*pki/trusted/"):
            await driver.connect()  # the server is not trusted yet
        (rejected,) = list((tmp_path / "edge" / "pki" / "rejected").iterdir())
        shutil.move(rejected, tmp_path / "edge" / "pki" / "trusted" / rejected.name)
        await driver.connect()
        try:
            samples = await driver.read()
            assert {s.metric for s in samples} == {t.name for t in sim.profile.tags}
            assert all(s.quality is Quality.GOOD for s in samples)
        finally:
            await driver.close()
    finally:
        await sim.stop()
    with pytest.raises(ValueError, match="go together"):
        OpcUaDriver(press_profile(), Endpoint("p", endpoint_url=sim.endpoint_url,
                                              security_policy="Basic256Sha256"))  # fmt: skip


async def test_a_simulator_restarted_on_the_same_port_resumes_within_10_s() -> None:
    """Subscription mode; reconnecting as the coordinator does (backoff, connect, read)."""
    sim = press()
    await sim.start()
    port = sim.port
    driver = OpcUaDriver(sim.profile, Endpoint("press-01", endpoint_url=sim.endpoint_url))
    try:
        async with running(sim):
            await driver.connect()
            assert driver.subscribed
            assert await driver.read()
            await sim.stop()
            await sim.start()  # a fresh server: no sessions, no subscriptions
            assert sim.port == port
            restarted_ms = time.time_ns() // 1_000_000
            restarted = time.monotonic()

            fresh: list[Sample] = []
            connected, backoff = True, 0.25
            while time.monotonic() - restarted < 10.0:
                try:
                    if not connected:
                        await driver.connect()
                        connected, backoff = True, 0.25
                    samples = await driver.read()
                except DeviceUnreachable:
                    await driver.close()
                    connected = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                fresh += [
                    s for s in samples if s.ts_ms > restarted_ms and s.quality is Quality.GOOD
                ]
                delivered = sum(s.notifications for s in driver.subscriptions.values())
                if fresh and delivered:
                    break
                await asyncio.sleep(0.1)
            resumed_after = time.monotonic() - restarted
            print(f"data resumed {resumed_after:.2f} s after the restart")  # -s shows it
            assert fresh, "no new sample within 10 s of the restart"
            assert resumed_after < 10.0
            assert driver.subscribed  # the subscriptions were recreated on the new server
            assert sim.subscriptions(), "the restarted server holds the new subscription"
    finally:
        await driver.close()
        await sim.stop()


def many_tags_profile(count: int) -> Profile:
    tags = "\n".join(
        f"  - {{name: t{i:03d}, type: float64, node: s=Big.T{i:03d}, role: process_param}}"
        for i in range(count)
    )
    text = (
        "model: big_machine\nprotocol: opcua\n"
        "opcua: {namespace_uri: 'urn:forgeline:test:big', subscribe: false}\n"
        f"tags:\n{tags}\n"
    )
    return parse_profile(text, "big_machine.yaml")


async def test_max_nodes_per_read_is_enforced_by_the_simulator_and_respected() -> None:
    profile = many_tags_profile(120)
    sim = OpcUaDeviceServer(
        "big-01", profile, MachineBehaviour(profile, seed=1), max_nodes_per_read=50
    )
    await sim.start()
    driver = OpcUaDriver(profile, Endpoint("big-01", endpoint_url=sim.endpoint_url))
    try:
        await driver.connect()
        for _ in range(2):
            before = sim.read_requests
            samples = await driver.read()
            assert len(samples) == 120
            assert all(s.quality is Quality.GOOD for s in samples)
            assert sim.read_requests - before == 3  # one full read = 50 + 50 + 20
            assert sim.read_sizes[-3:] == [50, 50, 20]

        # The limit is real: a client that ignores it is refused.
        careless = OpcUaLink(sim.endpoint_url, timeout_s=3.0, max_nodes_per_read=120)
        await careless.connect()
        try:
            nodes = await careless.resolve(
                [t.node or "" for t in profile.tags], "urn:forgeline:test:big"
            )
            with pytest.raises(DeviceRejected, match="BadTooManyOperations"):
                await careless.read_values(nodes)
        finally:
            await careless.close()
    finally:
        await driver.close()
        await sim.stop()


def scan_class_profile() -> Profile:
    document = yaml.safe_load(profile_path("sole_injection_press").read_text(encoding="utf-8"))
    document["scan_classes"] = {"fast": 0.2, "slow": 5}
    for tag in document["tags"]:
        if tag["name"] == "machine_state":
            tag["scan_class"] = "fast"
        elif tag["name"] in TEMPERATURES:
            tag["scan_class"] = "slow"
    return parse_profile(yaml.safe_dump(document, allow_unicode=True), "press-scan.yaml")


async def test_one_subscription_per_scan_class_with_its_interval() -> None:
    profile = scan_class_profile()
    sim = press(profile)
    await sim.start()
    driver = OpcUaDriver(profile, Endpoint("press-01", endpoint_url=sim.endpoint_url))
    try:
        await driver.connect()
        subscriptions = driver.subscriptions
        # the default class: the profile's opcua.sampling_interval_ms / publishing_interval_ms
        assert set(subscriptions) == {(200.0, 200.0), (500.0, 500.0), (5000.0, 5000.0)}
        node_of = {t.name: n for t, n in zip(profile.tags, await _nodes(driver), strict=True)}
        fast, default, slow = (subscriptions[k] for k in sorted(subscriptions))
        assert fast.node_ids == [node_of["machine_state"]]
        assert set(slow.node_ids) == {node_of[name] for name in TEMPERATURES}
        others = {n for name, n in node_of.items() if name not in [*TEMPERATURES, "machine_state"]}
        assert set(default.node_ids) == others
        for (sampling_ms, publishing_ms), subscription in subscriptions.items():
            assert subscription.sampling_interval_ms == sampling_ms  # requested per item
            assert subscription.publishing_interval_ms == publishing_ms  # as revised
        # ... and as the server holds them
        held = {interval: set(nodes) for interval, nodes in sim.subscriptions()}
        assert held == {
            200.0: {node_of["machine_state"]},
            500.0: others,
            5000.0: {node_of[name] for name in TEMPERATURES},
        }
        samples = await driver.read()  # the first read after connect: every tag
        assert {s.metric for s in samples} == {t.name for t in profile.tags}
    finally:
        await driver.close()
        await sim.stop()


async def _nodes(driver: OpcUaDriver) -> list[object]:
    link = driver.link
    assert link is not None
    return list(
        await link.resolve(
            [t.node or "" for t in driver.profile.tags], driver.profile.opcua_options.namespace_uri
        )
    )
