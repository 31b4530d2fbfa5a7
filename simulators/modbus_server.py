"""Serve simulated machines over Modbus TCP (one per server) or RTU (several units on one tty).

The register map comes from the profile: every tag's table and address (one-based profiles are
shifted to PDU addresses), its data type, word order, scale and bit. On each ``step`` the
behaviour model advances and its values are encoded into the datastore with the project's own
codec, so a client decoding with the same profile reads back exactly ``values()``.

Writable tags belong to the client once written: before each step their registers are read back
from the datastore and handed to the behaviour model, which holds them.

Faults a test can switch on at run time (coroutines, like the OPC UA server's):

- ``set_unresponsive(True)``: requests are swallowed (a ``trace_pdu`` hook drops each incoming
  request before it reaches the datastore), so a client times out; connections stay open.
- ``drop_connections()``: closes every client connection (the client sees the socket close).
- ``set_bad_quality(True, metrics)``: Modbus has no quality, so reads that touch an affected
  tag's registers answer exception 4 (server device failure), as a PLC with a failed input card
  does. Coil and discrete reads are checked per 16-bit group (pymodbus hands the datastore hook
  whole register groups there).
- ``excursion(metric, value, duration_s)``: holds a signal outside its limits for a while.

A request for another unit id gets no answer (as behind a serial gateway whose slave is missing),
so a client with the wrong unit id times out rather than reading someone else's registers.

By default registers between mapped tags read as 0 (a lenient PLC); ``strict_map=True`` makes
them answer exception 2 (illegal data address), as many PLCs do.

Modbus RTU: ``ModbusSerialBusServer`` serves several ``ModbusDeviceServer`` units (each its own
profile, behaviour and unit id) on one serial port, as slaves share an RS-485 line, over one
pymodbus serial server. A unit switched ``set_unresponsive(True)`` is dead: the line stays
silent for its requests while its neighbours answer; a unit id nobody has is silent too. The bus
server keeps the times at which request and answer bytes crossed the port (``traffic``), so a
test can check the silence a client keeps between frames.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.errors import CodecError
from protocols.modbus.codec import decode_tag, encode_tag, set_bit
from protocols.profile import Profile, Tag
from simulators.behaviour import MachineBehaviour

log = logging.getLogger(__name__)

# pymodbus block ids and the function codes that read each table
_BLOCK = {"coil": 0, "discrete": 1, "holding": 2, "input": 3}
_READ_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
_TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 4: "input"}
_BIT_TABLES = ("coil", "discrete")
_PLACEHOLDER_BITS = 65520  # an empty bit table still needs one block; park it out of the way


@dataclass(frozen=True, slots=True)
class _Span:
    table: str
    start: int
    count: int

    def overlaps(self, table: str, start: int, count: int) -> bool:
        return (
            table == self.table and start < self.start + self.count and self.start < start + count
        )


class ModbusDeviceServer:
    """One Modbus device: a real pymodbus server whose datastore follows a behaviour model.

    A ``modbus_tcp`` device serves itself (``start``); a ``modbus_rtu`` device is one unit of a
    ``ModbusSerialBusServer``, which starts it.
    """

    def __init__(
        self,
        device_id: str,
        profile: Profile,
        behaviour: MachineBehaviour,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = 1,
        strict_map: bool = False,
    ) -> None:
        if profile.protocol not in ("modbus_tcp", "modbus_rtu"):
            raise ValueError(f"device {device_id}: profile {profile.model} is {profile.protocol}")
        self.protocol: str = profile.protocol
        self.device_id = device_id
        self.profile = profile
        self.behaviour = behaviour
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.strict_map = strict_map
        self._offset = 1 if profile.modbus_options.addressing == "one_based" else 0
        self._pdu: dict[str, int] = {}
        for tag in profile.tags:
            pdu = cast(int, tag.address) - self._offset
            if pdu < 0:
                raise ValueError(
                    f"device {device_id}: tag {tag.name} has address {tag.address}, "
                    "which does not exist with one_based addressing"
                )
            self._pdu[tag.name] = pdu
        self._read_only = [self._span(t) for t in profile.tags if not t.writable]
        self._server: ModbusBaseServer | None = None
        self._serial_port: str | None = None  # set while served on a serial bus
        self._image: dict[tuple[str, int], int] = {}
        self._internal = False
        self._unresponsive = False
        self._bad: list[_Span] = []
        self._codec_warned: set[str] = set()
        self.requests_dropped = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the datastore from the profile, fill it and start listening (TCP)."""
        if self.protocol != "modbus_tcp":
            raise RuntimeError(
                f"device {self.device_id} is a Modbus RTU unit: serve it with a "
                "ModbusSerialBusServer"
            )
        self._server = ModbusTcpServer(
            self.sim_device(),
            address=(self.host, self.port),
            trace_pdu=self._trace_pdu,
        )
        await self._write_image()
        await self._server.serve_forever(background=True)
        sockets = getattr(self._server.transport, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every connection (a bus unit leaves that to its bus)."""
        if self._server is not None and self._serial_port is None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
        self._server = None
        self._serial_port = None

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.transport is not None

    @property
    def unresponsive(self) -> bool:
        return self._unresponsive

    def endpoint(self) -> dict[str, Any]:
        """Where a client reaches this device (the shape of one endpoints-file entry)."""
        entry: dict[str, Any] = {
            "device_id": self.device_id,
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "unit_id": self.unit_id,
            "endpoint_url": None,
            "profile": self.profile.model,
        }
        if self._serial_port is not None:
            entry["serial_port"] = self._serial_port
        return entry

    def sim_device(self) -> SimDevice:
        """This device's unit for a pymodbus server: its datastore and its hooks."""
        return SimDevice(id=self.unit_id, simdata=self._blocks(), action=self._action)

    async def attach(self, server: ModbusBaseServer, serial_port: str) -> None:
        """Be served by a bus server that holds ``sim_device()``: fill the datastore."""
        self._server = server
        self._serial_port = serial_port
        await self._write_image()

    # -- simulation ---------------------------------------------------------------------------

    async def step(self, now_s: float) -> None:
        """Take the client's writes, advance the behaviour to ``now_s`` and publish its values."""
        if self._server is None:
            self.behaviour.step(now_s)
            return
        await self._read_writable()
        self.behaviour.step(now_s)
        await self._write_image()

    def values(self) -> dict[str, Any]:
        return self.behaviour.values()

    # -- faults -------------------------------------------------------------------------------

    async def set_unresponsive(self, unresponsive: bool) -> None:
        """Swallow every request (the client times out) until switched back."""
        self._unresponsive = unresponsive

    async def drop_connections(self) -> int:
        """Close every open client connection; returns how many were closed."""
        if self._server is None or self._serial_port is not None:
            return 0  # a serial line has no connections to drop
        connections = list(self._server.active_connections.values())
        for connection in connections:
            connection.close()
        return len(connections)

    async def set_bad_quality(self, bad: bool, metrics: Iterable[str] | None = None) -> None:
        """Answer reads of these tags (all when None) with exception 4, or stop doing so."""
        names = list(metrics) if metrics is not None else [t.name for t in self.profile.tags]
        spans = [self._span(self.profile.tag(name)) for name in names]
        if bad:
            self._bad.extend(s for s in spans if s not in self._bad)
        else:
            self._bad = [s for s in self._bad if s not in spans]

    async def excursion(self, metric: str, value: float, duration_s: float) -> None:
        self.behaviour.excursion(metric, value, duration_s)

    # -- pymodbus hooks -----------------------------------------------------------------------

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending and (self._unresponsive or pdu.dev_id != self.unit_id):
            self.requests_dropped += 1
            # pymodbus skips a request whose traced PDU is None: no answer is sent
            return cast(ModbusPDU, None)
        return pdu

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self._internal:
            return None
        table = _TABLE_OF_FC.get(function_code, "holding")
        if set_values is not None:
            # a client may write writable tags (and unmapped gaps), never a read-only tag
            touched = (address, len(set_values))
            if any(span.overlaps(table, *touched) for span in self._read_only):
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if not self._bad:
            return None
        if table in _BIT_TABLES:
            start, count = address, count * 16  # whole 16-bit groups, see the module docstring
        else:
            start = address
        if any(span.overlaps(table, start, count) for span in self._bad):
            return ExcCodes.DEVICE_FAILURE
        return None

    # -- datastore ----------------------------------------------------------------------------

    def _span(self, tag: Tag) -> _Span:
        return _Span(cast(str, tag.table), self._pdu[tag.name], tag.register_count)

    def _blocks(self) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        used: dict[str, set[int]] = {table: set() for table in _BLOCK}
        for tag in self.profile.tags:
            span = self._span(tag)
            used[span.table].update(range(span.start, span.start + span.count))
        blocks: tuple[list[SimData], list[SimData], list[SimData], list[SimData]] = ([], [], [], [])
        for table, addresses in used.items():
            block = blocks[_BLOCK[table]]
            bits = table in _BIT_TABLES
            if not addresses:
                if bits:
                    block.append(
                        SimData(_PLACEHOLDER_BITS, values=[False] * 16, datatype=DataType.BITS)
                    )
                else:
                    block.append(SimData(0, datatype=DataType.INVALID))
                continue
            runs = (
                contiguous_runs(sorted(addresses))
                if self.strict_map
                else [(min(addresses), max(addresses))]
            )
            for first, last in runs:
                size = last - first + 1
                if bits:
                    block.append(SimData(first, values=[False] * size, datatype=DataType.BITS))
                else:
                    block.append(SimData(first, values=[0] * size, datatype=DataType.REGISTERS))
        return blocks

    async def _read(self, table: str, start: int, count: int) -> list[int]:
        assert self._server is not None
        self._internal = True
        try:
            result = await self._server.context.async_getValues(
                self.unit_id, _READ_FC[table], start, count
            )
        finally:
            self._internal = False
        if isinstance(result, ExcCodes):
            raise RuntimeError(f"datastore refused {table} {start}+{count}: {result!r}")
        return [int(v) for v in result]

    async def _read_writable(self) -> None:
        """Hand the values clients wrote into writable tags to the behaviour model."""
        current = self.behaviour.values()
        for tag in self.profile.tags:
            if not tag.writable:
                continue
            span = self._span(tag)
            words = await self._read(span.table, span.start, span.count)
            if span.table in _BIT_TABLES:
                value: Any = bool(words[0])
            else:
                try:
                    value = decode_tag(tag, words, self.profile.word_order(tag))
                except CodecError as exc:
                    log.warning(
                        "device %s: cannot decode %s written by a client: %s",
                        self.device_id,
                        tag.name,
                        exc,
                    )
                    continue
            if value != current.get(tag.name):
                self.behaviour.set_value(tag.name, value)

    def _encode(self) -> None:
        for tag, value in zip(self.profile.tags, self._tag_values(), strict=True):
            span = self._span(tag)
            key = (span.table, span.start)
            try:
                if span.table in _BIT_TABLES:
                    self._image[key] = int(bool(value))
                elif tag.bit is not None:
                    self._image[key] = set_bit(self._image.get(key, 0), tag.bit, bool(value))
                else:
                    words = encode_tag(tag, value, self.profile.word_order(tag))
                    for i, word in enumerate(words):
                        self._image[(span.table, span.start + i)] = word
            except CodecError as exc:
                if tag.name not in self._codec_warned:
                    self._codec_warned.add(tag.name)
                    log.warning(
                        "device %s: %s keeps its last value: %s", self.device_id, tag.name, exc
                    )

    def _tag_values(self) -> list[Any]:
        values = self.behaviour.values()
        return [values[tag.name] for tag in self.profile.tags]

    async def _write_image(self) -> None:
        assert self._server is not None
        self._encode()
        by_table: dict[str, dict[int, int]] = {}
        for (table, address), word in self._image.items():
            by_table.setdefault(table, {})[address] = word
        self._internal = True
        try:
            for table, words in by_table.items():
                for first, last in contiguous_runs(sorted(words)):
                    run = [words[a] for a in range(first, last + 1)]
                    payload: list[int] | list[bool] = (
                        [bool(w) for w in run] if table in _BIT_TABLES else run
                    )
                    result = await self._server.context.async_setValues(
                        self.unit_id, _READ_FC[table], first, payload
                    )
                    if result is not None:
                        raise RuntimeError(f"datastore refused {table} {first}..{last}: {result!r}")
        finally:
            self._internal = False


@dataclass(frozen=True, slots=True)
class Frame:
    """Bytes that crossed the bus server's port: a request received, or an answer sent."""

    at: float  # time.monotonic()
    sending: bool
    size: int


class ModbusSerialBusServer:
    """Several simulated units answering on one serial port (Modbus RTU), like slaves on RS-485."""

    protocol = "modbus_rtu"

    def __init__(
        self,
        port: str,
        units: Sequence[ModbusDeviceServer],
        *,
        baudrate: int = 19200,
        parity: str = "E",
        stopbits: int = 1,
        bytesize: int = 8,
        traffic_kept: int = 10_000,
    ) -> None:
        ids = [u.unit_id for u in units]
        if not units or len(set(ids)) != len(ids):
            raise ValueError(f"serial {port}: needs units with distinct unit ids, got {ids}")
        for unit in units:
            if unit.protocol != "modbus_rtu":
                raise ValueError(
                    f"serial {port}: device {unit.device_id} has a {unit.protocol} profile "
                    f"({unit.profile.model}); units on a serial line need protocol modbus_rtu"
                )
        self.port = port
        self.units = {u.unit_id: u for u in units}
        self.baudrate, self.parity, self.stopbits, self.bytesize = (
            baudrate, parity, stopbits, bytesize
        )  # fmt: skip
        self.traffic: deque[Frame] = deque(maxlen=traffic_kept)
        self.requests_dropped = 0
        self._server: ModbusSerialServer | None = None

    def unit(self, unit_id: int) -> ModbusDeviceServer:
        return self.units[unit_id]

    async def start(self) -> None:
        """Open the port and answer for every unit."""
        self._server = ModbusSerialServer(
            [u.sim_device() for u in self.units.values()],
            framer=FramerType.RTU,
            port=self.port,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            bytesize=self.bytesize,
            ignore_missing_devices=True,  # a unit id nobody has: silence, as on a real line
            trace_pdu=self._trace_pdu,
            trace_packet=self._trace_packet,
        )
        for unit in self.units.values():
            await unit.attach(self._server, self.port)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Close the port."""
        for unit in self.units.values():
            await unit.stop()
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.transport is not None

    async def step(self, now_s: float) -> None:
        """Advance every unit's behaviour to ``now_s``."""
        for unit in self.units.values():
            await unit.step(now_s)

    async def set_unresponsive(self, unit_id: int, unresponsive: bool) -> None:
        """Make one unit dead (no answer at all) or bring it back."""
        await self.unit(unit_id).set_unresponsive(unresponsive)

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            # dropped here, not by ignore_missing_devices: pymodbus's SimDevice store answers
            # an unknown unit id with exception 4 rather than staying silent
            unit = self.units.get(pdu.dev_id)
            if unit is None or unit.unresponsive:
                self.requests_dropped += 1
                if unit is not None:
                    unit.requests_dropped += 1
                return cast(ModbusPDU, None)  # pymodbus sends no answer for a None PDU
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        self.traffic.append(Frame(time.monotonic(), sending, len(data)))
        return data


def contiguous_runs(addresses: list[int]) -> list[tuple[int, int]]:
    """Sorted addresses → (first, last) of each contiguous run."""
    runs: list[tuple[int, int]] = []
    for address in addresses:
        if runs and address == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], address)
        else:
            runs.append((address, address))
    return runs
