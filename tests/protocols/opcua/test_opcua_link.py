"""OpcUaLink against a real asyncua server: resolve, batched reads, limits, subscriptions, writes."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from asyncua import ua

from protocols.errors import CodecError, DeviceRejected, DeviceUnreachable
from protocols.opcua import OpcUaLink, ReadResult, UnknownNamespace
from protocols.quality import Quality
from tests.protocols.opcua.opcua_server import (
    DRIFT_SOURCE_MS,
    NAMESPACE,
    OpcUaTestServer,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ALL = ["Temp", "Pressure", "Count", "Total", "Running", "Recipe", "Fault", "Drift", "Nan"]


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)


async def next_change(subscription, node_id: ua.NodeId, timeout_s: float = 5.0) -> ReadResult:
    """The next notification for ``node_id`` (skipping others), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        result = await subscription.next_result(left)
        if result is not None and result.node_id == node_id:
            return result
    pytest.fail(f"no notification for {node_id.to_string()} within {timeout_s} s")


@pytest.fixture
async def own_server() -> AsyncIterator[OpcUaTestServer]:
    """A server of this test's own, for tests that stop, restart or reconfigure it."""
    server = await OpcUaTestServer().start()
    yield server
    await server.stop()


async def test_resolve_by_namespace_uri(link: OpcUaLink, opcua_server: OpcUaTestServer) -> None:
    assert opcua_server.namespace_index == 3  # not 2: the URI, not luck, must find it
    nodes = await link.resolve(
        ["s=Press.Temp", f"ns={opcua_server.namespace_index};s=Press.Count", "i=2258",
         f"nsu={NAMESPACE};s=Press.Recipe"],
        NAMESPACE,
    )  # fmt: skip
    assert [n.to_string() for n in nodes] == [
        "ns=3;s=Press.Temp", "ns=3;s=Press.Count", "i=2258", "ns=3;s=Press.Recipe",
    ]  # fmt: skip
    with pytest.raises(UnknownNamespace, match="urn:forgeline:missing"):
        await link.resolve(["s=Press.Temp"], "urn:forgeline:missing")


async def test_batched_read_returns_values_statuses_and_source_timestamps(
    link: OpcUaLink, opcua_server: OpcUaTestServer
) -> None:
    before_ms = time.time_ns() // 1_000_000 - 60_000
    nodes = [opcua_server.node_id(name) for name in ALL]
    requests = link.read_requests
    results = {name: r for name, r in zip(ALL, await link.read_values(nodes), strict=True)}

    assert link.read_requests == requests + 1  # one Read for the whole batch
    assert results["Temp"].value == 21.5
    assert results["Temp"].variant_type is ua.VariantType.Double
    assert results["Pressure"].value == pytest.approx(3.5)
    assert results["Count"].value == -7
    assert results["Total"].value == 123456
    assert results["Running"].value is True
    assert results["Recipe"].value == "R-100"
    assert math.isnan(results["Nan"].value)
    for name in ("Temp", "Pressure", "Count", "Total", "Running", "Recipe"):
        assert results[name].quality is Quality.GOOD
        assert results[name].status == "Good"
        assert results[name].reason is None
        assert results[name].ts_origin == "source"
        assert results[name].ts_ms > before_ms

    fault = results["Fault"]
    assert (fault.value, fault.quality, fault.status) == (None, Quality.BAD, "BadSensorFailure")
    assert fault.reason == "opcua:BadSensorFailure"
    drift = results["Drift"]
    assert drift.quality is Quality.UNCERTAIN
    assert drift.value == 1.25
    assert (drift.ts_ms, drift.ts_origin) == (DRIFT_SOURCE_MS, "source")


async def test_an_unknown_node_is_bad_without_failing_the_others(
    link: OpcUaLink, opcua_server: OpcUaTestServer
) -> None:
    nodes = [
        opcua_server.node_id("Temp"),
        ua.NodeId("Press.DoesNotExist", opcua_server.namespace_index),
        opcua_server.node_id("Count"),
    ]
    temp, unknown, count = await link.read_values(nodes)
    assert (temp.value, temp.quality) == (21.5, Quality.GOOD)
    assert (count.value, count.quality) == (-7, Quality.GOOD)
    assert unknown.quality is Quality.BAD
    assert unknown.status == "BadNodeIdUnknown"
    assert unknown.reason == "opcua:BadNodeIdUnknown"
    assert unknown.value is None


