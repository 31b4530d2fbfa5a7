"""ModbusDriver against a real pymodbus server started in-process on a port the OS picks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.drivers.base import Endpoint
from edge.drivers.modbus import ModbusDriver
from protocols.errors import CodecError, DeviceUnreachable
from protocols.profile import Profile, parse_profile
from protocols.quality import REASON_DECODE, Quality
from protocols.wire import Sample

pytestmark = pytest.mark.anyio

UNIT = 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Plc:
    """A pymodbus TCP server on 127.0.0.1 that records the requests it receives."""

    device: SimDevice
    port: int = 0
    requests: list[tuple[int, int, int]] = field(default_factory=list)
    server: ModbusTcpServer | None = None

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    async def start(self) -> None:
        self.server = ModbusTcpServer(
            self.device, address=("127.0.0.1", self.port), trace_pdu=self._trace
        )
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def holding(self, address: int, count: int) -> list[int]:
        assert self.server is not None
        return list(await self.server.async_getValues(UNIT, 3, address, count))

    async def coils(self, address: int, count: int) -> list[bool]:
        assert self.server is not None
        return [bool(b) for b in await self.server.async_getValues(UNIT, 1, address, count)]


def _device(
    holding: Sequence[SimData],
    coils: Sequence[bool] = (False,),
    action=None,
) -> SimDevice:
    """A device with separate tables (coils and discrete inputs addressed by bit)."""
    return SimDevice(
        UNIT,
        simdata=(
            [SimData(0, values=list(coils), datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            list(holding),
            [SimData(0, values=[0], datatype=DataType.REGISTERS)],
        ),
        action=action,
    )


def _registers(address: int, values: list[int]) -> SimData:
    return SimData(address, values=values, datatype=DataType.REGISTERS)


@asynccontextmanager
async def _running(plc: Plc) -> AsyncIterator[Plc]:
    await plc.start()
    try:
        yield plc
    finally:
        await plc.stop()


async def _connected(profile: Profile, plc: Plc) -> ModbusDriver:
    driver = ModbusDriver(profile, Endpoint("press-1", "127.0.0.1", plc.port, UNIT))
    await driver.connect()
    return driver


def _by_metric(samples: list[Sample]) -> dict[str, Sample]:
    return {s.metric: s for s in samples}


PRESS_PROFILE = """
model: test-press
protocol: modbus_tcp
modbus:
  word_order: ABCD
  timeout_s: 0.5
tags:
  - name: temperature
    type: float32
    table: holding
    address: 0
    unit: degC
  - name: pressure
    type: float32
    table: holding
    address: 2
    order: CDAB
    writable: true
  - name: oil_temperature
    type: int16
    table: holding
    address: 4
    scale: 0.1
    offset: -40
  - name: cycle_count
    role: cycle_count
    type: uint32
    table: holding
    address: 5
  - name: running
    type: bool
    table: holding
    address: 7
    bit: 3
    writable: true
  - name: recipe
    type: string
    table: holding
    address: 8
    length: 4
  - name: setpoint
    type: int16
    table: holding
    address: 12
    scale: 0.1
    writable: true
  - name: lamp
    type: bool
    table: coil
    address: 2
    writable: true
