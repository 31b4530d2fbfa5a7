"""Shewhart control charts: subgrouping, phase I limits and phase II monitoring (pure, numpy).

Subgrouping
    ``subgroups_by_count`` cuts consecutive values into subgroups of ``size``; a trailing
    remainder smaller than ``size`` is not a subgroup yet (it waits for more values) and is
    reported in ``Subgrouping.leftover``. ``subgroups_by_time`` cuts ``(ts_ms, value)`` samples
    into fixed windows ``[origin + k·window, origin + (k+1)·window)``; a window's subgroup is its
    first ``size`` values in time (a rational subgroup: parts made close together), extra values
    in the window are not used, and a window with fewer than ``size`` values is *incomplete*: it
    is skipped and its start is listed in ``Subgrouping.incomplete_windows``. Empty windows are
    neither subgroups nor incomplete.

Phase I (limits from a baseline)
    ``xbar_r_limits``, ``xbar_s_limits``, ``i_mr_limits``, ``p_limits``, ``np_limits``,
    ``c_limits``, ``u_limits``. ``exclude`` holds indices (of subgroups, or of points for I-MR)
    left out of the estimate, e.g. assignable causes found in the baseline; every result says
    which indices were ``used`` and ``excluded``. For I-MR, a moving range is used only when
    both of its points are used. Lower limits of dispersion and attributes charts are clipped
    at 0 (p at most 1); a p or u chart with varying sample sizes has limits per subgroup.

Phase II (monitoring against frozen limits)
    ``monitor_variables`` and ``monitor_attributes`` return the plotted statistic per subgroup
    with its limits and an ``out_of_control`` flag (strictly beyond a limit).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cloud.spc.constants import IMR_D2, IMR_D4, IMR_E2, MIN_N, constants_for, s_factors

VariablesKind = Literal["xbar_r", "xbar_s", "i_mr"]
AttributesKind = Literal["p", "np", "c", "u"]


@dataclass(frozen=True, slots=True)
class Subgroup:
    """One subgroup: its values in order, and the time window it came from (if by time)."""

    index: int
    values: tuple[float, ...]
    window_start_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Subgrouping:
    """Subgroups plus what could not form one (see the module docstring for the rule)."""

    subgroups: tuple[Subgroup, ...]
    leftover: tuple[float, ...] = ()
    incomplete_windows: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """A centre line with its upper and lower control limits."""

    centre: float
    ucl: float
    lcl: float

    def contains(self, statistic: float) -> bool:
        """True when ``statistic`` lies on or between the limits."""
        return self.lcl <= statistic <= self.ucl


@dataclass(frozen=True, slots=True)
class VariablesLimits:
    """Phase I result of a variables chart: location (X̄ or X) and dispersion (R, S or MR)."""

    kind: VariablesKind
    subgroup_size: int
    location: Limits
    dispersion: Limits
    sigma_within: float
    used: tuple[int, ...]
    excluded: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AttributesLimits:
    """Phase I result of an attributes chart; ``per_subgroup`` follows the baseline's sizes."""

    kind: AttributesKind
    centre: float
    """p̄ (p), n·p̄ (np), c̄ (c) or ū (u)."""
    per_subgroup: tuple[Limits, ...]
    used: tuple[int, ...]
    excluded: tuple[int, ...]
    sample_size: int | None = None
    """The constant n of an np chart (None for the others)."""

    @property
    def p_bar(self) -> float:
        """The fraction nonconforming behind a p or np chart."""
        return (
            self.centre / self.sample_size
            if self.kind == "np" and self.sample_size
            else self.centre
        )


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One plotted statistic with the limits it is judged against."""

    index: int
    statistic: float
    limits: Limits
    out_of_control: bool


@dataclass(frozen=True, slots=True)
class VariablesPoints:
    """Phase II for a variables chart: the location and dispersion points."""

    location: tuple[ChartPoint, ...]
    dispersion: tuple[ChartPoint, ...]


# --- subgrouping -------------------------------------------------------------------------------


def subgroups_by_count(values: Sequence[float], size: int) -> Subgrouping:
    """Consecutive values cut into subgroups of ``size``; a short remainder is ``leftover``."""
    if size < 1:
        raise ValueError(f"size: a subgroup needs at least 1 value, got {size}")
    whole = len(values) - len(values) % size
    groups = tuple(
        Subgroup(index=i // size, values=tuple(float(v) for v in values[i : i + size]))
        for i in range(0, whole, size)
    )
    return Subgrouping(subgroups=groups, leftover=tuple(float(v) for v in values[whole:]))


def subgroups_by_time(
    samples: Iterable[tuple[int, float]], *, window_ms: int, size: int, origin_ms: int = 0
) -> Subgrouping:
    """``(ts_ms, value)`` samples in fixed windows; each window's first ``size`` values."""
    if window_ms <= 0:
        raise ValueError(f"window_ms: a window must be longer than 0 ms, got {window_ms}")
    if size < 1:
        raise ValueError(f"size: a subgroup needs at least 1 value, got {size}")
    windows: dict[int, list[tuple[int, float]]] = {}
    for ts_ms, value in samples:
        start = origin_ms + (ts_ms - origin_ms) // window_ms * window_ms
        windows.setdefault(start, []).append((ts_ms, float(value)))
    groups: list[Subgroup] = []
    incomplete: list[int] = []
    for start in sorted(windows):
        in_window = sorted(windows[start], key=lambda sample: sample[0])
        if len(in_window) < size:
            incomplete.append(start)
            continue
        values = tuple(value for _, value in in_window[:size])
        groups.append(Subgroup(index=len(groups), values=values, window_start_ms=start))
    return Subgrouping(subgroups=tuple(groups), incomplete_windows=tuple(incomplete))


