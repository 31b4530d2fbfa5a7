"""Health index: robust baseline, per-feature damage, the zone boundaries dominating the RMS."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cloud.maintenance.health import (
    MAD_TO_SIGMA,
    SPREAD_FLOOR,
    Z_ALLOWED,
    Z_SCALE,
    Baseline,
    baseline_of,
    feature_kind,
    health_index,
)
from cloud.maintenance.zones import VibrationClass

GROUP2_RIGID = VibrationClass("g2r", "group 2 rigid", "ISO 20816-3", 1.4, 2.8, 4.5)


def _baseline() -> Baseline:
    rng = np.random.default_rng(1)
    return baseline_of(
        {
            "rms": (1.0 + rng.normal(0, 0.04, 30)).tolist(),
            "peak": (2.5 + rng.normal(0, 0.2, 30)).tolist(),
            "crest_factor": (2.5 + rng.normal(0, 0.17, 30)).tolist(),
            "kurtosis": (2.0 + rng.normal(0, 0.1, 30)).tolist(),
        }
    )


def test_baseline_is_median_and_robust_scale() -> None:
    values = [1.0, 1.1, 0.9, 1.05, 0.95, 10.0]  # one outlier must not move it
    baseline = baseline_of({"rms": values})
    centre, spread = baseline.features["rms"]
    assert centre == pytest.approx(float(np.median(values)))
    mad = float(np.median(np.abs(np.array(values) - centre)))
    assert spread == pytest.approx(max(MAD_TO_SIGMA * mad, SPREAD_FLOOR * centre))


def test_a_steady_baseline_gets_the_spread_floor() -> None:
    centre, spread = baseline_of({"rms": [2.0] * 10}).features["rms"]
    assert centre == 2.0
    assert spread == pytest.approx(SPREAD_FLOOR * 2.0)


def test_baseline_needs_enough_finite_values() -> None:
    with pytest.raises(ValueError, match="'kurtosis' has 4 finite values"):
        baseline_of({"kurtosis": [3.0, 3.1, float("nan"), 2.9, 3.0]})
    with pytest.raises(ValueError, match="at least one feature"):
        baseline_of({})


def test_new_machine_is_healthy_with_and_without_a_class() -> None:
    baseline = _baseline()
    latest = {"rms": 1.02, "peak": 2.6, "crest_factor": 2.55, "kurtosis": 2.05}
    assert health_index(latest, baseline) == 100.0
    assert health_index(latest, baseline, vibration_class=GROUP2_RIGID) == 100.0


def test_one_feature_damage_follows_the_documented_curve() -> None:
    baseline = baseline_of({"kurtosis": [2.0, 2.0, 2.0, 2.0, 2.0]})  # spread = 0.1 (floor)
    for z in (0.0, 2.0, 3.0, 5.0, 10.0, 20.0):
        expected = 100.0 * math.exp(-max(0.0, z - Z_ALLOWED) / Z_SCALE)
        got = health_index({"kurtosis": 2.0 + 0.1 * z}, baseline)
        assert got == pytest.approx(expected, rel=1e-9), z
    # A falling feature is no damage.
    assert health_index({"kurtosis": 1.0}, baseline) == 100.0


def test_weights_combine_the_features() -> None:
    baseline = baseline_of({"rms": [1.0] * 5, "kurtosis": [2.0] * 5})
    far = {"rms": 1.0, "kurtosis": 2.0 + 0.1 * 1000}  # kurtosis fully damaged, rms not
    assert health_index(far, baseline) == pytest.approx(100.0 * (1 - 0.2 / 0.6), rel=1e-6)


def test_at_or_past_c_d_is_zero_whatever_the_other_features_say() -> None:
    baseline = _baseline()
    at_cd = {"rms": 4.5, "peak": 2.5, "crest_factor": 2.5, "kurtosis": 2.0}
    assert health_index(at_cd, baseline, vibration_class=GROUP2_RIGID) == 0.0
    assert health_index({**at_cd, "rms": 9.0}, baseline, vibration_class=GROUP2_RIGID) == 0.0


def test_rms_uses_the_margin_from_the_baseline_to_c_d() -> None:
    baseline = baseline_of({"rms": [1.0] * 5})
    # spread 0.05 (floor): the margin starts at 1.0 + 3 × 0.05 = 1.15.
    halfway = 1.15 + 0.5 * (4.5 - 1.15)
    feature_damage = 1 - math.exp(-((halfway - 1.0) / 0.05 - Z_ALLOWED) / Z_SCALE)
    assert health_index({"rms": halfway}, baseline, vibration_class=GROUP2_RIGID) == pytest.approx(
        100.0 * 0.5 * (1 - 0.5 * feature_damage)
    )
    assert health_index({"rms": 1.15}, baseline, vibration_class=GROUP2_RIGID) == 100.0


def test_a_machine_that_started_in_zone_c_counts_from_b_c() -> None:
    baseline = baseline_of({"rms": [3.2] * 5})
    index = health_index({"rms": 3.2}, baseline, vibration_class=GROUP2_RIGID)
    assert index == pytest.approx(100.0 * (1 - (3.2 - 2.8) / (4.5 - 2.8)))


def test_the_index_falls_as_the_features_rise() -> None:
    baseline = _baseline()
    indices = []
    for step in np.linspace(0.0, 1.0, 11):
        latest = {
            "rms": 1.0 + 3.5 * step,
            "peak": 2.5 + 20 * step,
            "crest_factor": 2.5 + 3 * step,
            "kurtosis": 2.0 + 4 * step,
        }
        indices.append(health_index(latest, baseline, vibration_class=GROUP2_RIGID))
    assert indices[0] == 100.0
    assert indices[-1] == 0.0
    assert all(b <= a for a, b in itertools.pairwise(indices))


def test_metric_names_are_read_by_their_suffix() -> None:
    assert feature_kind("spindle_vibration") == "rms"
    assert feature_kind("motor_de_rms") == "rms"
    assert feature_kind("motor_de_peak") == "peak"
    assert feature_kind("motor_de_crest_factor") == "crest_factor"
    assert feature_kind("kurtosis") == "kurtosis"
    baseline = baseline_of(
        {"spindle_vibration": [1.0] * 5, "spindle_vibration_kurtosis": [3.0] * 5}
    )
    assert (
        health_index(
            {"spindle_vibration": 4.6, "spindle_vibration_kurtosis": 3.0},
            baseline,
            vibration_class=GROUP2_RIGID,
        )
        == 0.0
    )


def test_nothing_to_compare_is_refused() -> None:
    with pytest.raises(ValueError, match="no feature has both"):
        health_index({"peak": 1.0}, baseline_of({"rms": [1.0] * 5}))
    with pytest.raises(ValueError, match="no feature has both"):
        health_index({"rms": float("nan")}, baseline_of({"rms": [1.0] * 5}))