"""

# The registers behind PRESS_PROFILE, written out by hand (not with the codec under test).
PRESS_HOLDING = [
    0x47F1, 0x2000,  # 0-1 temperature 123456.0 (ABCD)
    0x2000, 0x47F1,  # 2-3 pressure 123456.0 (CDAB)
    900,  # 4 oil temperature: 900 * 0.1 - 40 = 50.0
    0x0001, 0x0002,  # 5-6 cycle count 65538
    0b1000_1000,  # 7 running is bit 3 (bit 7 belongs to something else)
    0x4142, 0x2D37, 0x0000, 0x0000,  # 8-11 recipe "AB-7"
    215,  # 12 setpoint 21.5
]  # fmt: skip


@pytest.fixture
async def press() -> AsyncIterator[Plc]:
    plc = Plc(_device([_registers(0, PRESS_HOLDING)], coils=[False, False, True, False]))
    async with _running(plc):
        yield plc


async def test_reads_every_type_and_order_in_one_request(press: Plc) -> None:
    profile = parse_profile(PRESS_PROFILE)
    driver = await _connected(profile, press)
    try:
        before = time.time_ns() // 1_000_000
        samples = await driver.read()
        after = time.time_ns() // 1_000_000
    finally:
        await driver.close()
    assert [s.metric for s in samples] == [t.name for t in profile.tags]
    values = {s.metric: s.value for s in samples}
    assert values == {
        "temperature": 123456.0,
        "pressure": 123456.0,
        "oil_temperature": pytest.approx(50.0),
        "cycle_count": 65538,
        "running": True,
        "recipe": "AB-7",
        "setpoint": pytest.approx(21.5),
        "lamp": True,
    }
    assert all(s.quality is Quality.GOOD and s.reason is None for s in samples)
    assert all(before <= s.ts_ms <= after for s in samples)
    # One FC03 for registers 0-12 and one FC01 for the coil.
    assert press.requests == [(3, 0, 13), (1, 2, 1)]


async def test_writes_round_trip(press: Plc) -> None:
    driver = await _connected(parse_profile(PRESS_PROFILE), press)
    try:
        await driver.write("setpoint", 23.4)
        await driver.write("pressure", -2.5)
        await driver.write("running", False)
        await driver.write("lamp", False)
        assert await press.holding(12, 1) == [234]
        assert await press.holding(2, 2) == [0x0000, 0xC020]  # -2.5f is 0xC0200000, CDAB
        assert await press.holding(7, 1) == [0b1000_0000]  # bit 7 left alone
        assert await press.coils(2, 1) == [False]
        values = {s.metric: s.value for s in await driver.read()}
        assert values["setpoint"] == pytest.approx(23.4)
        assert values["pressure"] == -2.5
        assert values["running"] is False
        assert values["lamp"] is False
        await driver.write("running", True)
        assert await press.holding(7, 1) == [0b1000_1000]
    finally:
        await driver.close()
    writes = {(fc, address) for fc, address, _ in press.requests}
    assert (6, 12) in writes  # FC06 for one register
    assert (16, 2) in writes  # FC16 for two
    assert (5, 2) in writes  # FC05 for a coil


async def test_bad_writes_are_refused_before_the_wire(press: Plc) -> None:
    driver = await _connected(parse_profile(PRESS_PROFILE), press)
    try:
        with pytest.raises(ValueError, match="tag 'temperature' is not writable"):
            await driver.write("temperature", 1.0)
        with pytest.raises(ValueError, match="has no tag 'nope'"):
            await driver.write("nope", 1)
        with pytest.raises(CodecError, match="out of range for int16"):
            await driver.write("setpoint", 5000.0)
        with pytest.raises(CodecError, match="one bit"):
            await driver.write("running", 2)
    finally:
        await driver.close()
    assert not any(fc in (5, 6, 16) for fc, _, _ in press.requests)


HOLE_PROFILE = """
model: test-holes
protocol: modbus_tcp
modbus:
  max_gap: 8
  timeout_s: 0.5
tags:
  - {name: speed, type: uint16, table: holding, address: 0}
  - {name: torque, type: uint16, table: holding, address: 1}
  - {name: missing, type: uint16, table: holding, address: 2}
  - {name: current, type: float32, table: holding, address: 3}
  - {name: count, type: uint16, table: holding, address: 6}
"""


async def test_a_rejected_register_is_isolated_and_the_rest_keeps_flowing() -> None:
    # Register 2 is not in the map: a read that touches it answers exception 2.
    holding = [_registers(0, [10, 11]), _registers(3, [0x47F1, 0x2000, 0, 16])]
    plc = Plc(_device(holding))
    async with _running(plc):
        driver = await _connected(parse_profile(HOLE_PROFILE), plc)
        try:
            first = _by_metric(await driver.read())
            plan_after_first = driver.blocks
            plc.requests.clear()
            second = _by_metric(await driver.read())
        finally:
            await driver.close()
    for samples in (first, second):
        assert samples["missing"].value is None
        assert samples["missing"].quality is Quality.BAD
        assert samples["missing"].reason == "modbus:exception:2"
        assert samples["speed"].value == 10
        assert samples["torque"].value == 11
        assert samples["current"].value == 123456.0
        assert samples["count"].value == 16
        good = [s for name, s in samples.items() if name != "missing"]
        assert all(s.quality is Quality.GOOD for s in good)
    # The split plan is kept: the second poll reads three blocks and probes nothing.
    assert [(b.start, b.count) for b in plan_after_first] == [(0, 2), (2, 1), (3, 4)]
    assert plc.requests == [(3, 0, 2), (3, 2, 1), (3, 3, 4)]


async def test_a_busy_answer_marks_the_block_bad_without_splitting_it() -> None:
    async def busy_at_6(function_code, start_address, address, count, registers, values):
        return ExcCodes.DEVICE_BUSY if address <= 6 < address + count else None

    plc = Plc(_device([_registers(0, [1, 2, 3, 4, 5, 6, 7])], action=busy_at_6))
    async with _running(plc):
        driver = await _connected(parse_profile(HOLE_PROFILE), plc)
        try:
            samples = await driver.read()
        finally:
            await driver.close()
    assert {(s.value, s.quality, s.reason) for s in samples} == {
        (None, Quality.BAD, "modbus:exception:6")
    }
    assert len(driver.blocks) == 1


async def test_single_register_reads_workaround() -> None:
    async def one_register_only(function_code, start_address, address, count, registers, values):
        return ExcCodes.ILLEGAL_VALUE if values is None and count > 1 else None

    profile_text = HOLE_PROFILE.replace(
        "  timeout_s: 0.5\n",
        "  timeout_s: 0.5\nworkarounds:\n  single_register_reads: true\n  request_delay_ms: 1\n",
    )
    holding = [_registers(0, [10, 11, 0, 0x47F1, 0x2000, 0, 16])]
    plc = Plc(_device(holding, action=one_register_only))
    async with _running(plc):
        driver = await _connected(parse_profile(profile_text), plc)
        try:
            samples = _by_metric(await driver.read())
        finally:
            await driver.close()
    assert {name: s.value for name, s in samples.items()} == {
        "speed": 10, "torque": 11, "missing": 0, "current": 123456.0, "count": 16,
    }  # fmt: skip
    assert all(count == 1 for _, _, count in plc.requests)


async def test_undecodable_and_non_finite_values_are_bad_samples() -> None:
    profile = parse_profile(
        """
