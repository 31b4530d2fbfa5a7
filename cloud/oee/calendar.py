"""Shift calendars as plain values: the planned windows of a site or line in its time zone (pure).

A calendar has weekly shifts (name, local start and end, weekdays, breaks), holidays (local
dates without production) and overtime (extra local windows). A shift that ends at or before
its start crosses midnight and belongs to the local date it starts on; ``00:00``–``00:00`` is
a 24-hour shift. Every local wall-clock time is turned into UTC with ``zoneinfo``, so a night
shift over a DST change is an hour shorter or longer, as it is on the shop floor. A holiday
removes the shifts that *start* on it (a night shift that began the evening before still runs).

``planned_windows`` yields the windows that overlap ``[from_ms, to_ms)``; ``planned_segments``
turns them into the planned operating time (POT): windows minus breaks, clipped, overlaps
merged. ``ALWAYS`` is the calendar used where a site or line has none: one 24-hour shift a day
in UTC (planned around the clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_DAY_MIN = 24 * 60
ALL_WEEKDAYS = frozenset(range(7))

Segment = tuple[int, int]
"""A half-open stretch of time ``[start_ms, end_ms)``."""


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (cached; raises ``ZoneInfoNotFoundError`` if unknown)."""
    return ZoneInfo(name)


def local_to_ms(local: datetime, tz: ZoneInfo) -> int:
    """A naive local wall-clock time → epoch ms (a time skipped by DST maps past the gap)."""
    return (local.replace(tzinfo=tz) - _EPOCH) // _ONE_MS


def ms_to_local(ms: int, tz: ZoneInfo) -> datetime:
    """Epoch ms → aware local time."""
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz)


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True, slots=True)
class Shift:
    """A weekly shift; ``weekdays`` 0 = Monday; ``breaks`` are local (start, end) clock times."""

    name: str
    start: time
    end: time
    weekdays: frozenset[int] = ALL_WEEKDAYS
    breaks: tuple[tuple[time, time], ...] = ()

    @property
    def length_min(self) -> int:
        """Minutes of wall-clock time from start to end (end ≤ start: over midnight)."""
        length = (_minutes(self.end) - _minutes(self.start)) % _DAY_MIN
        return length or _DAY_MIN

    def break_offsets(self) -> list[tuple[int, int]]:
        """Each break as (minutes after the shift's start, minutes long)."""
        out = []
        for start, end in self.breaks:
            offset = (_minutes(start) - _minutes(self.start)) % _DAY_MIN
            length = (_minutes(end) - _minutes(start)) % _DAY_MIN
            out.append((offset, length))
        return out


@dataclass(frozen=True, slots=True)
class Overtime:
    """An extra planned window in local wall-clock time (e.g. a Saturday morning)."""

    start: datetime
    end: datetime
    name: str = "overtime"


@dataclass(frozen=True, slots=True)
class Calendar:
    """A shift calendar in one IANA time zone."""

    name: str
    time_zone: str
    shifts: tuple[Shift, ...]
    holidays: frozenset[date] = field(default_factory=frozenset)
    overtime: tuple[Overtime, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.time_zone)


@dataclass(frozen=True, slots=True)
class PlannedWindow:
    """One shift instance (or overtime window): its name, the local date it starts on, breaks."""

    shift: str
    local_date: date
    start_ms: int
    end_ms: int
    breaks: tuple[Segment, ...] = ()

    @property
    def key(self) -> str:
        """``2026-03-02/early``: names the instance in roll-ups and the API."""
        return f"{self.local_date.isoformat()}/{self.shift}"


ALWAYS = Calendar("24/7", "UTC", (Shift("day", time(0), time(0)),))
"""No calendar at all: planned around the clock, one 24-hour "day" shift per UTC date."""


