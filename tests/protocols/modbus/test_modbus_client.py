"""ModbusTcpLink against a real pymodbus server, a silent peer and a closed port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.modbus.client import ModbusTcpLink
from protocols.modbus.planner import Block
from protocols.profile import Tag

pytestmark = pytest.mark.anyio

UNIT = 7


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    """A pymodbus server for unit 7 with all four tables; holding register 3 is unmapped."""
    device = SimDevice(
        UNIT,
        simdata=(
            [SimData(0, values=[True, False, True], datatype=DataType.BITS)],
            [SimData(0, values=[False, True], datatype=DataType.BITS)],
            [
                SimData(0, values=[10, 20, 30], datatype=DataType.REGISTERS),
                SimData(4, values=[50], datatype=DataType.REGISTERS),
            ],
            [SimData(0, values=[0x47F1, 0x2000], datatype=DataType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    try:
        yield server.transport.sockets[0].getsockname()[1]
    finally:
        await server.shutdown()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_reads_each_table_with_its_function_code(server_port: int) -> None:
    link = ModbusTcpLink("127.0.0.1", server_port, UNIT, timeout_s=0.5)
    await link.connect()
    try:
        assert link.connected
        assert await link.read("holding", 0, 3) == [10, 20, 30]
        assert await link.read("input", 0, 2) == [0x47F1, 0x2000]
        assert await link.read("coil", 0, 3) == [True, False, True]
        assert await link.read("discrete", 0, 2) == [False, True]
        tag = Tag(name="x", type="uint16", table="holding", address=4)
        assert await link.read_block(Block("holding", 4, 1, (tag,))) == [50]
    finally:
        await link.close()
    assert not link.connected


async def test_exception_response_is_rejected_with_its_code(server_port: int) -> None:
    link = ModbusTcpLink("127.0.0.1", server_port, UNIT, timeout_s=0.5)
    await link.connect()
    try:
        with pytest.raises(DeviceRejected, match="illegal data address") as caught:
            await link.read("holding", 2, 2)
        assert caught.value.code == 2
        assert link.connected, "an exception answer leaves the link up"
        await link.write_registers(0, [11, 21])
        await link.write_register(2, 31)
        await link.write_coil(1, True)
        assert await link.read("holding", 0, 3) == [11, 21, 31]
        assert await link.read("coil", 0, 3) == [True, True, True]
    finally:
        await link.close()


async def test_refused_connection_names_the_device() -> None:
    port = _closed_port()
    link = ModbusTcpLink("127.0.0.1", port, UNIT, timeout_s=0.5)
    with pytest.raises(
        DeviceUnreachable, match=rf"127\.0\.0\.1:{port} unit {UNIT}: cannot connect"
    ):
        await link.connect()
    with pytest.raises(DeviceUnreachable, match="not connected"):
        await link.read("holding", 0, 1)


async def test_a_silent_peer_times_out_and_the_link_closes_itself() -> None:
    """A peer that accepts TCP but never answers Modbus: one timeout, then DeviceUnreachable."""
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    link = ModbusTcpLink("127.0.0.1", port, UNIT, timeout_s=0.2)
    try:
        await link.connect()
        with pytest.raises(DeviceUnreachable, match=r"no answer within 0\.2 s"):
            await link.read("holding", 0, 1)
        assert not link.connected
    finally:
        await link.close()
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unit id 300"):
        ModbusTcpLink("127.0.0.1", 502, 300)
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        ModbusTcpLink("127.0.0.1", 502, 1, timeout_s=0)
