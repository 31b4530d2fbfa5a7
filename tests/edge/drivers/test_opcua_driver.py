"""OpcUaDriver against a real asyncua server, in polling and subscription mode, over a profile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from edge.coordinator import DeviceCoordinator
from edge.drivers.base import Endpoint, create_driver
from edge.drivers.opcua import OpcUaDriver
from edge.health import EdgeHealth
from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.profile import Profile, parse_profile
from protocols.quality import REASON_NOT_FINITE, REASON_UNKNOWN_NODE, Quality
from protocols.wire import Sample
from tests.protocols.opcua.opcua_server import DRIFT_SOURCE_MS, OpcUaTestServer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PROFILE = """\
model: test-press
vendor: forgeline
protocol: opcua
heartbeat_s: {heartbeat_s}
opcua:
  namespace_uri: urn:forgeline:test
  subscribe: {subscribe}
  sampling_interval_ms: 50
  publishing_interval_ms: 50
  timeout_s: 1.0
tags:
  - {{name: temp, node: "s=Press.Temp", type: float64, unit: degC, deadband: 0.1}}
  - {{name: pressure, node: "s=Press.Pressure", type: float32, unit: kPa, scale: 100}}
  - {{name: count, node: "s=Press.Count", type: int32}}
  - {{name: total, node: "s=Press.Total", type: uint32, role: cycle_count}}
  - {{name: running, node: "s=Press.Running", type: bool}}
  - {{name: recipe, node: "s=Press.Recipe", type: string}}
  - {{name: fault, node: "s=Press.Fault", type: float64}}
  - {{name: drift, node: "s=Press.Drift", type: float64}}
  - {{name: nan, node: "s=Press.Nan", type: float64}}
  - {{name: ghost, node: "s=Press.Ghost", type: float64}}
  - {{name: setpoint, node: "s=Press.Setpoint", type: float64, scale: 2, offset: 10, writable: true}}
  - {{name: speed, node: "s=Press.Speed", type: int16, writable: true}}
"""


def make_profile(subscribe: bool, heartbeat_s: float = 30.0) -> Profile:
    text = PROFILE.format(subscribe=str(subscribe).lower(), heartbeat_s=heartbeat_s)
    return parse_profile(text, "test-press.yaml")


def make_driver(server: OpcUaTestServer, subscribe: bool, heartbeat_s: float = 30.0) -> OpcUaDriver:
    endpoint = Endpoint(device_id="press-1", endpoint_url=server.url)
    return OpcUaDriver(make_profile(subscribe, heartbeat_s), endpoint)


def by_metric(samples: list[Sample]) -> dict[str, Sample]:
    return {s.metric: s for s in samples}


async def read_until(
    driver: OpcUaDriver, found: Callable[[list[Sample]], bool], timeout_s: float = 5.0
) -> list[Sample]:
    """Call read() until ``found`` holds for all it returned so far; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    samples: list[Sample] = []
    while True:
        samples += await driver.read()
        if found(samples):
            return samples
        if time.monotonic() > deadline:
            pytest.fail(f"no read satisfied the condition within {timeout_s} s")
        await asyncio.sleep(0.05)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


def has(metric: str, value: object) -> Callable[[list[Sample]], bool]:
    return lambda samples: any(s.metric == metric and s.value == value for s in samples)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # asyncua runs on asyncio only


@pytest.fixture(scope="module")
async def opcua_server(anyio_backend: str) -> AsyncIterator[OpcUaTestServer]:
    server = await OpcUaTestServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def own_server() -> AsyncIterator[OpcUaTestServer]:
    """A server of the test's own, for tests that stop and restart it."""
    server = await OpcUaTestServer().start()
    yield server
    await server.stop()


