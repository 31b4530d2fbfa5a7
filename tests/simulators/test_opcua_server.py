"""The OPC UA simulator: a raw asyncua client reads nodes with status and source time, and sees faults."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from asyncua import Client, ua

from device_profiles import profile_path
from protocols.profile import load_profile
from simulators.behaviour import BehaviourConfig, MachineBehaviour
from simulators.opcua_server import OpcUaDeviceServer, node_id, variant_type

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def press() -> AsyncIterator[OpcUaDeviceServer]:
    """One press server for the module (asyncua's init costs about a second)."""
    profile = load_profile(profile_path("sole_injection_press"))
    behaviour = MachineBehaviour(profile, seed=8, config=BehaviourConfig(mean_running_s=1e9))
    server = OpcUaDeviceServer("press-01", profile, behaviour, epoch_s=time.time())
    await server.start()
    await server.step(1.0)
    yield server
    await server.stop()


async def test_nodes_live_in_the_profile_namespace_with_good_status(
    press: OpcUaDeviceServer,
) -> None:
    assert press.endpoint_url == f"opc.tcp://127.0.0.1:{press.port}/forgeline/"
    await press.step(40.0)
    sim_time = datetime.fromtimestamp(press.epoch_s + 40.0, UTC)
    async with Client(press.endpoint_url, timeout=3) as client:
        idx = await client.get_namespace_index("urn:forgeline:sim:sole_injection_press")
        values = press.values()
        for tag in press.profile.tags:
            data = await client.get_node(node_id(tag, idx)).read_data_value()
            assert data.StatusCode is not None
            assert data.StatusCode.is_good(), tag.name
            assert data.Value is not None
            assert data.Value.VariantType == variant_type(tag), tag.name
            assert data.Value.Value == pytest.approx(values[tag.name]), tag.name
            assert data.SourceTimestamp == sim_time, tag.name
        device = await client.nodes.objects.get_child(f"{idx}:press-01")
        assert len(await device.get_children()) == len(press.profile.tags)
    assert values["shot_counter"] >= 1
    assert values["good_soles"] + values["scrap_soles"] == 2 * values["shot_counter"]


async def test_a_client_write_to_a_writable_node_sticks(press: OpcUaDeviceServer) -> None:
    async with Client(press.endpoint_url, timeout=3) as client:
        idx = await client.get_namespace_index(press.namespace_uri)
        mould = client.get_node(node_id(press.profile.tag("mould_id"), idx))
        await mould.write_value(ua.Variant("TPR-4102-44", ua.VariantType.String))
        await press.step(41.0)
        await press.step(42.0)
        assert press.values()["mould_id"] == "TPR-4102-44"
        assert await mould.read_value() == "TPR-4102-44"
        counter = client.get_node(node_id(press.profile.tag("shot_counter"), idx))
        with pytest.raises(ua.UaStatusCodeError):
            await counter.write_value(ua.Variant(0, ua.VariantType.UInt32))


async def test_bad_quality_reads_bad_sensor_failure_until_cleared(press: OpcUaDeviceServer) -> None:
    async with Client(press.endpoint_url, timeout=3) as client:
        idx = await client.get_namespace_index(press.namespace_uri)
        node = client.get_node(node_id(press.profile.tag("injection_pressure"), idx))
        await press.set_bad_quality(True, ["injection_pressure"])
        await press.step(43.0)
        bad = await node.read_data_value(raise_on_bad_status=False)
        assert bad.StatusCode == ua.StatusCode(ua.StatusCodes.BadSensorFailure)
        # OPC UA Part 4 §7.7.1: a Bad status carries a null value (asyncua enforces it)
        assert bad.Value is None or bad.Value.Value is None
        other = await client.get_node(
            node_id(press.profile.tag("mould_temperature"), idx)
        ).read_data_value()
        assert other.StatusCode is not None
        assert other.StatusCode.is_good()
        await press.set_bad_quality(False, ["injection_pressure"])
        await press.step(44.0)
        good = await node.read_data_value()
        assert good.StatusCode is not None
        assert good.StatusCode.is_good()


async def test_excursion_is_visible_to_a_client(press: OpcUaDeviceServer) -> None:
    await press.excursion("barrel_temperature_zone1", 182.0, 30.0)
    await press.step(45.0)
    async with Client(press.endpoint_url, timeout=3) as client:
        idx = await client.get_namespace_index(press.namespace_uri)
        node = client.get_node(node_id(press.profile.tag("barrel_temperature_zone1"), idx))
        assert await node.read_value() == pytest.approx(182.0)


async def test_unresponsive_refuses_clients_then_restarts_on_the_same_port(
    press: OpcUaDeviceServer,
) -> None:
    port = press.port
    await press.set_unresponsive(True)
    try:
        with pytest.raises((OSError, TimeoutError)):
            async with Client(press.endpoint_url, timeout=1):
                pass
    finally:
        await press.set_unresponsive(False)
    assert press.port == port
    await press.step(46.0)
    async with Client(press.endpoint_url, timeout=3) as client:
        idx = await client.get_namespace_index(press.namespace_uri)
        state = client.get_node(node_id(press.profile.tag("machine_state"), idx))
        assert await state.read_value() == press.values()["machine_state"]


async def test_dropped_connections_end_the_session_and_a_new_one_works(
    press: OpcUaDeviceServer,
) -> None:
    client = Client(press.endpoint_url, timeout=1)
    await client.connect()
    try:
        assert await press.drop_connections() >= 1
        with pytest.raises((ConnectionError, TimeoutError, ua.UaError)):
            await client.nodes.server_state.read_value()
    finally:
        with contextlib.suppress(ConnectionError, TimeoutError, ua.UaError, OSError):
            await client.disconnect()  # the socket is already gone
    async with Client(press.endpoint_url, timeout=3) as again:
        assert await again.nodes.server_state.read_value() == ua.ServerState.Running
