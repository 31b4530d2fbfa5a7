"""A parameter chart of one machine's metric over ``[start_ms, end_ms)``: the series downsampled
in SQL, its limits, and the operations and alarms of the window as annotations.

The bucketing runs in the database (one ``GROUP BY`` over the window's good numeric samples,
portable between SQLite and PostgreSQL), so that a month of 1 s data (2.6 M samples) never
crosses the wire: only each bucket's min and max, with their times, do. ``minmax`` returns
those; ``lttb`` pre-aggregates into ``points`` buckets the same way and then picks ``points``
of the candidates with Largest-Triangle-Three-Buckets (``cloud.charts.downsample``).

Buckets at least ``ROLLUP_MIN_BUCKET_MS`` wide are read from the per-minute roll-up
``ts_minute`` instead (one row a minute: count, min and max with their times, kept by the SQL
time-series store: ``cloud.timeseries.rollup``) for the whole minutes of the window, and from
``ts_sample`` for the partial minutes at either end. There a minute belongs, whole, to the
bucket its start (or the window's start) falls in; so the points equal the raw path's when the
bucket edges fall on minutes, and otherwise differ only in which of two neighbouring buckets a
straddling minute's extremes go to. Every point is still a real sample, spikes included, and
``raw_count`` the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Row, or_, select, text
from sqlalchemy.orm import Session

from cloud.alarms.models import Alarm
from cloud.assets.service import get_machine
from cloud.charts.downsample import lttb
from cloud.db import without_jit
from cloud.errors import InvalidRequest, NotFound
from cloud.production.models import WorkOrder, WorkOrderOperation
from cloud.spc.service import limits_for
from cloud.timeseries.models import TsSeries

METHODS = ("minmax", "lttb")
MAX_POINTS = 20_000
MAX_SPAN_MS = 2**62 // MAX_POINTS  # (ts - start) * buckets stays within a 64-bit integer
NO_SPC_CHART = "no SPC chart watches this metric (POST /api/spc/charts)"

# Per bucket: min and max value and the sample count (one pass over the window), then the
# earliest time of the min and of the max, each read by an index range scan of that bucket
# alone. Bucket k holds the times t with (t - start) * buckets / span = k (integer division),
# i.e. t - start in [ceil(k * span / buckets), ceil((k + 1) * span / buckets)).
_GOOD = "series_id = :series AND quality = 0 AND value IS NOT NULL"
_GOOD_S = "s.series_id = :series AND s.quality = 0 AND s.value IS NOT NULL"
_IN_BUCKET = (
    "s.ts >= :start + (agg.bucket * :span + :buckets - 1) / :buckets"
    " AND s.ts < :start + ((agg.bucket + 1) * :span + :buckets - 1) / :buckets"
)
_BUCKETS_SQL = text(
    f"""
    WITH agg AS (
        SELECT (ts - :start) * :buckets / :span AS bucket,
               min(value) AS lo, max(value) AS hi, count(*) AS samples
        FROM ts_sample
        WHERE {_GOOD} AND ts >= :start AND ts < :end
        GROUP BY (ts - :start) * :buckets / :span
    )
    SELECT agg.bucket, agg.lo, agg.hi, agg.samples,
           (SELECT min(s.ts) FROM ts_sample s
            WHERE {_GOOD_S} AND {_IN_BUCKET} AND s.value = agg.lo
           ) AS lo_ts,
           (SELECT min(s.ts) FROM ts_sample s
            WHERE {_GOOD_S} AND {_IN_BUCKET} AND s.value = agg.hi
           ) AS hi_ts
    FROM agg
    ORDER BY agg.bucket
    """  # noqa: S608 - constant fragments only; every value is a bound parameter
)


MINUTE_MS = 60_000
ROLLUP_MIN_BUCKET_MS = 10 * MINUTE_MS
"""Buckets at least this wide are read from the per-minute roll-up ``ts_minute``."""

# The same bucketing over the roll-up's whole minutes [:first, :last): a minute goes to the
# bucket of its start; the earliest time of a bucket's min (max) is the earliest ``vmin_ts``
# (``vmax_ts``) of its minutes holding that value, read by a primary-key range scan.
_IN_MINUTE_BUCKET = (
    "m.minute_ms >= :start + (agg.bucket * :span + :buckets - 1) / :buckets"
    " AND m.minute_ms < :start + ((agg.bucket + 1) * :span + :buckets - 1) / :buckets"
    " AND m.minute_ms >= :first AND m.minute_ms < :last"
)
_ROLLUP_BUCKETS_SQL = text(
    f"""
    WITH agg AS (
        SELECT (minute_ms - :start) * :buckets / :span AS bucket,
               min(vmin) AS lo, max(vmax) AS hi, sum(n) AS samples
        FROM ts_minute
        WHERE series_id = :series AND minute_ms >= :first AND minute_ms < :last
        GROUP BY (minute_ms - :start) * :buckets / :span
    )
    SELECT agg.bucket, agg.lo, agg.hi, agg.samples,
           (SELECT min(m.vmin_ts) FROM ts_minute m
            WHERE m.series_id = :series AND {_IN_MINUTE_BUCKET} AND m.vmin = agg.lo
           ) AS lo_ts,
           (SELECT min(m.vmax_ts) FROM ts_minute m
            WHERE m.series_id = :series AND {_IN_MINUTE_BUCKET} AND m.vmax = agg.hi
           ) AS hi_ts
    FROM agg
    ORDER BY agg.bucket
    """  # noqa: S608 - constant fragments only; every value is a bound parameter
)
_PARTIAL_MINUTE_SQL = text(
    f"SELECT ts, value FROM ts_sample WHERE {_GOOD} AND ts >= :lo AND ts < :hi ORDER BY ts"  # noqa: S608
)


@dataclass
class _Bucket:
    """One bucket's good samples: how many, and the min and max with their earliest times."""

    samples: int
    lo: float
    lo_ts: int | None
    hi: float
    hi_ts: int | None

    def add(self, ts_ms: int, value: float) -> None:
        self.samples += 1
        if value < self.lo or (value == self.lo and _earlier(ts_ms, self.lo_ts)):
            self.lo, self.lo_ts = value, ts_ms
        if value > self.hi or (value == self.hi and _earlier(ts_ms, self.hi_ts)):
            self.hi, self.hi_ts = value, ts_ms


