"""Registers ⇄ values: Modbus data types, the four word/byte orders, and tag scaling.

A Modbus register is 16 bits, sent high byte first. Values wider than one register are spread
over 2 (32-bit) or 4 (64-bit) registers in one of four orders, named after the bytes of the
32-bit value 0xAABBCCDD as they appear on the wire:

    ABCD  big-endian words, big-endian bytes      123456.0f → 0x47F1 0x2000
    CDAB  word swap                               123456.0f → 0x2000 0x47F1
    BADC  byte swap inside each word              123456.0f → 0xF147 0x0020
    DCBA  little-endian                           123456.0f → 0x0020 0xF147

For 64-bit values the same rules apply to four words: CDAB and DCBA reverse the word order,
BADC and DCBA swap the bytes of each word. The order applies only to values of two or more
registers (the profile field is the "32/64-bit word and byte order"): 16-bit numbers, bits and
strings are always read high byte first.

Everything here is a pure function; errors are ``CodecError`` with a message that says what
was wrong.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from protocols.errors import CodecError
from protocols.profile import REGISTER_WIDTH, Tag, WordOrder
from protocols.wire import Value

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "WORD_ORDERS",
    "decode_many",
    "decode_registers",
    "decode_tag",
    "encode_registers",
    "encode_tag",
    "set_bit",
]

WORD_ORDERS: tuple[WordOrder, ...] = ("ABCD", "CDAB", "BADC", "DCBA")

# struct format, and the inclusive range of the integer types.
_STRUCT: dict[str, str] = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "q", "uint64": "Q", "float32": "f", "float64": "d",
}  # fmt: skip
_INT_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "bitfield": (0, 2**16 - 1),
}
_FLOAT_TYPES = ("float32", "float64")
_KNOWN_TYPES = frozenset(REGISTER_WIDTH) | {"string"}


def _check_order(order: str) -> None:
    if order not in WORD_ORDERS:
        raise CodecError(f"unknown word order {order!r} (expected one of {', '.join(WORD_ORDERS)})")


def _check_type(data_type: str) -> None:
    if data_type not in _KNOWN_TYPES:
        known = ", ".join(sorted(_KNOWN_TYPES))
        raise CodecError(f"unknown Modbus data type {data_type!r} (expected one of {known})")


def _check_registers(registers: Sequence[int]) -> None:
    for i, register in enumerate(registers):
        if not 0 <= register <= 0xFFFF:
            raise CodecError(f"register {i} holds {register}, not a 16-bit value (0..65535)")


def _swap_bytes(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _reorder(words: Sequence[int], order: WordOrder) -> list[int]:
    """Wire order ⇄ big-endian (ABCD) order. The mapping is its own inverse."""
    result = list(words)
    if order in ("CDAB", "DCBA"):
        result.reverse()
    if order in ("BADC", "DCBA"):
        result = [_swap_bytes(w) for w in result]
    return result


def _check_count(registers: Sequence[int], data_type: str, expected: int) -> None:
    if len(registers) != expected:
        raise CodecError(
            f"{data_type} needs {expected} register{'s' if expected > 1 else ''}, "
            f"got {len(registers)}"
        )


def decode_registers(
    registers: Sequence[int],
    data_type: str,
    order: WordOrder = "ABCD",
    bit: int | None = None,
) -> Value:
    """Decode raw registers (no scaling) into a value of ``data_type``.

    ``bool`` with ``bit`` is that bit of the first register; without it (coils, discrete
    inputs) the truth of the first value. ``bitfield`` is the whole uint16 word, or one bit as a
    bool when ``bit`` is given. ``string`` takes any number of registers, two ASCII characters
    each (high byte first), and drops trailing NULs and spaces.
    """
    _check_type(data_type)
    _check_order(order)
    if bit is not None and not 0 <= bit <= 15:
        raise CodecError(f"bit {bit} is outside a 16-bit register (0-15)")
    if data_type == "string":
        if not registers:
            raise CodecError("string needs at least 1 register, got 0")
        _check_registers(registers)
        raw = struct.pack(f">{len(registers)}H", *registers)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise CodecError(f"string registers hold a non-ASCII byte at {exc.start}") from None
        return text.rstrip("\x00 ")
    _check_count(registers, data_type, REGISTER_WIDTH[data_type])
    _check_registers(registers)
    if data_type == "bool":
        return bool(registers[0]) if bit is None else bool((registers[0] >> bit) & 1)
    if data_type == "bitfield":
        return int(registers[0]) if bit is None else bool((registers[0] >> bit) & 1)
    words = _reorder(registers, order) if len(registers) > 1 else list(registers)
    raw = struct.pack(f">{len(words)}H", *words)
    value: int | float = struct.unpack(f">{_STRUCT[data_type]}", raw)[0]
    return value


def encode_registers(
    value: Value,
    data_type: str,
    order: WordOrder = "ABCD",
    length: int | None = None,
) -> list[int]:
    """Encode a raw value (no scaling) into registers; the inverse of ``decode_registers``.

    ``bool`` encodes as one register (or coil) of 0 or 1: a bool that is one bit of a word
    cannot be written alone, see ``set_bit``. ``string`` pads with NULs to ``length`` registers
    (default: as few as hold the text) and is an error if it does not fit.
    """
    _check_type(data_type)
    _check_order(order)
    if data_type == "bool":
        if not isinstance(value, bool) and value not in (0, 1):
            raise CodecError(f"bool needs True/False (or 0/1), got {value!r}")
        return [1 if value else 0]
    if data_type == "string":
        return _encode_string(value, length)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{data_type} needs a number, got {value!r}")
    if data_type in _FLOAT_TYPES:
        try:
            raw = struct.pack(f">{_STRUCT[data_type]}", float(value))
        except OverflowError:
            raise CodecError(f"{value!r} is too large for {data_type}") from None
    else:
        number = _as_int(value, data_type)
        low, high = _INT_RANGE[data_type]
        if not low <= number <= high:
            raise CodecError(f"{number} is out of range for {data_type} ({low}..{high})")
        if data_type == "bitfield":
            return [number]
        raw = struct.pack(f">{_STRUCT[data_type]}", number)
    words = list(struct.unpack(f">{len(raw) // 2}H", raw))
    return _reorder(words, order) if len(words) > 1 else words


def _as_int(value: int | float, data_type: str) -> int:
    if isinstance(value, int):
        return value
    if not math.isfinite(value) or not value.is_integer():
        raise CodecError(f"{data_type} needs a whole number, got {value!r}")
    return int(value)


def _encode_string(value: Value, length: int | None) -> list[int]:
    if not isinstance(value, str):
        raise CodecError(f"string needs text, got {value!r}")
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise CodecError(f"string {value!r} has a non-ASCII character at {exc.start}") from None
    registers = length if length is not None else max(1, (len(raw) + 1) // 2)
    if registers < 1:
        raise CodecError(f"string length must be at least 1 register, got {registers}")
    if len(raw) > 2 * registers:
        raise CodecError(
            f"string of {len(raw)} characters does not fit {registers} registers "
            f"({2 * registers} characters)"
        )
    raw = raw.ljust(2 * registers, b"\x00")
    return list(struct.unpack(f">{registers}H", raw))


def set_bit(word: int, bit: int, value: bool) -> int:
    """The 16-bit ``word`` with ``bit`` set to ``value`` (read-modify-write of a bool tag)."""
    if not 0 <= word <= 0xFFFF:
        raise CodecError(f"{word} is not a 16-bit register value (0..65535)")
    if not 0 <= bit <= 15:
        raise CodecError(f"bit {bit} is outside a 16-bit register (0-15)")
    return word | (1 << bit) if value else word & ~(1 << bit) & 0xFFFF


def _is_scaled(tag: Tag) -> bool:
    return tag.scale != 1.0 or tag.offset != 0.0


def decode_tag(tag: Tag, registers: Sequence[int], order: WordOrder) -> Value:
    """A tag's engineering value from its registers: ``raw * scale + offset``.

    Scaled values are floats; unscaled ones keep their raw type. ``registers`` must be exactly
    the tag's span (``tag.register_count``).
    """
    if tag.type == "string" and len(registers) != tag.register_count:
        raise CodecError(
            f"tag {tag.name}: string of {tag.register_count} registers, got {len(registers)}"
        )
    try:
        raw = decode_registers(registers, tag.type, order, tag.bit)
    except CodecError as exc:
        raise CodecError(f"tag {tag.name}: {exc}") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not _is_scaled(tag):
        return raw
    return float(raw) * tag.scale + tag.offset


def encode_tag(tag: Tag, value: Value, order: WordOrder) -> list[int]:
    """The registers that make a tag read ``value`` (engineering units).

    Inverts the scaling, rounds to the nearest whole number for integer types, and raises
    ``CodecError`` when the raw value does not fit the type (it never clamps). A bool that is one
    bit of a register cannot be encoded alone: read the word and use ``set_bit``.
    """
    if tag.bit is not None and tag.table not in ("coil", "discrete"):
        raise CodecError(
            f"tag {tag.name} is bit {tag.bit} of a register: read the word and use set_bit"
        )
    raw: Value = value
    if tag.is_numeric and _is_scaled(tag):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"tag {tag.name}: {tag.type} needs a number, got {value!r}")
        if tag.scale == 0.0:
            raise CodecError(f"tag {tag.name}: scale 0 cannot be inverted")
        raw = (float(value) - tag.offset) / tag.scale
    if tag.type in _INT_RANGE and isinstance(raw, float):
        if not math.isfinite(raw):
            raise CodecError(f"tag {tag.name}: {value!r} is not a finite number")
        raw = round(raw)
    try:
        return encode_registers(raw, tag.type, order, tag.length)
    except CodecError as exc:
        raise CodecError(f"tag {tag.name}: value {value!r}: {exc}") from None


def decode_many(
    registers: Sequence[int], data_type: str, order: WordOrder = "ABCD"
) -> npt.NDArray[Any]:
    """Decode a run of back-to-back values of one fixed-width type at once (numpy).

    ``registers`` holds n values of ``data_type`` (int16 … float64); the result is an array of
    n values in native byte order. Pays off for long runs such as vibration spectra or recipe
    tables; single tags are simpler with ``decode_registers``.
    """
    import numpy as np

    _check_type(data_type)
    _check_order(order)
    if data_type not in _STRUCT:
        raise CodecError(f"decode_many handles fixed-width numbers, not {data_type}")
    width = REGISTER_WIDTH[data_type]
    if len(registers) % width:
        raise CodecError(
            f"{len(registers)} registers is not a whole number of {data_type} ({width} each)"
        )
    _check_registers(registers)
    words = np.asarray(registers, dtype=np.uint16).reshape(-1, width)
    if width > 1 and order in ("CDAB", "DCBA"):
        words = words[:, ::-1]
    if width > 1 and order in ("BADC", "DCBA"):
        words = words.byteswap()
    big_endian = np.dtype(f">{_STRUCT[data_type]}")
    values = np.frombuffer(words.astype(">u2").tobytes(), dtype=big_endian)
    return values.astype(big_endian.newbyteorder("="))
