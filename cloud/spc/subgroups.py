"""A chart's subgroups from stored samples, and their plotted statistic against frozen limits.

Reading (SQL): ``read_values`` gives the good numeric samples of a variables chart's metric;
``read_windows`` gives, per subgroup window, the scrap (defects) and units made, from the
increases of the machine's PLC counters (``cloud.oee.counters``: resets and rollovers are read
the same way as for OEE): units = good + scrap increases (a machine without a ``good_count``
counter: ``cycle_count`` increases × units per cycle). A chart with a product counts only what
was measured while an operation of a work order for that product ran on the machine
(``[started_ms, finished_ms)`` of its ``work_order_operation`` rows).

Forming (pure): ``by_count`` cuts consecutive samples into subgroups of n (a short remainder
waits for more); ``by_window`` keeps each closed window's first n samples (a window with fewer
is skipped). Windows are aligned on the epoch (``[k·w, (k+1)·w)``), so the same window is the
same subgroup in every query. A point's time is its last sample (by count) or its window's
start (by time and attributes charts).

``plot`` turns subgroups into points with the statistic (X̄, X, p, np, c, u), the dispersion
(R, S or MR) and ``z``, the statistic's distance from the centre line in its own sigmas
(X̄: σ/√n; p: √(p̄(1−p̄)/n); u: √(ū/n); np, c: fixed), which is what the run rules judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, or_, select
from sqlalchemy.orm import Session

from cloud.assets.models import Machine
from cloud.errors import InvalidRequest
from cloud.oee.counters import counter_increase
from cloud.oee.loader import load_counters
from cloud.production.models import WorkOrder, WorkOrderOperation
from cloud.spc.models import SpcChart, SpcLimits
from cloud.timeseries.models import TsLatest, TsSeries, ts_sample

Span = tuple[int, int]
MAX_SAMPLES = 200_000  # per read; the evaluator comes back for the rest
_FOREVER = 2**62


@dataclass(frozen=True, slots=True)
class RawSubgroup:
    """One subgroup before it is judged: its values (variables) or counts (attributes)."""

    ts_ms: int
    last_sample_ms: int
    values: tuple[float, ...] = ()
    defects: float = 0.0
    units: float = 0.0


@dataclass(frozen=True, slots=True)
class PlottedPoint:
    """A subgroup as plotted; ``z`` and the limits are None when the chart has no limits."""

    ts_ms: int
    last_sample_ms: int
    statistic: float
    dispersion: float | None
    sample_size: float
    z: float | None
    centre: float | None
    ucl: float | None
    lcl: float | None

    @property
    def out_of_control(self) -> bool:
        return self.z is not None and abs(self.z) > 3.0


# --- reading -------------------------------------------------------------------------------------


def machine_of(session: Session, chart: SpcChart) -> Machine:
    machine = session.get(Machine, chart.machine_id)
    if machine is None:  # the foreign key cascades: only a race gets here
        raise InvalidRequest(
            f"machine_id: chart {chart.name!r}: machine {chart.machine_id} is gone"
        )
    return machine


def series_id(session: Session, chart: SpcChart, *, metric: str | None = None,
              role: str | None = None) -> int | None:  # fmt: skip
    """The id of a metric (by name, else the first by role) of the chart's machine, or None."""
    machine = machine_of(session, chart)
    query = select(TsSeries.id).where(
        TsSeries.edge == machine.edge, TsSeries.device == machine.device
    )
    query = query.where(TsSeries.metric == metric) if metric else query.where(TsSeries.role == role)
    found = session.scalars(query.order_by(TsSeries.metric).limit(1)).first()
    return None if found is None else int(found)


def latest_ts(session: Session, ids: Sequence[int]) -> int | None:
    """The newest sample time (any quality) of the series, from ``ts_latest``."""
    if not ids:
        return None
    newest = session.scalars(select(TsLatest.ts).where(TsLatest.series_id.in_(ids))).all()
    return max((int(ts) for ts in newest), default=None)


def product_spans(session: Session, chart: SpcChart, from_ms: int, to_ms: int) -> list[Span] | None:
    """When an operation for the chart's product ran on its machine (None: no product set)."""
    if chart.product_id is None:
        return None
    rows = session.execute(
        select(WorkOrderOperation.started_ms, WorkOrderOperation.finished_ms)
        .join(WorkOrder, WorkOrder.id == WorkOrderOperation.work_order_id)
        .where(
            WorkOrderOperation.machine_id == chart.machine_id,
            WorkOrder.product_id == chart.product_id,
            WorkOrderOperation.started_ms.is_not(None),
            WorkOrderOperation.started_ms < to_ms,
            or_(WorkOrderOperation.finished_ms.is_(None), WorkOrderOperation.finished_ms > from_ms),
        )
        .order_by(WorkOrderOperation.started_ms)
    )
    return [(int(start or 0), _FOREVER if end is None else int(end)) for start, end in rows]


