"""Process-parameter summary of one machine over one time window, time-weighted, in one query.

The same definitions as ``cloud.timeseries.aggregate`` (report by exception: a sample holds
its value until the next one): the last sample before the window carries in; ``mean`` is
Σ value·held / Σ held over usable values; ``time_out_of_limits_ms`` is the time held by values
outside the series' limits; ``min``/``max`` are over the values in effect during the window;
``count`` and ``out_of_limits`` count the samples whose timestamps lie in the window. Bad
readings (``value`` NULL) hold time but enter no statistic.

The query runs in the database, for all the windows of a trace at once (SQLite and PostgreSQL alike: window functions, no LATERAL), so
a trace does not pull a shift of samples into Python to summarise a few seconds of a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from cloud.db import without_jit

TRACED_ROLES = ("process_param", "temperature", "vibration")


@dataclass(frozen=True, slots=True)
class ParameterSummary:
    """One parameter over one window. ``mean`` and ``time_out_of_limits_ms`` are
    time-weighted (a sample holds until the next); ``out_of_limits`` counts samples."""

    series_id: int
    metric: str
    role: str
    unit: str | None
    low_limit: float | None
    high_limit: float | None
    count: int
    min: float | None
    max: float | None
    mean: float | None
    out_of_limits: int
    time_out_of_limits_ms: int
    series_url: str  # the full series over the window: GET it from the API


_SUMMARY = """
    WITH windows(k, machine, start_ms, end_ms) AS (VALUES {values}),
    series AS (
        SELECT w.k, w.machine, w.start_ms, w.end_ms, s.id, s.metric, s.role, s.unit,
               s.low_limit, s.high_limit
        FROM windows w
        JOIN machine m ON m.id = w.machine
        JOIN ts_series s ON s.edge = m.edge AND s.device = m.device
        WHERE s.role IN :roles
    ),
    points AS (
        SELECT series.k, t.series_id, t.ts, t.value, 1 AS inside, series.end_ms
        FROM ts_sample t JOIN series ON t.series_id = series.id
        WHERE t.ts >= series.start_ms AND t.ts < series.end_ms
        UNION ALL
        SELECT series.k, t.series_id, series.start_ms AS ts, t.value, 0 AS inside, series.end_ms
        FROM ts_sample t JOIN series ON t.series_id = series.id
        WHERE t.ts = (
            SELECT max(p.ts) FROM ts_sample p
            WHERE p.series_id = series.id AND p.ts < series.start_ms
        )
    ),
    held AS (
        SELECT k, series_id, value, inside,
               COALESCE(LEAD(ts) OVER (PARTITION BY k, series_id ORDER BY ts, inside), end_ms)
               - ts AS ms
        FROM points
    ),
    judged AS (
        SELECT held.*, CASE WHEN (series.low_limit IS NOT NULL AND value < series.low_limit)
                              OR (series.high_limit IS NOT NULL AND value > series.high_limit)
                            THEN 1 ELSE 0 END AS outside
        FROM held JOIN series ON series.k = held.k AND series.id = held.series_id
    ),
    summary AS (
        SELECT k, series_id,
               sum(inside) AS samples,
               min(CASE WHEN inside = 1 OR ms > 0 THEN value END) AS lo,
               max(CASE WHEN inside = 1 OR ms > 0 THEN value END) AS hi,
               sum(value * ms) AS weighted,
               sum(CASE WHEN value IS NOT NULL THEN ms ELSE 0 END) AS valued_ms,
               sum(CASE WHEN inside = 1 THEN outside ELSE 0 END) AS samples_out,
               sum(outside * ms) AS ms_out
        FROM judged GROUP BY k, series_id
    )
    SELECT series.k, series.machine, series.start_ms, series.end_ms, series.id, series.metric,
           series.role, series.unit, series.low_limit, series.high_limit, summary.samples,
           summary.lo, summary.hi, summary.weighted, summary.valued_ms, summary.samples_out,
           summary.ms_out
    FROM series LEFT JOIN summary ON summary.k = series.k AND summary.series_id = series.id
    ORDER BY series.k, series.metric
"""
_VALUE = (
    "(CAST(:k{i} AS INTEGER), CAST(:m{i} AS INTEGER), CAST(:s{i} AS BIGINT), CAST(:e{i} AS BIGINT))"
)


@dataclass(frozen=True, slots=True)
class Window:
    machine_id: int
    start_ms: int
    end_ms: int


def series_url(machine_id: int, metric: str, start_ms: int, end_ms: int) -> str:
    """The API address of the raw series behind a summary."""
    query = urlencode({"machine": machine_id, "metric": metric, "start": start_ms, "end": end_ms})
    return f"/api/series?{query}"


def parameter_summaries(
    session: Session, windows: Sequence[Window], roles: tuple[str, ...] = TRACED_ROLES
) -> list[list[ParameterSummary]]:
    """The summaries of every window (per series of its machine with one of ``roles``), in one
    query; answers one list per window, in the order given."""
    out: list[list[ParameterSummary]] = [[] for _ in windows]
    if not windows:
        return out
    without_jit(session)  # the planner cannot size this query; JIT would cost ~1 s
    values = ", ".join(_VALUE.format(i=i) for i in range(len(windows)))
    query = text(_SUMMARY.format(values=values)).bindparams(bindparam("roles", expanding=True))
    params: dict[str, object] = {"roles": list(roles)}
    for i, window in enumerate(windows):
        params |= {f"k{i}": i, f"m{i}": window.machine_id, f"s{i}": window.start_ms,
                   f"e{i}": window.end_ms}  # fmt: skip
    for row in session.execute(query, params):
        valued_ms = float(row.valued_ms or 0)
        out[row.k].append(
            ParameterSummary(
                series_id=row.id, metric=row.metric, role=row.role, unit=row.unit,
                low_limit=row.low_limit, high_limit=row.high_limit,
                count=int(row.samples or 0), min=_float(row.lo), max=_float(row.hi),
                mean=float(row.weighted) / valued_ms if valued_ms else None,
                out_of_limits=int(row.samples_out or 0), time_out_of_limits_ms=int(row.ms_out or 0),
                series_url=series_url(row.machine, row.metric, row.start_ms, row.end_ms),
            )
        )  # fmt: skip
    return out


def parameter_summary(
    session: Session,
    machine_id: int,
    start_ms: int,
    end_ms: int,
    roles: tuple[str, ...] = TRACED_ROLES,
) -> list[ParameterSummary]:
    """Per series of the machine with one of ``roles``: its summary over ``[start_ms, end_ms)``."""
    return parameter_summaries(session, [Window(machine_id, start_ms, end_ms)], roles)[0]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
