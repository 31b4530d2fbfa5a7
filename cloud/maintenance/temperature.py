"""Temperature trend as a condition signal: a bearing or spindle warming up at constant load.

A temperature rises with load as well as with wear, so only points taken near the current load
count: with a ``load`` series (percent of rated load, one value per temperature point), a point
is used when its load is within ``load_band_pct`` percentage points of the latest point's load.
Non-finite temperatures (and loads) are dropped.

On the points used (at least ``MIN_POINTS``, spanning time), a least-squares straight line in
hours gives the slope and its two-sided ``confidence`` interval (Student t, ``trend.LinearFit``).
The temperature is **rising** when the slope is at least ``min_slope_c_per_h`` (a material rise)
and the interval's lower bound is above zero (not scatter). For a rising trend with a ``limit``,
``hours_to_limit`` is the time from the last point until the fitted line reaches the limit (0 if
it already has); it is None otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud.maintenance.trend import fit_linear

__all__ = ["TemperatureTrend", "temperature_trend"]

HOUR_MS = 3_600_000.0
MIN_POINTS = 5


@dataclass(frozen=True, slots=True)
class TemperatureTrend:
    """The slope of a temperature at constant load, °C per hour, and what it means."""

    slope_c_per_h: float | None
    low: float | None
    """Lower bound of the slope's two-sided confidence interval, °C/h."""
    high: float | None
    points_used: int
    rising: bool
    hours_to_limit: float | None
    reason: str


def temperature_trend(
    ts_ms: Sequence[int],
    temperature: Sequence[float],
    load: Sequence[float] | None,
    *,
    limit: float | None,
    load_band_pct: float = 10.0,
    min_slope_c_per_h: float = 0.2,
    confidence: float = 0.9,
    min_span_h: float = 0.0,
) -> TemperatureTrend:
    """Fit the temperature's trend at the current load (see the module docstring)."""
    if len(ts_ms) != len(temperature):
        raise ValueError(
            "temperature_trend: ts_ms and temperature must have the same length, got "
            f"{len(ts_ms)} and {len(temperature)}"
        )
    if load is not None and len(load) != len(temperature):
        raise ValueError(
            "temperature_trend: load must have one value per temperature point, got "
            f"{len(load)} for {len(temperature)}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"temperature_trend: confidence must be between 0 and 1, got {confidence}")
    if load_band_pct < 0.0:
        raise ValueError(f"temperature_trend: load_band_pct must be >= 0, got {load_band_pct}")
    times = np.asarray(ts_ms, dtype=np.float64)
    temps = np.asarray(temperature, dtype=np.float64)
    keep = np.isfinite(times) & np.isfinite(temps)
    band_note = ""
    if load is not None:
        loads = np.asarray(load, dtype=np.float64)
        keep &= np.isfinite(loads)
        if np.any(keep):
            latest_load = float(loads[keep][np.argmax(times[keep])])
            keep &= np.abs(loads - latest_load) <= load_band_pct
            band_note = f" at {latest_load:.0f} ± {load_band_pct:g} % load"
    times, temps = times[keep], temps[keep]
    order = np.argsort(times, kind="stable")
    times, temps = times[order], temps[order]
    n = int(temps.size)

    def none(reason: str) -> TemperatureTrend:
        return TemperatureTrend(None, None, None, n, False, None, reason)

    if n < MIN_POINTS:
        return none(f"too few points{band_note}: {n}, need at least {MIN_POINTS}")
    hours = (times - times[0]) / HOUR_MS
    if hours[-1] <= 0.0:
        return none(f"all {n} points{band_note} have the same time: no trend")
    if hours[-1] < min_span_h:
        return none(f"{n} points{band_note} span {hours[-1]:.2f} h; a trend needs {min_span_h:g} h")
    fit = fit_linear(hours.tolist(), temps.tolist())
    low, high = fit.slope_interval(confidence)
    rising = fit.slope >= min_slope_c_per_h and low > 0.0
    hours_to_limit: float | None = None
    if rising and limit is not None and math.isfinite(limit):
        hours_to_limit = max(0.0, (limit - fit.predict(float(hours[-1]))) / fit.slope)
    summary = (
        f"{fit.slope:+.3g} °C/h ({low:+.3g} … {high:+.3g}, {confidence:.0%}) over "
        f"{hours[-1]:.1f} h, {n} points{band_note}"
    )
    if rising:
        reason = f"rising: {summary}"
        if hours_to_limit is not None:
            reason += f"; reaches {limit:g} °C in {hours_to_limit:.1f} h"
    elif fit.slope < min_slope_c_per_h:
        reason = f"not rising (below {min_slope_c_per_h:g} °C/h): {summary}"
    else:
        reason = f"not rising (not distinguishable from the scatter): {summary}"
    return TemperatureTrend(fit.slope, low, high, n, rising, hours_to_limit, reason)