def _inside(ts: int, spans: list[Span] | None) -> bool:
    return spans is None or any(start <= ts < end for start, end in spans)


def read_values(
    session: Session, chart: SpcChart, from_ms: int, to_ms: int, *, after: bool = False,
    limit: int = MAX_SAMPLES,
) -> list[tuple[int, float]]:  # fmt: skip
    """Good numeric samples ``(ts, value)`` of the chart's metric in ``[from_ms, to_ms)``
    (``after``: ``(from_ms, to_ms)``), in time order, at most ``limit``, product-filtered."""
    found = series_id(session, chart, metric=chart.metric)
    if found is None:
        return []
    lower = ts_sample.c.ts > from_ms if after else ts_sample.c.ts >= from_ms
    rows = session.execute(
        select(ts_sample.c.ts, ts_sample.c.value)
        .where(
            and_(ts_sample.c.series_id == found, lower, ts_sample.c.ts < to_ms),
            ts_sample.c.quality == 0,
            ts_sample.c.value.is_not(None),
        )
        .order_by(ts_sample.c.ts)
        .limit(limit)
    ).all()
    spans = product_spans(session, chart, from_ms, to_ms)
    return [(int(ts), float(v)) for ts, v in rows if _inside(int(ts), spans)]


def counter_ids(session: Session, chart: SpcChart) -> tuple[int, int | None, int | None]:
    """(scrap, good, cycle) series ids of an attributes chart's machine."""
    scrap = series_id(session, chart, metric=chart.metric, role="scrap_count")
    if scrap is None:
        what = f"metric {chart.metric!r}" if chart.metric else "a scrap_count counter"
        raise InvalidRequest(
            f"metric: chart {chart.name!r}: its machine has no {what} (yet): the device's "
            "birth defines its counters"
        )
    good = series_id(session, chart, role="good_count")
    cycle = None if good is not None else series_id(session, chart, role="cycle_count")
    if good is None and cycle is None:
        raise InvalidRequest(
            f"chart_type: chart {chart.name!r}: its machine has neither a good_count nor a "
            "cycle_count counter, so the units made per window are unknown"
        )
    return scrap, good, cycle


