"""Seeded run-to-failure: the bearing model's windows → edge features → zones, health and RUL.

For each seed, one window is taken every ``STEP_H`` running hours from new to 10 % past failure, its
features computed by the edge's ``window_features``, and the condition judged against the class
whose C/D boundary is the model's failure level (ISO 20816-3 group 2, rigid: 1.4 / 2.8 / 4.5).

- **Zone change timing**: the zone of the median RMS of the last ``ZONE_WINDOWS`` windows; the
  first window at which it reaches B, C and D is compared with the analytic crossing time of the
  model's noise-free trend (``BearingModel.crossing_h``); tolerance: one window step plus twice
  the scatter time ``noise / growth_per_h``.
- **RUL** at 50 % and 80 % of the true life, from the windows' RMS up to then, to the C/D
  boundary. Error = ``|RUL_est − RUL_true| / RUL_true`` with ``RUL_true = failure_h − now``
  (the error relative to the true failure time, ``|RUL_est − RUL_true| / failure_h``, is smaller
  by the factor ``RUL_true / failure_h``: 0.5 and 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cloud.maintenance.health import Baseline, baseline_of, health_index
from cloud.maintenance.rul import RulEstimate, estimate_rul
from cloud.maintenance.zones import load_vibration_classes, zone_of
from edge.features import FEATURE_SUFFIXES, WindowFeatures, window_features
from simulators.bearing import BearingModel

SEEDS = tuple(range(20))
STEP_H = 8.0
ZONE_WINDOWS = 3
BASELINE_WINDOWS = 10
HOUR_MS = 3_600_000
CLASS_ID = "iso20816_3_group2_rigid"


@dataclass(frozen=True)
class Run:
    """One seeded bearing sampled from new to 10 % past failure."""

    model: BearingModel
    hours: np.ndarray
    features: list[WindowFeatures]

    @property
    def rms(self) -> np.ndarray:
        return np.array([f.rms for f in self.features])

    def rul_at(self, fraction: float) -> tuple[RulEstimate, float]:
        """The estimate at ``fraction`` of the true life, and the true RUL then."""
        now_h = fraction * self.model.failure_h
        seen = self.hours <= now_h
        ts = [round(h * HOUR_MS) for h in self.hours[seen]]
        estimate = estimate_rul(
            ts,
            self.rms[seen].tolist(),
            self.model.failure_rms,
            now_ms=round(now_h * HOUR_MS),
            seed=self.model.seed,
        )
        return estimate, self.model.failure_h - now_h


def simulate(seed: int) -> Run:
    model = BearingModel(seed=seed)
    hours = np.arange(0.0, 1.1 * model.failure_h, STEP_H)  # the trend keeps rising past failure
    features = [window_features(model.window(h, i)) for i, h in enumerate(hours)]
    return Run(model, hours, features)


@pytest.fixture(scope="module")
def runs() -> dict[int, Run]:
    return {seed: simulate(seed) for seed in SEEDS}


def test_the_class_fails_where_the_model_fails() -> None:
    cls = load_vibration_classes()[CLASS_ID]
    assert cls.c_d == BearingModel().failure_rms


def first_zone_hours(run: Run) -> dict[str, float]:
    """The first running hour at which the smoothed RMS is in zone B, C and D."""
    cls = load_vibration_classes()[CLASS_ID]
    order = "ABCD"
    first: dict[str, float] = {}
    rms = run.rms
    for index in range(ZONE_WINDOWS - 1, rms.size):
        smoothed = float(np.median(rms[index - ZONE_WINDOWS + 1 : index + 1]))
        zone = zone_of(smoothed, cls)
        for reached in "BCD":
            if order.index(zone) >= order.index(reached) and reached not in first:
                first[reached] = float(run.hours[index])
    return first


def zone_timing_errors(run: Run) -> dict[str, float]:
    """Measured minus analytic hours of each zone change."""
    cls = load_vibration_classes()[CLASS_ID]
    first = first_zone_hours(run)
    boundaries = {"B": cls.a_b, "C": cls.b_c, "D": cls.c_d}
    return {zone: first[zone] - run.model.crossing_h(level) for zone, level in boundaries.items()}


def test_zone_changes_happen_when_the_trend_crosses_the_boundaries(runs: dict[int, Run]) -> None:
    # Tolerance: one window step plus twice the "scatter time" noise / growth rate (the time the
    # trend takes to rise by one standard deviation of the window-to-window scatter: 15-30 h).
    # Measured over seeds 0-39: at most the step plus 1.2 scatter times (36 h here, 3 % of life).
    for seed, run in runs.items():
        first = first_zone_hours(run)
        assert first["B"] < first["C"] < first["D"], seed
        tolerance_h = STEP_H + 2.0 * run.model.noise / run.model.growth_per_h
        for zone, error_h in zone_timing_errors(run).items():
            assert abs(error_h) <= tolerance_h, (seed, zone, error_h, tolerance_h)
        # Before the defect grows the machine stays in zone A.
        assert first["B"] > run.model.onset_h


def rul_errors(runs: dict[int, Run], fraction: float) -> tuple[list[float], int]:
    """Relative RUL errors per seed and how many intervals hold the true RUL."""
    errors: list[float] = []
    covered = 0
    for run in runs.values():
        estimate, truth = run.rul_at(fraction)
        assert estimate.rul_h is not None, estimate.reason
        assert estimate.low_h is not None
        errors.append(abs(estimate.rul_h - truth) / truth)
        covered += estimate.low_h <= truth and (estimate.high_h is None or truth <= estimate.high_h)
    return errors, covered


@pytest.mark.parametrize(
    ("fraction", "mean_bound", "worst_bound"),
    [
        (0.5, 0.10, 0.25),  # measured over seeds 0-19: mean 5.5 %, worst 13.6 %
        (0.8, 0.06, 0.15),  # measured: mean 3.2 %, worst 9.6 % (the issue aims at ±20 %)
    ],
)
def test_rul_error_at_a_fraction_of_life(
    runs: dict[int, Run], fraction: float, mean_bound: float, worst_bound: float
) -> None:
    errors, _covered = rul_errors(runs, fraction)
    assert float(np.mean(errors)) <= mean_bound
    assert max(errors) <= worst_bound


def test_rul_interval_holds_the_true_rul_most_of_the_time(runs: dict[int, Run]) -> None:
    covered = sum(rul_errors(runs, fraction)[1] for fraction in (0.5, 0.8))
    # 90 % bootstrap intervals; measured 36 of 40.
    assert covered >= 0.8 * 2 * len(runs)


def test_rul_before_the_defect_grows_is_none(runs: dict[int, Run]) -> None:
    for run in runs.values():
        estimate, _truth = run.rul_at(0.25)
        assert estimate.rul_h is None, (run.model.seed, estimate.reason)


def test_health_falls_from_100_to_0_over_the_life(runs: dict[int, Run]) -> None:
    cls = load_vibration_classes()[CLASS_ID]
    for seed, run in runs.items():
        early = run.features[:BASELINE_WINDOWS]
        baseline = baseline_of({s: [f.value(s) for f in early] for s in FEATURE_SUFFIXES})

        def health_at(fraction: float, run: Run = run, baseline: Baseline = baseline) -> float:
            index = int(np.searchsorted(run.hours, fraction * run.model.failure_h))
            latest = {s: run.features[index].value(s) for s in FEATURE_SUFFIXES}
            return health_index(latest, baseline, vibration_class=cls)

        assert health_at(0.1) >= 95.0, seed
        assert health_at(0.5) > health_at(0.8) > health_at(0.95), seed
        assert health_at(0.8) < 60.0, seed
        assert health_at(1.0) <= 10.0, seed
        assert health_at(1.05) == 0.0, seed
