"""SPC service functions over a session: charts (create, update, load from YAML, delete), phase I
limits from stored samples, the chart view, capability, and limits for the parameter chart.

Charts are keyed by name. Changing what a chart measures (machine, metric, product, type or
subgrouping) drops its limits and plotted points: the old limits describe another process, so
set them again. ``set_limits`` computes phase I limits from the subgroups of a baseline window
(``cloud.spc.subgroups``), leaving out excluded subgroups (by index in the baseline, or by the
time of their point), and stores them with who set them and when; the newest row is the
chart's current limits, older rows are its history. Unknown ids raise ``NotFound``; bad input
raises ``InvalidRequest`` naming the field. The caller commits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from cloud.assets.models import Machine
from cloud.errors import InvalidRequest, NotFound
from cloud.production.models import Product, WorkOrder, WorkOrderOperation
from cloud.spc import charts as spc_charts
from cloud.spc import subgroups as sg
from cloud.spc.capability import Capability, WithinMethod, capability
from cloud.spc.config import ChartSpec, load_charts_file
from cloud.spc.models import ATTRIBUTES_TYPES, SpcChart, SpcLimits, SpcPoint, SpcViolation
from cloud.spc.rules import evaluate

_DEFINING = ("machine_id", "metric", "product_id", "chart_type", "subgroup_size",
             "subgroup_window_s")  # fmt: skip
_WITHIN: dict[str, WithinMethod] = {
    "xbar_r": "range", "xbar_s": "std_dev", "i_mr": "moving_range",
}  # fmt: skip


# --- charts --------------------------------------------------------------------------------------


def _machine_id(session: Session, spec: ChartSpec) -> int:
    if spec.machine_id is not None:
        if session.get(Machine, spec.machine_id) is None:
            raise InvalidRequest(f"machine_id: machine {spec.machine_id} does not exist")
        return spec.machine_id
    ids = session.scalars(select(Machine.id).where(Machine.name == spec.machine)).all()
    if not ids:
        raise InvalidRequest(
            f"machine: no machine is named {spec.machine!r} (GET /api/machines lists them)"
        )
    if len(ids) > 1:
        raise InvalidRequest(
            f"machine: {len(ids)} machines are named {spec.machine!r}; give machine_id instead"
        )
    return int(ids[0])


def _product_id(session: Session, spec: ChartSpec) -> int | None:
    if spec.product is None:
        return None
    found = session.scalar(select(Product.id).where(Product.external_id == spec.product))
    if found is None:
        raise InvalidRequest(f"product: no product has the external id {spec.product!r}")
    return int(found)


def _apply(session: Session, chart: SpcChart, spec: ChartSpec) -> bool:
    """Copy ``spec`` onto ``chart``; answers whether what the chart measures changed."""
    values: dict[str, Any] = {
        "name": spec.name, "machine_id": _machine_id(session, spec), "metric": spec.metric,
        "product_id": _product_id(session, spec), "chart_type": spec.chart_type,
        "subgroup_size": spec.subgroup_size, "subgroup_window_s": spec.subgroup_window_s,
        "rules": spec.rule_names, "lsl": spec.lsl, "target": spec.target, "usl": spec.usl,
        "alarm": spec.alarm, "alarm_priority": spec.alarm_priority, "enabled": spec.enabled,
    }  # fmt: skip
    changed = any(getattr(chart, name) != values[name] for name in _DEFINING)
    for name, value in values.items():
        setattr(chart, name, value)
    return changed


def _name_free(session: Session, name: str, chart_id: int | None) -> None:
    other = session.scalar(select(SpcChart.id).where(SpcChart.name == name))
    if other is not None and other != chart_id:
        raise InvalidRequest(f"name: chart {other} is already named {name!r}")


def create_chart(session: Session, spec: ChartSpec, by: str | None, now: int) -> SpcChart:
    """A new chart (its name must be free)."""
    _name_free(session, spec.name, None)
    chart = SpcChart(created_ms=now, created_by=by, updated_ms=now, updated_by=by)
    _apply(session, chart, spec)
    session.add(chart)
    session.flush()
    return chart


def get_chart(session: Session, chart_id: int) -> SpcChart:
    chart = session.get(SpcChart, chart_id)
    if chart is None:
        raise NotFound(f"no SPC chart {chart_id} (GET /api/spc/charts lists them)")
    return chart


def list_charts(session: Session, machine_id: int | None = None) -> list[SpcChart]:
    query = select(SpcChart).order_by(SpcChart.name)
    if machine_id is not None:
        query = query.where(SpcChart.machine_id == machine_id)
    return list(session.scalars(query))


def _forget_limits(session: Session, chart_id: int) -> None:
    session.execute(delete(SpcPoint).where(SpcPoint.chart_id == chart_id))
    session.execute(delete(SpcLimits).where(SpcLimits.chart_id == chart_id))


def update_chart(
    session: Session, chart_id: int, spec: ChartSpec, by: str | None, now: int
) -> SpcChart:
    """Replace a chart's definition; a change of what it measures drops its limits and points."""
    chart = get_chart(session, chart_id)
    _name_free(session, spec.name, chart_id)
    if _apply(session, chart, spec):
        _forget_limits(session, chart_id)
    chart.updated_ms, chart.updated_by = now, by
    session.flush()
    return chart


