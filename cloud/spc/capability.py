"""Process capability: Cp, Cpk (within-subgroup sigma) and Pp, Ppk (overall sigma) (pure, numpy).

    Cp  = (USL − LSL) / 6σ_within      Cpk = min(USL − x̄, x̄ − LSL) / 3σ_within
    Pp  = (USL − LSL) / 6σ_overall     Ppk = min(USL − x̄, x̄ − LSL) / 3σ_overall

σ_within is R̄/d2 (``within="range"``), s̄/c4 (``"std_dev"``), both over consecutive subgroups
of ``subgroup_size``, or MR̄/1.128 (``"moving_range"``, individual values). σ_overall is the
sample standard deviation of all used values (ddof = 1). With only one specification limit,
Cp and Pp are undefined (None) and Cpk/Ppk come from the given side. Values are cut into
subgroups by ``charts.subgroups_by_count``: a trailing remainder shorter than ``subgroup_size``
is not used, and ``points_used`` says how many values went into the figures.

The histogram's range covers the data and the specification limits, so both can be drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cloud.spc.charts import i_mr_limits, subgroups_by_count, xbar_r_limits, xbar_s_limits

WithinMethod = Literal["range", "std_dev", "moving_range"]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Bin edges (one more than counts) and counts of the used values."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Capability:
    """Capability indices of one parameter against its specification."""

    cp: float | None
    cpk: float
    pp: float | None
    ppk: float
    mean: float
    sigma_within: float
    sigma_overall: float
    within_method: WithinMethod
    points_used: int
    lsl: float | None
    usl: float | None
    histogram: Histogram


def _check_specs(lsl: float | None, usl: float | None) -> None:
    if lsl is None and usl is None:
        raise ValueError("usl: give at least one specification limit (lsl, usl or both)")
    for name, limit in (("lsl", lsl), ("usl", usl)):
        if limit is not None and not math.isfinite(limit):
            raise ValueError(f"{name}: a specification limit must be a finite number, got {limit}")
    if lsl is not None and usl is not None and usl <= lsl:
        raise ValueError(f"usl: the upper specification limit {usl} must be above lsl {lsl}")


def _sigma_within(
    values: Sequence[float], within: WithinMethod, subgroup_size: int
) -> tuple[float, list[float]]:
    """σ within and the values it was estimated from."""
    if within == "moving_range":
        return i_mr_limits(values).sigma_within, [float(v) for v in values]
    if subgroup_size < 2:
        raise ValueError(
            f"subgroup_size: {within} needs subgroups of at least 2, got {subgroup_size}"
        )
    grouping = subgroups_by_count(values, subgroup_size)
    if not grouping.subgroups:
        raise ValueError(
            f"values: fewer values ({len(values)}) than one subgroup ({subgroup_size})"
        )
    chart = xbar_r_limits if within == "range" else xbar_s_limits
    sigma = chart(grouping.subgroups).sigma_within
    return sigma, [v for group in grouping.subgroups for v in group.values]


def _index(numerator: float, spread: float) -> float:
    """numerator / spread; with no variation at all, ±infinity (the sign of the numerator)."""
    return math.copysign(math.inf, numerator) if spread == 0 else numerator / spread


def _histogram(
    values: np.ndarray, lsl: float | None, usl: float | None, bins: int | str
) -> Histogram:
    ends = [float(values.min()), float(values.max())] + [s for s in (lsl, usl) if s is not None]
    low, high = min(ends), max(ends)
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return Histogram(edges=tuple(float(e) for e in edges), counts=tuple(int(c) for c in counts))


def capability(
    values: Sequence[float],
    *,
    lsl: float | None = None,
    usl: float | None = None,
    within: WithinMethod = "moving_range",
    subgroup_size: int = 1,
    bins: int | str = "auto",
) -> Capability:
    """Cp, Cpk, Pp, Ppk of ``values`` (in time order) against ``lsl``/``usl``."""
    _check_specs(lsl, usl)
    if len(values) < 2:
        raise ValueError(f"values: capability needs at least 2 values, got {len(values)}")
    if not all(math.isfinite(float(v)) for v in values):
        raise ValueError("values: values must be finite numbers (no NaN or infinity)")
    if within not in ("range", "std_dev", "moving_range"):
        raise ValueError(f"within: {within!r} is not one of range, std_dev, moving_range")
    sigma_within, used = _sigma_within(values, within, subgroup_size)
    data = np.asarray(used, dtype=float)
    mean = float(data.mean())
    sigma_overall = float(data.std(ddof=1))
    distances = []
    if usl is not None:
        distances.append(usl - mean)
    if lsl is not None:
        distances.append(mean - lsl)
    nearest = min(distances)
    width = usl - lsl if usl is not None and lsl is not None else None
    return Capability(
        cp=None if width is None else _index(width, 6 * sigma_within),
        cpk=_index(nearest, 3 * sigma_within),
        pp=None if width is None else _index(width, 6 * sigma_overall),
        ppk=_index(nearest, 3 * sigma_overall),
        mean=mean,
        sigma_within=sigma_within,
        sigma_overall=sigma_overall,
        within_method=within,
        points_used=len(used),
        lsl=lsl,
        usl=usl,
        histogram=_histogram(data, lsl, usl, bins),
    )
