"""What every kind evaluator is: plain functions of (rule, condition, reading or time, context)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloud.alarms.condition import Change, Condition, Outcome, Reading
from cloud.alarms.rules import AlarmRule


@dataclass(frozen=True, slots=True)
class PointContext:
    """What a point knows besides its readings: its resolved limit, deadband, unit, edge status."""

    limit: float | None = None
    deadband: float = 0.0
    unit: str | None = None
    edge_online: bool = True


OnReading = Callable[[AlarmRule, Condition, Reading, PointContext], Outcome]
OnTime = Callable[[AlarmRule, Condition, int, PointContext], Outcome]
Describe = Callable[[AlarmRule, Change, str | None], str]


def no_reading(_rule: AlarmRule, condition: Condition, _r: Reading, _c: PointContext) -> Outcome:
    return Outcome(condition)


def no_time(_rule: AlarmRule, condition: Condition, _now: int, _c: PointContext) -> Outcome:
    return Outcome(condition)


@dataclass(frozen=True, slots=True)
class Evaluator:
    """One kind: how a reading of its metric, a machine-state change and time passing act.

    ``on_state`` gets readings whose ``text`` is the machine's canonical state; ``describe``
    words a change for people ("192.4 °C above its high limit 190 °C").
    """

    on_reading: OnReading
    on_time: OnTime
    describe: Describe
    on_state: OnReading | None = None


def number(value: float | None, unit: str | None = None) -> str:
    """``192.4`` / ``192.4 °C``; integers without ``.0``; None as ``?``."""
    if value is None:
        return "?"
    text = f"{value:.6g}" if not float(value).is_integer() else str(int(value))
    return f"{text} {unit}" if unit else text


def seconds(ms: float | None) -> str:
    return "?" if ms is None else f"{ms / 1000:.6g} s"
