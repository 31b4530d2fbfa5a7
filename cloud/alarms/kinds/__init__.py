"""The kind evaluators, registered by name in ``EVALUATORS`` (one small pure module per kind)."""

from __future__ import annotations

from cloud.alarms.kinds.base import Evaluator, PointContext
from cloud.alarms.kinds.counter import COUNTER_STALLED
from cloud.alarms.kinds.limit import LIMIT
from cloud.alarms.kinds.quality import BAD_QUALITY
from cloud.alarms.kinds.rate import RATE
from cloud.alarms.kinds.stale import STALE
from cloud.alarms.kinds.state_duration import STATE_DURATION

EVALUATORS: dict[str, Evaluator] = {
    "high": LIMIT,
    "low": LIMIT,
    "high_high": LIMIT,
    "low_low": LIMIT,
    "rate_of_change": RATE,
    "stale": STALE,
    "bad_quality": BAD_QUALITY,
    "state_duration": STATE_DURATION,
    "counter_stalled": COUNTER_STALLED,
}

__all__ = ["EVALUATORS", "Evaluator", "PointContext"]
