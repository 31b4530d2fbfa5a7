"""From state-tag readings to state intervals: a pure function, testable with plain values.

A machine's state tag carries a raw code (e.g. 3) that its profile maps to a canonical state
(``running idle down setup planned_stop offline``). Each reading holds until the next one
(sample-and-hold); consecutive readings that give the same canonical state, raw code and fault
code extend one interval. A bad-quality reading means the machine's state is unknown, which
counts as ``offline``; so does a code the state map does not know. The last interval is open
(``end_ms`` None).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OFFLINE = "offline"
CANONICAL_STATES: tuple[str, ...] = ("running", "idle", "down", "setup", "planned_stop", OFFLINE)
BAD_QUALITY = 2


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of a state or fault-code tag: numeric ``value`` or ``text`` code, and quality."""

    ts_ms: int
    value: float | None
    quality: int = 0
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Interval:
    """One stretch of a canonical state, ``[start_ms, end_ms)``; ``end_ms`` None while open."""

    state: str
    raw_code: str | None
    fault_code: str | None
    start_ms: int
    end_ms: int | None

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return self.state, self.raw_code, self.fault_code


def raw_code(reading: Reading) -> str | None:
    """The code as a state-map key: ``3.0`` → ``"3"``; text codes as they are; bad → None."""
    if reading.quality >= BAD_QUALITY:
        return None
    if reading.text is not None:
        return reading.text
    value = reading.value
    if value is None:
        return None
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def canonical_state(code: str | None, quality: int, state_map: Mapping[str, str]) -> str:
    """The canonical state of a raw code: bad quality, no code or an unknown code is offline."""
    if quality >= BAD_QUALITY or code is None:
        return OFFLINE
    state = state_map.get(code, OFFLINE)
    return state if state in CANONICAL_STATES else OFFLINE


def _fault_at(faults: Sequence[Reading], fault_ts: list[int], ts_ms: int) -> str | None:
    """The non-zero fault code held at ``ts_ms`` (the latest fault reading at or before it)."""
    i = bisect.bisect_right(fault_ts, ts_ms) - 1
    if i < 0:
        return None
    code = raw_code(faults[i])
    return None if code in (None, "0", "") else code


def derive_intervals(
    readings: Sequence[Reading],
    state_map: Mapping[str, str],
    faults: Sequence[Reading] = (),
) -> list[Interval]:
    """Intervals from readings sorted by time (``faults``: the fault-code tag, also sorted)."""
    fault_ts = [f.ts_ms for f in faults]
    out: list[Interval] = []
    for reading in readings:
        code = raw_code(reading)
        state = canonical_state(code, reading.quality, state_map)
        fault = _fault_at(faults, fault_ts, reading.ts_ms) if faults else None
        key = (state, code, fault)
        if out and out[-1].key == key:
            continue
        if out:
            last = out[-1]
            out[-1] = Interval(last.state, last.raw_code, last.fault_code, last.start_ms,
                               reading.ts_ms)  # fmt: skip
        out.append(Interval(state, code, fault, reading.ts_ms, None))
    return out