async def test_an_explicit_limit_splits_a_read_into_batches(opcua_server: OpcUaTestServer) -> None:
    names = ["Temp", "Pressure", "Count", "Total", "Running"]
    link = OpcUaLink(opcua_server.url, timeout_s=2.0, max_nodes_per_read=2)
    await link.connect()
    try:
        assert link.max_nodes_per_read == 2
        opcua_server.reads.clear()
        results = await link.read_values([opcua_server.node_id(n) for n in names])
    finally:
        await link.close()
    assert link.read_requests == 3
    assert [len(nodes) for nodes in opcua_server.reads] == [2, 2, 1]
    assert [r.node_id for r in results] == [opcua_server.node_id(n) for n in names]
    assert [r.value for r in results][:4:2] == [21.5, -7]


async def test_the_servers_max_nodes_per_read_is_read_at_connect_and_obeyed() -> None:
    server = await OpcUaTestServer(max_nodes_per_read=2).start()  # advertises and enforces 2
    names = ["Temp", "Pressure", "Count", "Total", "Running"]
    nodes = [server.node_id(n) for n in names]
    obeys = OpcUaLink(server.url, timeout_s=2.0)
    ignores = OpcUaLink(server.url, timeout_s=2.0, max_nodes_per_read=10)
    try:
        await obeys.connect()
        assert obeys.max_nodes_per_read == 2
        server.reads.clear()
        results = await obeys.read_values(nodes)
        assert [len(batch) for batch in server.reads] == [2, 2, 1]
        assert [r.node_id for r in results] == nodes
        assert all(r.quality is Quality.GOOD for r in results)

        await ignores.connect()  # proves the server really refuses an oversized Read
        with pytest.raises(DeviceRejected, match="BadTooManyOperations"):
            await ignores.read_values(nodes)
    finally:
        await obeys.close()
        await ignores.close()
        await server.stop()


async def test_a_subscription_delivers_a_change_written_on_the_server(
    link: OpcUaLink, opcua_server: OpcUaTestServer
) -> None:
    temp, count = opcua_server.node_id("Temp"), opcua_server.node_id("Count")
    unknown = ua.NodeId("Press.DoesNotExist", opcua_server.namespace_index)
    subscription = await link.subscribe([temp, count, unknown], 50, 50, {temp: 0.5, count: None})
    try:
        assert subscription.node_ids == [temp, count]
        assert subscription.rejected == {unknown: "BadNodeIdUnknown"}
        initial = await next_change(
            subscription, temp
        )  # every monitored item starts with its value
        assert initial.quality is Quality.GOOD

        await opcua_server.set_value("Temp", 35.0)
        change = await next_change(subscription, temp)
        while change.value != 35.0:  # the initial value may still be queued
            change = await next_change(subscription, temp)
        assert change.ts_origin == "source"
        assert change.ts_ms >= initial.ts_ms
    finally:
        await subscription.delete()
        await opcua_server.set_value("Temp", 21.5)


async def test_a_refused_deadband_filter_falls_back_to_no_filter() -> None:
    server = await OpcUaTestServer(refuse_deadband_filters=True).start()
    link = OpcUaLink(server.url, timeout_s=2.0)
    temp, count = server.node_id("Temp"), server.node_id("Count")
    try:
        await link.connect()
        subscription = await link.subscribe([temp, count], 50, 50, {temp: 0.5, count: None})
        assert sorted(n.to_string() for n in subscription.node_ids) == [
            count.to_string(), temp.to_string(),
        ]  # fmt: skip
        assert subscription.unfiltered == {temp}
        assert subscription.rejected == {}
        await server.set_value("Temp", 21.6)  # within the deadband asked for: reported anyway
        change = await next_change(subscription, temp)
        while change.value != 21.6:
            change = await next_change(subscription, temp)
    finally:
        await link.close()
        await server.stop()


