"""Route for parameter charts: ``GET /api/charts/series``, a metric downsampled for display.

Bad parameters answer 400 naming the field (``BadRequestRoute``); an unknown machine or metric
answers 404. See docs/charts.md.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from cloud.api.deps import BadRequestRoute, SessionDep
from cloud.api.timeparse import parse_time_ms
from cloud.charts.service import MAX_POINTS, Chart, chart_series

router = APIRouter(prefix="/api/charts", tags=["charts"], route_class=BadRequestRoute)


class ChartPointOut(BaseModel):
    ts_ms: int
    value: float


class LimitsOut(BaseModel):
    engineering_low: float | None
    engineering_high: float | None
    spec_low: float | None
    spec_high: float | None
    control_low: float | None
    control_center: float | None
    control_high: float | None
    spec_and_control_source: str


class OperationMarkOut(BaseModel):
    work_order: str
    sequence: int
    start_ms: int
    end_ms: int | None


class AlarmMarkOut(BaseModel):
    alarm_id: int
    rule: str
    priority: str
    metric: str | None
    raised_ms: int
    cleared_ms: int | None
    message: str


class AnnotationsOut(BaseModel):
    operations: list[OperationMarkOut]
    alarms: list[AlarmMarkOut]


class ChartOut(BaseModel):
    machine_id: int
    metric: str
    unit: str | None
    start_ms: int
    end_ms: int
    method: str
    raw_count: int
    points: list[ChartPointOut]
    limits: LimitsOut
    annotations: AnnotationsOut


def chart_out(chart: Chart) -> ChartOut:
    limits = chart.limits
    return ChartOut(
        machine_id=chart.machine_id, metric=chart.metric, unit=chart.unit,
        start_ms=chart.start_ms, end_ms=chart.end_ms, method=chart.method,
        raw_count=chart.raw_count,
        points=[ChartPointOut(ts_ms=p.ts_ms, value=p.value) for p in chart.points],
        limits=LimitsOut(
            engineering_low=limits.engineering_low, engineering_high=limits.engineering_high,
            spec_low=limits.spec_low, spec_high=limits.spec_high,
            control_low=limits.control_low, control_center=limits.control_center,
            control_high=limits.control_high, spec_and_control_source=limits.source,
        ),
        annotations=AnnotationsOut(
            operations=[
                OperationMarkOut(work_order=o.work_order, sequence=o.sequence,
                                 start_ms=o.start_ms, end_ms=o.end_ms)
                for o in chart.operations
            ],
            alarms=[
                AlarmMarkOut(alarm_id=a.alarm_id, rule=a.rule, priority=a.priority,
                             metric=a.metric, raised_ms=a.raised_ms, cleared_ms=a.cleared_ms,
                             message=a.message)
                for a in chart.alarms
            ],
        ),
    )  # fmt: skip


@router.get("/series", response_model=ChartOut)
def series_chart(
    session: SessionDep,
    machine: int = Query(description="machine id"),
    metric: str = Query(description="metric name, as in the device profile"),
    start: str = Query(description="ISO 8601 or epoch ms"),
    end: str = Query(description="ISO 8601 or epoch ms (exclusive)"),
    points: int = Query(1000, ge=2, le=MAX_POINTS, description="at most this many points"),
    method: Literal["minmax", "lttb"] = Query(
        "minmax", description="minmax: min and max per bucket; lttb: largest triangles"
    ),
) -> ChartOut:
    """Good numeric samples of ``[start, end)`` downsampled to ≤ ``points``, with the limits and
    the work-order operations and alarms of the window as annotations."""
    start_ms = parse_time_ms(start, "start")
    end_ms = parse_time_ms(end, "end")
    chart = chart_series(session, machine, metric, start_ms, end_ms, points, method)
    return chart_out(chart)