def _earlier(ts_ms: int, held: int | None) -> bool:
    return held is None or ts_ms < held


@dataclass(frozen=True)
class ChartPoint:
    ts_ms: int
    value: float


@dataclass(frozen=True)
class Limits:
    """Engineering limits come from the device profile (``ts_series``); spec and control limits
    from the SPC chart that watches the metric (``cloud.spc.service.limits_for``), with
    ``source`` naming the chart and who set the control limits when (or why they are None)."""

    engineering_low: float | None
    engineering_high: float | None
    spec_low: float | None = None
    spec_high: float | None = None
    control_low: float | None = None
    control_center: float | None = None
    control_high: float | None = None
    source: str = NO_SPC_CHART


@dataclass(frozen=True)
class OperationMark:
    work_order: str
    sequence: int
    start_ms: int
    end_ms: int | None  # None: still running


@dataclass(frozen=True)
class AlarmMark:
    alarm_id: int
    rule: str
    priority: str
    metric: str | None  # None: a machine-wide alarm
    raised_ms: int
    cleared_ms: int | None  # None: still open
    message: str


@dataclass(frozen=True)
class Chart:
    machine_id: int
    metric: str
    unit: str | None
    start_ms: int
    end_ms: int
    method: str
    points: list[ChartPoint]
    raw_count: int  # good numeric samples in the window, before downsampling
    limits: Limits
    operations: list[OperationMark]
    alarms: list[AlarmMark]