def delete_chart(session: Session, chart_id: int) -> None:
    """Delete a chart with its limits, points and violations."""
    chart = get_chart(session, chart_id)
    session.execute(delete(SpcViolation).where(SpcViolation.chart_id == chart_id))
    _forget_limits(session, chart_id)
    session.delete(chart)
    session.flush()


def load_charts(
    session: Session, specs: Iterable[ChartSpec], by: str | None, now: int
) -> list[tuple[SpcChart, bool]]:
    """Upsert charts by name (e.g. from ``config.load_charts_file``); (chart, created) each."""
    out: list[tuple[SpcChart, bool]] = []
    for index, spec in enumerate(specs):
        try:
            found = session.scalar(select(SpcChart).where(SpcChart.name == spec.name))
            if found is None:
                out.append((create_chart(session, spec, by, now), True))
            else:
                out.append((update_chart(session, found.id, spec, by, now), False))
        except InvalidRequest as error:
            raise InvalidRequest(f"charts[{index}] ({spec.name!r}): {error}") from None
    return out


def load_charts_from_file(
    session: Session, path: str | Path, by: str | None, now: int
) -> list[tuple[SpcChart, bool]]:
    """Validate the YAML charts file at ``path`` and upsert its charts; a ``ProfileError`` names
    the file, line and field of a mistake, an ``InvalidRequest`` the chart and field."""
    return load_charts(session, load_charts_file(path), by, now)


# --- limits --------------------------------------------------------------------------------------


def current_limits(session: Session, chart_id: int) -> SpcLimits | None:
    """The chart's newest limits, or None before phase I."""
    return session.scalars(
        select(SpcLimits)
        .where(SpcLimits.chart_id == chart_id)
        .order_by(SpcLimits.set_ms.desc(), SpcLimits.id.desc())
        .limit(1)
    ).first()


def limits_history(session: Session, chart_id: int) -> list[SpcLimits]:
    get_chart(session, chart_id)
    return list(
        session.scalars(
            select(SpcLimits)
            .where(SpcLimits.chart_id == chart_id)
            .order_by(SpcLimits.set_ms.desc(), SpcLimits.id.desc())
        )
    )


@dataclass(frozen=True, slots=True)
class _Phase1:
    centre: float
    ucl: float
    lcl: float
    sigma: float
    dispersion: spc_charts.Limits | None
    sample_size: float
    used: tuple[int, ...]
    points_used: int


