"""Async Modbus links over pymodbus 3.16: TCP to one unit, RTU to one unit on a shared serial line.

Failures come out as two errors only:

- ``DeviceUnreachable``: refused, not connected, no answer within ``timeout_s``, or the
  connection dropped. The message names the device (``host:port`` or the serial port) and unit.
- ``DeviceRejected``: the device answered with a Modbus exception; ``code`` is the exception
  code (2 = illegal data address, ...).

Both links read and write the same way (``ModbusLink``); they differ in what a silence means.

TCP (``ModbusTcpLink``): ``connect`` gives up after ``timeout_s``; each request waits
``timeout_s`` for its answer and is not retried (``retries=0``), so a dead device costs one
timeout per request, not several. After a timeout the link closes itself, since a late answer
could otherwise be taken for the answer to the next request; ``connected`` is then False and the
owner reconnects. pymodbus's own background reconnect is switched off: reconnecting, with
backoff, is the owner's decision. A connection that drops while the link is idle is noticed at
once; one that drops in the middle of a request is noticed at that request's timeout at the
latest.

RTU (``ModbusSerialLine`` and ``ModbusRtuLink``): a serial port can be opened only once, so all
the units (slaves) on one line talk through one ``ModbusSerialLine``, which owns the port and
its pymodbus RTU client; a ``ModbusRtuLink`` is one unit on that line. The line does not take
turns by itself: its owner lets one request at a time onto it and keeps the silence between
frames (the edge does both in ``edge.drivers.serial_bus``). Each unit has its own timeout,
measured around its own request only. A unit that stays silent costs its timeout and nothing
else: the port stays open for its neighbours (closing it would not help a slave that is off).
A late answer is not taken for the next one: the receive buffer is cleared when a request is
sent, and an answer from the wrong unit is an error, not a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.modbus.planner import Block
from protocols.profile import Table

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from pymodbus.client.base import ModbusBaseClient
    from pymodbus.pdu import ModbusPDU

__all__ = ["ModbusLink", "ModbusRtuLink", "ModbusSerialLine", "ModbusTcpLink", "SerialSettings"]

_FUNCTION_NAME: dict[Table, str] = {
    "holding": "FC03 read holding registers",
    "input": "FC04 read input registers",
    "coil": "FC01 read coils",
    "discrete": "FC02 read discrete inputs",
}

# pymodbus's own request timeout on a serial line: never the one that fires, since each unit's
# request is bounded by that unit's timeout (a client-wide timeout cannot be per slave).
_SERIAL_CLIENT_TIMEOUT_S = 60.0
# Above 19200 baud the Modbus serial-line spec (V1.02, 2.5.1.1) fixes t3.5 at 1.75 ms.
_FIXED_SILENCE_ABOVE_BAUD = 19200
_FIXED_SILENCE_S = 0.00175


class ModbusLink:
    """Reads and writes of one unit; subclasses say how a request reaches it."""

    kind = "Modbus"

    def __init__(self, unit_id: int, timeout_s: float) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"Modbus unit id {unit_id} is outside 0..255")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.unit_id = unit_id
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where})"

    @property
    def where(self) -> str:
        """How error messages name the device, e.g. ``host:port unit N``."""
        raise NotImplementedError

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    async def read_block(self, block: Block) -> list[int] | list[bool]:
        """Read a planned block: FC03 holding, FC04 input, FC01 coil, FC02 discrete."""
        return await self.read(block.table, block.start, block.count)

    async def read(self, table: Table, address: int, count: int) -> list[int] | list[bool]:
        """Read ``count`` registers (or bits) of ``table`` from PDU ``address``."""
        client = self._require_client()
        unit = self.unit_id
        if table == "holding":
            function = client.read_holding_registers
        elif table == "input":
            function = client.read_input_registers
        elif table == "coil":
            function = client.read_coils
        elif table == "discrete":
            function = client.read_discrete_inputs
        else:
            raise ValueError(f"unknown Modbus table {table!r}")
        what = f"{_FUNCTION_NAME[table]} {address}+{count}"
        response = await self._execute(lambda: function(address, count=count, device_id=unit), what)
        if table in ("coil", "discrete"):
            bits = [bool(b) for b in response.bits[:count]]
            if len(bits) != count:
                raise DeviceRejected(
                    f"{self.kind} {self.where}: {what}: answered {len(bits)} bits", code=None
                )
            return bits
        registers = list(response.registers)
        if len(registers) != count:
            raise DeviceRejected(
                f"{self.kind} {self.where}: {what}: answered {len(registers)} registers",
                code=None,
            )
        return registers

    async def write_register(self, address: int, value: int) -> None:
        """FC06: write one holding register."""
        client = self._require_client()
        await self._execute(
            lambda: client.write_register(address, value, device_id=self.unit_id),
            f"FC06 write register {address}",
        )

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """FC16: write consecutive holding registers from ``address``."""
        client = self._require_client()
        await self._execute(
            lambda: client.write_registers(address, list(values), device_id=self.unit_id),
            f"FC16 write registers {address}+{len(values)}",
        )

    async def write_coil(self, address: int, value: bool) -> None:
        """FC05: write one coil."""
        client = self._require_client()
        await self._execute(
            lambda: client.write_coil(address, value, device_id=self.unit_id),
            f"FC05 write coil {address}",
        )

    # -- what subclasses provide --------------------------------------------------------------

    def _require_client(self) -> ModbusBaseClient:
        """The client to send on; ``DeviceUnreachable`` when there is none."""
        raise NotImplementedError

    async def _send(self, request: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        return await request()

    def _no_answer(self) -> None:
        """Called after a request failed for want of an answer."""

    # -----------------------------------------------------------------------------------------

    async def _execute(self, request: Callable[[], Awaitable[ModbusPDU]], what: str) -> ModbusPDU:
        # pymodbus raises some errors when the request is built, others when it is awaited.
        try:
            response = await self._send(request)
        except (OSError, ModbusException) as exc:
            # TimeoutError is an OSError. pymodbus raises ModbusIOException when no answer came
            # within its timeout (or the answer was another unit's) and ConnectionException
            # when the transport is gone; all of them mean "unreachable".
            self._no_answer()
            raise DeviceUnreachable(
                f"{self.kind} {self.where}: {what}: no answer within {self.timeout_s:g} s "
                f"or connection lost ({exc or type(exc).__name__})"
            ) from exc
        if response.isError():
            code = response.exception_code
            raise DeviceRejected(
                f"{self.kind} {self.where}: {what}: exception {code} ({_exception_name(code)})",
                code=code,
            )
        return response


class ModbusTcpLink(ModbusLink):
    """One TCP connection to one Modbus unit (slave id)."""

    kind = "Modbus TCP"

    def __init__(
        self, host: str, port: int = 502, unit_id: int = 1, timeout_s: float = 1.0
    ) -> None:
        super().__init__(unit_id, timeout_s)
        self.host = host
        self.port = port
        self._client: AsyncModbusTcpClient | None = None

    @property
    def where(self) -> str:
        """``host:port unit N``, as error messages name the device."""
        return f"{self.host}:{self.port} unit {self.unit_id}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        """Open (or reopen) the connection; ``DeviceUnreachable`` if it cannot be reached."""
        self._drop_client()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,  # no background reconnect: the owner decides when
            name=f"modbus {self.host}:{self.port}",
        )
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            client.close()
            raise DeviceUnreachable(f"Modbus TCP {self.where}: cannot connect: {exc}") from exc
        if not ok or not client.connected:
            client.close()
            raise DeviceUnreachable(
                f"Modbus TCP {self.where}: cannot connect (refused, or no answer within "
                f"{self.timeout_s:g} s); check the host, port and that the device is on"
            )
        self._client = client

    async def close(self) -> None:
        """Close the connection; never raises."""
        self._drop_client()

    def _require_client(self) -> AsyncModbusTcpClient:
        if self._client is None or not self._client.connected:
            self._drop_client()
            raise DeviceUnreachable(f"Modbus TCP {self.where}: not connected")
        return self._client

    def _no_answer(self) -> None:
        self._drop_client()  # a late answer must not pass for the next request's

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with suppress(OSError, RuntimeError, ModbusException):  # best effort
                client.close()


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """A serial line's port and character format (every unit on the line uses the same)."""

    port: str
    baudrate: int = 19200
    parity: str = "E"  # N, E or O
    stopbits: int = 1
    bytesize: int = 8

    def __post_init__(self) -> None:
        if not self.port:
            raise ValueError("a serial line needs a port, e.g. /dev/ttyUSB0")
        if self.baudrate <= 0:
            raise ValueError(f"serial {self.port}: baudrate must be positive, got {self.baudrate}")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"serial {self.port}: parity must be N, E or O, got {self.parity!r}")
        if self.stopbits not in (1, 2):
            raise ValueError(f"serial {self.port}: stopbits must be 1 or 2, got {self.stopbits}")
        if self.bytesize not in (7, 8):
            raise ValueError(f"serial {self.port}: bytesize must be 7 or 8, got {self.bytesize}")

    @property
    def character_bits(self) -> int:
        """Bits on the wire per character: start, data, parity (unless N) and stop bits."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def silent_interval_s(self) -> float:
        """t3.5, the silence that ends a frame: 3.5 character times, 1.75 ms above 19200 baud."""
        if self.baudrate > _FIXED_SILENCE_ABOVE_BAUD:
            return _FIXED_SILENCE_S
        return 3.5 * self.character_bits / self.baudrate


class ModbusSerialLine:
    """One serial port, opened once, with the one pymodbus RTU client its units share.

    It does not take turns: its owner sends one request at a time (see the module docstring).
    """

    def __init__(self, settings: SerialSettings) -> None:
        self.settings = settings
        self._client: AsyncModbusSerialClient | None = None

    def __repr__(self) -> str:
        return f"ModbusSerialLine({self.where})"

    @property
    def where(self) -> str:
        s = self.settings
        return f"serial {s.port} {s.baudrate} {s.bytesize}{s.parity}{s.stopbits}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def client(self) -> AsyncModbusSerialClient | None:
        """The open client (None while closed): every unit on the line sends through it."""
        return self._client if self.connected else None

    async def connect(self) -> None:
        """Open (or reopen) the port; ``DeviceUnreachable`` if it cannot be opened."""
        self._drop_client()
        s = self.settings
        client = AsyncModbusSerialClient(
            s.port,
            framer=FramerType.RTU,
            baudrate=s.baudrate,
            bytesize=s.bytesize,
            parity=s.parity,
            stopbits=s.stopbits,
            timeout=_SERIAL_CLIENT_TIMEOUT_S,
            retries=0,
            reconnect_delay=0,  # no background reopen: the owner decides when
            name=f"modbus {s.port}",
        )
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            client.close()
            raise DeviceUnreachable(f"Modbus RTU {self.where}: cannot open: {exc}") from exc
        if not ok or not client.connected:
            client.close()
            raise DeviceUnreachable(
                f"Modbus RTU {self.where}: cannot open the port; check that it exists, that no "
                "other program holds it, and that this user may use it (group dialout)"
            )
        self._client = client

    async def close(self) -> None:
        """Close the port; never raises."""
        self._drop_client()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with suppress(OSError, RuntimeError, ModbusException):  # best effort
                client.close()


class ModbusRtuLink(ModbusLink):
    """One unit (slave id) on a serial line, with its own request timeout."""

    kind = "Modbus RTU"

    def __init__(self, line: ModbusSerialLine, unit_id: int = 1, timeout_s: float = 1.0) -> None:
        super().__init__(unit_id, timeout_s)
        self.line = line

    @property
    def where(self) -> str:
        """``serial PORT ... unit N``, as error messages name the device."""
        return f"{self.line.where} unit {self.unit_id}"

    @property
    def connected(self) -> bool:
        return self.line.connected

    def _require_client(self) -> AsyncModbusSerialClient:
        client = self.line.client
        if client is None:
            raise DeviceUnreachable(f"Modbus RTU {self.where}: the serial port is not open")
        return client

    async def _send(self, request: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        # The unit's own timeout; cancelling pymodbus's wait leaves the client usable.
        return await asyncio.wait_for(request(), self.timeout_s)


def _exception_name(code: int) -> str:
    return {
        1: "illegal function",
        2: "illegal data address",
        3: "illegal data value",
        4: "server device failure",
        5: "acknowledge",
        6: "server device busy",
        8: "memory parity error",
        10: "gateway path unavailable",
        11: "gateway target device failed to respond",
    }.get(code, "unknown exception")
