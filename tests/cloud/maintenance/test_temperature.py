"""Temperature trend at constant load: slope and interval, load band, hours to a limit."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.maintenance.temperature import temperature_trend
from simulators.bearing import BearingModel

HOUR_MS = 3_600_000


def _ts(hours: np.ndarray) -> list[int]:
    return [round(h * HOUR_MS) for h in hours]


def test_exact_rise_gives_slope_and_hours_to_limit() -> None:
    hours = np.arange(0.0, 10.0, 0.5)
    temps = 50.0 + 0.5 * hours  # 54.75 °C at the last point (9.5 h)
    trend = temperature_trend(_ts(hours), temps.tolist(), None, limit=70.0)
    assert trend.slope_c_per_h == pytest.approx(0.5)
    assert trend.low == pytest.approx(0.5)
    assert trend.high == pytest.approx(0.5)
    assert trend.rising
    assert trend.points_used == hours.size
    assert trend.hours_to_limit == pytest.approx((70.0 - 54.75) / 0.5)
    assert "rising" in trend.reason
    assert "70 °C" in trend.reason


def test_noisy_rise_interval_covers_the_true_slope() -> None:
    covered = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        hours = np.arange(0.0, 24.0, 0.25)
        temps = 45.0 + 0.3 * hours + rng.normal(0.0, 0.5, hours.size)
        trend = temperature_trend(_ts(hours), temps.tolist(), None, limit=None)
        assert trend.low is not None
        assert trend.high is not None
        covered += trend.low <= 0.3 <= trend.high
        assert trend.hours_to_limit is None
    assert 0.84 <= covered / 200 <= 0.96  # 90 % nominal


def test_flat_temperature_is_not_rising() -> None:
    rng = np.random.default_rng(7)
    hours = np.arange(0.0, 24.0, 0.25)
    temps = 55.0 + rng.normal(0.0, 0.5, hours.size)
    trend = temperature_trend(_ts(hours), temps.tolist(), None, limit=70.0)
    assert not trend.rising
    assert trend.hours_to_limit is None
    assert trend.slope_c_per_h is not None
    assert abs(trend.slope_c_per_h) < 0.1
    assert trend.reason.startswith("not rising")


def test_a_small_but_significant_rise_is_below_the_minimum_slope() -> None:
    hours = np.arange(0.0, 48.0, 0.5)
    temps = 40.0 + 0.05 * hours
    trend = temperature_trend(_ts(hours), temps.tolist(), None, limit=70.0, min_slope_c_per_h=0.2)
    assert not trend.rising
    assert "below 0.2 °C/h" in trend.reason
    assert temperature_trend(
        _ts(hours), temps.tolist(), None, limit=70.0, min_slope_c_per_h=0.01
    ).rising


def test_warming_from_a_load_change_is_not_a_trend() -> None:
    # The bearing model at constant wear: 50 % load for 12 h, then 90 % load for 12 h.
    model = BearingModel(seed=1)
    hours = np.arange(0.0, 24.0, 0.25)
    load = np.where(hours < 12.0, 50.0, 90.0)
    temps = [model.temperature(100.0, float(p), ambient_c=25.0) for p in load]
    without_load = temperature_trend(_ts(hours), temps, None, limit=80.0)
    assert without_load.rising  # the load step looks like a rise…
    with_load = temperature_trend(_ts(hours), temps, load.tolist(), limit=80.0)
    assert not with_load.rising  # …but not at constant load
    assert with_load.points_used == int(np.count_nonzero(hours >= 12.0))
    assert "90 ± 10 % load" in with_load.reason


def test_wear_at_constant_load_is_a_rise_that_reaches_the_limit() -> None:
    model = BearingModel(seed=2)
    life = model.failure_h
    hours = np.arange(0.6 * life, 0.9 * life, 1.0)
    load = 75.0 + np.random.default_rng(0).uniform(-5.0, 5.0, hours.size)
    temps = [model.temperature(h, float(p), 25.0) for h, p in zip(hours, load, strict=True)]
    limit = 25.0 + model.load_rise_c * 0.75 + model.wear_rise_c  # reached at failure, 75 % load
    # Wear warms a bearing slowly (15 °C over the defect stage: ~0.02 °C/h), below the default.
    trend = temperature_trend(
        _ts(hours), temps, load.tolist(), limit=limit, load_band_pct=20.0, min_slope_c_per_h=0.01
    )
    assert trend.rising
    assert trend.slope_c_per_h == pytest.approx(
        model.wear_rise_c / (life - model.onset_h), rel=0.05
    )
    assert trend.hours_to_limit == pytest.approx(life - hours[-1], rel=0.1)


def test_too_few_points_in_the_band() -> None:
    hours = np.arange(0.0, 10.0)
    load = [50.0] * 7 + [90.0] * 3
    trend = temperature_trend(_ts(hours), [50.0 + h for h in hours], load, limit=None)
    assert trend.slope_c_per_h is None
    assert not trend.rising
    assert trend.points_used == 3
    assert trend.reason.startswith("too few points at 90 ± 10 % load")


def test_non_finite_values_are_dropped() -> None:
    hours = np.arange(0.0, 10.0)
    temps = [50.0 + 0.5 * h for h in hours]
    temps[2] = float("nan")
    trend = temperature_trend(_ts(hours), temps, None, limit=None)
    assert trend.points_used == 9
    assert trend.slope_c_per_h == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": [1.0]}, "same length"),
        ({"load": [1.0]}, "one value per temperature"),
        ({"confidence": 0.0}, "confidence"),
        ({"load_band_pct": -1.0}, "load_band_pct"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "ts_ms": [0, 1, 2],
        "temperature": [1.0, 2.0, 3.0],
        "load": None,
        "limit": None,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        temperature_trend(**arguments)  # type: ignore[arg-type]


def test_a_trend_over_less_data_than_min_span_is_not_judged() -> None:
    minutes = list(range(0, 30))  # 30 points over 29 minutes, rising 6 degC/h
    ts = [m * 60_000 for m in minutes]
    temperature = [40.0 + 0.1 * m for m in minutes]
    judged = temperature_trend(ts, temperature, None, limit=None)
    assert judged.rising
    short = temperature_trend(ts, temperature, None, limit=None, min_span_h=2.0)
    assert not short.rising
    assert short.slope_c_per_h is None
    assert "span 0.48 h; a trend needs 2 h" in short.reason