# --- phase I: variables charts -------------------------------------------------------------------


def _split_exclusions(count: int, exclude: Iterable[int], what: str) -> tuple[list[int], list[int]]:
    excluded = sorted(set(exclude))
    for index in excluded:
        if not 0 <= index < count:
            raise ValueError(f"exclude: index {index} is not a {what} (0..{count - 1})")
    left_out = set(excluded)
    used = [i for i in range(count) if i not in left_out]
    if not used:
        raise ValueError(f"exclude: every {what} is excluded; keep at least one for the limits")
    return used, excluded


def _matrix(subgroups: Sequence[Sequence[float]], *, min_size: int) -> np.ndarray:
    if len(subgroups) == 0:
        raise ValueError("subgroups: no subgroups given; a chart needs a baseline")
    sizes = {len(group) for group in subgroups}
    if len(sizes) != 1:
        raise ValueError(
            f"subgroups: all subgroups must have the same size, got sizes {sorted(sizes)}"
        )
    size = sizes.pop()
    if size < min_size:
        raise ValueError(f"subgroups: subgroup size {size} is below {min_size}")
    matrix = np.asarray(subgroups, dtype=float)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("subgroups: values must be finite numbers (no NaN or infinity)")
    return matrix


def _values(subgroups: Sequence[Sequence[float]] | Sequence[Subgroup]) -> list[Sequence[float]]:
    return [g.values if isinstance(g, Subgroup) else g for g in subgroups]


def xbar_r_limits(
    subgroups: Sequence[Sequence[float]] | Sequence[Subgroup], exclude: Iterable[int] = ()
) -> VariablesLimits:
    """X̄-R limits: X̿ ± A2·R̄, R̄·[D3, D4]; σ within = R̄/d2 (subgroup size 2..10)."""
    matrix = _matrix(_values(subgroups), min_size=MIN_N)
    n = matrix.shape[1]
    k = constants_for(n)
    used, excluded = _split_exclusions(matrix.shape[0], exclude, "subgroup")
    base = matrix[used]
    x_bar_bar = float(base.mean(axis=1).mean())
    r_bar = float(np.ptp(base, axis=1).mean())
    return VariablesLimits(
        kind="xbar_r",
        subgroup_size=n,
        location=Limits(x_bar_bar, x_bar_bar + k.a2 * r_bar, x_bar_bar - k.a2 * r_bar),
        dispersion=Limits(r_bar, k.d4 * r_bar, k.d3 * r_bar),
        sigma_within=r_bar / k.d2,
        used=tuple(used),
        excluded=tuple(excluded),
    )


def xbar_s_limits(
    subgroups: Sequence[Sequence[float]] | Sequence[Subgroup], exclude: Iterable[int] = ()
) -> VariablesLimits:
    """X̄-S limits: X̿ ± A3·s̄, s̄·[B3, B4]; σ within = s̄/c4 (any size ≥ 2; c4 by its formula)."""
    matrix = _matrix(_values(subgroups), min_size=MIN_N)
    n = matrix.shape[1]
    k = s_factors(n)
    used, excluded = _split_exclusions(matrix.shape[0], exclude, "subgroup")
    base = matrix[used]
    x_bar_bar = float(base.mean(axis=1).mean())
    s_bar = float(base.std(axis=1, ddof=1).mean())
    return VariablesLimits(
        kind="xbar_s",
        subgroup_size=n,
        location=Limits(x_bar_bar, x_bar_bar + k.a3 * s_bar, x_bar_bar - k.a3 * s_bar),
        dispersion=Limits(s_bar, k.b4 * s_bar, k.b3 * s_bar),
        sigma_within=s_bar / k.c4,
        used=tuple(used),
        excluded=tuple(excluded),
    )