def chart_series(
    session: Session,
    machine_id: int,
    metric: str,
    start_ms: int,
    end_ms: int,
    points: int = 1000,
    method: str = "minmax",
    *,
    rollup: bool = True,
) -> Chart:
    """The chart of ``metric`` of ``machine_id`` over ``[start_ms, end_ms)`` in ≤ ``points``.

    ``rollup=False`` reads every raw sample whatever the bucket width (the reference that the
    tests and the benchmark compare the roll-up path with).
    """
    if method not in METHODS:
        raise InvalidRequest(f"method={method!r}: choose from {list(METHODS)}")
    if not 2 <= points <= MAX_POINTS:
        raise InvalidRequest(f"points={points}: give 2 to {MAX_POINTS}")
    if end_ms <= start_ms:
        raise InvalidRequest(f"end ({end_ms}) must be after start ({start_ms})")
    if end_ms - start_ms > MAX_SPAN_MS:
        raise InvalidRequest(f"start..end spans {end_ms - start_ms} ms; give at most {MAX_SPAN_MS}")
    machine = get_machine(session, machine_id)
    series = session.scalars(
        select(TsSeries).where(
            TsSeries.edge == machine.edge,
            TsSeries.device == machine.device,
            TsSeries.metric == metric,
        )
    ).first()
    if series is None:
        raise NotFound(
            f"machine {machine_id} has no metric {metric!r} (GET /api/machines/{machine_id})"
        )
    chart_points, raw_count = downsampled_series(
        session, series.id, start_ms, end_ms, points, method, rollup=rollup
    )
    limits = Limits(series.low_limit, series.high_limit)
    spc = limits_for(session, machine_id, metric, end_ms - 1)
    if spc is not None:
        limits = replace(
            limits, spec_low=spc.lsl, spec_high=spc.usl, control_low=spc.lcl,
            control_center=spc.centre, control_high=spc.ucl, source=spc.source,
        )  # fmt: skip
    return Chart(
        machine_id=machine_id,
        metric=metric,
        unit=series.unit,
        start_ms=start_ms,
        end_ms=end_ms,
        method=method,
        points=chart_points,
        raw_count=raw_count,
        limits=limits,
        operations=_operations(session, machine_id, start_ms, end_ms),
        alarms=_alarms(session, machine_id, metric, start_ms, end_ms),
    )


def downsampled_series(
    session: Session,
    series_id: int,
    start_ms: int,
    end_ms: int,
    points: int,
    method: str,
    *,
    rollup: bool = True,
) -> tuple[list[ChartPoint], int]:
    """The chart points of one series over ``[start_ms, end_ms)`` and its good sample count.

    Buckets at least ``ROLLUP_MIN_BUCKET_MS`` wide come from the roll-up unless ``rollup`` is
    False; see the module docstring.
    """
    buckets = points // 2 if method == "minmax" else points
    span = end_ms - start_ms
    without_jit(session)  # the planner cannot size these queries; JIT would cost ~1 s
    if rollup and span >= ROLLUP_MIN_BUCKET_MS * buckets:
        found = _rollup_buckets(session, series_id, start_ms, end_ms, buckets)
    else:
        found = _raw_buckets(session, series_id, start_ms, end_ms, buckets)
    raw_count = sum(bucket.samples for bucket in found)
    candidates: list[tuple[int, float]] = []
    for bucket in found:
        extremes = {(at, value) for at, value in ((bucket.lo_ts, bucket.lo),
                    (bucket.hi_ts, bucket.hi)) if at is not None}  # fmt: skip
        candidates.extend(sorted(extremes))
    if method == "lttb" and len(candidates) > points:
        ts = np.fromiter((c[0] for c in candidates), dtype=np.int64, count=len(candidates))
        values = np.fromiter((c[1] for c in candidates), dtype=np.float64, count=len(candidates))
        kept_ts, kept_values = lttb(ts, values, points)
        candidates = list(zip(kept_ts.tolist(), kept_values.tolist(), strict=True))
    return [ChartPoint(ts_ms, value) for ts_ms, value in candidates], raw_count


def _bucket_of_row(row: Row[Any]) -> _Bucket:
    """A bucket from a row of ``_BUCKETS_SQL`` or ``_ROLLUP_BUCKETS_SQL``."""
    return _Bucket(
        int(row.samples),
        float(row.lo),
        None if row.lo_ts is None else int(row.lo_ts),
        float(row.hi),
        None if row.hi_ts is None else int(row.hi_ts),
    )


