"""An async Modbus TCP link to one unit, over pymodbus 3.16, with the protocols error tree.

Failures come out as two errors only:

- ``DeviceUnreachable``: refused, not connected, no answer within ``timeout_s``, or the
  connection dropped. The message names ``host:port`` and the unit.
- ``DeviceRejected``: the device answered with a Modbus exception; ``code`` is the exception
  code (2 = illegal data address, ...).

Timeouts: ``connect`` gives up after ``timeout_s``; each request waits ``timeout_s`` for its
answer and is not retried (``retries=0``), so a dead device costs one timeout per request, not
several. After a timeout the link closes itself, since a late answer could otherwise be taken
for the answer to the next request; ``connected`` is then False and the owner reconnects.
pymodbus's own background reconnect is switched off: reconnecting, with backoff, is the
owner's decision. A connection that drops while the link is idle is noticed at once; one that
drops in the middle of a request is noticed at that request's timeout at the latest.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.modbus.planner import Block
from protocols.profile import Table

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from pymodbus.pdu import ModbusPDU

__all__ = ["ModbusTcpLink"]

_FUNCTION_NAME: dict[Table, str] = {
    "holding": "FC03 read holding registers",
    "input": "FC04 read input registers",
    "coil": "FC01 read coils",
    "discrete": "FC02 read discrete inputs",
}


class ModbusTcpLink:
    """One TCP connection to one Modbus unit (slave id)."""

    def __init__(
        self, host: str, port: int = 502, unit_id: int = 1, timeout_s: float = 1.0
    ) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"Modbus unit id {unit_id} is outside 0..255")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.timeout_s = timeout_s
        self._client: AsyncModbusTcpClient | None = None

    def __repr__(self) -> str:
        return f"ModbusTcpLink({self.where})"

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
                    f"Modbus TCP {self.where}: {what}: answered {len(bits)} bits", code=None
                )
            return bits
        registers = list(response.registers)
        if len(registers) != count:
            raise DeviceRejected(
                f"Modbus TCP {self.where}: {what}: answered {len(registers)} registers", code=None
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

    async def close(self) -> None:
        """Close the connection; never raises."""
        self._drop_client()

    def _require_client(self) -> AsyncModbusTcpClient:
        if self._client is None or not self._client.connected:
            self._drop_client()
            raise DeviceUnreachable(f"Modbus TCP {self.where}: not connected")
        return self._client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with suppress(OSError, RuntimeError, ModbusException):  # best effort
                client.close()

    async def _execute(self, request: Callable[[], Awaitable[ModbusPDU]], what: str) -> ModbusPDU:
        # pymodbus raises some errors when the request is built, others when it is awaited.
        try:
            response = await request()
        except (OSError, ModbusException) as exc:
            # pymodbus raises ModbusIOException when no answer came within the timeout and
            # ConnectionException when the transport is gone; both mean "unreachable".
            self._drop_client()
            raise DeviceUnreachable(
                f"Modbus TCP {self.where}: {what}: no answer within {self.timeout_s:g} s "
                f"or connection lost ({exc})"
            ) from exc
        if response.isError():
            code = response.exception_code
            raise DeviceRejected(
                f"Modbus TCP {self.where}: {what}: exception {code} ({_exception_name(code)})",
                code=code,
            )
        return response


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
