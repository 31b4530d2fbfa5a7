"""Alarm performance figures in the style of ISA-18.2 §16, from plain activations (pure).

An *activation* is an annunciated transition into the active state (``raised``); activations
of a shelved point are suppressed and counted apart. An *operator position* is, by default, a
production line (``area / line``), or an area or the site (``operator_position``).

- alarms per hour (and per 10 minutes) per position: activations ÷ hours of the window;
- flood: a 10-minute period (aligned to the clock: 08:00, 08:10 ...) with more than 10
  activations at one position; the share is flood periods ÷ periods overlapping the window;
- standing alarms: open alarms whose condition is active now; *stale* when active for more
  than 24 h;
- top 10: the alarm points (rule × machine × metric) with the most activations;
- chattering: points with 3 or more activations within 60 s (inclusive);
- priority distribution: activations per priority and their share.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cloud.notify.message import PRIORITIES

PERIOD_MS = 600_000
FLOOD_ABOVE = 10
CHATTER_WINDOW_MS = 60_000
CHATTER_MIN = 3
STALE_AFTER_MS = 24 * 3_600_000
TOP = 10


@dataclass(frozen=True, slots=True)
class Activation:
    """One annunciated activation of an alarm point."""

    ts_ms: int
    point_key: str
    rule: str
    machine_id: int
    machine: str
    metric: str | None
    priority: str
    position: str


@dataclass(frozen=True, slots=True)
class OpenAlarm:
    """An open alarm whose condition is active now."""

    alarm_id: int
    point_key: str
    rule: str
    machine: str
    metric: str | None
    priority: str
    position: str
    active_ms: int


@dataclass(frozen=True, slots=True)
class PositionFigures:
    position: str
    activations: int
    per_hour: float
    per_10_min: float
    periods: int
    flood_periods: int
    flood_share: float
    peak_10_min: int


@dataclass(frozen=True, slots=True)
class PointCount:
    point_key: str
    rule: str
    machine_id: int
    machine: str
    metric: str | None
    priority: str
    activations: int
    most_in_60_s: int


@dataclass(frozen=True, slots=True)
class PriorityShare:
    priority: str
    activations: int
    share: float


@dataclass(frozen=True, slots=True)
class StandingFigures:
    active: int
    stale: int
    stale_alarms: tuple[OpenAlarm, ...]


@dataclass(frozen=True, slots=True)
class Performance:
    from_ms: int
    to_ms: int
    hours: float
    operator_position: str
    total: PositionFigures
    positions: tuple[PositionFigures, ...]
    suppressed: int
    standing: StandingFigures
    top: tuple[PointCount, ...]
    chattering: tuple[PointCount, ...]
    priorities: tuple[PriorityShare, ...]


def position_of(mode: str, site: str, area: str | None, line: str | None) -> str:
    """The operator position of a machine: ``area / line`` (default), ``area`` or ``site``."""
    if mode == "site":
        return site
    if mode == "area":
        return area or f"{site} (no area)"
    if line is None:
        return f"{area or site} (no line)"
    return f"{area} / {line}" if area else line


def period_starts(from_ms: int, to_ms: int) -> list[int]:
    """Starts of the clock-aligned 10-minute periods that overlap ``[from_ms, to_ms)``."""
    start = from_ms - from_ms % PERIOD_MS
    return list(range(start, to_ms, PERIOD_MS))


def most_within(times: Sequence[int], window_ms: int) -> int:
    """The largest number of times within any ``window_ms`` (inclusive) span."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, ts in enumerate(ordered):
        while ts - ordered[first] > window_ms:
            first += 1
        best = max(best, last - first + 1)
    return best


def _position_figures(name: str, times: list[int], from_ms: int, to_ms: int) -> PositionFigures:
    hours = (to_ms - from_ms) / 3_600_000
    starts = period_starts(from_ms, to_ms)
    per_period = Counter(ts - ts % PERIOD_MS for ts in times)
    floods = sum(1 for s in starts if per_period.get(s, 0) > FLOOD_ABOVE)
    return PositionFigures(
        position=name,
        activations=len(times),
        per_hour=len(times) / hours if hours else 0.0,
        per_10_min=len(times) / hours / 6 if hours else 0.0,
        periods=len(starts),
        flood_periods=floods,
        flood_share=floods / len(starts) if starts else 0.0,
        peak_10_min=max(per_period.values(), default=0),
    )


def compute(
    activations: Iterable[Activation],
    open_alarms: Iterable[OpenAlarm],
    from_ms: int,
    to_ms: int,
    now_ms: int,
    operator_position: str = "line",
    suppressed: int = 0,
) -> Performance:
    """Every figure for the window ``[from_ms, to_ms)`` (activations outside it are ignored)."""
    inside = [a for a in activations if from_ms <= a.ts_ms < to_ms]
    by_position: dict[str, list[int]] = defaultdict(list)
    by_point: dict[str, list[Activation]] = defaultdict(list)
    for a in inside:
        by_position[a.position].append(a.ts_ms)
        by_point[a.point_key].append(a)
    counts = []
    for key, items in by_point.items():
        first = items[0]
        counts.append(PointCount(
            key, first.rule, first.machine_id, first.machine, first.metric, first.priority,
            len(items), most_within([i.ts_ms for i in items], CHATTER_WINDOW_MS),
        ))  # fmt: skip
    counts.sort(key=lambda c: (-c.activations, c.point_key))
    priorities = Counter(a.priority for a in inside)
    standing = list(open_alarms)
    stale = tuple(sorted(
        (o for o in standing if now_ms - o.active_ms > STALE_AFTER_MS), key=lambda o: o.active_ms
    ))  # fmt: skip
    return Performance(
        from_ms=from_ms,
        to_ms=to_ms,
        hours=(to_ms - from_ms) / 3_600_000,
        operator_position=operator_position,
        total=_position_figures("all", [a.ts_ms for a in inside], from_ms, to_ms),
        positions=tuple(
            _position_figures(name, times, from_ms, to_ms)
            for name, times in sorted(by_position.items())
        ),
        suppressed=suppressed,
        standing=StandingFigures(len(standing), len(stale), stale),
        top=tuple(counts[:TOP]),
        chattering=tuple(c for c in counts if c.most_in_60_s >= CHATTER_MIN),
        priorities=tuple(
            PriorityShare(
                p, priorities.get(p, 0), priorities.get(p, 0) / len(inside) if inside else 0.0
            )
            for p in PRIORITIES
        ),
    )