def _raw_buckets(
    session: Session, series_id: int, start_ms: int, end_ms: int, buckets: int
) -> list[_Bucket]:
    """The buckets of the window, each sample in the bucket of its own time."""
    rows = session.execute(
        _BUCKETS_SQL,
        {"series": series_id, "start": start_ms, "end": end_ms, "buckets": buckets,
         "span": end_ms - start_ms},
    ).all()  # fmt: skip
    return [_bucket_of_row(row) for row in rows]


def _rollup_buckets(
    session: Session, series_id: int, start_ms: int, end_ms: int, buckets: int
) -> list[_Bucket]:
    """The buckets of the window from ``ts_minute`` for its whole minutes and ``ts_sample`` for
    the partial minutes at either end; a minute goes to the bucket of its (clamped) start."""
    span = end_ms - start_ms
    first = -(-start_ms // MINUTE_MS) * MINUTE_MS  # the first whole minute starts here
    last = max(first, end_ms // MINUTE_MS * MINUTE_MS)  # ... and the last one ends here
    rows = session.execute(
        _ROLLUP_BUCKETS_SQL,
        {"series": series_id, "start": start_ms, "first": first, "last": last,
         "buckets": buckets, "span": span},
    ).all()  # fmt: skip
    found = {int(row.bucket): _bucket_of_row(row) for row in rows}
    for lo, hi in ((start_ms, min(first, end_ms)), (last, end_ms)):
        if lo >= hi:
            continue
        # a partial minute: its samples go to the bucket of its start, clamped to the window
        index = (max(lo, start_ms) - start_ms) * buckets // span
        for ts_ms, value in session.execute(
            _PARTIAL_MINUTE_SQL, {"series": series_id, "lo": lo, "hi": hi}
        ):
            bucket = found.get(index)
            if bucket is None:
                found[index] = _Bucket(1, float(value), int(ts_ms), float(value), int(ts_ms))
            else:
                bucket.add(int(ts_ms), float(value))
    return [found[index] for index in sorted(found)]


def _operations(
    session: Session, machine_id: int, start_ms: int, end_ms: int
) -> list[OperationMark]:
    """Operations run on the machine that overlap the window (started, not finished before)."""
    rows = session.execute(
        select(WorkOrder.external_id, WorkOrderOperation.sequence,
               WorkOrderOperation.started_ms, WorkOrderOperation.finished_ms)
        .join(WorkOrder, WorkOrder.id == WorkOrderOperation.work_order_id)
        .where(
            WorkOrderOperation.machine_id == machine_id,
            WorkOrderOperation.started_ms.is_not(None),
            WorkOrderOperation.started_ms < end_ms,
            or_(WorkOrderOperation.finished_ms.is_(None),
                WorkOrderOperation.finished_ms > start_ms),
        )
        .order_by(WorkOrderOperation.started_ms, WorkOrderOperation.id)
    ).all()  # fmt: skip
    return [OperationMark(row[0], row[1], row[2] or 0, row[3]) for row in rows]  # started: not None


def _alarms(
    session: Session, machine_id: int, metric: str, start_ms: int, end_ms: int
) -> list[AlarmMark]:
    """Alarms of the machine on this metric, or machine-wide, that overlap the window."""
    found = session.scalars(
        select(Alarm)
        .where(
            Alarm.machine_id == machine_id,
            or_(Alarm.metric == metric, Alarm.metric.is_(None)),
            Alarm.raised_ms < end_ms,
            or_(Alarm.cleared_ms.is_(None), Alarm.cleared_ms > start_ms),
        )
        .order_by(Alarm.raised_ms, Alarm.id)
    ).all()
    return [
        AlarmMark(alarm.id, alarm.rule, alarm.priority, alarm.metric, alarm.raised_ms,
                  alarm.cleared_ms, alarm.message)
        for alarm in found
    ]  # fmt: skip
