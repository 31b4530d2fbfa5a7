"""Routes for time series: raw samples or aggregation windows of one machine's metric."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query
from sqlalchemy import select

from cloud.api.deps import SessionDep, StoreDep
from cloud.api.schemas import SampleOut, SeriesOut, WindowOut
from cloud.api.timeparse import parse_duration_ms, parse_time_ms
from cloud.assets.service import get_machine
from cloud.errors import InvalidRequest, NotFound
from cloud.timeseries.models import TsSeries
from cloud.timeseries.store import AGGREGATES, QUALITY_NAME

router = APIRouter(prefix="/api/series", tags=["series"])


@router.get("", response_model=SeriesOut)
def series(
    session: SessionDep,
    store: StoreDep,
    machine: int = Query(description="machine id"),
    metric: str = Query(description="metric name, as in the device profile"),
    start: str | None = Query(None, description="ISO 8601 or epoch ms; default: end - 1 h"),
    end: str | None = Query(None, description="ISO 8601 or epoch ms; default: now"),
    window: str | None = Query(None, description="1s, 1m, 1h or ms; none: raw samples"),
    aggregates: str = Query(",".join(AGGREGATES), description="comma-separated"),
) -> SeriesOut:
    """Samples of ``[start, end)``: raw, or time-weighted aggregates per window."""
    found = get_machine(session, machine)
    row = session.scalars(
        select(TsSeries).where(
            TsSeries.edge == found.edge, TsSeries.device == found.device, TsSeries.metric == metric
        )
    ).first()
    if row is None:
        raise NotFound(f"machine {machine} has no metric {metric!r} (GET /api/machines/{machine})")
    end_ms = parse_time_ms(end, "end") if end else time.time_ns() // 1_000_000
    start_ms = parse_time_ms(start, "start") if start else end_ms - 3_600_000
    if end_ms <= start_ms:
        raise InvalidRequest(f"end ({end_ms}) must be after start ({start_ms})")
    window_ms = parse_duration_ms(window, "window") if window else None
    wanted = [a.strip() for a in aggregates.split(",") if a.strip()]
    unknown = sorted(set(wanted) - set(AGGREGATES))
    if unknown:
        raise InvalidRequest(f"unknown aggregates {unknown}; choose from {list(AGGREGATES)}")
    try:
        result = store.range_query(row.id, start_ms, end_ms, window_ms, wanted)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return SeriesOut(
        series_id=row.id, machine_id=machine, metric=metric, unit=row.unit,
        start_ms=start_ms, end_ms=end_ms, window_ms=window_ms,
        samples=[
            SampleOut(ts_ms=s.ts_ms, value=s.value, text_value=s.text_value,
                      quality=QUALITY_NAME.get(s.quality, "bad"), reason=s.reason)
            for s in result.samples
        ],
        windows=[
            WindowOut(start_ms=w.start_ms, end_ms=w.end_ms, mean=w.mean, min=w.min, max=w.max,
                      last=w.last, count=w.count, valued_ms=w.valued_ms, bad_ms=w.bad_ms)
            for w in result.windows
        ],
    )  # fmt: skip
