"""Routes for SPC control charts under ``/api/spc``: charts, phase I limits, the chart view,
capability and violations.

Bad input answers 400 naming the field (``BadRequestRoute``); an unknown chart answers 404.
Times are ISO 8601 or epoch milliseconds (``timeparse``). After a change of a chart or its
limits, the running evaluator (``app.state.spc_evaluator``, if any) reloads its charts.
See docs/spc.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from cloud.api.deps import BadRequestRoute, SessionDep, WriteSessionDep
from cloud.api.timeparse import parse_time_ms
from cloud.errors import InvalidRequest
from cloud.spc import service
from cloud.spc.capability import Capability
from cloud.spc.config import ChartSpec
from cloud.spc.models import SpcChart, SpcLimits
from cloud.spc.subgroups import PlottedPoint
from protocols.clock import now_ms

router = APIRouter(prefix="/api/spc", tags=["spc"], route_class=BadRequestRoute)


class LimitsOut(BaseModel):
    id: int
    chart_id: int
    centre: float
    ucl: float
    lcl: float
    sigma: float
    dispersion_centre: float | None
    dispersion_ucl: float | None
    dispersion_lcl: float | None
    sample_size: float
    baseline_from_ms: int
    baseline_to_ms: int
    excluded: list[dict[str, int]]
    subgroups_used: int
    points_used: int
    set_by: str
    set_ms: int
    note: str | None


class ChartOut(BaseModel):
    id: int
    name: str
    machine_id: int
    metric: str | None
    product_id: int | None
    chart_type: str
    subgroup_size: int | None
    subgroup_window_s: int | None
    rules: list[str]
    lsl: float | None
    target: float | None
    usl: float | None
    alarm: bool
    alarm_priority: str
    enabled: bool
    created_ms: int
    created_by: str | None
    updated_ms: int
    updated_by: str | None
    limits: LimitsOut | None = Field(description="the current (newest) limits, if set")


class PointOut(BaseModel):
    ts_ms: int
    statistic: float
    dispersion: float | None
    sample_size: float
    z: float | None
    centre: float | None
    ucl: float | None
    lcl: float | None
    out_of_control: bool


class InvolvedPointOut(BaseModel):
    ts_ms: int
    value: float


class ViolationOut(BaseModel):
    rule: str
    ts_ms: int
    statistic: float
    points: list[InvolvedPointOut] = Field(description="the points the rule involves")
    alarm_id: int | None
    recorded: bool


class ViewOut(BaseModel):
    from_ms: int
    to_ms: int
    source: str = Field(description="evaluated: stored phase II points; samples: formed now")
    points: list[PointOut]
    violations: list[ViolationOut]


class ChartViewOut(ChartOut):
    view: ViewOut | None = Field(description="with from and to: the chart over that window")


class LimitsIn(BaseModel):
    baseline_from: str | int = Field(description="ISO 8601 or epoch ms")
    baseline_to: str | int = Field(description="ISO 8601 or epoch ms (exclusive)")
    exclude: list[int] = Field(default_factory=list, description="subgroup indices (0-based)")
    exclude_ts: list[int] = Field(default_factory=list, description="times of excluded points")
    set_by: str = Field(min_length=1, max_length=128)
    note: str | None = Field(default=None, max_length=2000)


class HistogramOut(BaseModel):
    edges: list[float]
    counts: list[int]


class CapabilityOut(BaseModel):
    chart_id: int
    from_ms: int
    to_ms: int
    cp: float | None
    cpk: float
    pp: float | None
    ppk: float
    mean: float
    sigma_within: float
    sigma_overall: float
    within_method: str
    points_used: int
    lsl: float | None
    usl: float | None
    histogram: HistogramOut


def _limits_out(limits: SpcLimits) -> LimitsOut:
    return LimitsOut.model_validate(limits, from_attributes=True)


def _chart_out(session: SessionDep, chart: SpcChart) -> dict[str, Any]:
    limits = service.current_limits(session, chart.id)
    fields = {name: getattr(chart, name) for name in ChartOut.model_fields if name != "limits"}
    return {**fields, "limits": None if limits is None else _limits_out(limits)}


def _point_out(point: PlottedPoint) -> PointOut:
    return PointOut(
        ts_ms=point.ts_ms, statistic=point.statistic, dispersion=point.dispersion,
        sample_size=point.sample_size, z=point.z, centre=point.centre, ucl=point.ucl,
        lcl=point.lcl, out_of_control=point.out_of_control,
    )  # fmt: skip


def _involved(points: list[dict[str, float]]) -> list[InvolvedPointOut]:
    return [InvolvedPointOut(ts_ms=int(p["ts_ms"]), value=p["value"]) for p in points]


def _window(from_: str | None, to: str | None) -> tuple[int, int]:
    if from_ is None or to is None:
        raise InvalidRequest("from: give both from and to (ISO 8601 or epoch ms)")
    return parse_time_ms(from_, "from"), parse_time_ms(to, "to")


def _reload(request: Request) -> None:
    evaluator = getattr(request.app.state, "spc_evaluator", None)
    if evaluator is not None:
        evaluator.reload()


@router.get("/charts", response_model=list[ChartOut])
def list_charts(
    session: SessionDep, machine_id: int | None = Query(None, description="only this machine")
) -> list[dict[str, Any]]:
    """Every control chart (by name), with its current limits."""
    return [_chart_out(session, chart) for chart in service.list_charts(session, machine_id)]


@router.post("/charts", response_model=ChartOut, status_code=201)
def create_chart(
    body: ChartSpec, session: WriteSessionDep, request: Request,
    by: str | None = Query(None, max_length=128, description="who creates it"),
) -> dict[str, Any]:  # fmt: skip
    """Create a chart; its name must be free."""
    chart = service.create_chart(session, body, by, now_ms())
    session.commit()
    _reload(request)
    return _chart_out(session, chart)


@router.get("/charts/{chart_id}", response_model=ChartViewOut)
def get_chart(
    chart_id: int, session: SessionDep,
    from_: str | None = Query(None, alias="from", description="ISO 8601 or epoch ms"),
    to: str | None = Query(None, description="ISO 8601 or epoch ms (exclusive)"),
) -> dict[str, Any]:  # fmt: skip
    """The chart with its current limits; with ``from`` and ``to``, its points and violations."""
    chart = service.get_chart(session, chart_id)
    out = _chart_out(session, chart)
    if from_ is None and to is None:
        return {**out, "view": None}
    from_ms, to_ms = _window(from_, to)
    view = service.chart_view(session, chart_id, from_ms, to_ms)
    return {
        **out,
        "view": ViewOut(
            from_ms=from_ms, to_ms=to_ms, source=view.source,
            points=[_point_out(p) for p in view.points],
            violations=[ViolationOut(rule=v.rule, ts_ms=v.ts_ms, statistic=v.statistic,
                                     points=_involved(v.points), alarm_id=v.alarm_id,
                                     recorded=v.recorded)
                        for v in view.violations],
        ),
    }  # fmt: skip


@router.put("/charts/{chart_id}", response_model=ChartOut)
def put_chart(
    chart_id: int, body: ChartSpec, session: WriteSessionDep, request: Request,
    by: str | None = Query(None, max_length=128, description="who changes it"),
) -> dict[str, Any]:  # fmt: skip
    """Replace a chart's definition; changing what it measures drops its limits and points."""
    chart = service.update_chart(session, chart_id, body, by, now_ms())
    session.commit()
    _reload(request)
    return _chart_out(session, chart)


