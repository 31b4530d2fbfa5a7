"""Serial buses: one per serial port, shared by every Modbus RTU device (unit) on that line.

A serial port can be opened only once and carries one frame at a time, so the devices on a line
share one ``SerialBus``: one open port with one client (``ModbusSerialLine``), one lock, and the
silence kept between frames. A device holds the bus for one request at a time (``turn()``), so
devices on a line interleave request by request and none waits for a neighbour's whole poll.
Inside its turn a request first waits out the inter-frame delay since the last frame on the line
ended (an answer arrived, or a unit's timeout ran out), then goes out bounded by its own unit's
timeout. A dead unit therefore costs the bus its timeout per attempt, and its coordinator's
backoff keeps those attempts rare, so its neighbours keep their poll rate.

Buses are found by port path in a ``SerialBusRegistry``: the first device to join a port creates
its bus, the port is opened by the first ``open()`` and closed when the last device leaves. All
devices on one port must agree on baudrate, parity, stop bits and byte size; the inter-frame
delay is the longest any of them asks for (a slow slave needs the whole line to wait for it).
The drivers of one agent share the registry of their event loop (``serial_buses()``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from weakref import WeakKeyDictionary

from protocols.modbus.client import ModbusSerialLine, SerialSettings

__all__ = ["SerialBus", "SerialBusRegistry", "serial_buses"]


class SerialBus:
    """One serial line: its open port, its lock and the silence between its frames."""

    def __init__(self, settings: SerialSettings, inter_frame_delay_s: float | None = None) -> None:
        if inter_frame_delay_s is not None and inter_frame_delay_s < 0:
            raise ValueError(f"serial {settings.port}: inter-frame delay must be 0 s or more")
        self.settings = settings
        self.line = ModbusSerialLine(settings)
        self.lock = asyncio.Lock()
        self.inter_frame_delay_s = (
            settings.silent_interval_s if inter_frame_delay_s is None else inter_frame_delay_s
        )
        self.devices: set[str] = set()
        self.requests = 0  # requests put on the line since the bus was made
        self._quiet_since: float | None = None  # monotonic time the last frame ended

    def __repr__(self) -> str:
        return f"SerialBus({self.line.where}, devices={sorted(self.devices)})"

    @property
    def port(self) -> str:
        return self.settings.port

    async def open(self) -> None:
        """Open the port unless it is open; ``DeviceUnreachable`` if it cannot be opened."""
        async with self.lock:
            if not self.line.connected:
                await self.line.connect()
                self._quiet_since = time.monotonic()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the bus for one request: after the lock, wait out the inter-frame delay."""
        async with self.lock:
            if self._quiet_since is not None:
                wait = self._quiet_since + self.inter_frame_delay_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._quiet_since = time.monotonic()
                self.requests += 1


class SerialBusRegistry:
    """The serial buses of one agent, by port path."""

    def __init__(self) -> None:
        self._buses: dict[str, SerialBus] = {}

    def __len__(self) -> int:
        return len(self._buses)

    def get(self, port: str) -> SerialBus | None:
        return self._buses.get(port)

    def join(
        self, device_id: str, settings: SerialSettings, inter_frame_delay_s: float | None = None
    ) -> SerialBus:
        """The bus on ``settings.port`` with ``device_id`` on it (made on first use).

        Raises ``ValueError`` when the line is already in use with another character format.
        """
        bus = self._buses.get(settings.port)
        if bus is None:
            bus = SerialBus(settings, inter_frame_delay_s)
            self._buses[settings.port] = bus
        elif bus.settings != settings:
            raise ValueError(
                f"device {device_id}: serial {settings.port} is already used by "
                f"{', '.join(sorted(bus.devices)) or 'another device'} as {_format(bus.settings)}, "
                f"not {_format(settings)}; every device on one line needs the same baudrate, "
                "parity, stopbits and bytesize"
            )
        elif inter_frame_delay_s is not None and inter_frame_delay_s > bus.inter_frame_delay_s:
            bus.inter_frame_delay_s = inter_frame_delay_s
        bus.devices.add(device_id)
        return bus

    async def leave(self, device_id: str, bus: SerialBus) -> None:
        """Take ``device_id`` off the bus; the last device to leave closes the port."""
        bus.devices.discard(device_id)
        if bus.devices:
            return
        if self._buses.get(bus.port) is bus:
            del self._buses[bus.port]
        await bus.line.close()


_REGISTRIES: WeakKeyDictionary[asyncio.AbstractEventLoop, SerialBusRegistry] = WeakKeyDictionary()


def serial_buses() -> SerialBusRegistry:
    """The registry shared by every driver running in this event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    registry = _REGISTRIES.get(loop)
    if registry is None:
        registry = _REGISTRIES[loop] = SerialBusRegistry()
    return registry


def _format(settings: SerialSettings) -> str:
    s = settings
    return f"{s.baudrate} baud {s.bytesize}{s.parity}{s.stopbits}"
