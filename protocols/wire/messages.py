"""The messages of wire contract v1, as frozen dataclasses (the codec turns them into bytes).

Timestamps are integer epoch milliseconds (UTC). A sample's quality is its own field; a value
that is not finite travels as ``None`` with bad quality, never as an error string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from protocols.quality import REASON_NOT_FINITE, Quality

SCHEMA_VERSION = 1
# The cloud accepts the current and the previous schema version; v1 is the first.
SUPPORTED_VERSIONS: frozenset[int] = frozenset({1})

Value = float | int | bool | str | None
"""A sample value: a number, a flag, a string, or None when the quality is bad."""
DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float32", "float64", "bitfield", "string",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one metric: the source timestamp, the value and its quality."""

    metric: str
    ts_ms: int
    value: Value
    quality: Quality = Quality.GOOD
    reason: str | None = None

    @classmethod
    def checked(
        cls,
        metric: str,
        ts_ms: int,
        value: Value,
        quality: Quality = Quality.GOOD,
        reason: str | None = None,
    ) -> Sample:
        """Build a sample, turning NaN and infinities into ``None`` with bad quality."""
        if isinstance(value, float) and not math.isfinite(value):
            return cls(metric, ts_ms, None, Quality.BAD, reason or REASON_NOT_FINITE)
        return cls(metric, ts_ms, value, quality, reason)


@dataclass(frozen=True, slots=True)
class DataMessage:
    """A batch of samples from one device, numbered in its edge's sequence space."""

    session: str
    seq: int
    created_ms: int
    samples: tuple[Sample, ...]
    historical: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened on a device: ``state_change``, ``counter_reset``, ``link_down`` ..."""

    kind: str
    ts_ms: int
    metric: str | None = None
    previous: Value = None
    current: Value = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class EventMessage:
    """A batch of events, numbered in the same sequence space as data messages."""

    session: str
    seq: int
    created_ms: int
    events: tuple[Event, ...]
    historical: bool = False


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """What a metric is: published once per device in its birth message."""

    name: str
    data_type: DataType
    role: str
    unit: str | None = None
    low_limit: float | None = None
    high_limit: float | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class FaultText:
    """What a fault code means: the reason operators know, and its loss category."""

    reason: str
    category: str = "breakdown"


@dataclass(frozen=True, slots=True)
class StateRuleText:
    """A state rule as the profile wrote it: ``state`` while ``when`` holds (None: fallback)."""

    state: str
    when: str | None = None


@dataclass(frozen=True, slots=True)
class BirthMessage:
    """A device's metric definitions, state mapping, fault texts and placement hints (retained).

    ``fault_codes``, ``state_rules`` and ``counter_rollover`` were added to v1 as optional fields: a v1 reader that
    does not know them ignores them, and a birth without them reads as empty.
    """

    session: str
    created_ms: int
    profile: str
    protocol: str
    metrics: tuple[MetricDefinition, ...]
    state_map: dict[str, str] = field(default_factory=dict)
    ideal_cycle_time_s: float | None = None
    units_per_cycle: int = 1
    area: str | None = None
    line: str | None = None
    fault_codes: dict[str, FaultText] = field(default_factory=dict)
    state_rules: tuple[StateRuleText, ...] = ()
    counter_rollover: int | None = None  # the device's counters wrap to 0 after this value


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """An edge's status (retained): online with health figures, or the will's death notice."""

    online: bool
    created_ms: int
    session: str | None = None
    health: dict[str, float | int | str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AckMessage:
    """The cloud's acknowledgement to one edge: per session, the inclusive seq ranges stored."""

    created_ms: int
    ranges: dict[str, tuple[tuple[int, int], ...]]


@dataclass(frozen=True, slots=True)
class CommandMessage:
    """A command down to an edge: ``resend_birth``, ``write`` (device, metric, value) ..."""

    command: str
    command_id: str
    created_ms: int
    args: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PresenceMessage:
    """A cloud worker's presence (retained, with a will that says offline)."""

    worker: str
    online: bool
    created_ms: int


Message = (
    DataMessage | EventMessage | BirthMessage | StatusMessage | AckMessage | CommandMessage
    | PresenceMessage
)  # fmt: skip
