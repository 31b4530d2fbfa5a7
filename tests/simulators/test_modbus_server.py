"""The Modbus simulator: a raw pymodbus client reads the profile's registers, writes, and sees faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from device_profiles import available, profile_path
from protocols.modbus.codec import decode_tag
from protocols.profile import Profile, Tag, load_profile
from simulators.behaviour import BehaviourConfig, MachineBehaviour
from simulators.modbus_server import ModbusDeviceServer

pytestmark = pytest.mark.anyio

MODBUS_PROFILES = [n for n in available() if load_profile(profile_path(n)).protocol == "modbus_tcp"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _server(name: str, **options: Any) -> ModbusDeviceServer:
    profile = load_profile(profile_path(name))
    behaviour = MachineBehaviour(profile, seed=5, config=BehaviourConfig(mean_running_s=1e9))
    server = ModbusDeviceServer(f"{name}-1", profile, behaviour, **options)
    await server.start()
    await server.step(60.0)
    return server


@pytest.fixture
async def cnc() -> AsyncIterator[ModbusDeviceServer]:
    server = await _server("cnc_machining_centre")
    yield server
    await server.stop()


async def _client(server: ModbusDeviceServer, timeout_s: float = 1.0) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient(server.host, port=server.port, timeout=timeout_s, retries=0)
    assert await client.connect()
    return client


async def _read(client: AsyncModbusTcpClient, profile: Profile, tag: Tag, unit: int = 1) -> Any:
    assert tag.address is not None
    address = tag.address - (1 if profile.modbus_options.addressing == "one_based" else 0)
    read = {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[str(tag.table)]
    response = await read(address, count=tag.register_count, device_id=unit)
    if response.isError():
        return response
    if tag.table in ("coil", "discrete"):
        return response.bits[0]
    return decode_tag(tag, response.registers, profile.word_order(tag))


@pytest.mark.parametrize("name", MODBUS_PROFILES)
async def test_every_tag_reads_back_as_the_behaviour_value(name: str) -> None:
    server = await _server(name)
    client = await _client(server)
    try:
        values = server.values()
        for tag in server.profile.tags:
            read = await _read(client, server.profile, tag)
            assert read == pytest.approx(values[tag.name]), tag.name
        # and the datastore follows the next step
        await server.step(600.0)
        counter = server.profile.tag_with_role("cycle_count")
        assert counter is not None
        assert await _read(client, server.profile, counter) == server.values()[counter.name] > 0
    finally:
        client.close()
        await server.stop()


async def test_one_based_profile_is_served_at_pdu_address_minus_one() -> None:
    server = await _server("breaker_assembly_station")
    client = await _client(server)
    try:
        state_code = server.values()["station_state"]
        response = await client.read_holding_registers(0, count=3, device_id=1)  # registers 1..3
        assert response.registers[0] == state_code
        assert response.registers[2] & 0b111 == 0b111  # door, light curtain, air: all true
        await server.excursion("screw_torque", 2.5, 60.0)
        await server.step(61.0)
        words = (await client.read_holding_registers(20, count=2, device_id=1)).registers
        assert decode_tag(server.profile.tag("screw_torque"), words, "CDAB") == pytest.approx(2.5)
        assert decode_tag(server.profile.tag("screw_torque"), words, "ABCD") != pytest.approx(2.5)
    finally:
        client.close()
        await server.stop()


async def test_client_writes_to_writable_tags_stick(cnc: ModbusDeviceServer) -> None:
    client = await _client(cnc)
    try:
        assert not (await client.write_register(2, 5150, device_id=1)).isError()  # program_number
        assert not (await client.write_coil(0, True, device_id=1)).isError()  # hold_after_cycle
        await cnc.step(61.0)
        await cnc.step(62.0)
        assert cnc.values()["program_number"] == 5150
        assert cnc.values()["hold_after_cycle"] is True
        assert await _read(client, cnc.profile, cnc.profile.tag("program_number")) == 5150
        assert await _read(client, cnc.profile, cnc.profile.tag("hold_after_cycle")) is True
        # a read-only tag refuses the write with exception 2, as a PLC would
        refused = await client.write_register(0, 99, device_id=1)
        assert refused.isError()
        assert refused.exception_code == 2
    finally:
        client.close()


async def test_unresponsive_device_times_out_then_answers_again(cnc: ModbusDeviceServer) -> None:
    client = await _client(cnc, timeout_s=0.3)
    try:
        await cnc.set_unresponsive(True)
        with pytest.raises(ModbusException):
            await client.read_holding_registers(0, count=1, device_id=1)
        assert cnc.requests_dropped >= 1
        await cnc.set_unresponsive(False)
        client.close()
        client = await _client(cnc, timeout_s=1.0)
        response = await client.read_holding_registers(0, count=1, device_id=1)
        assert response.registers == [cnc.values()["machine_state"]]
    finally:
        client.close()


async def test_dropped_connection_is_seen_and_a_reconnect_works(cnc: ModbusDeviceServer) -> None:
    reader, writer = await asyncio.open_connection(cnc.host, cnc.port)
    try:
        await asyncio.sleep(0.05)
        assert await cnc.drop_connections() == 1
        assert await asyncio.wait_for(reader.read(), timeout=2.0) == b""  # EOF: closed by the peer
    finally:
        writer.close()
    client = await _client(cnc)
    try:
        assert not (await client.read_holding_registers(0, count=1, device_id=1)).isError()
    finally:
        client.close()


async def test_bad_quality_answers_exception_4_for_the_affected_tags(
    cnc: ModbusDeviceServer,
) -> None:
    client = await _client(cnc)
    try:
        await cnc.set_bad_quality(True, ["spindle_vibration"])
        failed = await client.read_input_registers(6, count=1, device_id=1)
        assert failed.isError()
        assert failed.exception_code == 4
        block = await client.read_input_registers(0, count=8, device_id=1)  # touches it too
        assert block.exception_code == 4
        assert not (await client.read_input_registers(0, count=6, device_id=1)).isError()
        await cnc.set_bad_quality(False, ["spindle_vibration"])
        assert not (await client.read_input_registers(6, count=1, device_id=1)).isError()
    finally:
        client.close()


async def test_strict_map_rejects_unmapped_registers() -> None:
    server = await _server("cnc_machining_centre", strict_map=True)
    client = await _client(server)
    try:
        gap = await client.read_holding_registers(4, count=1, device_id=1)
        assert gap.exception_code == 2
        assert not (await client.read_holding_registers(10, count=6, device_id=1)).isError()
    finally:
        client.close()
        await server.stop()
    lenient = await _server("cnc_machining_centre")
    client = await _client(lenient)
    try:
        assert (await client.read_holding_registers(4, count=1, device_id=1)).registers == [0]
    finally:
        client.close()
        await lenient.stop()


def test_a_profile_of_another_protocol_is_refused() -> None:
    profile = load_profile(profile_path("sole_injection_press"))
    with pytest.raises(ValueError, match="opcua"):
        ModbusDeviceServer("press-1", profile, MachineBehaviour(profile))


async def test_a_request_for_another_unit_id_gets_no_answer(cnc: ModbusDeviceServer) -> None:
    client = await _client(cnc, timeout_s=0.3)
    try:
        with pytest.raises(ModbusException):
            await client.read_holding_registers(0, count=1, device_id=7)
    finally:
        client.close()
    client = await _client(cnc)
    try:
        assert not (await client.read_holding_registers(0, count=1, device_id=1)).isError()
    finally:
        client.close()
