"""RUL when the wear does not follow the estimator's model (the simulator's bearing does).

The run-to-failure test checks the estimator on the exponential trend it fits. Real bearings
wear in other shapes; here the overall RMS rises linearly or quadratically from the onset of
wear (30 % of life) to the C/D boundary, with the same 4 % window-to-window scatter, one window
every 8 h, lives drawn from 800-1600 h. At 80 % of life the estimate stays close; at 50 % it is
measured and recorded (docs/maintenance.md), not held to the same bound: with half the
degradation still to come, the shape is not yet visible in the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from cloud.maintenance.rul import estimate_rul

HOUR_MS = 3_600_000
BASE, FAIL, ONSET = 1.0, 4.5, 0.3
STEP_H, SCATTER = 8.0, 0.04


def _linear(x: float) -> float:
    return BASE + (FAIL - BASE) * x


def _quadratic(x: float) -> float:
    return BASE + (FAIL - BASE) * x * x


SHAPES: dict[str, Callable[[float], float]] = {"linear": _linear, "quadratic": _quadratic}


def _errors(shape: Callable[[float], float], fraction: float) -> list[float]:
    errors = []
    for seed in range(20):
        rng = np.random.default_rng([seed, 9])
        life = float(rng.uniform(800, 1600))
        hours = np.arange(0.0, life * fraction + 1e-9, STEP_H)
        values = [
            shape(max(0.0, (h - ONSET * life) / (life - ONSET * life)))
            * math.exp(SCATTER * float(rng.standard_normal()))
            for h in hours
        ]
        estimate = estimate_rul(
            [round(h * HOUR_MS) for h in hours], values, FAIL,
            now_ms=round(life * fraction * HOUR_MS), seed=seed,
        )  # fmt: skip
        assert estimate.rul_h is not None, f"seed {seed}: no estimate ({estimate.reason})"
        true_rul = life * (1 - fraction)
        errors.append(abs(estimate.rul_h - true_rul) / true_rul)
    return errors


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_rul_at_80_percent_of_life_holds_for_other_wear_shapes(name: str) -> None:
    errors = _errors(SHAPES[name], 0.8)
    assert float(np.mean(errors)) <= 0.08, errors
    assert max(errors) <= 0.15, errors
