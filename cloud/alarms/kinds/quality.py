"""Bad quality: a metric's samples are bad for longer than the on-delay (pure)."""

from __future__ import annotations

from cloud.alarms.condition import (
    BAD,
    Change,
    Condition,
    Delays,
    Outcome,
    Reading,
    expire,
    has_timer,
    observe,
)
from cloud.alarms.kinds.base import Evaluator, PointContext, seconds
from cloud.alarms.rules import AlarmRule


def _delays(rule: AlarmRule) -> Delays:
    return Delays(rule.on_delay_ms, rule.off_delay_ms, "bad quality for",
                  "good or uncertain quality again after")  # fmt: skip


def on_reading(rule: AlarmRule, condition: Condition, reading: Reading,
               _ctx: PointContext) -> Outcome:  # fmt: skip
    bad = reading.quality >= BAD
    if (
        condition.pending_since_ms is None
        and condition.clearing_since_ms is None
        and bad == condition.active
    ):
        return Outcome(condition)  # no timer running and nothing changes
    return observe(condition, reading.ts_ms, bad, _delays(rule), reading.value, None)


def on_time(rule: AlarmRule, condition: Condition, now_ms: int, _ctx: PointContext) -> Outcome:
    if not has_timer(condition):
        return Outcome(condition)  # nothing can happen without a running delay
    return expire(condition, now_ms, _delays(rule))


def describe(rule: AlarmRule, change: Change, _unit: str | None) -> str:
    delay = rule.on_delay_ms if change.kind == "activate" else rule.off_delay_ms
    return f"{change.detail} {seconds(delay)}"


BAD_QUALITY = Evaluator(on_reading=on_reading, on_time=on_time, describe=describe)