@router.delete("/charts/{chart_id}", status_code=204)
def delete_chart(chart_id: int, session: WriteSessionDep, request: Request) -> Response:
    """Delete a chart with its limits, points and violations."""
    service.delete_chart(session, chart_id)
    session.commit()
    _reload(request)
    return Response(status_code=204)


@router.post("/charts/{chart_id}/limits", response_model=LimitsOut, status_code=201)
def post_limits(
    chart_id: int, body: LimitsIn, session: WriteSessionDep, request: Request
) -> LimitsOut:
    """Phase I: compute limits from a baseline window (minus excluded points) and freeze them."""
    limits = service.set_limits(
        session, chart_id,
        parse_time_ms(str(body.baseline_from), "baseline_from"),
        parse_time_ms(str(body.baseline_to), "baseline_to"),
        body.exclude, body.set_by, body.note, exclude_ts=body.exclude_ts, now=now_ms(),
    )  # fmt: skip
    session.commit()
    _reload(request)
    return _limits_out(limits)


@router.get("/charts/{chart_id}/limits", response_model=list[LimitsOut])
def get_limits(chart_id: int, session: SessionDep) -> list[LimitsOut]:
    """Every set of limits of the chart, newest (current) first."""
    return [_limits_out(limits) for limits in service.limits_history(session, chart_id)]


@router.get("/charts/{chart_id}/capability", response_model=CapabilityOut)
def get_capability(
    chart_id: int, session: SessionDep,
    from_: str | None = Query(None, alias="from", description="ISO 8601 or epoch ms"),
    to: str | None = Query(None, description="ISO 8601 or epoch ms (exclusive)"),
) -> CapabilityOut:  # fmt: skip
    """Cp, Cpk (σ within), Pp, Ppk (σ overall) over the window, with a histogram."""
    from_ms, to_ms = _window(from_, to)
    found: Capability = service.chart_capability(session, chart_id, from_ms, to_ms)
    return CapabilityOut(
        chart_id=chart_id, from_ms=from_ms, to_ms=to_ms, cp=found.cp, cpk=found.cpk,
        pp=found.pp, ppk=found.ppk, mean=found.mean, sigma_within=found.sigma_within,
        sigma_overall=found.sigma_overall, within_method=found.within_method,
        points_used=found.points_used, lsl=found.lsl, usl=found.usl,
        histogram=HistogramOut(edges=list(found.histogram.edges),
                               counts=list(found.histogram.counts)),
    )  # fmt: skip


@router.get("/charts/{chart_id}/violations", response_model=list[ViolationOut])
def get_violations(
    chart_id: int, session: SessionDep,
    from_: str | None = Query(None, alias="from", description="ISO 8601 or epoch ms"),
    to: str | None = Query(None, description="ISO 8601 or epoch ms (exclusive)"),
) -> list[ViolationOut]:  # fmt: skip
    """The violations the evaluator recorded in the window, oldest first."""
    from_ms, to_ms = _window(from_, to)
    return [
        ViolationOut(rule=v.rule, ts_ms=v.ts_ms, statistic=v.statistic,
                     points=_involved(v.points), alarm_id=v.alarm_id, recorded=True)
        for v in service.recorded_violations(session, chart_id, from_ms, to_ms)
    ]  # fmt: skip