def _phase1(chart: SpcChart, groups: Sequence[sg.RawSubgroup], exclude: Sequence[int]) -> _Phase1:
    kind = chart.chart_type
    if kind in ("xbar_r", "xbar_s", "i_mr"):
        if kind == "i_mr":
            found = spc_charts.i_mr_limits([g.values[0] for g in groups], exclude)
        elif kind == "xbar_r":
            found = spc_charts.xbar_r_limits([g.values for g in groups], exclude)
        else:
            found = spc_charts.xbar_s_limits([g.values for g in groups], exclude)
        loc = found.location
        points = len(found.used) * found.subgroup_size
        return _Phase1(loc.centre, loc.ucl, loc.lcl, found.sigma_within, found.dispersion,
                       float(found.subgroup_size), found.used, points)  # fmt: skip
    defects = [g.defects for g in groups]
    units = [g.units for g in groups]
    if kind == "p":
        attr = spc_charts.p_limits(defects, units, exclude)
    elif kind == "u":
        attr = spc_charts.u_limits(defects, units, exclude)
    elif kind == "c":
        attr = spc_charts.c_limits(defects, exclude)
    else:
        attr = spc_charts.np_limits(defects, round(sum(units) / len(units)), exclude)
    size = float(attr.sample_size or sum(units[i] for i in attr.used) / len(attr.used))
    centre = attr.centre
    sigma = {
        "p": math.sqrt(max(centre * (1 - centre), 0.0) / size),
        "u": math.sqrt(max(centre, 0.0) / size),
        "c": math.sqrt(max(centre, 0.0)),
        "np": math.sqrt(max(centre * (1 - attr.p_bar), 0.0)),
    }[kind]
    lcl = max(0.0, centre - 3 * sigma)
    ucl = min(1.0, centre + 3 * sigma) if kind == "p" else centre + 3 * sigma
    points = int(sum(units[i] for i in attr.used))
    return _Phase1(centre, ucl, lcl, sigma, None, size, attr.used, points)


def set_limits(
    session: Session,
    chart_id: int,
    baseline_from_ms: int,
    baseline_to_ms: int,
    exclude: Sequence[int] = (),
    set_by: str = "",
    note: str | None = None,
    *,
    exclude_ts: Sequence[int] = (),
    now: int,
) -> SpcLimits:
    """Phase I: limits from the subgroups of ``[baseline_from_ms, baseline_to_ms)``, stored.

    ``exclude``: subgroup indices in the baseline (0 = its first subgroup); ``exclude_ts``: the
    times of excluded points. Both are stored, as ``{"index", "ts_ms"}`` pairs.
    """
    chart = get_chart(session, chart_id)
    if not set_by.strip():
        raise InvalidRequest("set_by: say who sets the limits (a name or login)")
    if baseline_to_ms <= baseline_from_ms:
        raise InvalidRequest(
            f"baseline_to_ms: the baseline must end ({baseline_to_ms}) after it starts "
            f"({baseline_from_ms})"
        )
    groups = sg.subgroups_in(session, chart, baseline_from_ms, baseline_to_ms)
    if len(groups) < 2:
        raise InvalidRequest(
            f"baseline_from_ms: the baseline holds {len(groups)} subgroup(s) of chart "
            f"{chart.name!r}; phase I needs at least 2 (20 to 25 is usual): widen the window"
        )
    indices = set(exclude)
    by_ts = {g.ts_ms: i for i, g in enumerate(groups)}
    for ts in exclude_ts:
        if ts not in by_ts:
            raise InvalidRequest(f"exclude_ts: no point of the baseline is at {ts}")
        indices.add(by_ts[ts])
    for index in indices:
        if not 0 <= index < len(groups):
            raise InvalidRequest(
                f"exclude: {index} is not a subgroup of the baseline (0..{len(groups) - 1})"
            )
    try:
        phase1 = _phase1(chart, groups, sorted(indices))
    except ValueError as error:
        raise InvalidRequest(f"exclude: {error}") from None
    if not (math.isfinite(phase1.sigma) and phase1.sigma > 0):
        raise InvalidRequest(
            f"baseline_from_ms: the baseline of chart {chart.name!r} shows no variation "
            "(σ = 0), so no run rule can be judged; choose a baseline with normal production"
        )
    dispersion = phase1.dispersion
    limits = SpcLimits(
        chart_id=chart.id, centre=phase1.centre, ucl=phase1.ucl, lcl=phase1.lcl,
        sigma=phase1.sigma,
        dispersion_centre=None if dispersion is None else dispersion.centre,
        dispersion_ucl=None if dispersion is None else dispersion.ucl,
        dispersion_lcl=None if dispersion is None else dispersion.lcl,
        sample_size=phase1.sample_size, baseline_from_ms=baseline_from_ms,
        baseline_to_ms=baseline_to_ms,
        excluded=[{"index": i, "ts_ms": groups[i].ts_ms} for i in sorted(indices)],
        subgroups_used=len(phase1.used), points_used=phase1.points_used, set_by=set_by.strip(),
        set_ms=now, note=note,
    )  # fmt: skip
    session.add(limits)
    session.flush()
    return limits


