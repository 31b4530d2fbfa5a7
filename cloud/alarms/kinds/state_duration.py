"""Machine in one state (e.g. ``down``) longer than ``duration_s`` (pure).

Fed with the machine's canonical state (from its state tag through the profile's state map, or
from its state intervals); the duration works as the on-delay, so the alarm activates exactly
``duration_s`` after the machine entered the state, and returns when it leaves it.
"""

from __future__ import annotations

from dataclasses import replace

from cloud.alarms.condition import (
    Change,
    Condition,
    Delays,
    Outcome,
    Reading,
    expire,
    has_timer,
    observe,
)
from cloud.alarms.kinds.base import Evaluator, PointContext, no_reading, seconds
from cloud.alarms.rules import AlarmRule


def _duration_ms(rule: AlarmRule) -> int:
    return round((rule.duration_s or 0) * 1000)


def _delays(rule: AlarmRule) -> Delays:
    return Delays(_duration_ms(rule), rule.off_delay_ms, f"{rule.state} for more than",
                  f"no longer {rule.state}")  # fmt: skip


def on_state(rule: AlarmRule, condition: Condition, reading: Reading,
             _ctx: PointContext) -> Outcome:  # fmt: skip
    """``reading.text`` is the machine's canonical state from ``reading.ts_ms`` on."""
    inside = reading.text == rule.state
    outcome = observe(condition, reading.ts_ms, inside, _delays(rule), None, _duration_ms(rule))
    return Outcome(replace(outcome.condition, text=reading.text), outcome.changes)


def on_time(rule: AlarmRule, condition: Condition, now_ms: int, _ctx: PointContext) -> Outcome:
    if not has_timer(condition):
        return Outcome(condition)  # nothing can happen without a running delay
    return expire(condition, now_ms, _delays(rule))


def describe(_rule: AlarmRule, change: Change, _unit: str | None) -> str:
    if change.kind == "activate":
        return f"{change.detail} {seconds(change.limit)}"
    return change.detail


STATE_DURATION = Evaluator(
    on_reading=no_reading, on_time=on_time, describe=describe, on_state=on_state
)