def _moving_ranges(values: np.ndarray, used: Sequence[int]) -> list[float]:
    kept = set(used)
    return [
        abs(float(values[i] - values[i - 1]))
        for i in range(1, len(values))
        if i in kept and i - 1 in kept
    ]


def i_mr_limits(values: Sequence[float], exclude: Iterable[int] = ()) -> VariablesLimits:
    """I-MR limits: X̄ ± 2.660·MR̄, MR̄·[0, 3.267]; σ within = MR̄/1.128."""
    points = np.asarray(values, dtype=float)
    if points.ndim != 1 or len(points) < 2:
        raise ValueError("values: an individuals chart needs at least 2 values")
    if not np.all(np.isfinite(points)):
        raise ValueError("values: values must be finite numbers (no NaN or infinity)")
    used, excluded = _split_exclusions(len(points), exclude, "point")
    ranges = _moving_ranges(points, used)
    if not ranges:
        raise ValueError("exclude: no two consecutive used points are left to form a moving range")
    mean = float(points[used].mean())
    mr_bar = float(np.mean(ranges))
    return VariablesLimits(
        kind="i_mr",
        subgroup_size=1,
        location=Limits(mean, mean + IMR_E2 * mr_bar, mean - IMR_E2 * mr_bar),
        dispersion=Limits(mr_bar, IMR_D4 * mr_bar, 0.0),
        sigma_within=mr_bar / IMR_D2,
        used=tuple(used),
        excluded=tuple(excluded),
    )


# --- phase I: attributes charts ------------------------------------------------------------------


def _counts(counts: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(counts, dtype=float)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name}: no counts given; a chart needs a baseline")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name}: counts must be finite and not negative")
    return array


def _sizes(sample_sizes: Sequence[float], count: int) -> np.ndarray:
    sizes = np.asarray(sample_sizes, dtype=float)
    if sizes.shape != (count,):
        raise ValueError(f"sample_sizes: give one size per subgroup ({count}), got {sizes.size}")
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError("sample_sizes: every sample size must be greater than 0")
    return sizes


def _p_limits(p_bar: float, size: float) -> Limits:
    half = 3 * math.sqrt(p_bar * (1 - p_bar) / size)
    return Limits(p_bar, min(1.0, p_bar + half), max(0.0, p_bar - half))


def _u_limits(u_bar: float, size: float) -> Limits:
    half = 3 * math.sqrt(u_bar / size)
    return Limits(u_bar, u_bar + half, max(0.0, u_bar - half))


def p_limits(
    defectives: Sequence[float], sample_sizes: Sequence[float], exclude: Iterable[int] = ()
) -> AttributesLimits:
    """p chart: p̄ = Σd/Σn over used subgroups; p̄ ± 3·√(p̄(1−p̄)/nᵢ) per subgroup."""
    d = _counts(defectives, "defectives")
    n = _sizes(sample_sizes, len(d))
    if np.any(d > n):
        raise ValueError("defectives: a subgroup has more defectives than its sample size")
    used, excluded = _split_exclusions(len(d), exclude, "subgroup")
    p_bar = float(d[used].sum() / n[used].sum())
    return AttributesLimits(
        kind="p",
        centre=p_bar,
        per_subgroup=tuple(_p_limits(p_bar, float(size)) for size in n),
        used=tuple(used),
        excluded=tuple(excluded),
    )


def np_limits(
    defectives: Sequence[float], sample_size: int, exclude: Iterable[int] = ()
) -> AttributesLimits:
    """np chart (constant sample size n): n·p̄ ± 3·√(n·p̄(1−p̄))."""
    d = _counts(defectives, "defectives")
    if sample_size <= 0:
        raise ValueError(f"sample_size: must be greater than 0, got {sample_size}")
    if np.any(d > sample_size):
        raise ValueError("defectives: a subgroup has more defectives than the sample size")
    used, excluded = _split_exclusions(len(d), exclude, "subgroup")
    p_bar = float(d[used].mean() / sample_size)
    limits = _np_limits(p_bar, sample_size)
    return AttributesLimits(
        kind="np",
        centre=limits.centre,
        per_subgroup=(limits,) * len(d),
        used=tuple(used),
        excluded=tuple(excluded),
        sample_size=sample_size,
    )