async def test_subscription_results_can_go_to_a_callback(
    link: OpcUaLink, opcua_server: OpcUaTestServer
) -> None:
    received: list[ReadResult] = []
    recipe = opcua_server.node_id("Recipe")
    subscription = await link.subscribe([recipe], 50, 50, on_result=received.append)

    async def got_new_recipe() -> bool:
        return any(r.value == "R-200" for r in received)

    try:
        await opcua_server.set_value("Recipe", "R-200")
        await eventually(got_new_recipe)
        assert subscription.queue.empty()
    finally:
        await subscription.delete()
        await opcua_server.set_value("Recipe", "R-100")


async def test_write_round_trip(link: OpcUaLink, opcua_server: OpcUaTestServer) -> None:
    setpoint, speed = opcua_server.node_id("Setpoint"), opcua_server.node_id("Speed")
    await link.write_value(setpoint, 55.5, ua.VariantType.Double)
    await link.write_value(speed, 1200, ua.VariantType.Int16)
    assert await opcua_server.value("Setpoint") == 55.5
    assert await opcua_server.value("Speed") == 1200
    (read_back,) = await link.read_values([speed])
    assert (read_back.value, read_back.variant_type) == (1200, ua.VariantType.Int16)

    with pytest.raises(CodecError, match="Int16"):
        await link.write_value(speed, 40000, ua.VariantType.Int16)
    with pytest.raises(DeviceRejected, match=r"BadNotWritable|BadUserAccessDenied") as refused:
        await link.write_value(opcua_server.node_id("Temp"), 1.0, ua.VariantType.Double)
    assert refused.value.code is not None
    assert await opcua_server.value("Temp") == 21.5


async def test_connect_to_nothing_raises_device_unreachable() -> None:
    with socket.socket() as probe:  # a port the OS just handed out, with nobody listening
        probe.bind(("127.0.0.1", 0))
        url = f"opc.tcp://127.0.0.1:{probe.getsockname()[1]}/"
    link = OpcUaLink(url, timeout_s=1.0)
    with pytest.raises(DeviceUnreachable, match=url):
        await link.connect()
    assert not link.connected


async def test_a_peer_that_never_answers_times_out_as_unreachable() -> None:
    peers: list[asyncio.StreamWriter] = []

    async def accept_and_stay_silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    silent = await asyncio.start_server(accept_and_stay_silent, "127.0.0.1", 0)
    url = f"opc.tcp://127.0.0.1:{silent.sockets[0].getsockname()[1]}/"
    link = OpcUaLink(url, timeout_s=0.5)
    try:
        with pytest.raises(DeviceUnreachable, match=r"no answer to connect within 0\.5 s") as err:
            await link.connect()
        assert url in str(err.value)
        assert peers  # the TCP connection was made: the silence, not a refusal, failed it
    finally:
        await link.close()
        silent.close()
        for writer in peers:
            writer.close()
            await writer.wait_closed()
        await silent.wait_closed()


async def test_server_restart_is_survived_by_connecting_again(
    own_server: OpcUaTestServer,
) -> None:
    link = OpcUaLink(own_server.url, timeout_s=1.0)
    await link.connect()
    temp = own_server.node_id("Temp")
    subscription = await link.subscribe([temp], 50, 50)
    statuses: list[str] = []
    try:
        await next_change(subscription, temp)
        await own_server.stop()

        failures: list[DeviceUnreachable] = []

        async def read_fails() -> bool:
            try:
                await link.read_values([temp])
            except DeviceUnreachable as exc:
                failures.append(exc)
            return bool(failures)

        await eventually(read_fails)
        assert own_server.url in str(failures[0])
        assert not link.connected
        assert subscription.lost is not None

        await own_server.restart()
        await link.connect()
        (result,) = await link.read_values([temp])
        assert (result.value, result.quality) == (21.5, Quality.GOOD)
        again = await link.subscribe([temp], 50, 50, on_status=statuses.append)
        await next_change(again, temp)
        await own_server.set_value("Temp", 99.0)
        change = await next_change(again, temp)
        while change.value != 99.0:
            change = await next_change(again, temp)

        await own_server.stop()

        async def status_reported() -> bool:
            return bool(statuses)

        await eventually(status_reported)
        assert again.lost == statuses[0]
    finally:
        await link.close()