# --- the chart view ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewViolation:
    """A rule violation in the view; ``recorded`` False: found now over samples, not stored."""

    rule: str
    ts_ms: int
    statistic: float
    points: list[dict[str, float]]
    alarm_id: int | None
    recorded: bool


@dataclass(frozen=True, slots=True)
class ChartView:
    """Points of ``[from_ms, to_ms)``: ``evaluated`` (stored by the evaluator) or ``samples``
    (formed from the samples now, judged against the current limits if there are any)."""

    chart: SpcChart
    from_ms: int
    to_ms: int
    limits: SpcLimits | None
    source: str
    points: list[sg.PlottedPoint]
    violations: list[ViewViolation]


def _check_window(from_ms: int, to_ms: int) -> None:
    if to_ms <= from_ms:
        raise InvalidRequest(f"to: the window must end ({to_ms}) after it starts ({from_ms})")


def recorded_violations(
    session: Session, chart_id: int, from_ms: int, to_ms: int
) -> list[SpcViolation]:
    get_chart(session, chart_id)
    _check_window(from_ms, to_ms)
    return list(
        session.scalars(
            select(SpcViolation)
            .where(
                SpcViolation.chart_id == chart_id,
                SpcViolation.ts_ms >= from_ms,
                SpcViolation.ts_ms < to_ms,
            )
            .order_by(SpcViolation.ts_ms, SpcViolation.rule)
        )
    )


def _stored_points(session: Session, chart: SpcChart, from_ms: int, to_ms: int) -> list[Any]:
    return list(
        session.execute(
            select(SpcPoint, SpcLimits)
            .join(SpcLimits, SpcLimits.id == SpcPoint.limits_id)
            .where(SpcPoint.chart_id == chart.id, SpcPoint.ts_ms >= from_ms,
                   SpcPoint.ts_ms < to_ms)
            .order_by(SpcPoint.ts_ms)
        ).all()
    )  # fmt: skip


def chart_view(session: Session, chart_id: int, from_ms: int, to_ms: int) -> ChartView:
    """The chart over ``[from_ms, to_ms)``: points, current limits and violations."""
    chart = get_chart(session, chart_id)
    _check_window(from_ms, to_ms)
    limits = current_limits(session, chart_id)
    stored = _stored_points(session, chart, from_ms, to_ms)
    if stored:
        points = []
        for point, point_limits in stored:
            sigma = sg.statistic_sigma(chart.chart_type, point_limits, point.sample_size)
            lcl, ucl = sg.bounds(chart.chart_type, point_limits.centre, sigma, point.sample_size)
            points.append(
                sg.PlottedPoint(point.ts_ms, point.last_sample_ms, point.statistic,
                                point.dispersion, point.sample_size, point.z,
                                point_limits.centre, ucl, lcl)
            )  # fmt: skip
        found = [
            ViewViolation(v.rule, v.ts_ms, v.statistic, v.points, v.alarm_id, True)
            for v in recorded_violations(session, chart_id, from_ms, to_ms)
        ]
        return ChartView(chart, from_ms, to_ms, limits, "evaluated", points, found)
    groups = sg.subgroups_in(session, chart, from_ms, to_ms)
    points = sg.plot(chart.chart_type, groups, limits)
    found = []
    if limits is not None and points:
        z = [0.0 if p.z is None else p.z for p in points]
        for violation in evaluate(z, 0.0, 1.0, chart.rules):
            involved = [{"ts_ms": points[i].ts_ms, "value": points[i].statistic}
                        for i in violation.points]  # fmt: skip
            at = points[violation.index]
            found.append(
                ViewViolation(str(violation.rule), at.ts_ms, at.statistic, involved, None, False)
            )
    return ChartView(chart, from_ms, to_ms, limits, "samples", points, found)


# --- capability ----------------------------------------------------------------------------------