def _np_limits(p_bar: float, sample_size: int) -> Limits:
    centre = sample_size * p_bar
    half = 3 * math.sqrt(centre * (1 - p_bar))
    return Limits(centre, min(float(sample_size), centre + half), max(0.0, centre - half))


def c_limits(defects: Sequence[float], exclude: Iterable[int] = ()) -> AttributesLimits:
    """c chart (constant inspection unit): c̄ ± 3·√c̄."""
    c = _counts(defects, "defects")
    used, excluded = _split_exclusions(len(c), exclude, "subgroup")
    c_bar = float(c[used].mean())
    limits = _u_limits(c_bar, 1.0)
    return AttributesLimits(
        kind="c",
        centre=c_bar,
        per_subgroup=(limits,) * len(c),
        used=tuple(used),
        excluded=tuple(excluded),
    )


def u_limits(
    defects: Sequence[float], units: Sequence[float], exclude: Iterable[int] = ()
) -> AttributesLimits:
    """u chart: ū = Σc/Σn over used subgroups; ū ± 3·√(ū/nᵢ) per subgroup."""
    c = _counts(defects, "defects")
    n = _sizes(units, len(c))
    used, excluded = _split_exclusions(len(c), exclude, "subgroup")
    u_bar = float(c[used].sum() / n[used].sum())
    return AttributesLimits(
        kind="u",
        centre=u_bar,
        per_subgroup=tuple(_u_limits(u_bar, float(size)) for size in n),
        used=tuple(used),
        excluded=tuple(excluded),
    )


# --- phase II ------------------------------------------------------------------------------------


def _point(index: int, statistic: float, limits: Limits) -> ChartPoint:
    return ChartPoint(index, statistic, limits, not limits.contains(statistic))


def monitor_variables(
    data: Sequence[Sequence[float]] | Sequence[Subgroup] | Sequence[float],
    limits: VariablesLimits,
) -> VariablesPoints:
    """Plotted X̄/R, X̄/S or X/MR per subgroup (point) against frozen ``limits``."""
    if limits.kind == "i_mr":
        points = np.asarray(data, dtype=float)
        if points.ndim != 1 or len(points) == 0:
            raise ValueError("data: give the individual values for an I-MR chart")
        location = tuple(_point(i, float(x), limits.location) for i, x in enumerate(points))
        ranges = np.abs(np.diff(points))
        dispersion = tuple(_point(i + 1, float(r), limits.dispersion) for i, r in enumerate(ranges))
        return VariablesPoints(location, dispersion)
    matrix = _matrix(_values(data), min_size=MIN_N)  # type: ignore[arg-type]
    if matrix.shape[1] != limits.subgroup_size:
        raise ValueError(
            f"data: subgroup size {matrix.shape[1]} differs from the limits' {limits.subgroup_size}"
        )
    means = matrix.mean(axis=1)
    spread = np.ptp(matrix, axis=1) if limits.kind == "xbar_r" else matrix.std(axis=1, ddof=1)
    return VariablesPoints(
        tuple(_point(i, float(x), limits.location) for i, x in enumerate(means)),
        tuple(_point(i, float(s), limits.dispersion) for i, s in enumerate(spread)),
    )


def monitor_attributes(
    counts: Sequence[float], limits: AttributesLimits, sample_sizes: Sequence[float] | None = None
) -> tuple[ChartPoint, ...]:
    """Plotted p, np, c or u per subgroup against the frozen centre of ``limits``.

    p and u need ``sample_sizes`` (limits are recomputed from the frozen centre for each new
    size); np uses the frozen sample size; c needs neither.
    """
    x = _counts(counts, "counts")
    if limits.kind in ("np", "c"):
        fixed = limits.per_subgroup[0]
        return tuple(_point(i, float(v), fixed) for i, v in enumerate(x))
    if sample_sizes is None:
        raise ValueError(f"sample_sizes: a {limits.kind} chart needs the size of each subgroup")
    n = _sizes(sample_sizes, len(x))
    per_size = _p_limits if limits.kind == "p" else _u_limits
    return tuple(
        _point(i, float(v / size), per_size(limits.centre, float(size)))
        for i, (v, size) in enumerate(zip(x, n, strict=True))
    )
