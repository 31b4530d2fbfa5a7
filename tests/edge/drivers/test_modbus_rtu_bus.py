"""Modbus RTU devices sharing one serial line, for real: a socat pty pair, the simulator's RTU
bus server with three units on one end, the edge's ModbusDriver and coordinators on the other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from edge.coordinator import Backoff, DeviceCoordinator
from edge.drivers.base import Endpoint, create_driver
from edge.drivers.modbus import ModbusDriver
from edge.drivers.serial_bus import SerialBusRegistry
from edge.health import EdgeHealth
from protocols.errors import DeviceUnreachable
from protocols.profile import parse_profile
from protocols.quality import Quality
from protocols.wire import Event, Sample
from simulators.behaviour import MachineBehaviour
from simulators.modbus_server import ModbusDeviceServer, ModbusSerialBusServer
from tests.protocols.modbus.serial_pair import PtyPair, pty_pair

pytestmark = pytest.mark.anyio

BAUD = 115200
UNITS = (1, 2, 3)
DEAD = 3
TIMEOUT_S = 0.2  # per slave

# A temperature controller of one oven zone: three of them on one RS-485 line.
PROFILE = parse_profile(
    """
model: test-oven-zone
protocol: modbus_rtu
poll_interval_s: 0.5
modbus:
  timeout_s: 1.0
tags:
  - {name: zone_temperature, role: temperature, type: float32, table: holding, address: 0,
     unit: degC, limits: {low: 180, high: 220}}
  - {name: setpoint, type: float32, table: holding, address: 2, unit: degC, writable: true}
  - {name: output_percent, type: uint16, table: holding, address: 4, unit: "%"}
  - {name: heater_on, type: bool, table: coil, address: 0}
""",
    "test-oven-zone.yaml",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PtyPair]:
    with pty_pair(tmp_path) as made:
        yield made


@pytest.fixture
async def line(pair: PtyPair) -> AsyncIterator[ModbusSerialBusServer]:
    """The simulator's end: units 1, 2 and 3 answering on one serial port."""
    units = [
        ModbusDeviceServer(f"zone-{u}", PROFILE, MachineBehaviour(PROFILE, seed=u), unit_id=u)
        for u in UNITS
    ]
    bus = ModbusSerialBusServer(str(pair.sim), units, baudrate=BAUD, parity="N")
    await bus.start()
    await bus.step(5.0)
    try:
        yield bus
    finally:
        await bus.stop()


def _endpoint(pair: PtyPair, unit: int, **changes: object) -> Endpoint:
    endpoint = Endpoint(
        f"zone-{unit}",
        unit_id=unit,
        serial_port=str(pair.edge),
        baudrate=BAUD,
        parity="N",
        timeout_s=TIMEOUT_S,
    )
    return dataclasses.replace(endpoint, **changes)  # type: ignore[arg-type]


def _good_values(samples: list[Sample]) -> dict[str, object]:
    assert all(s.quality is Quality.GOOD for s in samples), samples
    return {s.metric: s.value for s in samples}


async def test_devices_on_one_port_share_one_bus_lock_and_client(
    pair: PtyPair, line: ModbusSerialBusServer
) -> None:
    buses = SerialBusRegistry()
    one = ModbusDriver(PROFILE, _endpoint(pair, 1), buses=buses)
    two = ModbusDriver(PROFILE, _endpoint(pair, 2), buses=buses)
    await one.connect()
    await two.connect()
    bus = one.bus
    assert bus is not None
    assert two.bus is bus
    assert buses.get(str(pair.edge)) is bus
    assert len(buses) == 1
    assert bus.devices == {"zone-1", "zone-2"}
    client = bus.line.client
    assert client is not None

    assert _good_values(await one.read()) == line.unit(1).values()
    assert _good_values(await two.read()) == line.unit(2).values()

    # the bus lock is the one both take: while it is held, neither device reaches the line
    frames_before = len(line.traffic)
    async with bus.lock:
        reading = asyncio.create_task(two.read())
        await asyncio.sleep(0.3)
        assert not reading.done()
        assert len(line.traffic) == frames_before
    assert _good_values(await reading) == line.unit(2).values()

    # a device that wants the same port with another character format is refused
    other = ModbusDriver(PROFILE, _endpoint(pair, 3, baudrate=9600), buses=buses)
    with pytest.raises(ValueError, match="already used by zone-1, zone-2"):
        await other.connect()

    # the port stays open while a device is on it, and closes when the last one leaves
    await one.close()
    assert bus.line.client is client
    assert _good_values(await two.read()) == line.unit(2).values()
    await two.close()
    assert not bus.line.connected
    assert len(buses) == 0