def check_full_read(samples: list[Sample]) -> None:
    """What one full read of the test press must say, tag by tag."""
    values = by_metric(samples)
    assert set(values) == {
        "temp", "pressure", "count", "total", "running", "recipe", "fault", "drift", "nan",
        "ghost", "setpoint", "speed",
    }  # fmt: skip
    assert values["temp"].value == 21.5
    assert values["pressure"].value == pytest.approx(350.0)  # 3.5 × scale 100
    assert values["count"].value == -7
    assert values["total"].value == 123456
    assert values["running"].value is True
    assert values["recipe"].value == "R-100"
    assert values["speed"].value == 100
    assert values["setpoint"].value == 110.0  # 50 × 2 + 10
    for metric in ("temp", "pressure", "count", "total", "running", "recipe", "speed"):
        assert values[metric].quality is Quality.GOOD, metric
        assert values[metric].reason is None
    assert isinstance(values["count"].value, int)
    assert isinstance(values["temp"].value, float)

    assert values["fault"] == Sample("fault", values["fault"].ts_ms, None, Quality.BAD,
                                     "opcua:BadSensorFailure")  # fmt: skip
    assert (values["ghost"].value, values["ghost"].quality) == (None, Quality.BAD)
    assert values["ghost"].reason == REASON_UNKNOWN_NODE
    assert (values["nan"].value, values["nan"].quality) == (None, Quality.BAD)
    assert values["nan"].reason == REASON_NOT_FINITE
    drift = values["drift"]
    assert (drift.value, drift.quality, drift.ts_ms) == (1.25, Quality.UNCERTAIN, DRIFT_SOURCE_MS)
    assert drift.reason == "opcua:UncertainLastUsableValue"


def test_init_validates_without_io() -> None:
    profile = make_profile(subscribe=True)
    # Nothing listens there: construction must not try.
    nowhere = Endpoint("press-1", endpoint_url="opc.tcp://192.0.2.1:4840/")
    assert isinstance(create_driver(profile, nowhere), OpcUaDriver)  # registered as "opcua"
    with pytest.raises(ValueError, match=r"opc\.tcp://"):
        OpcUaDriver(profile, Endpoint("press-1", endpoint_url="http://192.0.2.1/"))
    with pytest.raises(ValueError, match=r"opc\.tcp://"):
        OpcUaDriver(profile, Endpoint("press-1"))
    no_namespace = parse_profile(
        "model: p\nprotocol: opcua\ntags:\n  - {name: temp, node: 's=Press.Temp', type: float64}\n"
    )
    with pytest.raises(ValueError, match=r"tag temp.*namespace_uri"):
        OpcUaDriver(no_namespace, Endpoint("press-1", endpoint_url="opc.tcp://192.0.2.1:4840/"))


async def test_polling_mode_reads_every_tag_in_one_batch(opcua_server: OpcUaTestServer) -> None:
    driver = make_driver(opcua_server, subscribe=False)
    await driver.connect()
    try:
        assert not driver.subscribed
        opcua_server.reads.clear()
        check_full_read(await driver.read())
        assert len(opcua_server.reads) == 1  # one Read request for all twelve tags
        assert len(opcua_server.reads[0]) == 12
        await opcua_server.set_value("Count", 8)
        assert by_metric(await driver.read())["count"].value == 8
    finally:
        await driver.close()
        await opcua_server.set_value("Count", -7)


async def test_subscription_mode_reports_changes_and_a_full_read_first(
    opcua_server: OpcUaTestServer,
) -> None:
    driver = make_driver(opcua_server, subscribe=True)
    await driver.connect()
    try:
        assert driver.subscribed
        check_full_read(await driver.read())  # first read after connect: everything

        await opcua_server.set_value("Temp", 30.0)
        await opcua_server.set_value("Recipe", "R-300")
        samples = await read_until(
            driver, lambda s: has("temp", 30.0)(s) and has("recipe", "R-300")(s)
        )
        temp = next(s for s in samples if s.metric == "temp" and s.value == 30.0)
        assert temp.quality is Quality.GOOD
        later = await driver.read()
        # No heartbeat due: only changes, and the unmonitorable tag polled on every call.
        assert "count" not in by_metric(later)
        assert by_metric(later)["ghost"].reason == REASON_UNKNOWN_NODE
    finally:
        await driver.close()
        await opcua_server.set_value("Temp", 21.5)
        await opcua_server.set_value("Recipe", "R-100")


