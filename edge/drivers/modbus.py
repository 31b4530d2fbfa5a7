"""The Modbus driver (TCP and RTU): planned block reads, per-block decoding, isolation of rejected registers.

One poll reads every planned block. Modbus has no source timestamps, so each block's samples
carry the edge clock at the moment its answer arrived. A block the PLC rejects with an
exception that means "not here" (illegal function, illegal data address or value, device
failure) is split in halves until the offending tag stands alone; that tag reads as bad quality
with the exception as its reason while the others keep flowing. The split plan is kept, so
later polls do not probe again. Any other exception marks the block's tags bad without
splitting; a lost link raises ``DeviceUnreachable`` for the coordinator to handle.

Over RTU (``protocol: modbus_rtu``) the device is one unit on a serial line it shares with its
neighbours (``edge.drivers.serial_bus``): ``connect`` joins the line's bus and opens the port if
it is not open yet, each request holds the bus for its own turn (after the inter-frame delay),
and ``close`` leaves the bus (the port closes when its last device leaves). A unit that does not
answer within its timeout raises ``DeviceUnreachable`` like a TCP device, leaving the port open
for the others. The request timeout is the endpoint's ``timeout_s``, else the profile's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from edge.drivers.base import Endpoint
from edge.drivers.serial_bus import SerialBus, SerialBusRegistry, serial_buses
from protocols.clock import now_ms
from protocols.errors import CodecError, DeviceRejected, DeviceUnreachable
from protocols.modbus.block_decoder import BlockDecoder
from protocols.modbus.client import ModbusLink, ModbusRtuLink, ModbusTcpLink, SerialSettings
from protocols.modbus.codec import encode_tag, set_bit
from protocols.modbus.planner import Block, pdu_address, plan_blocks, split_block
from protocols.profile import Profile, Tag
from protocols.quality import REASON_DECODE, Quality, modbus_exception_reason
from protocols.wire import Sample, Value

__all__ = ["SPLIT_ON_EXCEPTION_CODES", "ModbusDriver"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Exception codes that say a request touched something the device does not have: a block
# answered with one of these is split to find the tag(s) responsible.
SPLIT_ON_EXCEPTION_CODES = frozenset({1, 2, 3, 4})
_FC16_MAX_REGISTERS = 123


class ModbusDriver:
    """One Modbus device: ``Driver`` for profiles with ``protocol: modbus_tcp`` or ``modbus_rtu``.

    ``buses`` is where RTU devices find their serial line (default: the running event loop's
    registry, shared by every driver in it).
    """

    def __init__(
        self, profile: Profile, endpoint: Endpoint, *, buses: SerialBusRegistry | None = None
    ) -> None:
        if profile.protocol not in ("modbus_tcp", "modbus_rtu"):
            raise ValueError(
                f"ModbusDriver speaks modbus_tcp and modbus_rtu; profile {profile.model!r} is "
                f"{profile.protocol}"
            )
        self.profile = profile
        self.endpoint = endpoint
        self._options = profile.modbus_options
        self._workarounds = profile.workarounds
        self._plan: list[Block] = plan_blocks(profile.tags, self._options, self._workarounds)
        # Decoders by id(block), built once per planned or split block (the block is kept
        # alongside so that its id cannot be reused by another block).
        self._decoders: dict[int, tuple[Block, BlockDecoder]] = {}
        for block in self._plan:
            self._decoder(block)
        self.timeout_s = endpoint.timeout_s or self._options.timeout_s
        self._serial: SerialSettings | None = None
        self._inter_frame_delay_s: float | None = None
        self._buses = buses
        self._bus: SerialBus | None = None
        self._link: ModbusLink | None = None
        if profile.protocol == "modbus_tcp":
            self._link = ModbusTcpLink(
                endpoint.host, endpoint.port, endpoint.unit_id, self.timeout_s
            )
        else:
            self._serial = _serial_settings(endpoint)
            if endpoint.inter_frame_delay_ms is not None:
                self._inter_frame_delay_s = endpoint.inter_frame_delay_ms / 1000
        self._lock = asyncio.Lock()
        self._request_delay_s = self._workarounds.request_delay_ms / 1000
        self._last_request: float | None = None

    def __repr__(self) -> str:
        return f"ModbusDriver({self.endpoint.device_id} {self.where})"

    @property
    def where(self) -> str:
        """Where the device is reached, as error messages name it."""
        if self._link is not None:
            return self._link.where
        assert self._serial is not None
        return f"serial {self._serial.port} unit {self.endpoint.unit_id}"

    @property
    def bus(self) -> SerialBus | None:
        """The serial bus an RTU device is on while connected (None over TCP)."""
        return self._bus

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The current read plan (it changes when a rejected block is split)."""
        return tuple(self._plan)

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    async def connect(self) -> None:
        if isinstance(self._link, ModbusTcpLink):
            await self._link.connect()
            return
        assert self._serial is not None
        if self._bus is None:
            buses = self._buses if self._buses is not None else serial_buses()
            self._bus = buses.join(self.endpoint.device_id, self._serial, self._inter_frame_delay_s)
            self._buses = buses
        await self._bus.open()
        self._link = ModbusRtuLink(self._bus.line, self.endpoint.unit_id, self.timeout_s)

    async def close(self) -> None:
        if isinstance(self._link, ModbusTcpLink):
            await self._link.close()
            return
        bus, self._bus, self._link = self._bus, None, None
        if bus is not None and self._buses is not None:
            await self._buses.leave(self.endpoint.device_id, bus)

    async def read(self, due: frozenset[str] | None = None) -> list[Sample]:
        """One poll: a sample per profile tag in ``due`` (all when None), in profile order.

        Only the blocks holding a due tag are read.
        """
        async with self._lock:
            samples: dict[str, Sample] = {}
            plan: list[Block] = []
            for block in self._plan:
                if due is not None and not any(t.name in due for t in block.tags):
                    plan.append(block)
                    continue
                await self._read_isolating(block, plan, samples)
            self._plan = plan
        return [
            samples[tag.name]
            for tag in self.profile.tags
            if (due is None or tag.name in due) and tag.name in samples
        ]

    async def write(self, metric: str, value: Value) -> None:
        """Write a writable tag: coil (FC05), bit of a register (read-modify-write), FC06/FC16."""
        tag = self._writable_tag(metric)
        address = pdu_address(tag, self._options)
        link = self._connected_link()
        async with self._lock:
            if tag.table == "coil":
                flag = _as_flag(tag, value)
                await self._request(lambda: link.write_coil(address, flag))
            elif tag.bit is not None:
                flag = _as_flag(tag, value)
                word = (await self._request(lambda: link.read("holding", address, 1)))[0]
                new_word = set_bit(int(word), tag.bit, flag)
                await self._request(lambda: link.write_register(address, new_word))
            else:
                registers = encode_tag(tag, value, self.profile.word_order(tag))
                if len(registers) > _FC16_MAX_REGISTERS:
                    raise CodecError(
                        f"tag {tag.name}: {len(registers)} registers exceed one FC16 write "
                        f"({_FC16_MAX_REGISTERS})"
                    )
                if len(registers) == 1:
                    await self._request(lambda: link.write_register(address, registers[0]))
                else:
                    await self._request(lambda: link.write_registers(address, registers))

    def _writable_tag(self, metric: str) -> Tag:
        try:
            tag = self.profile.tag(metric)
        except KeyError:
            raise ValueError(
                f"device {self.endpoint.device_id}: profile {self.profile.model!r} has no tag "
                f"{metric!r}"
            ) from None
        if not tag.writable:
            raise ValueError(
                f"device {self.endpoint.device_id}: tag {metric!r} is not writable "
                f"(set 'writable: true' in profile {self.profile.model!r})"
            )
        return tag

    async def _read_isolating(
        self, block: Block, plan: list[Block], samples: dict[str, Sample]
    ) -> None:
        try:
            values = await self._read_block(block)
        except DeviceRejected as exc:
            ts_ms = now_ms()
            halves = split_block(block) if exc.code in SPLIT_ON_EXCEPTION_CODES else None
            if halves is None:
                plan.append(block)
                reason = (
                    modbus_exception_reason(exc.code) if exc.code is not None else REASON_DECODE
                )
                for tag in block.tags:
                    samples[tag.name] = Sample(tag.name, ts_ms, None, Quality.BAD, reason)
                return
            _log.info(
                "%s: %s %d+%d rejected (exception %s); splitting it to isolate the tag",
                self.endpoint.device_id, block.table, block.start, block.count, exc.code,
            )  # fmt: skip
            for half in halves:
                await self._read_isolating(half, plan, samples)
            return
        ts_ms = now_ms()
        plan.append(block)
        for sample in self._decoder(block).samples(values, ts_ms):
            samples[sample.metric] = sample

    def _decoder(self, block: Block) -> BlockDecoder:
        """The block's decoder, built on first use (a split block's halves get their own)."""
        known = self._decoders.get(id(block))
        if known is not None and known[0] is block:
            return known[1]
        decoder = BlockDecoder(block, self.profile.word_order)
        self._decoders[id(block)] = (block, decoder)
        return decoder

    def _connected_link(self) -> ModbusLink:
        if self._link is None:
            raise DeviceUnreachable(f"Modbus {self.where}: not connected")
        return self._link

    async def _read_block(self, block: Block) -> list[int] | list[bool]:
        link = self._connected_link()
        if not self._workarounds.single_register_reads or block.count == 1:
            return await self._request(lambda: link.read_block(block))
        values: list[int] = []
        for address in range(block.start, block.end):
            part = await self._request(partial(link.read, block.table, address, 1))
            values.extend(int(v) for v in part)
        if block.is_bits:
            return [bool(v) for v in values]
        return values

    async def _request(self, request: Callable[[], Awaitable[_T]]) -> _T:
        """One request; on a serial line, in this device's turn on the bus."""
        if self._bus is None:
            return await self._paced(request)
        async with self._bus.turn():
            return await self._paced(request)

    async def _paced(self, request: Callable[[], Awaitable[_T]]) -> _T:
        """One request, no sooner than ``request_delay_ms`` after the previous one ended."""
        if self._request_delay_s and self._last_request is not None:
            wait = self._last_request + self._request_delay_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        try:
            return await request()
        finally:
            self._last_request = time.monotonic()


def _serial_settings(endpoint: Endpoint) -> SerialSettings:
    if not endpoint.serial_port:
        raise ValueError(
            f"device {endpoint.device_id}: a modbus_rtu device needs 'serial_port' "
            "(e.g. /dev/ttyUSB0)"
        )
    try:
        return SerialSettings(
            endpoint.serial_port,
            endpoint.baudrate,
            endpoint.parity,
            endpoint.stopbits,
            endpoint.bytesize,
        )
    except ValueError as exc:
        raise ValueError(f"device {endpoint.device_id}: {exc}") from None


def _as_flag(tag: Tag, value: Value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise CodecError(f"tag {tag.name} is one bit: write True/False (or 0/1), got {value!r}")
