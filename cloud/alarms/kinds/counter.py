"""Counter stalled: the machine is ``running`` but its cycle counter has not moved for N s (pure).

``text`` holds the machine's canonical state, ``anchor_ms`` the last progress (the counter
changed, or the machine started running) and ``anchor_value`` the counter's last value. A reset
(the value drops) counts as a change. The alarm returns when the counter moves or the machine
stops running. There is no off-delay.
"""

from __future__ import annotations

from dataclasses import replace

from cloud.alarms.condition import BAD, Change, Condition, Outcome, Reading
from cloud.alarms.kinds.base import Evaluator, PointContext, number, seconds
from cloud.alarms.rules import AlarmRule

RUNNING = "running"


def _check(rule: AlarmRule, condition: Condition, at_ms: int) -> Outcome:
    """Activate if the machine has been running without progress for the duration by ``at_ms``."""
    duration_ms = round((rule.duration_s or 0) * 1000)
    if (
        condition.active
        or condition.text != RUNNING
        or condition.anchor_ms is None
        or at_ms - condition.anchor_ms < duration_ms
    ):
        return Outcome(condition)
    due = condition.anchor_ms + duration_ms
    change = Change("activate", due, condition.anchor_value, duration_ms, "running but counter")
    return Outcome(replace(condition, active=True), (change,))


def on_reading(rule: AlarmRule, condition: Condition, reading: Reading,
               _ctx: PointContext) -> Outcome:  # fmt: skip
    """A reading of the counter."""
    first = _check(rule, condition, reading.ts_ms)
    held = replace(first.condition, last_ts_ms=reading.ts_ms)
    if reading.value is None or reading.quality >= BAD:
        return Outcome(held, first.changes)
    if held.anchor_value is None or reading.value != held.anchor_value:
        moved = held.anchor_value is not None
        held = replace(held, anchor_value=reading.value, anchor_ms=reading.ts_ms)
        if moved and held.active:
            change = Change("return", reading.ts_ms, reading.value, None, "counter moving again")
            return Outcome(replace(held, active=False), (*first.changes, change))
    return Outcome(held, first.changes)


def on_state(rule: AlarmRule, condition: Condition, reading: Reading,
             _ctx: PointContext) -> Outcome:  # fmt: skip
    """``reading.text`` is the machine's canonical state from ``reading.ts_ms`` on."""
    first = _check(rule, condition, reading.ts_ms)
    held = first.condition
    if reading.text == held.text:
        return first
    if reading.text == RUNNING:
        held = replace(held, text=RUNNING, anchor_ms=reading.ts_ms)
        return Outcome(held, first.changes)
    held = replace(held, text=reading.text)
    if held.active:
        change = Change("return", reading.ts_ms, held.anchor_value, None,
                        f"machine no longer running ({reading.text})")  # fmt: skip
        return Outcome(replace(held, active=False), (*first.changes, change))
    return Outcome(held, first.changes)


def on_time(rule: AlarmRule, condition: Condition, now_ms: int, _ctx: PointContext) -> Outcome:
    return _check(rule, condition, now_ms)


def describe(_rule: AlarmRule, change: Change, _unit: str | None) -> str:
    if change.kind == "activate":
        return f"{change.detail} stuck at {number(change.value)} for {seconds(change.limit)}"
    return change.detail


COUNTER_STALLED = Evaluator(
    on_reading=on_reading, on_time=on_time, describe=describe, on_state=on_state
)
