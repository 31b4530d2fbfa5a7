"""Remaining useful life: fit the degrading part of a condition trend and extrapolate it to a threshold.

The method (documented in docs/maintenance.md, checked on seeded run-to-failure simulations):

1. **Points.** Non-finite values are dropped and the rest sorted by time (hours from the first
   point). More than ``MAX_POINTS`` are reduced to that many equal-time buckets (the median time
   and value of each non-empty bucket), which bounds the cost of a long, dense history.
2. **Where the degradation starts.** The trend is modelled as a flat baseline followed by a rise
   (a *hinge*): ``z = c + b · max(0, t − τ)``, fitted by least squares for every candidate knee
   ``τ`` on a grid (every sample time plus ``KNEE_GRID`` evenly spaced times), keeping at least
   ``MIN_RISE_POINTS`` points after the knee; the knee with the least squared error wins. The fit
   therefore uses the baseline to pin the level and the points since the trend left it to
   measure the rise. A series that rises from its first point gets ``τ`` at that point (a
   straight line).
3. **Linear or exponential.** The hinge is fitted twice: on the values (``z = y``, a linear rise)
   and on their logarithm (``z = ln y``, an exponential rise; only when every value and the
   threshold are above zero). The model with the smaller sum of squared residuals *in the
   values' own unit* is chosen (both have three parameters: level, rate and knee).
4. **Is there a trend at all?** ``rul_h`` is None (with the reason) unless the chosen fit rises
   (``b > 0``), the hinge beats a flat line by the Bayesian information criterion
   (``n·ln(SSE/n) + k·ln n`` with k = 3 for the hinge, 1 for the flat line), and the rate's
   one-sided lower confidence bound (Student t, ``confidence``) is above zero.
5. **Extrapolation.** The crossing time is where the fitted curve reaches ``threshold``;
   ``rul_h = max(0, crossing − now)``. A series whose latest values (median of the last three)
   are already at or past the threshold gives ``rul_h = 0``.
6. **Interval.** A seeded residual bootstrap (``BOOTSTRAP_RESAMPLES`` resamples, numpy
   ``default_rng(seed)``): residuals of the chosen fit (in its own space, centred and inflated by
   ``√(n / (n − 3))``) are resampled onto the fitted curve, the knee search and fit are repeated
   on each resample, and ``low_h`` / ``high_h`` are the ``(1 − confidence)/2`` and
   ``(1 + confidence)/2`` quantiles of the resampled remaining lives. A resample that does not
   rise never crosses: when more than the upper tail does not, ``high_h`` is None (unbounded).
   The interval covers the uncertainty of the fitted trend (knee, level and rate) from the
   scatter of the points; it assumes the model's shape holds until the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cloud.maintenance.trend import fit_linear, student_t_quantile

__all__ = ["RulEstimate", "estimate_rul"]

Model = Literal["linear", "exponential"]
FloatArray = npt.NDArray[np.float64]

HOUR_MS = 3_600_000.0
MIN_POINTS = 8
MIN_RISE_POINTS = 5
MAX_POINTS = 300
KNEE_GRID = 120
BOOTSTRAP_RESAMPLES = 400
LINEAR_MARGIN = 0.1
_LATEST_POINTS = 3
_HINGE_PARAMETERS = 3


@dataclass(frozen=True, slots=True)
class RulEstimate:
    """Remaining useful life to a threshold, with a bootstrap interval, or None and why."""

    rul_h: float | None
    """Hours from ``now_ms`` until the fitted trend reaches the threshold; None: no trend."""
    low_h: float | None
    """Lower bound of the ``confidence`` bootstrap interval (None with no estimate)."""
    high_h: float | None
    """Upper bound; None also when the interval is unbounded (the rise may not continue)."""
    model: Model | None
    confidence: float
    points_used: int
    """Finite points the estimate rests on."""
    reason: str
    """Why there is no estimate, or a one-line summary of the one given."""


@dataclass(frozen=True, slots=True)
class _Hinge:
    """``z = level + rate · max(0, t − knee)`` in the model's space (values or their log)."""

    model: Model
    knee_h: float
    level: float
    rate: float
    sse_model: float
    sse_flat: float
    sse_values: float
    observed: FloatArray
    """The points in the model's space."""
    fitted: FloatArray


