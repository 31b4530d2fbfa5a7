"""Stale data: no new sample of a metric (or of a whole device) for ``after_s`` (pure).

Raised by the ticker only while the edge is online (an offline edge is its own news); any new
sample, whatever its quality, returns it to normal. ``anchor_ms`` is the newest sample's time.
"""

from __future__ import annotations

from dataclasses import replace

from cloud.alarms.condition import Change, Condition, Outcome, Reading
from cloud.alarms.kinds.base import Evaluator, PointContext, seconds
from cloud.alarms.rules import AlarmRule


def on_reading(_rule: AlarmRule, condition: Condition, reading: Reading,
               _ctx: PointContext) -> Outcome:  # fmt: skip
    newest = max(reading.ts_ms, condition.anchor_ms or reading.ts_ms)
    fresh = replace(condition, anchor_ms=newest, last_ts_ms=reading.ts_ms)
    if not condition.active:
        return Outcome(fresh)
    silent = reading.ts_ms - (condition.anchor_ms or reading.ts_ms)
    change = Change("return", reading.ts_ms, silent, None, "new samples again after")
    return Outcome(replace(fresh, active=False), (change,))


def on_time(rule: AlarmRule, condition: Condition, now_ms: int, ctx: PointContext) -> Outcome:
    after_ms = round((rule.after_s or 0) * 1000)
    if condition.active or condition.anchor_ms is None or not ctx.edge_online:
        return Outcome(condition)
    if now_ms - condition.anchor_ms < after_ms:
        return Outcome(condition)
    due = condition.anchor_ms + after_ms
    change = Change("activate", due, after_ms, after_ms, "no new sample for")
    return Outcome(replace(condition, active=True), (change,))


def describe(_rule: AlarmRule, change: Change, _unit: str | None) -> str:
    return f"{change.detail} {seconds(change.value)}"


STALE = Evaluator(on_reading=on_reading, on_time=on_time, describe=describe)
