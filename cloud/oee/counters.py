"""The increase of a cumulative PLC counter over a window, from its samples (pure).

Each good sample is compared with the previous good one; the difference is the increase
*observed at* the later sample's time, so an increase across a data gap is counted where it is
seen again (and the gap is reported). A value that drops is a reset (the counter starts from 0
again: the increase is the new value), or a rollover when the counter's ``rollover`` value is
known and the previous value was in its top 10 % (the increase wraps through 0, as
``edge/processors.py`` reads it). Bad-quality and empty samples are skipped. The first good
sample (the last one before the window, if the caller passes it) is the baseline: a counter
that starts at 0, or at any value, adds nothing by being first seen.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from cloud.oee.calendar import Segment

BAD_QUALITY = 2
ROLLOVER_TOP = 0.9


@dataclass(frozen=True, slots=True)
class CounterSample:
    ts_ms: int
    value: float | None
    quality: int = 0


@dataclass(frozen=True, slots=True)
class CounterIncrease:
    """What a counter added in a window, where, and what got in the way."""

    total: float
    deltas: tuple[tuple[int, float], ...]
    """``(ts_ms, increase observed at ts_ms)`` for every sample in the window that added."""
    reset_times: tuple[int, ...]
    rollover_times: tuple[int, ...]
    gaps: tuple[Segment, ...]
    """Stretches longer than the gap limit without a good sample (clipped to the window)."""

    @property
    def resets(self) -> int:
        return len(self.reset_times)

    @property
    def rollovers(self) -> int:
        return len(self.rollover_times)

    @property
    def gap_ms(self) -> int:
        return sum(e - s for s, e in self.gaps)


def _step(previous: float, current: float, rollover: int | None) -> tuple[float, str | None]:
    if current >= previous:
        return current - previous, None
    if rollover is not None and previous > ROLLOVER_TOP * rollover:
        return (rollover - previous) + 1 + current, "rollover"
    return current, "reset"


def counter_increase(
    samples: Sequence[CounterSample],
    from_ms: int,
    to_ms: int,
    *,
    rollover: int | None = None,
    gap_after_ms: int = 300_000,
) -> CounterIncrease:
    """Increase over ``[from_ms, to_ms)`` from ``samples`` sorted by time.

    Pass the last good sample before ``from_ms`` too: it is the baseline for the first one in
    the window. ``rollover``: the value after which the counter wraps to 0 (None: unknown).
    """
    deltas: list[tuple[int, float]] = []
    gaps: list[Segment] = []
    resets: list[int] = []
    rollovers: list[int] = []
    previous: CounterSample | None = None
    for sample in samples:
        if sample.quality >= BAD_QUALITY or sample.value is None:
            continue
        if sample.ts_ms >= to_ms:
            break
        if previous is not None and sample.ts_ms >= from_ms:
            if sample.ts_ms - previous.ts_ms > gap_after_ms:
                gaps.append((max(previous.ts_ms, from_ms), sample.ts_ms))
            increase, kind = _step(previous.value or 0.0, sample.value, rollover)
            if kind == "reset":
                resets.append(sample.ts_ms)
            elif kind == "rollover":
                rollovers.append(sample.ts_ms)
            if increase:
                deltas.append((sample.ts_ms, increase))
        previous = sample
    last_seen = previous.ts_ms if previous is not None else from_ms
    if to_ms - max(last_seen, from_ms) > gap_after_ms:
        gaps.append((max(last_seen, from_ms), to_ms))
    return CounterIncrease(
        total=sum(d for _, d in deltas),
        deltas=tuple(deltas),
        reset_times=tuple(resets),
        rollover_times=tuple(rollovers),
        gaps=tuple(gaps),
    )


def deltas_within(
    deltas: Sequence[tuple[int, float]], segments: Sequence[Segment]
) -> list[tuple[int, float]]:
    """The increases observed inside ``segments`` (sorted, disjoint); ``deltas`` sorted by time."""
    out: list[tuple[int, float]] = []
    for start, end in segments:
        lo = bisect.bisect_left(deltas, (start, float("-inf")))
        hi = bisect.bisect_left(deltas, (end, float("-inf")))
        out.extend(deltas[lo:hi])
    return out


def increase_within(deltas: Sequence[tuple[int, float]], segments: Sequence[Segment]) -> float:
    """The part of the increase observed inside ``segments`` (sorted, disjoint)."""
    return sum(d for _, d in deltas_within(deltas, segments))


def increase_after(
    deltas: Sequence[tuple[int, float]], starts: Sequence[int], length_ms: int
) -> float:
    """The increase observed within ``length_ms`` after any of ``starts`` (counted once).

    ``starts`` sorted; only those that can reach the ``deltas`` are looked at.
    """
    if not deltas:
        return 0.0
    lo = bisect.bisect_left(starts, deltas[0][0] - length_ms)
    hi = bisect.bisect_right(starts, deltas[-1][0])
    merged: list[Segment] = []
    for start in starts[lo:hi]:
        end = start + length_ms
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return increase_within(deltas, merged)


def gaps_within(gaps: Sequence[Segment], from_ms: int, to_ms: int) -> list[Segment]:
    """``gaps`` (sorted, disjoint) clipped to ``[from_ms, to_ms)``."""
    first = max(bisect.bisect_right(gaps, (from_ms, from_ms)) - 1, 0)
    out: list[Segment] = []
    for start, end in gaps[first:]:
        if start >= to_ms:
            break
        if end > from_ms:
            out.append((max(start, from_ms), min(end, to_ms)))
    return out
