"""Least-squares trend fits: exact answers, standard errors, intervals that cover, Student's t."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cloud.maintenance.trend import (
    fit_exponential,
    fit_linear,
    student_t_cdf,
    student_t_quantile,
)


def test_exact_line_is_recovered_with_zero_error() -> None:
    x = [0.0, 1.0, 2.0, 5.0, 9.0]
    fit = fit_linear(x, [3.0 + 2.0 * v for v in x])
    assert fit.slope == pytest.approx(2.0, abs=1e-12)
    assert fit.intercept == pytest.approx(3.0, abs=1e-12)
    assert fit.residual_sd == pytest.approx(0.0, abs=1e-12)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.x_at(13.0) == pytest.approx(5.0)
    assert fit.predict(10.0) == pytest.approx(23.0)


def test_standard_errors_match_numpy_polyfit_covariance() -> None:
    # A small textbook data set; numpy's polyfit(cov=True) scales by SSE / (n - 2) as well.
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    y = np.array([1.2, 1.9, 3.2, 3.8, 5.1, 5.8, 7.3])
    fit = fit_linear(x.tolist(), y.tolist())
    coefficients, cov = np.polyfit(x, y, 1, cov=True)
    assert fit.slope == pytest.approx(coefficients[0], rel=1e-12)
    assert fit.intercept == pytest.approx(coefficients[1], rel=1e-12)
    assert fit.se_slope == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-9)
    assert fit.se_intercept == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-9)
    # By hand: x̄ = 4, ȳ = 4.042857, Sxx = 28, Sxy = 28 → slope 1, intercept 0.042857, SSE 0.257143.
    assert fit.slope == pytest.approx(1.0, abs=1e-12)
    assert fit.intercept == pytest.approx(0.3 / 7, abs=1e-12)
    assert fit.residual_sd**2 * 5 == pytest.approx(1.8 / 7, abs=1e-12)


@pytest.mark.parametrize(
    ("p", "dof", "published"),
    [
        (0.975, 1, 12.706),
        (0.95, 5, 2.015),
        (0.975, 10, 2.228),
        (0.9, 2, 1.886),
        (0.995, 30, 2.750),
        (0.95, 120, 1.658),
        (0.05, 7, -1.895),
    ],
)
def test_student_t_quantiles_match_the_published_table(
    p: float, dof: int, published: float
) -> None:
    assert student_t_quantile(p, dof) == pytest.approx(published, abs=5e-4)
    assert student_t_cdf(student_t_quantile(p, dof), dof) == pytest.approx(p, abs=1e-10)


def test_student_t_approaches_the_normal_distribution() -> None:
    assert student_t_quantile(0.975, 100_000) == pytest.approx(1.95996, abs=1e-4)
    assert student_t_quantile(0.5, 3) == 0.0
    with pytest.raises(ValueError, match="0 < p < 1"):
        student_t_quantile(1.0, 3)


def test_prediction_and_slope_intervals_cover_at_their_confidence() -> None:
    rng = np.random.default_rng(42)
    x = np.linspace(0.0, 10.0, 12)
    trials = 2000
    covered_new = covered_slope = 0
    for _ in range(trials):
        y = 1.0 + 0.5 * x + rng.normal(0.0, 0.3, x.size)
        fit = fit_linear(x.tolist(), y.tolist())
        low, high = fit.prediction_interval(14.0, 0.9)
        new = 1.0 + 0.5 * 14.0 + rng.normal(0.0, 0.3)
        covered_new += low <= new <= high
        s_low, s_high = fit.slope_interval(0.9)
        covered_slope += s_low <= 0.5 <= s_high
    # 90 % nominal; 2000 trials give a standard error of 0.67 %.
    assert 0.87 <= covered_new / trials <= 0.93
    assert 0.87 <= covered_slope / trials <= 0.93


def test_prediction_interval_is_wider_than_the_mean_interval_and_grows_away_from_the_data() -> None:
    x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    fit = fit_linear(x, [0.1, 0.9, 2.2, 2.8, 4.1, 5.0])
    m_low, m_high = fit.mean_interval(2.5, 0.9)
    p_low, p_high = fit.prediction_interval(2.5, 0.9)
    assert p_low < m_low < fit.predict(2.5) < m_high < p_high
    far_low, far_high = fit.prediction_interval(20.0, 0.9)
    assert far_high - far_low > p_high - p_low


def test_exact_exponential_is_recovered() -> None:
    x = [0.0, 5.0, 10.0, 20.0, 40.0]
    fit = fit_exponential(x, [2.0 * math.exp(0.05 * v) for v in x])
    assert fit.a == pytest.approx(2.0, rel=1e-12)
    assert fit.rate == pytest.approx(0.05, rel=1e-12)
    assert fit.x_at(2.0 * math.e) == pytest.approx(20.0, rel=1e-12)
    assert fit.predict(30.0) == pytest.approx(2.0 * math.exp(1.5), rel=1e-12)


def test_exponential_interval_is_multiplicative() -> None:
    rng = np.random.default_rng(3)
    x = np.linspace(0.0, 100.0, 30)
    y = 1.5 * np.exp(0.01 * x) * np.exp(rng.normal(0.0, 0.05, x.size))
    fit = fit_exponential(x.tolist(), y.tolist())
    low, high = fit.prediction_interval(50.0, 0.9)
    centre = fit.predict(50.0)
    assert centre / low == pytest.approx(high / centre, rel=1e-9)
    assert fit.rate == pytest.approx(0.01, abs=0.002)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([0.0, 1.0], [1.0, 2.0], "at least 3 points"),
        ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], "two different x"),
        ([0.0, 1.0, 2.0], [1.0, float("nan"), 3.0], "finite"),
        ([0.0, 1.0, 2.0], [1.0, 2.0], "equal-length"),
    ],
)
def test_bad_input_is_refused_with_the_reason(x: list[float], y: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_linear(x, y)


def test_exponential_needs_positive_values() -> None:
    with pytest.raises(ValueError, match="above zero"):
        fit_exponential([0.0, 1.0, 2.0], [1.0, 0.0, 2.0])
    fit = fit_exponential([0.0, 1.0, 2.0], [1.0, 2.0, 4.0])
    with pytest.raises(ValueError, match="above zero"):
        fit.x_at(-1.0)