async def test_subscription_mode_refreshes_unchanged_values_every_heartbeat(
    opcua_server: OpcUaTestServer,
) -> None:
    driver = make_driver(opcua_server, subscribe=True, heartbeat_s=0.3)
    await driver.connect()
    try:
        first = await driver.read()
        assert "count" in by_metric(first)
        second = await driver.read()
        assert "count" not in by_metric(second)  # unchanged, heartbeat not yet due
        refreshed = await read_until(driver, lambda s: "count" in by_metric(s))
        check_full_read(refreshed)  # all twelve tags again, values unchanged
    finally:
        await driver.close()


async def test_write_applies_inverse_scale_and_the_tags_type(
    opcua_server: OpcUaTestServer,
) -> None:
    driver = make_driver(opcua_server, subscribe=False)
    await driver.connect()
    try:
        await driver.write("setpoint", 60.0)
        assert await opcua_server.value("Setpoint") == 25.0  # (60 - 10) / 2
        await driver.write("speed", 1500)
        assert await opcua_server.value("Speed") == 1500
        values = by_metric(await driver.read())
        assert (values["setpoint"].value, values["speed"].value) == (60.0, 1500)

        with pytest.raises(DeviceRejected, match="not writable"):
            await driver.write("temp", 1.0)
        with pytest.raises(DeviceRejected, match="no tag"):
            await driver.write("nonexistent", 1.0)
    finally:
        await driver.close()
        await opcua_server.set_value("Setpoint", 50.0)
        await opcua_server.set_value("Speed", 100)


@pytest.mark.parametrize("subscribe", [True, False], ids=["subscription", "polling"])
async def test_a_server_restart_is_survived(own_server: OpcUaTestServer, subscribe: bool) -> None:
    driver = make_driver(own_server, subscribe=subscribe)
    await driver.connect()
    try:
        check_full_read(await driver.read())
        await own_server.stop()

        failures: list[DeviceUnreachable] = []

        async def read_raises_unreachable() -> bool:
            try:
                await driver.read()
            except DeviceUnreachable as exc:
                failures.append(exc)
            return bool(failures)

        await eventually(read_raises_unreachable)
        assert "press-1" in str(failures[0])
        assert own_server.url in str(failures[0])
        with pytest.raises(DeviceUnreachable):
            await driver.connect()  # still down
        await own_server.restart()
        await driver.connect()
        check_full_read(await driver.read())
        assert driver.subscribed is subscribe
        await own_server.set_value("Temp", 42.0)
        await read_until(driver, has("temp", 42.0))
    finally:
        await driver.close()


async def test_a_subscribed_change_is_handed_on_at_once_not_at_the_next_poll(
    opcua_server: OpcUaTestServer,
) -> None:
    # a 30 s poll: a change that waited for it would never show within this test
    driver = make_driver(opcua_server, subscribe=True)
    received: list[tuple[float, Sample]] = []

    async def sink(device_id: str, samples: list[Sample], events: list, read: int) -> None:
        received.extend((time.monotonic(), s) for s in samples)

    coordinator = DeviceCoordinator(
        "press-1", driver.profile, driver, sink, EdgeHealth(["press-1"]), poll_interval_s=30.0
    )
    stop = asyncio.Event()
    task = asyncio.create_task(coordinator.run(stop))
    try:
        await eventually(lambda: _true(any(s.metric == "temp" for _, s in received)))
        await opcua_server.set_value("Temp", 31.0)
        # within 5 s (the publishing interval is 50 ms), where the next poll is 30 s away
        await eventually(lambda: _true(any(s.value == 31.0 for _, s in received)), timeout_s=5.0)
    finally:
        stop.set()
        await task
        await opcua_server.set_value("Temp", 21.5)


async def _true(value: bool) -> bool:
    return value