model: test-decode
protocol: modbus_tcp
modbus: {timeout_s: 0.5}
tags:
  - {name: label, type: string, table: holding, address: 0, length: 1}
  - {name: level, type: float32, table: holding, address: 1}
  - {name: ok, type: uint16, table: holding, address: 3}
"""
    )
    plc = Plc(_device([_registers(0, [0xC3A9, 0x7FC0, 0x0000, 7])]))  # non-ASCII, NaN
    async with _running(plc):
        driver = await _connected(profile, plc)
        try:
            samples = _by_metric(await driver.read())
        finally:
            await driver.close()
    assert (samples["label"].quality, samples["label"].reason) == (Quality.BAD, REASON_DECODE)
    assert samples["level"].value is None
    assert (samples["level"].quality, samples["level"].reason) == (
        Quality.BAD,
        "value:not_finite",
    )
    assert (samples["ok"].value, samples["ok"].quality) == (7, Quality.GOOD)


async def test_a_stopped_device_is_unreachable_and_a_restarted_one_reconnects() -> None:
    plc = Plc(_device([_registers(0, PRESS_HOLDING)], coils=[False, False, True]))
    await plc.start()
    driver = ModbusDriver(
        parse_profile(PRESS_PROFILE), Endpoint("press-1", "127.0.0.1", plc.port, UNIT)
    )
    try:
        await driver.connect()
        assert len(await driver.read()) == 8
        await plc.stop()
        with pytest.raises(DeviceUnreachable, match=rf"127\.0\.0\.1:{plc.port} unit {UNIT}"):
            await driver.read()
        with pytest.raises(DeviceUnreachable, match="cannot connect"):
            await driver.connect()
        await plc.start()  # same port
        await driver.connect()
        samples = _by_metric(await driver.read())
        assert samples["temperature"].value == 123456.0
        assert samples["temperature"].quality is Quality.GOOD
    finally:
        await driver.close()
        await plc.stop()


async def test_read_before_connect_is_unreachable() -> None:
    profile = parse_profile(PRESS_PROFILE)
    driver = ModbusDriver(profile, Endpoint("press-1", "127.0.0.1", 1, UNIT))
    with pytest.raises(DeviceUnreachable, match="not connected"):
        await driver.read()
    await driver.close()  # never raises, even when never connected
    assert not driver.connected


def test_init_only_validates() -> None:
    opcua = parse_profile(
        """
model: test-ua
protocol: opcua
tags: [{name: x, type: float64, node: "ns=2;s=X"}]
"""
    )
    with pytest.raises(ValueError, match="speaks modbus_tcp"):
        ModbusDriver(opcua, Endpoint("ua-1"))
    driver = ModbusDriver(parse_profile(PRESS_PROFILE), Endpoint("press-1", "192.0.2.1", 502))
    assert not driver.connected
    assert [(b.table, b.start, b.count) for b in driver.blocks] == [
        ("holding", 0, 13),
        ("coil", 2, 1),
    ]


async def test_closing_twice_is_harmless(press: Plc) -> None:
    driver = await _connected(parse_profile(PRESS_PROFILE), press)
    await driver.close()
    await driver.close()
    await asyncio.sleep(0)
    assert not driver.connected
