"""High, low, high-high and low-low limits with a deadband for the return to normal (pure)."""

from __future__ import annotations

from dataclasses import replace

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
from cloud.alarms.kinds.base import Evaluator, PointContext, number
from cloud.alarms.rules import AlarmRule

_WORDS = {
    "high": "high limit",
    "high_high": "high-high limit",
    "low": "low limit",
    "low_low": "low-low limit",
}


_UPPER = frozenset(("high", "high_high"))


def is_upper(kind: str) -> bool:
    return kind in _UPPER


def abnormal(kind: str, value: float, limit: float, deadband: float, active: bool) -> bool:
    """Beyond the limit; once active, it must come back past the deadband to be normal again."""
    if kind in _UPPER:
        return value > (limit - deadband if active else limit)
    return value < (limit + deadband if active else limit)


def delays(rule: AlarmRule) -> Delays:
    side = "above" if is_upper(rule.kind) else "below"
    return Delays(
        rule.on_delay_ms, rule.off_delay_ms, f"{side} its {_WORDS[rule.kind]}",
        f"back within its {_WORDS[rule.kind]}",
    )  # fmt: skip


def on_reading(
    rule: AlarmRule, condition: Condition, reading: Reading, ctx: PointContext
) -> Outcome:
    """A numeric reading against the limit; bad or non-numeric readings stop the delay timers."""
    if (
        condition.pending_since_ms is None
        and condition.clearing_since_ms is None
        and ctx.limit is not None
        and reading.value is not None
        and reading.quality < BAD
        and abnormal(rule.kind, reading.value, ctx.limit, ctx.deadband, condition.active)
        == condition.active
    ):
        return Outcome(condition)  # no timer running and nothing changes: the common case
    timing = delays(rule)
    first = expire(condition, reading.ts_ms, timing)
    held = first.condition
    if ctx.limit is None or reading.value is None or reading.quality >= BAD:
        stopped = replace(held, pending_since_ms=None, clearing_since_ms=None,
                          last_ts_ms=reading.ts_ms)  # fmt: skip
        return Outcome(stopped, first.changes)
    beyond = abnormal(rule.kind, reading.value, ctx.limit, ctx.deadband, held.active)
    return first.then(observe(held, reading.ts_ms, beyond, timing, reading.value, ctx.limit))


def on_time(rule: AlarmRule, condition: Condition, now_ms: int, _ctx: PointContext) -> Outcome:
    if not has_timer(condition):
        return Outcome(condition)  # nothing can happen without a running delay
    return expire(condition, now_ms, delays(rule))


def describe(rule: AlarmRule, change: Change, unit: str | None) -> str:
    return f"{number(change.value, unit)} {change.detail} {number(change.limit, unit)}"


LIMIT = Evaluator(on_reading=on_reading, on_time=on_time, describe=describe)
