"""What one OPC UA read or data-change notification yields, and how values go back to the server.

A ``ReadResult`` keeps what the server said about a node: the raw value, the StatusCode (its
name and its severity as a ``Quality``) and the best timestamp available, saying which one it is:
the source timestamp, else the server timestamp, else the local clock at the read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from asyncua import ua
from asyncua.ua import status_codes

from protocols.clock import now_ms
from protocols.errors import CodecError
from protocols.quality import Quality, opcua_status_reason

TimestampOrigin = Literal["source", "server", "local"]

_SEVERITY_MASK = 0xC000_0000
_CODE_MASK = 0xFFFF_0000  # the low 16 bits are info bits (overflow, limits), not the code

# Profile data types → the variant type a write sends.
VARIANT_TYPES: dict[str, ua.VariantType] = {
    "bool": ua.VariantType.Boolean,
    "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16,
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
    "int64": ua.VariantType.Int64,
    "uint64": ua.VariantType.UInt64,
    "float32": ua.VariantType.Float,
    "float64": ua.VariantType.Double,
    "bitfield": ua.VariantType.UInt16,
    "string": ua.VariantType.String,
}

_INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOAT_TYPES = (ua.VariantType.Float, ua.VariantType.Double)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One node's value as the server reported it."""

    node_id: ua.NodeId
    value: object  # as asyncua decoded it; None when the status is bad
    variant_type: ua.VariantType | None
    status_code: int
    status: str  # the StatusCode's name, e.g. "Good", "BadNodeIdUnknown"
    quality: Quality
    ts_ms: int
    ts_origin: TimestampOrigin

    @property
    def reason(self) -> str | None:
        """Why the value is not good (``opcua:<StatusName>``), or None when it is."""
        return None if self.quality is Quality.GOOD else opcua_status_reason(self.status)


def status_name(code: int) -> str:
    """The symbolic name of a StatusCode value (info bits ignored), e.g. ``BadNodeIdUnknown``."""
    name, _doc = status_codes.get_name_and_doc(code & _CODE_MASK)
    return name


def status_quality(code: int) -> Quality:
    """The severity of a StatusCode: 00 good, 01 uncertain, 10 and 11 bad."""
    severity = code & _SEVERITY_MASK
    if severity == 0:
        return Quality.GOOD
    if severity == 0x4000_0000:
        return Quality.UNCERTAIN
    return Quality.BAD


def epoch_ms(moment: datetime | None) -> int | None:
    """A timestamp in epoch milliseconds, or None when absent or not a real time (1601, 9999)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year <= 1970 or moment.year >= 9999:
        return None
    return math.floor(moment.timestamp() * 1000)


def result_from_data_value(
    node_id: ua.NodeId, data_value: ua.DataValue, local_ms: int | None = None
) -> ReadResult:
    """Build a ReadResult from a DataValue (of a Read response or a data-change notification)."""
    code = int(data_value.StatusCode.value) if data_value.StatusCode is not None else 0
    quality = status_quality(code)
    variant = data_value.Value
    value: object = None
    variant_type: ua.VariantType | None = None
    if variant is not None and quality is not Quality.BAD:
        value = variant.Value
        variant_type = variant.VariantType
    ts_origin: TimestampOrigin = "source"
    ts = epoch_ms(data_value.SourceTimestamp)
    if ts is None:
        ts_origin, ts = "server", epoch_ms(data_value.ServerTimestamp)
    if ts is None:
        ts_origin, ts = "local", local_ms if local_ms is not None else now_ms()
    return ReadResult(node_id, value, variant_type, code, status_name(code), quality, ts, ts_origin)


def coerce_for_variant(value: object, variant_type: ua.VariantType) -> object:
    """A Python value ready to travel as ``variant_type``; raise CodecError if it cannot."""
    if variant_type is ua.VariantType.Boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        raise CodecError(f"{value!r} is not a boolean")
    if variant_type is ua.VariantType.String:
        if isinstance(value, str):
            return value
        raise CodecError(f"{value!r} is not a string")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{value!r} is not a number ({variant_type.name} expected)")
    if variant_type in _FLOAT_TYPES:
        return float(value)
    if variant_type in _INTEGER_RANGES:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise CodecError(f"{value!r} cannot be written as {variant_type.name}")
            value = round(value)
        low, high = _INTEGER_RANGES[variant_type]
        if not low <= value <= high:
            raise CodecError(f"{value} is outside {variant_type.name}'s range {low}..{high}")
        return int(value)
    raise CodecError(f"writing {variant_type.name} values is not supported")
