"""The exception tree of the protocols package.

ProtocolError                      anything raised by protocols/
├── WireError                      a wire payload or topic that breaks the contract
│   └── UnsupportedVersion         a payload whose schema version this side does not speak
├── ProfileError                   a device profile that breaks the schema (file, line, field)
├── CodecError                     a value that cannot be encoded to / decoded from registers
└── FieldBusError                  a PLC that did not answer as asked
    ├── DeviceUnreachable          no connection, timeout, or the connection dropped
    └── DeviceRejected             the device answered with an exception (e.g. Modbus 0x02)
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by ``protocols``."""


class WireError(ProtocolError):
    """A payload or topic that does not follow the wire contract."""


class UnsupportedVersion(WireError):
    """A payload whose schema version is not one this side accepts."""


class CodecError(ProtocolError):
    """A value that cannot be encoded into, or decoded from, registers."""


class FieldBusError(ProtocolError):
    """A field-bus request that failed."""


class DeviceUnreachable(FieldBusError):
    """The device cannot be reached: refused, timed out, or dropped the connection."""


class DeviceRejected(FieldBusError):
    """The device answered, but with an exception (for Modbus, ``code`` is the exception code)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ProfileError(ProtocolError):
    """A device profile that breaks the schema.

    ``problems`` lists each as ``(line, field, message)``; ``str()`` names the file too.
    """

    def __init__(self, source: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = []
        for line, field, message in problems:
            where = f"{source}:{line}" if line is not None else source
            lines.append(f"{where}: {field}: {message}")
        super().__init__("\n".join(lines))