def _shift_window(shift: Shift, day: date, tz: ZoneInfo) -> PlannedWindow:
    begin = datetime.combine(day, shift.start)
    start_ms = local_to_ms(begin, tz)
    end_ms = local_to_ms(begin + timedelta(minutes=shift.length_min), tz)
    breaks = []
    for offset, length in shift.break_offsets():
        b_start = local_to_ms(begin + timedelta(minutes=offset), tz)
        b_end = local_to_ms(begin + timedelta(minutes=offset + length), tz)
        breaks.append((max(b_start, start_ms), min(b_end, end_ms)))
    return PlannedWindow(shift.name, day, start_ms, end_ms, tuple(breaks))


def planned_windows(calendar: Calendar, from_ms: int, to_ms: int) -> list[PlannedWindow]:
    """Shift instances and overtime windows overlapping ``[from_ms, to_ms)``, by start time."""
    if to_ms <= from_ms:
        return []
    tz = calendar.tz
    first = ms_to_local(from_ms, tz).date() - timedelta(days=1)
    last = ms_to_local(to_ms, tz).date()
    out: list[PlannedWindow] = []
    day = first
    while day <= last:
        if day not in calendar.holidays:
            for shift in calendar.shifts:
                if day.weekday() in shift.weekdays:
                    window = _shift_window(shift, day, tz)
                    if window.start_ms < to_ms and window.end_ms > from_ms:
                        out.append(window)
        day += timedelta(days=1)
    for extra in calendar.overtime:
        start_ms, end_ms = local_to_ms(extra.start, tz), local_to_ms(extra.end, tz)
        if start_ms < to_ms and end_ms > from_ms:
            out.append(PlannedWindow(extra.name, extra.start.date(), start_ms, end_ms))
    out.sort(key=lambda w: (w.start_ms, w.end_ms, w.shift))
    return out


def merge_segments(segments: Iterable[Segment]) -> list[Segment]:
    """Sorted, non-overlapping, non-empty segments covering the same time."""
    out: list[Segment] = []
    for start, end in sorted(s for s in segments if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def window_segments(window: PlannedWindow) -> list[Segment]:
    """A window minus its breaks."""
    out: list[Segment] = []
    cursor = window.start_ms
    for b_start, b_end in sorted(window.breaks):
        if b_start > cursor:
            out.append((cursor, b_start))
        cursor = max(cursor, b_end)
    if cursor < window.end_ms:
        out.append((cursor, window.end_ms))
    return out


def clip_segments(segments: Iterable[Segment], from_ms: int, to_ms: int) -> list[Segment]:
    """Segments cut to ``[from_ms, to_ms)`` (empty ones dropped)."""
    return [
        (max(s, from_ms), min(e, to_ms)) for s, e in segments if min(e, to_ms) > max(s, from_ms)
    ]


def planned_segments(windows: Sequence[PlannedWindow], from_ms: int, to_ms: int) -> list[Segment]:
    """Planned operating time (POT) inside ``[from_ms, to_ms)``: windows minus breaks, merged."""
    pieces = (seg for window in windows for seg in window_segments(window))
    return merge_segments(clip_segments(pieces, from_ms, to_ms))


def segments_ms(segments: Iterable[Segment]) -> int:
    return sum(e - s for s, e in segments)


def current_window(calendar: Calendar, at_ms: int) -> PlannedWindow | None:
    """The shift instance (or overtime) running at ``at_ms``; the earliest-started one if several."""
    running = [w for w in planned_windows(calendar, at_ms, at_ms + 1) if w.start_ms <= at_ms]
    return running[0] if running else None


def last_window(calendar: Calendar, at_ms: int, lookback_days: int = 14) -> PlannedWindow | None:
    """The latest window that ended at or before ``at_ms`` (within ``lookback_days``)."""
    ended = [
        w
        for w in planned_windows(calendar, at_ms - lookback_days * 86_400_000, at_ms)
        if w.end_ms <= at_ms
    ]
    return max(ended, key=lambda w: w.end_ms) if ended else None
