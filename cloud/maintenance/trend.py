"""Least-squares trend fits of a condition signal: a straight line and an exponential (log-linear).

Ordinary least squares of ``y = intercept + slope · x`` over ``n`` points (``n ≥ 3``), with the
textbook standard errors (``s² = SSE / (n − 2)``, ``Sxx = Σ(x − x̄)²``):

    se(slope)          = s / √Sxx
    se(intercept)      = s · √(1/n + x̄² / Sxx)
    se(mean at x₀)     = s · √(1/n + (x₀ − x̄)² / Sxx)
    se(new point, x₀)  = s · √(1 + 1/n + (x₀ − x̄)² / Sxx)

Confidence and prediction intervals are two-sided, ``estimate ± t(1 − α/2; n − 2) · se`` with
Student's t (:func:`student_t_quantile`, computed here: numpy has no t distribution).

The exponential fit ``y = a · exp(rate · x)`` is the straight line fitted to ``ln y`` (every
``y > 0``): its errors are multiplicative, so its intervals are the line's intervals mapped
through ``exp`` (asymmetric in ``y``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "ExponentialFit",
    "LinearFit",
    "fit_exponential",
    "fit_linear",
    "student_t_cdf",
    "student_t_quantile",
]

MIN_POINTS = 3


@dataclass(frozen=True, slots=True)
class LinearFit:
    """``y = intercept + slope · x`` by ordinary least squares, with its standard errors."""

    intercept: float
    slope: float
    se_intercept: float
    se_slope: float
    residual_sd: float
    """``s = √(SSE / (n − 2))``."""
    n: int
    x_mean: float
    sxx: float
    r_squared: float

    def predict(self, x: float) -> float:
        """The fitted value at ``x``."""
        return self.intercept + self.slope * x

    def se_mean(self, x: float) -> float:
        """Standard error of the fitted mean at ``x``."""
        return self.residual_sd * math.sqrt(1.0 / self.n + (x - self.x_mean) ** 2 / self.sxx)

    def se_prediction(self, x: float) -> float:
        """Standard error of one new observation at ``x``."""
        return self.residual_sd * math.sqrt(1.0 + 1.0 / self.n + (x - self.x_mean) ** 2 / self.sxx)

    def t_value(self, confidence: float) -> float:
        """The two-sided Student-t factor for ``confidence`` with ``n − 2`` degrees of freedom."""
        return student_t_quantile(0.5 + confidence / 2.0, self.n - 2)

    def slope_interval(self, confidence: float) -> tuple[float, float]:
        """Two-sided confidence interval of the slope."""
        half = self.t_value(confidence) * self.se_slope
        return self.slope - half, self.slope + half

    def mean_interval(self, x: float, confidence: float) -> tuple[float, float]:
        """Two-sided confidence interval of the fitted mean at ``x``."""
        half = self.t_value(confidence) * self.se_mean(x)
        centre = self.predict(x)
        return centre - half, centre + half

    def prediction_interval(self, x: float, confidence: float) -> tuple[float, float]:
        """Two-sided prediction interval of one new observation at ``x``."""
        half = self.t_value(confidence) * self.se_prediction(x)
        centre = self.predict(x)
        return centre - half, centre + half

    def x_at(self, y: float) -> float | None:
        """Where the fitted line reaches ``y`` (None for a flat line)."""
        if self.slope == 0.0:
            return None
        return (y - self.intercept) / self.slope


@dataclass(frozen=True, slots=True)
class ExponentialFit:
    """``y = a · exp(rate · x)``, fitted as a straight line to ``ln y``."""

    log_fit: LinearFit

    @property
    def a(self) -> float:
        """The fitted value at ``x = 0``."""
        return math.exp(self.log_fit.intercept)

    @property
    def rate(self) -> float:
        """Growth rate per unit of ``x`` (``ln`` units; 0.01 ≈ 1 % per unit)."""
        return self.log_fit.slope

    def predict(self, x: float) -> float:
        """The fitted value at ``x`` (the geometric mean of ``y`` there)."""
        return math.exp(self.log_fit.predict(x))

    def prediction_interval(self, x: float, confidence: float) -> tuple[float, float]:
        """Two-sided prediction interval of one new observation at ``x`` (multiplicative errors)."""
        low, high = self.log_fit.prediction_interval(x, confidence)
        return math.exp(low), math.exp(high)

    def x_at(self, y: float) -> float | None:
        """Where the fitted curve reaches ``y > 0`` (None for no growth)."""
        if y <= 0.0:
            raise ValueError(f"an exponential trend never reaches {y}: give a level above zero")
        return self.log_fit.x_at(math.log(y))


def fit_linear(x: Sequence[float], y: Sequence[float]) -> LinearFit:
    """Fit a straight line by ordinary least squares (at least 3 points, not all at one ``x``)."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be equal-length sequences, got {xs.shape} and {ys.shape}")
    n = int(xs.size)
    if n < MIN_POINTS:
        raise ValueError(f"a trend fit needs at least {MIN_POINTS} points, got {n}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("a trend fit needs finite x and y; drop NaN/infinite points first")
    x_mean = float(np.mean(xs))
    y_mean = float(np.mean(ys))
    dx = xs - x_mean
    sxx = float(np.dot(dx, dx))
    if sxx <= 0.0:
        raise ValueError("a trend fit needs points at two different x (times) at least")
    sxy = float(np.dot(dx, ys - y_mean))
    syy = float(np.dot(ys - y_mean, ys - y_mean))
    slope = sxy / sxx
    intercept = y_mean - slope * x_mean
    residuals = ys - (intercept + slope * xs)
    sse = float(np.dot(residuals, residuals))
    s = math.sqrt(sse / (n - 2))
    return LinearFit(
        intercept=intercept,
        slope=slope,
        se_intercept=s * math.sqrt(1.0 / n + x_mean**2 / sxx),
        se_slope=s / math.sqrt(sxx),
        residual_sd=s,
        n=n,
        x_mean=x_mean,
        sxx=sxx,
        r_squared=1.0 - sse / syy if syy > 0.0 else 1.0,
    )


def fit_exponential(x: Sequence[float], y: Sequence[float]) -> ExponentialFit:
    """Fit ``y = a · exp(rate · x)`` by least squares on ``ln y`` (every ``y`` must be > 0)."""
    ys = np.asarray(y, dtype=np.float64)
    if ys.size and not np.all(ys > 0.0):
        raise ValueError("an exponential fit needs every value above zero; use fit_linear")
    return ExponentialFit(fit_linear(x, np.log(ys).tolist()))


# ---- Student's t ------------------------------------------------------------------------------


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def _regularised_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)`` for ``0 ≤ x ≤ 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - front * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, dof: float) -> float:
    """``P(T ≤ t)`` for Student's t with ``dof`` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {dof}")
    tail = 0.5 * _regularised_incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t >= 0.0 else tail


@lru_cache(maxsize=256)
def student_t_quantile(p: float, dof: float) -> float:
    """The ``p`` quantile of Student's t with ``dof`` degrees of freedom (bisection on the CDF)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_quantile(1.0 - p, dof)
    low, high = 0.0, 1.0
    while student_t_cdf(high, dof) < p:
        high *= 2.0
        if high > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (low + high)
        if student_t_cdf(mid, dof) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)