def chart_capability(session: Session, chart_id: int, from_ms: int, to_ms: int) -> Capability:
    """Cp, Cpk, Pp, Ppk of the chart's samples in ``[from_ms, to_ms)`` against its spec."""
    chart = get_chart(session, chart_id)
    _check_window(from_ms, to_ms)
    if chart.chart_type in ATTRIBUTES_TYPES:
        raise InvalidRequest(
            f"chart_type: capability is for variables charts; {chart.name!r} is a "
            f"{chart.chart_type} chart"
        )
    if chart.lsl is None and chart.usl is None:
        raise InvalidRequest(
            f"usl: chart {chart.name!r} has no specification limits (lsl, usl); set them first"
        )
    values = [v for _, v in sg.read_values(session, chart, from_ms, to_ms, limit=2**62)]
    size = int(chart.subgroup_size or 1)
    needed = 2 * size if size > 1 else 2  # two subgroups, or two individual values
    if len(values) < needed:
        raise InvalidRequest(
            f"from: {len(values)} values of chart {chart.name!r} in the window; capability "
            f"needs at least {needed}"
        )
    try:
        return capability(values, lsl=chart.lsl, usl=chart.usl,
                          within=_WITHIN[chart.chart_type], subgroup_size=size)  # fmt: skip
    except ValueError as error:
        raise InvalidRequest(f"from: {error}") from None


# --- limits for the parameter chart --------------------------------------------------------------


class SpecAndControl(NamedTuple):
    """Spec and control limits of a metric, and where they come from (for the parameter chart).

    For an X̄ chart the control limits are those of subgroup means, not of single values."""

    lsl: float | None
    usl: float | None
    lcl: float | None
    centre: float | None
    ucl: float | None
    source: str


def _running_product(conn: Connection | Session, machine_id: int, at_ms: int) -> int | None:
    found = conn.execute(
        select(WorkOrder.product_id)
        .join(WorkOrderOperation, WorkOrderOperation.work_order_id == WorkOrder.id)
        .where(
            WorkOrderOperation.machine_id == machine_id,
            WorkOrderOperation.started_ms <= at_ms,
            (WorkOrderOperation.finished_ms.is_(None)) | (WorkOrderOperation.finished_ms > at_ms),
        )
        .order_by(WorkOrderOperation.started_ms.desc())
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def limits_for(
    conn: Connection | Session, machine_id: int, metric: str, at_ms: int
) -> SpecAndControl | None:
    """The spec and current control limits of ``metric`` on ``machine_id`` at ``at_ms``.

    A chart for the product being made at ``at_ms`` wins over a chart for any product; None when
    no enabled variables chart watches the metric."""
    charts = list(
        conn.execute(
            select(SpcChart.id, SpcChart.name, SpcChart.chart_type, SpcChart.product_id,
                   SpcChart.lsl, SpcChart.usl, SpcChart.subgroup_size)
            .where(SpcChart.machine_id == machine_id, SpcChart.metric == metric,
                   SpcChart.enabled.is_(True),
                   SpcChart.chart_type.in_(("xbar_r", "xbar_s", "i_mr")))
            .order_by(SpcChart.name)
        ).all()
    )  # fmt: skip
    if not charts:
        return None
    product = _running_product(conn, machine_id, at_ms)
    chosen = next((c for c in charts if c.product_id is not None and c.product_id == product),
                  next((c for c in charts if c.product_id is None), None))  # fmt: skip
    if chosen is None:
        return None
    limits = conn.execute(
        select(SpcLimits.centre, SpcLimits.ucl, SpcLimits.lcl, SpcLimits.set_by, SpcLimits.set_ms)
        .where(SpcLimits.chart_id == chosen.id)
        .order_by(SpcLimits.set_ms.desc(), SpcLimits.id.desc())
        .limit(1)
    ).first()
    what = (
        "individuals"
        if chosen.chart_type == "i_mr"
        else f"subgroup means (n={chosen.subgroup_size})"
    )
    if limits is None:
        source = (
            f"SPC chart {chosen.name!r} (id {chosen.id}): spec limits; no control limits set yet"
        )
        return SpecAndControl(chosen.lsl, chosen.usl, None, None, None, source)
    source = (
        f"SPC chart {chosen.name!r} (id {chosen.id}): spec limits, and control limits of "
        f"{what} set by {limits.set_by} at {limits.set_ms}"
    )
    return SpecAndControl(chosen.lsl, chosen.usl, limits.lcl, limits.centre, limits.ucl, source)


__all__ = [
    "ChartView",
    "SpecAndControl",
    "ViewViolation",
    "chart_capability",
    "chart_view",
    "create_chart",
    "current_limits",
    "delete_chart",
    "get_chart",
    "limits_for",
    "limits_history",
    "list_charts",
    "load_charts",
    "load_charts_from_file",
    "recorded_violations",
    "set_limits",
    "update_chart",
]
