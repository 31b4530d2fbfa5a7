"""Rate of change: more than ``rate_per_s`` units per second over ``window_s`` (pure).

The rate at time t is (value at t − value at t − window) / window, values held between
readings. Until a reading that old exists, the oldest reading and the time since it are used.
Between readings the ticker evaluates the held value, so a rate falls back once a ramp stops.
"""

from __future__ import annotations

from dataclasses import replace

from cloud.alarms.condition import BAD, Change, Condition, Delays, Outcome, Reading, expire, observe
from cloud.alarms.kinds.base import Evaluator, PointContext, number
from cloud.alarms.rules import AlarmRule


def rate_at(window: tuple[tuple[int, float], ...], ts_ms: int, value: float,
            window_ms: int) -> float | None:  # fmt: skip
    """Units per second at ``ts_ms`` with ``value``, against the held value one window earlier."""
    if not window:
        return None
    reference = window[0]
    for point in window:
        if point[0] <= ts_ms - window_ms:
            reference = point
        else:
            break
    span = min(ts_ms - reference[0], window_ms)
    if span <= 0:
        return None
    return (value - reference[1]) * 1000 / span


def prune(window: tuple[tuple[int, float], ...], ts_ms: int,
          window_ms: int) -> tuple[tuple[int, float], ...]:  # fmt: skip
    """Keep readings inside the window, and the newest one at or before its start."""
    start = ts_ms - window_ms
    older = [p for p in window if p[0] <= start]
    return tuple(older[-1:] + [p for p in window if p[0] > start])


def too_fast(rule: AlarmRule, rate: float, deadband: float, active: bool) -> bool:
    limit = rule.rate_per_s or 0.0
    threshold = limit - deadband if active else limit
    if rule.direction == "rising":
        return rate > threshold
    if rule.direction == "falling":
        return -rate > threshold
    return abs(rate) > threshold


def _delays(rule: AlarmRule) -> Delays:
    return Delays(rule.on_delay_ms, rule.off_delay_ms, "changing faster than",
                  "rate of change back within")  # fmt: skip


def _window_ms(rule: AlarmRule) -> int:
    return round(rule.window_s * 1000)


def _evaluate(rule: AlarmRule, condition: Condition, ts_ms: int, value: float,
              ctx: PointContext) -> Outcome:  # fmt: skip
    timing = _delays(rule)
    first = expire(condition, ts_ms, timing)
    held = first.condition
    rate = rate_at(held.window, ts_ms, value, _window_ms(rule))
    if rate is None:
        return first
    fast = too_fast(rule, rate, ctx.deadband, held.active)
    return first.then(observe(held, ts_ms, fast, timing, rate, rule.rate_per_s))


def on_reading(rule: AlarmRule, condition: Condition, reading: Reading,
               ctx: PointContext) -> Outcome:  # fmt: skip
    if reading.value is None or reading.quality >= BAD:
        return Outcome(replace(condition, last_ts_ms=reading.ts_ms))
    outcome = _evaluate(rule, condition, reading.ts_ms, reading.value, ctx)
    window = prune((*outcome.condition.window, (reading.ts_ms, reading.value)), reading.ts_ms,
                   _window_ms(rule))  # fmt: skip
    return Outcome(replace(outcome.condition, window=window, last_ts_ms=reading.ts_ms),
                   outcome.changes)  # fmt: skip


def on_time(rule: AlarmRule, condition: Condition, now_ms: int, ctx: PointContext) -> Outcome:
    """The held value at ``now_ms`` (never before the newest reading)."""
    if not condition.window:
        return expire(condition, now_ms, _delays(rule))
    last_ts, last_value = condition.window[-1]
    at = max(now_ms, last_ts)
    outcome = _evaluate(rule, condition, at, last_value, ctx)
    kept = replace(outcome.condition, last_ts_ms=condition.last_ts_ms)
    return Outcome(kept, outcome.changes)


def describe(rule: AlarmRule, change: Change, unit: str | None) -> str:
    per_s = f"{unit}/s" if unit else "/s"
    return f"{change.detail} {number(change.limit, per_s)}: {number(change.value, per_s)}"


RATE = Evaluator(on_reading=on_reading, on_time=on_time, describe=describe)
