"""Charts over the per-minute roll-up ``ts_minute`` (SQLite and PostgreSQL).

Six hours of 1 s temperature go through the real ``IngestWriter``, with one single-sample spike
in the middle of a minute, one uncertain outlier and one bad reading (neither is charted), and a
repeated value so that the earliest time of an extreme matters. Windows whose bucket edges fall
on minutes must give exactly the raw path's points; other windows must give what a reference
computed in Python from every raw sample gives when each minute goes, whole, to the bucket its
(clamped) start falls in; both keep the spike and count the same samples.
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from cloud.assets.models import Machine
from cloud.charts.service import MINUTE_MS, ROLLUP_MIN_BUCKET_MS, chart_series
from cloud.db import alembic_config, migrate
from cloud.ingest.writer import IngestWriter
from cloud.timeseries.models import TsMinute, ts_sample
from protocols.quality import Quality
from protocols.wire import MetricDefinition

T = 1_800_000_000_000  # a whole minute
HOURS = 6
SECONDS = HOURS * 3600
SPIKE_AT, SPIKE = T + 9_876_500, 250.0  # half a second into second 9876, mid-minute
OUTLIER_AT = T + 12_000_000  # uncertain: not charted
BAD_AT = T + 13_000_000  # bad, no value: not charted
METRICS = (MetricDefinition("temperature", "float32", "temperature", "degC"),)


def _temperature(second: int) -> float:
    return 40.0 + (second % 900) // 30  # steps of 30 s: every value repeats 30 times


@pytest.fixture
def oven(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("oven1", metrics=METRICS)])
    for first in range(0, SECONDS, 3_600):
        samples: list[tuple[str, int, float | None] | tuple[str, int, float | None, Quality]] = []
        for second in range(first, first + 3_600):
            at = T + second * 1_000
            if at == OUTLIER_AT:
                samples.append(("temperature", at, 900.0, Quality.UNCERTAIN))
            elif at == BAD_AT:
                samples.append(("temperature", at, None, Quality.BAD))
            else:
                samples.append(("temperature", at, _temperature(second)))
            if at + 500 == SPIKE_AT:
                samples.append(("temperature", SPIKE_AT, SPIKE))
        writer.write([wire.data("oven1", samples)])
    with Session(db_engine) as session:
        return session.scalars(select(Machine.id).where(Machine.device == "oven1")).one()


def _good_samples(engine, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ts_sample.c.ts, ts_sample.c.value)
            .where(ts_sample.c.quality == 0, ts_sample.c.value.is_not(None))
            .where(ts_sample.c.ts >= start_ms, ts_sample.c.ts < end_ms)
            .order_by(ts_sample.c.ts)
        ).all()
    return [(int(r[0]), float(r[1])) for r in rows]


def _by_minute_reference(samples, start_ms: int, end_ms: int, buckets: int):
    """Min/max per bucket where each sample goes to the bucket of its minute's clamped start."""
    span = end_ms - start_ms
    by_bucket: dict[int, list[tuple[int, float]]] = {}
    for ts_ms, value in samples:
        minute = max(start_ms, ts_ms - ts_ms % MINUTE_MS)
        by_bucket.setdefault((minute - start_ms) * buckets // span, []).append((ts_ms, value))
    points = []
    for index in sorted(by_bucket):
        held = by_bucket[index]
        lowest = min(held, key=lambda s: (s[1], s[0]))  # the earliest of equal minima
        highest = min(held, key=lambda s: (-s[1], s[0]))  # the earliest of equal maxima
        points.extend(sorted({lowest, highest}))
    return points


def _points(chart) -> list[tuple[int, float]]:
    return [(p.ts_ms, p.value) for p in chart.points]


def _both(db_engine, machine_id, start_ms, end_ms, points, method):
    with Session(db_engine) as session:
        rolled = chart_series(session, machine_id, "temperature", start_ms, end_ms, points, method)
        raw = chart_series(
            session, machine_id, "temperature", start_ms, end_ms, points, method, rollup=False
        )
    return rolled, raw


@pytest.mark.parametrize(
    ("points", "method"),
    [(36, "minmax"), (18, "minmax"), (36, "lttb"), (24, "lttb")],
)
def test_windows_with_bucket_edges_on_minutes_give_the_raw_points(db_engine, oven, points, method):
    start, end = T, T + SECONDS * 1_000
    buckets = points // 2 if method == "minmax" else points
    assert (end - start) // buckets >= ROLLUP_MIN_BUCKET_MS  # the roll-up path is taken
    assert (end - start) % (buckets * MINUTE_MS) == 0  # every bucket edge is on a minute
    rolled, raw = _both(db_engine, oven, start, end, points, method)
    assert _points(rolled) == _points(raw)
    assert rolled.raw_count == raw.raw_count == SECONDS - 2 + 1  # - outlier - bad + spike
    assert (SPIKE_AT, SPIKE) in _points(rolled)
    assert max(p.value for p in rolled.points) == SPIKE
    assert len(rolled.points) <= points


def test_the_rollup_path_reads_the_minute_rows(db_engine, oven):
    """Taking the spike's minute out of ``ts_minute`` (and only there) takes it off the chart:
    proof that the whole minutes come from the roll-up, not from the samples."""
    start, end = T, T + SECONDS * 1_000
    with db_engine.begin() as conn:
        conn.execute(
            delete(TsMinute).where(TsMinute.minute_ms == SPIKE_AT // MINUTE_MS * MINUTE_MS)
        )
    rolled, raw = _both(db_engine, oven, start, end, 36, "minmax")
    assert (SPIKE_AT, SPIKE) in _points(raw)
    assert (SPIKE_AT, SPIKE) not in _points(rolled)
    assert rolled.raw_count == raw.raw_count - 61  # the minute's 60 samples and the spike


@pytest.mark.parametrize(
    ("start", "end", "points", "method"),
    [
        (T + 12_345, T + 5 * 3_600_000 + 777, 40, "minmax"),
        (T + 29_999, T + SECONDS * 1_000 - 1, 50, "minmax"),
        (T + 45_001, T + 4 * 3_600_000 + 59_999, 20, "lttb"),
        # the spike in the partial first minute of the window, then in the partial last one
        (SPIKE_AT - 400, T + SECONDS * 1_000, 30, "minmax"),
        (T + 61_000, SPIKE_AT + 1, 12, "minmax"),
    ],
)
def test_unaligned_windows_keep_the_spike_and_every_point_is_a_sample(
    db_engine, oven, start, end, points, method
):
    buckets = points // 2 if method == "minmax" else points
    assert (end - start) >= ROLLUP_MIN_BUCKET_MS * buckets
    rolled, raw = _both(db_engine, oven, start, end, points, method)
    samples = _good_samples(db_engine, start, end)
    assert rolled.raw_count == raw.raw_count == len(samples)
    assert (SPIKE_AT, SPIKE) in _points(rolled)
    assert set(_points(rolled)) <= set(samples)
    times = [p.ts_ms for p in rolled.points]
    assert times == sorted(set(times))
    assert len(rolled.points) <= points
    if method == "minmax":
        assert _points(rolled) == _by_minute_reference(samples, start, end, buckets)


def test_narrow_buckets_read_the_raw_samples(db_engine, oven):
    """Buckets under the threshold: the roll-up is not used, even with its rows gone."""
    start, end = T, T + 3_600_000
    with db_engine.begin() as conn:
        conn.execute(delete(TsMinute))
    rolled, raw = _both(db_engine, oven, start, end, 1_000, "minmax")
    assert _points(rolled) == _points(raw)
    assert rolled.raw_count == 3_600


def test_an_empty_window_over_the_rollup(db_engine, oven):
    later = T + SECONDS * 1_000 + 17
    rolled, raw = _both(db_engine, oven, later, later + 24 * 3_600_000, 100, "minmax")
    assert (rolled.points, rolled.raw_count) == ([], 0)
    assert (raw.points, raw.raw_count) == ([], 0)


# ------------------------------------------------------------------ migration 0012 back-fill


def _expected_minutes(rows) -> dict[tuple[int, int], tuple[int, float, int, float, int]]:
    """The roll-up computed in Python from ``(series_id, ts, value, quality)`` rows."""
    found: dict[tuple[int, int], tuple[int, float, int, float, int]] = {}
    for series_id, ts_ms, value, quality in rows:
        if quality != 0 or value is None:
            continue
        key = (series_id, ts_ms - ts_ms % MINUTE_MS)
        if key not in found:
            found[key] = (1, value, ts_ms, value, ts_ms)
            continue
        n, lo, lo_ts, hi, hi_ts = found[key]
        if value < lo or (value == lo and ts_ms < lo_ts):
            lo, lo_ts = value, ts_ms
        if value > hi or (value == hi and ts_ms < hi_ts):
            hi, hi_ts = value, ts_ms
        found[key] = (n + 1, lo, lo_ts, hi, hi_ts)
    return found


def _stored_minutes(engine) -> dict[tuple[int, int], tuple[int, float, int, float, int]]:
    with engine.connect() as conn:
        return {
            (r.series_id, r.minute_ms): (r.n, r.vmin, r.vmin_ts, r.vmax, r.vmax_ts)
            for r in conn.execute(select(TsMinute))
        }


def test_migration_0012_backfills_the_rollup_from_stored_samples(db_url, db_engine):
    from alembic import command

    command.downgrade(alembic_config(db_url), "0011")
    rows = [
        # series 1: a repeated min and max (the earliest wins), written out of time order
        (1, T + 50_000, 5.0, 0), (1, T + 10_000, 5.0, 0), (1, T + 20_000, 9.0, 0),
        (1, T + 30_000, 9.0, 0), (1, T + 40_000, 7.0, 0),
        # ... a minute holding only uncertain, bad and text samples: no row
        (1, T + 60_000, 1.0, 1), (1, T + 70_000, None, 2), (1, T + 80_000, None, 0),
        # ... the next minute, its first and last millisecond
        (1, T + 120_000, 3.0, 0), (1, T + 179_999, -3.0, 0), (1, T + 150_000, 99.0, 1),
        # series 2: one sample, and one before 1970 (its minute is floored, not truncated)
        (2, T + 10_000, 42.0, 0), (2, -90_001, 1.5, 0), (2, -120_000, 2.5, 0),
    ]  # fmt: skip
    with db_engine.begin() as conn:
        conn.execute(
            ts_sample.insert(),
            [{"series_id": s, "ts": t, "value": v, "quality": q,
              "text_value": "open" if v is None and q == 0 else None} for s, t, v, q in rows],
        )  # fmt: skip
    migrate(db_url)
    stored = _stored_minutes(db_engine)
    assert stored == _expected_minutes(rows)
    assert stored[(1, T)] == (5, 5.0, T + 10_000, 9.0, T + 20_000)
    assert stored[(2, -120_000)] == (2, 1.5, -90_001, 2.5, -120_000)
    assert (1, T + 60_000) not in stored


def test_the_backfill_and_the_ingest_writer_agree(db_url, db_engine, oven):
    """What the writer maintained batch by batch equals a back-fill from the stored samples."""
    from alembic import command

    maintained = _stored_minutes(db_engine)
    command.downgrade(alembic_config(db_url), "0011")
    migrate(db_url)
    assert _stored_minutes(db_engine) == maintained
    with db_engine.connect() as conn:
        minutes = conn.execute(text("SELECT count(*) FROM ts_minute")).scalar_one()
    assert minutes == SECONDS // 60


def test_migration_0012_matches_the_model(db_engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import cloud.models  # noqa: F401  (every other table on Base.metadata)
    from cloud.db import Base

    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [item for item in diff if "ts_minute" in repr(item)] == []
    assert "ts_minute" in Base.metadata.tables