def estimate_rul(
    ts_ms: Sequence[int],
    values: Sequence[float],
    threshold: float,
    *,
    now_ms: int | None = None,
    confidence: float = 0.9,
    seed: int = 0,
) -> RulEstimate:
    """Estimate the hours until the trend of ``values`` reaches ``threshold`` (see the module doc)."""
    if len(ts_ms) != len(values):
        raise ValueError(
            f"estimate_rul: ts_ms and values must have the same length, got {len(ts_ms)} and {len(values)}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"estimate_rul: confidence must be between 0 and 1, got {confidence}")
    if not math.isfinite(threshold):
        raise ValueError(f"estimate_rul: threshold must be a finite number, got {threshold}")
    times = np.asarray(ts_ms, dtype=np.float64)
    ys = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(ys) & np.isfinite(times)
    times, ys = times[keep], ys[keep]
    order = np.argsort(times, kind="stable")
    times, ys = times[order], ys[order]
    n_used = int(ys.size)

    def none(reason: str, model: Model | None = None) -> RulEstimate:
        return RulEstimate(None, None, None, model, confidence, n_used, reason)

    if n_used < MIN_POINTS:
        return none(f"too few points: {n_used} finite values, need at least {MIN_POINTS}")
    latest = float(np.median(ys[-_LATEST_POINTS:]))
    if latest >= threshold:
        return RulEstimate(
            0.0,
            0.0,
            0.0,
            None,
            confidence,
            n_used,
            f"already at or past the threshold: latest values {latest:.4g} ≥ {threshold:.4g}",
        )
    t0 = float(times[0])
    hours = (times - t0) / HOUR_MS
    now_h = ((float(times[-1]) if now_ms is None else float(now_ms)) - t0) / HOUR_MS
    hours, ys = _reduced(hours, ys)
    if hours.size < MIN_POINTS or hours[-1] - hours[0] <= 0.0:
        return none("too few distinct times to fit a trend")

    taus = _knee_candidates(hours)
    hinges = [_fit_hinge(hours, ys, taus, "linear")]
    if bool(np.all(ys > 0.0)) and threshold > 0.0:
        hinges.append(_fit_hinge(hours, ys, taus, "exponential"))
    best = _chosen(hinges)
    problem = _no_trend(hours, best, confidence)
    if problem is not None:
        return none(problem, best.model)

    target = float(_to_model_space(np.array([threshold]), best.model)[0])
    crossing_h = best.knee_h + (target - best.level) / best.rate
    rul_h = max(0.0, float(crossing_h - now_h))
    low_h, high_h = _bootstrap_interval(hours, best, taus, target, now_h, confidence, seed)
    rise_points = int(np.count_nonzero(hours > best.knee_h))
    high_text = f"{high_h:.0f}" if high_h is not None else "unbounded"
    rate_text = (
        f"{best.rate * 100:.3g} %/h" if best.model == "exponential" else f"{best.rate:.4g}/h"
    )
    reason = (
        f"{best.model} rise of {rate_text} since {now_h - best.knee_h:.0f} h before now "
        f"({rise_points} points after the knee); reaches {threshold:.4g} in {rul_h:.0f} h "
        f"({low_h:.0f}–{high_text} h, {confidence:.0%} bootstrap interval)"
    )
    return RulEstimate(rul_h, low_h, high_h, best.model, confidence, n_used, reason)


def _reduced(hours: FloatArray, ys: FloatArray) -> tuple[FloatArray, FloatArray]:
    """At most ``MAX_POINTS`` points: medians of equal-time buckets when there are more."""
    if hours.size <= MAX_POINTS:
        return hours, ys
    edges = np.linspace(hours[0], hours[-1], MAX_POINTS + 1)
    bucket = np.clip(np.searchsorted(edges, hours, side="right") - 1, 0, MAX_POINTS - 1)
    out_h: list[float] = []
    out_y: list[float] = []
    for index in np.unique(bucket):
        members = bucket == index
        out_h.append(float(np.median(hours[members])))
        out_y.append(float(np.median(ys[members])))
    return np.asarray(out_h), np.asarray(out_y)


def _knee_candidates(hours: FloatArray) -> FloatArray:
    """Sample times and an even grid up to the last knee that leaves MIN_RISE_POINTS after it."""
    last = float(hours[-MIN_RISE_POINTS - 1])
    grid = np.linspace(float(hours[0]), last, KNEE_GRID)
    candidates: FloatArray = np.unique(np.concatenate([hours[hours <= last], grid]))
    return candidates


def _to_model_space(ys: FloatArray, model: Model) -> FloatArray:
    result: FloatArray = np.log(ys) if model == "exponential" else ys
    return result


def _from_model_space(zs: FloatArray, model: Model) -> FloatArray:
    result: FloatArray = np.exp(zs) if model == "exponential" else zs
    return result


def _knee_search(
    hours: FloatArray, zs: FloatArray, taus: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Least-squares hinge for every row of ``zs`` (shape (rows, n)): knee, level, rate, SSE."""
    hinge = np.maximum(0.0, hours[None, :] - taus[:, None])  # (knees, n)
    hinge_mean = hinge.mean(axis=1)
    hinge_c = hinge - hinge_mean[:, None]
    shh = np.einsum("jn,jn->j", hinge_c, hinge_c)
    z_mean = zs.mean(axis=1)
    z_c = zs - z_mean[:, None]
    szz = np.einsum("bn,bn->b", z_c, z_c)
    shz = z_c @ hinge_c.T  # (rows, knees)
    usable = shh > 1e-12 * max(float(np.max(shh)), 1e-300)  # a knee with a rise after it
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = np.where(usable[None, :], szz[:, None] - shz * shz / shh[None, :], np.inf)
    best = np.argmin(sse, axis=1)
    rows = np.arange(zs.shape[0])
    rate = np.where(usable[best], shz[rows, best] / np.where(usable[best], shh[best], 1.0), 0.0)
    level = z_mean - rate * hinge_mean[best]
    return taus[best], level, rate, np.maximum(sse[rows, best], 0.0)


def _fit_hinge(hours: FloatArray, ys: FloatArray, taus: FloatArray, model: Model) -> _Hinge:
    zs = _to_model_space(ys, model)
    knee, level, rate, sse = _knee_search(hours, zs[None, :], taus)
    fitted = level[0] + rate[0] * np.maximum(0.0, hours - knee[0])
    values_fit = _from_model_space(fitted, model)
    return _Hinge(
        model=model,
        knee_h=float(knee[0]),
        level=float(level[0]),
        rate=float(rate[0]),
        sse_model=float(sse[0]),
        sse_flat=float(np.sum(np.square(zs - zs.mean()))),
        sse_values=float(np.sum(np.square(ys - values_fit))),
        observed=zs,
        fitted=fitted,
    )


def _chosen(hinges: Sequence[_Hinge]) -> _Hinge:
    """Exponential unless the linear hinge fits clearly better (``LINEAR_MARGIN``), see step 3."""
    by_model = {hinge.model: hinge for hinge in hinges}
    linear = by_model["linear"]
    exponential = by_model.get("exponential")
    if exponential is None:
        return linear
    if linear.sse_values < (1.0 - LINEAR_MARGIN) * exponential.sse_values:
        return linear
    return exponential


def _no_trend(hours: FloatArray, hinge: _Hinge, confidence: float) -> str | None:
    """Why the chosen hinge is not a degradation trend, or None when it is one."""
    n = hours.size
    if hinge.rate <= 0.0:
        return "no degradation trend: the fitted trend is flat or falling"
    floor = max(1e-12 * hinge.sse_flat, 1e-300)
    bic_hinge = n * math.log(max(hinge.sse_model, floor) / n) + _HINGE_PARAMETERS * math.log(n)
    bic_flat = n * math.log(max(hinge.sse_flat, floor) / n) + math.log(n)
    if bic_hinge >= bic_flat:
        return "no degradation trend: a rise is not distinguishable from the scatter (BIC)"
    rise = np.maximum(0.0, hours - hinge.knee_h)
    fit = fit_linear(rise.tolist(), hinge.observed.tolist())
    lower = fit.slope - student_t_quantile(confidence, n - 2) * fit.se_slope
    if lower <= 0.0:
        return (
            f"no degradation trend: the rise's rate is not above zero at {confidence:.0%} "
            "confidence"
        )
    return None


def _bootstrap_interval(
    hours: FloatArray,
    hinge: _Hinge,
    taus: FloatArray,
    target: float,
    now_h: float,
    confidence: float,
    seed: int,
) -> tuple[float, float | None]:
    """The residual-bootstrap interval of the remaining life (see the module docstring)."""
    n = hours.size
    residuals = hinge.observed - hinge.fitted
    residuals = (residuals - residuals.mean()) * math.sqrt(n / (n - _HINGE_PARAMETERS))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    resampled = hinge.fitted[None, :] + residuals[picks]
    knee, level, rate, _sse = _knee_search(hours, resampled, taus)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(rate > 0.0, knee + (target - level) / rate, np.inf)
    remaining = np.maximum(0.0, crossing - now_h)
    tail = (1.0 - confidence) / 2.0
    # "lower"/"higher": no interpolation towards an infinite (never crossing) resample.
    low = float(np.quantile(remaining, tail, method="lower"))
    high = float(np.quantile(remaining, 1.0 - tail, method="higher"))
    return low, high if math.isfinite(high) else None