def read_windows(session: Session, chart: SpcChart, from_ms: int, to_ms: int) -> list[RawSubgroup]:
    """Scrap and units made per window ``[k·w, (k+1)·w)`` lying wholly in ``[from_ms, to_ms)``;
    windows in which nothing was made are left out."""
    window = _window_ms(chart)
    first = -(-from_ms // window) * window
    last = to_ms // window * window
    if last <= first:
        return []
    scrap_id, good_id, cycle_id = counter_ids(session, chart)
    ids = [i for i in (scrap_id, good_id, cycle_id) if i is not None]
    conn: Connection = session.connection()
    samples = load_counters(conn, ids, first, last)
    rollover = session.scalar(
        select(Machine.counter_rollover).where(Machine.id == chart.machine_id)
    )
    spans = product_spans(session, chart, first, last)

    def per_window(series: int | None) -> dict[int, float]:
        out: dict[int, float] = {}
        if series is None:
            return out
        increase = counter_increase(samples[series], first, last, rollover=rollover)
        for ts, delta in increase.deltas:
            if _inside(ts, spans):
                start = ts // window * window
                out[start] = out.get(start, 0.0) + delta
        return out

    scrap = per_window(scrap_id)
    if good_id is not None:
        good = per_window(good_id)
        units = {k: good.get(k, 0.0) + scrap.get(k, 0.0) for k in set(good) | set(scrap)}
    else:
        per_cycle = session.scalar(
            select(Machine.units_per_cycle).where(Machine.id == chart.machine_id)
        )
        units = {k: v * (per_cycle or 1) for k, v in per_window(cycle_id).items()}
    return [
        RawSubgroup(start, start + window - 1, defects=min(scrap.get(start, 0.0), units[start]),
                    units=units[start])
        for start in sorted(units)
        if units[start] > 0
    ]  # fmt: skip


# --- forming -------------------------------------------------------------------------------------


def _window_ms(chart: SpcChart) -> int:
    if chart.subgroup_window_s is None:
        raise InvalidRequest(f"subgroup_window_s: chart {chart.name!r} has no subgroup window")
    return int(chart.subgroup_window_s) * 1000


def by_count(samples: Sequence[tuple[int, float]], size: int) -> list[RawSubgroup]:
    """Consecutive samples in subgroups of ``size``; a short remainder is left out."""
    whole = len(samples) - len(samples) % size
    return [
        RawSubgroup(samples[i + size - 1][0], samples[i + size - 1][0],
                    tuple(v for _, v in samples[i : i + size]))
        for i in range(0, whole, size)
    ]  # fmt: skip


def by_window(
    samples: Sequence[tuple[int, float]], size: int, window_ms: int, closed_before: int
) -> list[RawSubgroup]:
    """Each window's first ``size`` samples; only windows ending at or before ``closed_before``."""
    windows: dict[int, list[float]] = {}
    for ts, value in samples:
        start = ts // window_ms * window_ms
        if start + window_ms <= closed_before:
            windows.setdefault(start, []).append(value)
    return [
        RawSubgroup(start, start + window_ms - 1, tuple(values[:size]))
        for start, values in sorted(windows.items())
        if len(values) >= size
    ]


def variables_subgroups(
    chart: SpcChart, samples: Sequence[tuple[int, float]], closed_before: int
) -> list[RawSubgroup]:
    """The subgroups of a variables chart from its samples (see the module docstring)."""
    size = int(chart.subgroup_size or 1)
    if chart.subgroup_window_s is None:
        return by_count(samples, size)
    return by_window(samples, size, _window_ms(chart), closed_before)


def subgroups_in(session: Session, chart: SpcChart, from_ms: int, to_ms: int) -> list[RawSubgroup]:
    """Every subgroup of the chart in ``[from_ms, to_ms)`` (by count: aligned on ``from_ms``)."""
    if chart.chart_type in ("p", "np", "c", "u"):
        return read_windows(session, chart, from_ms, to_ms)
    samples = read_values(session, chart, from_ms, to_ms, limit=_FOREVER)
    return variables_subgroups(chart, samples, to_ms)


# --- plotting ------------------------------------------------------------------------------------


def statistic_sigma(chart_type: str, limits: SpcLimits, size: float) -> float:
    """σ of the plotted statistic of a subgroup of ``size`` under ``limits``."""
    if chart_type in ("xbar_r", "xbar_s"):
        return float(limits.sigma) / math.sqrt(size)
    if chart_type == "i_mr":
        return float(limits.sigma)
    centre = float(limits.centre)
    if chart_type == "p":
        return math.sqrt(max(centre * (1 - centre), 0.0) / size)
    if chart_type == "u":
        return math.sqrt(max(centre, 0.0) / size)
    return float(limits.sigma)  # np and c: fixed


def bounds(chart_type: str, centre: float, sigma: float, size: float) -> tuple[float, float]:
    upper, lower = centre + 3 * sigma, centre - 3 * sigma
    if chart_type in ("p", "np", "c", "u"):
        lower = max(0.0, lower)
    if chart_type == "p":
        upper = min(1.0, upper)
    if chart_type == "np":
        upper = min(size, upper)
    return lower, upper


def _statistic(
    chart_type: str, group: RawSubgroup, previous: float | None
) -> tuple[float, float | None, float]:
    """(statistic, dispersion, sample size) of one subgroup."""
    values = group.values
    if chart_type == "xbar_r":
        return sum(values) / len(values), max(values) - min(values), float(len(values))
    if chart_type == "xbar_s":
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return mean, spread, float(len(values))
    if chart_type == "i_mr":
        x = values[0]
        return x, None if previous is None else abs(x - previous), 1.0
    if chart_type in ("p", "u"):
        return group.defects / group.units, None, group.units
    return group.defects, None, group.units  # np, c


def plot(
    chart_type: str,
    subgroups: Sequence[RawSubgroup],
    limits: SpcLimits | None,
    previous: float | None = None,
) -> list[PlottedPoint]:
    """Each subgroup's statistic, dispersion and z; ``previous``: the individual before (I-MR)."""
    points: list[PlottedPoint] = []
    for group in subgroups:
        statistic, dispersion, size = _statistic(chart_type, group, previous)
        previous = statistic
        z = centre = ucl = lcl = None
        if limits is not None:
            centre = float(limits.centre)
            sigma = statistic_sigma(chart_type, limits, size)
            lcl, ucl = bounds(chart_type, centre, sigma, size)
            if sigma > 0:
                z = (statistic - centre) / sigma
            else:  # p̄ of 0 or 1: any other value is far out
                z = 0.0 if statistic == centre else math.copysign(1e6, statistic - centre)
        points.append(
            PlottedPoint(group.ts_ms, group.last_sample_ms, statistic, dispersion, size, z,
                         centre, ucl, lcl)
        )  # fmt: skip
    return points


__all__ = [
    "MAX_SAMPLES",
    "PlottedPoint",
    "RawSubgroup",
    "bounds",
    "by_count",
    "by_window",
    "counter_ids",
    "latest_ts",
    "plot",
    "product_spans",
    "read_values",
    "read_windows",
    "series_id",
    "statistic_sigma",
    "subgroups_in",
    "variables_subgroups",
]
