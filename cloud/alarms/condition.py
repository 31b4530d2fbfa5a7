"""The condition of one alarm point and the on-delay / off-delay logic every kind shares (pure).

An evaluator looks at readings and time and says whether the alarm *condition* is abnormal;
``observe`` and ``expire`` turn that into activations and returns to normal, honouring the
on-delay (abnormal for that long before the alarm activates) and the off-delay (normal for that
long before it returns). Readings hold until the next one (sample-and-hold), so a delay that
runs out between two readings fires at its due time: ``expire`` is called with the next
reading's time, or with the clock by the engine's ticker.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

GOOD, UNCERTAIN, BAD = 0, 1, 2

ChangeKind = Literal["activate", "return"]


class Reading(NamedTuple):
    """One sample as evaluators see it: numeric ``value`` or ``text``, and its quality code.

    (A named tuple rather than a dataclass: one is made per sample, and tuples are cheap.)
    """

    ts_ms: int
    value: float | None
    quality: int = GOOD
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """What an evaluator remembers about one alarm point between readings.

    ``pending_since_ms``: abnormal since then, on-delay running. ``clearing_since_ms``: normal
    since then while active, off-delay running. ``anchor_ms`` / ``anchor_value`` / ``text`` /
    ``window`` are kind-specific memory (last progress of a counter, the machine state, recent
    values for a rate).
    """

    active: bool = False
    pending_since_ms: int | None = None
    clearing_since_ms: int | None = None
    last_ts_ms: int | None = None
    value: float | None = None
    limit: float | None = None
    anchor_ms: int | None = None
    anchor_value: float | None = None
    text: str | None = None
    window: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """An activation or a return to normal of a point's condition, at ``ts_ms``."""

    kind: ChangeKind
    ts_ms: int
    value: float | None
    limit: float | None
    detail: str  # e.g. "above its high limit"; the engine adds machine, metric and units


class Outcome(NamedTuple):
    """The condition after a reading or a tick, and the changes it produced (oldest first)."""

    condition: Condition
    changes: tuple[Change, ...] = ()

    def then(self, other: Outcome) -> Outcome:
        return Outcome(other.condition, self.changes + other.changes)


@dataclass(frozen=True, slots=True)
class Delays:
    """On- and off-delay of a point, and the words for its activation and return."""

    on_ms: int
    off_ms: int
    active_detail: str
    return_detail: str = "back to normal"


def expire(condition: Condition, now_ms: int, delays: Delays) -> Outcome:
    """Fire a delay that has run out by ``now_ms``, at the time it ran out."""
    if (
        not condition.active
        and condition.pending_since_ms is not None
        and now_ms - condition.pending_since_ms >= delays.on_ms
    ):
        due = condition.pending_since_ms + delays.on_ms
        change = Change("activate", due, condition.value, condition.limit, delays.active_detail)
        return Outcome(replace(condition, active=True, pending_since_ms=None), (change,))
    if (
        condition.active
        and condition.clearing_since_ms is not None
        and now_ms - condition.clearing_since_ms >= delays.off_ms
    ):
        due = condition.clearing_since_ms + delays.off_ms
        change = Change("return", due, condition.value, condition.limit, delays.return_detail)
        return Outcome(replace(condition, active=False, clearing_since_ms=None), (change,))
    return Outcome(condition)


def observe(
    condition: Condition,
    ts_ms: int,
    abnormal: bool,
    delays: Delays,
    value: float | None = None,
    limit: float | None = None,
) -> Outcome:
    """One observation at ``ts_ms``: first let due delays fire, then start or stop a delay."""
    before = expire(condition, ts_ms, delays)
    held = before.condition
    if abnormal:
        if held.active:
            held = replace(held, clearing_since_ms=None, value=value, limit=limit)
        elif held.pending_since_ms is None:
            held = replace(held, pending_since_ms=ts_ms, value=value, limit=limit)
        else:
            held = replace(held, value=value, limit=limit)
    elif held.active:
        since = held.clearing_since_ms if held.clearing_since_ms is not None else ts_ms
        held = replace(held, clearing_since_ms=since, value=value, limit=limit)
    else:
        held = replace(held, pending_since_ms=None, value=value, limit=limit)
    held = replace(held, last_ts_ms=ts_ms)
    return before.then(expire(held, ts_ms, delays))


def has_timer(condition: Condition) -> bool:
    """True while an on- or off-delay is running."""
    return condition.pending_since_ms is not None or condition.clearing_since_ms is not None
