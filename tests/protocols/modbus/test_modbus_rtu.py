"""ModbusSerialLine and ModbusRtuLink against a real pymodbus RTU server over a socat pty pair."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.modbus.client import ModbusRtuLink, ModbusSerialLine, SerialSettings
from protocols.modbus.planner import Block
from protocols.profile import Tag
from tests.protocols.modbus.serial_pair import PtyPair, pty_pair

pytestmark = pytest.mark.anyio

BAUD = 115200
SILENT_UNIT = 9  # no slave answers to it


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PtyPair]:
    with pty_pair(tmp_path) as made:
        yield made


def _unit(unit_id: int) -> SimDevice:
    """Holding 0..2 = unit*100 + i, register 3 unmapped, 4 = 50; coils and inputs too."""
    base = unit_id * 100
    return SimDevice(
        unit_id,
        simdata=(
            [SimData(0, values=[True, False, True], datatype=DataType.BITS)],
            [SimData(0, values=[False, True], datatype=DataType.BITS)],
            [
                SimData(0, values=[base, base + 1, base + 2], datatype=DataType.REGISTERS),
                SimData(4, values=[50], datatype=DataType.REGISTERS),
            ],
            [SimData(0, values=[0x47F1, 0x2000], datatype=DataType.REGISTERS)],
        ),
    )


@dataclass
class Line:
    """The slaves' end: a pymodbus serial server answering for units 1 and 2."""

    server: ModbusSerialServer
    received: list[int]  # unit ids of the requests that reached the slaves


@pytest.fixture
async def slaves(pair: PtyPair) -> AsyncIterator[Line]:
    received: list[int] = []

    def trace(sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        if not sending:
            received.append(pdu.dev_id)
            if pdu.dev_id not in (1, 2):
                # no slave with that id: silence (pymodbus's SimDevice store would answer for
                # a missing id with exception 4, ignore_missing_devices notwithstanding)
                return None
        return pdu

    server = ModbusSerialServer(
        [_unit(1), _unit(2)],
        framer=FramerType.RTU,
        port=str(pair.sim),
        baudrate=BAUD,
        parity="N",
        ignore_missing_devices=True,
        trace_pdu=trace,
    )
    await server.serve_forever(background=True)
    try:
        yield Line(server, received)
    finally:
        await server.shutdown()


@pytest.fixture
async def line(pair: PtyPair) -> AsyncIterator[ModbusSerialLine]:
    opened = ModbusSerialLine(SerialSettings(str(pair.edge), BAUD, "N"))
    await opened.connect()
    try:
        yield opened
    finally:
        await opened.close()


def _holding_block(start: int, count: int) -> Block:
    return Block(
        "holding", start, count, (Tag(name="t", type="uint16", table="holding", address=start),)
    )


async def test_units_on_one_line_read_through_one_client(
    slaves: Line, line: ModbusSerialLine
) -> None:
    one = ModbusRtuLink(line, unit_id=1, timeout_s=0.5)
    two = ModbusRtuLink(line, unit_id=2, timeout_s=0.5)
    assert one.connected
    assert two.connected
    assert await one.read("holding", 0, 3) == [100, 101, 102]
    assert await two.read("holding", 0, 3) == [200, 201, 202]
    assert await two.read("input", 0, 2) == [0x47F1, 0x2000]
    assert await one.read("coil", 0, 3) == [True, False, True]
    assert await one.read("discrete", 0, 2) == [False, True]
    assert slaves.received == [1, 2, 2, 1, 1]
    assert two.where.startswith(f"serial {line.settings.port} ")
    assert two.where.endswith(" unit 2")


async def test_writes_reach_the_addressed_unit(slaves: Line, line: ModbusSerialLine) -> None:
    two = ModbusRtuLink(line, unit_id=2, timeout_s=0.5)
    await two.write_register(1, 4321)
    await two.write_registers(0, [7, 8])
    await two.write_coil(1, True)
    assert await two.read("holding", 0, 3) == [7, 8, 202]
    assert await two.read("coil", 0, 3) == [True, True, True]
    assert await ModbusRtuLink(line, 1, 0.5).read("holding", 0, 3) == [100, 101, 102]


async def test_silent_unit_costs_its_timeout_and_leaves_the_port_open(
    slaves: Line, line: ModbusSerialLine
) -> None:
    silent = ModbusRtuLink(line, unit_id=SILENT_UNIT, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(
        DeviceUnreachable, match=rf"unit {SILENT_UNIT}: FC03.*no answer within 0.2 s"
    ):
        await silent.read("holding", 0, 1)
    assert time.monotonic() - started >= 0.2  # it waited its own timeout, no retries below it
    assert line.connected, "a silent slave must not close the port for its neighbours"
    assert await ModbusRtuLink(line, 1, 0.5).read("holding", 0, 2) == [100, 101]
    assert slaves.received == [SILENT_UNIT, 1]


async def test_exception_answer_is_rejected_with_its_code(
    slaves: Line, line: ModbusSerialLine
) -> None:
    one = ModbusRtuLink(line, unit_id=1, timeout_s=0.5)
    with pytest.raises(DeviceRejected, match="exception 2 \\(illegal data address\\)") as info:
        await one.read_block(_holding_block(2, 3))  # register 3 is unmapped
    assert info.value.code == 2
    assert await one.read_block(_holding_block(4, 1)) == [50]


async def test_missing_port_is_unreachable(tmp_path: Path) -> None:
    line = ModbusSerialLine(SerialSettings(str(tmp_path / "ttyNOPE")))
    with pytest.raises(DeviceUnreachable, match="ttyNOPE"):
        await line.connect()
    assert not line.connected
    with pytest.raises(DeviceUnreachable, match="serial port is not open"):
        await ModbusRtuLink(line, 1, 0.5).read("holding", 0, 1)


async def test_a_vanished_port_is_noticed(pair: PtyPair, line: ModbusSerialLine) -> None:
    pair.stop()  # the cable is pulled: socat closes both ends
    deadline = time.monotonic() + 5
    while line.connected and time.monotonic() < deadline:  # noqa: ASYNC110 (polling a flag)
        await asyncio.sleep(0.02)
    assert not line.connected
    with pytest.raises(DeviceUnreachable):
        await ModbusRtuLink(line, 1, 0.2).read("holding", 0, 1)


def test_silent_interval_follows_the_character_format() -> None:
    # 9600 baud 8E1: 11 bits a character, 3.5 characters
    assert SerialSettings("/dev/ttyS0", 9600, "E").silent_interval_s == pytest.approx(
        3.5 * 11 / 9600
    )
    assert SerialSettings("/dev/ttyS0", 19200, "N", 2).character_bits == 11
    assert SerialSettings("/dev/ttyS0", 9600, "N", 1, 7).character_bits == 9
    # above 19200 baud the spec fixes it at 1.75 ms
    assert SerialSettings("/dev/ttyS0", 115200, "N").silent_interval_s == 0.00175


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("parity", "X", "parity must be N, E or O"),
        ("stopbits", 3, "stopbits must be 1 or 2"),
        ("bytesize", 5, "bytesize must be 7 or 8"),
        ("baudrate", 0, "baudrate must be positive"),
    ],
)
def test_bad_serial_settings_are_refused(field: str, value: object, message: str) -> None:
    options: dict[str, object] = {"port": "/dev/ttyUSB0", field: value}
    with pytest.raises(ValueError, match=message):
        SerialSettings(**options)  # type: ignore[arg-type]