async def test_inter_frame_delay_is_kept_between_frames_on_the_line(
    pair: PtyPair, line: ModbusSerialBusServer
) -> None:
    delay_s = 0.040
    buses = SerialBusRegistry()
    drivers = [
        ModbusDriver(PROFILE, _endpoint(pair, 1, inter_frame_delay_ms=delay_s * 1000), buses=buses),
        ModbusDriver(PROFILE, _endpoint(pair, 2), buses=buses),  # default: t3.5 = 1.75 ms
        ModbusDriver(PROFILE, _endpoint(pair, DEAD), buses=buses),
    ]
    for driver in drivers:
        await driver.connect()
    bus = drivers[0].bus
    assert bus is not None
    assert bus.inter_frame_delay_s == delay_s  # the longest any device on the line asks for
    await line.set_unresponsive(DEAD, True)
    line.traffic.clear()

    async def poll(driver: ModbusDriver, times: int) -> None:
        for _ in range(times):
            await driver.read()

    # both neighbours at once, interleaving on the line (2 requests per poll each)
    await asyncio.gather(poll(drivers[0], 3), poll(drivers[1], 3))
    with pytest.raises(DeviceUnreachable, match=f"unit {DEAD}"):
        await drivers[2].read()
    await drivers[0].read()
    for driver in drivers:
        await driver.close()

    frames = list(line.traffic)
    # an answer sent, then the next request received: the silence the edge kept
    gaps = [b.at - a.at for a, b in pairwise(frames) if a.sending and not b.sending]
    assert len(gaps) >= 12
    assert min(gaps) >= delay_s
    # after the dead unit's unanswered request, the line waited its timeout and then the delay
    unanswered = [b.at - a.at for a, b in pairwise(frames) if not a.sending and not b.sending]
    assert max(unanswered) >= TIMEOUT_S + delay_s


async def test_rtu_profiles_get_the_modbus_driver(pair: PtyPair) -> None:
    driver = create_driver(PROFILE, _endpoint(pair, 1))
    assert isinstance(driver, ModbusDriver)
    assert driver.timeout_s == TIMEOUT_S  # the device's own, over the profile's 1.0 s
    assert ModbusDriver(PROFILE, _endpoint(pair, 1, timeout_s=None)).timeout_s == 1.0
    with pytest.raises(ValueError, match="needs 'serial_port'"):
        ModbusDriver(PROFILE, _endpoint(pair, 1, serial_port=None))
    with pytest.raises(ValueError, match=r"zone-1: serial .* parity must be N, E or O"):
        ModbusDriver(PROFILE, _endpoint(pair, 1, parity="Q"))


# -- a dead slave and its neighbours ------------------------------------------------------------

POLL_S = 0.5
WINDOW_S = 7.0  # 14 polls of each device per window
# Window edges sit this long after a poll tick (polls are due at start + k * POLL_S): a poll
# that waits behind the dead unit's timeout still ends well before the edge, and the next
# tick is well after it, so each window counts whole polls.
EDGE_OFFSET_S = 0.35


def _any_good(samples: list[Sample]) -> bool:
    return any(s.quality is Quality.GOOD for s in samples)


async def _sleep_until(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))


async def test_dead_slave_costs_its_neighbours_no_polls(
    pair: PtyPair, line: ModbusSerialBusServer
) -> None:
    ids = [f"zone-{u}" for u in UNITS]
    dead_id = f"zone-{DEAD}"
    health = EdgeHealth(ids)
    published: dict[str, list[Sample]] = defaultdict(list)

    async def sink(device: str, samples: list[Sample], events: list[Event], read: int) -> None:
        published[device].extend(samples)

    buses = SerialBusRegistry()
    coordinators = [
        DeviceCoordinator(
            f"zone-{u}",
            PROFILE,
            ModbusDriver(PROFILE, _endpoint(pair, u), buses=buses),
            sink,
            health,
            poll_interval_s=POLL_S,
            backoff=Backoff(initial_s=0.5, max_s=2.0),
            seed=u,
        )
        for u in UNITS
    ]
    stop = asyncio.Event()
    start = time.monotonic()
    tasks = [asyncio.create_task(c.run(stop)) for c in coordinators]

    def reads() -> dict[str, int]:
        return {d: health.devices[d].reads for d in ids}

    try:
        edge = start + EDGE_OFFSET_S
        await _sleep_until(edge)
        before = reads()
        await _sleep_until(edge + WINDOW_S)
        middle = reads()
        await line.set_unresponsive(DEAD, True)
        died_at = len(published[dead_id])
        await _sleep_until(edge + 2 * WINDOW_S)
        after = reads()
        dropped = line.unit(DEAD).requests_dropped

        await line.set_unresponsive(DEAD, False)
        revived_at = len(published[dead_id])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _any_good(published[dead_id][revived_at:]):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    healthy = {d: middle[d] - before[d] for d in ids}
    degraded = {d: after[d] - middle[d] for d in ids}
    expected = round(WINDOW_S / POLL_S)
    for d in ids:
        assert healthy[d] >= expected - 1, (healthy, degraded)
    for d in ids:
        if d == dead_id:
            continue
        # the neighbours keep their poll count within 10 % of the healthy window
        assert abs(degraded[d] - healthy[d]) <= 0.10 * healthy[d], (healthy, degraded)
        assert health.devices[d].read_errors == 0
    # the dead unit: no good poll, its values published bad with a comm reason, and skipped
    # for a while (its attempts fewer than its poll ticks)
    assert degraded[dead_id] == 0
    assert 1 <= dropped < expected
    bad = published[dead_id][died_at:revived_at]
    assert {s.metric for s in bad} == {t.name for t in PROFILE.tags}
    assert all(s.quality is Quality.BAD for s in bad)
    assert all(s.reason is not None and s.reason.startswith("comm:") for s in bad)
    # and it came back
    back = [s for s in published[dead_id][revived_at:] if s.quality is Quality.GOOD]
    assert back, "unit 3 did not recover within 10 s of answering again"
    assert health.devices[dead_id].link_up is True
    assert len(buses) == 0  # every coordinator closed its driver: the port is closed
