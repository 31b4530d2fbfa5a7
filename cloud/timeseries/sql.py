"""The SQL time-series backend (SQLite or PostgreSQL through SQLAlchemy).

Samples go to ``ts_sample``: on PostgreSQL with a binary ``COPY ... FROM STDIN`` on the raw
psycopg connection of the caller's transaction, on SQLite with one ``executemany``. ``ts_latest``
gets the newest sample of each series in the batch, upserted only when its timestamp is at least
the stored one, so replayed history never overwrites a current value; on PostgreSQL that is one
statement over ``unnest`` arrays. ``write_rows`` takes plain ``SampleRow`` tuples (the ingest hot
path); ``write_batch`` takes ``Point`` objects. Aggregation happens in numpy over the fetched
rows (``cloud.timeseries.aggregate``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, select

from cloud.db import dialect_insert, table_of, writer_engine
from cloud.timeseries.aggregate import aggregate_windows, window_bounds
from cloud.timeseries.models import TsLatest, ts_sample
from cloud.timeseries.rollup import SampleRow, minute_rollup, upsert_minutes
from cloud.timeseries.store import (
    AGGREGATES,
    LatestValue,
    Point,
    RangeResult,
    RawSample,
)
from protocols.clock import now_ms

_COPY_SQL = (
    "COPY ts_sample (series_id, ts, value, text_value, quality, reason) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ("int4", "int8", "float8", "text", "int2", "text")
_INSERT_SQLITE = (
    "INSERT INTO ts_sample (series_id, ts, value, text_value, quality, reason) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# One statement for the whole batch, whatever its size (so psycopg prepares it once); %b sends
# the arrays in binary, which spares psycopg quoting every element.
_LATEST_PG = """
INSERT INTO ts_latest (series_id, ts, value, text_value, quality, reason)
SELECT * FROM unnest(
    %b::int4[], %b::int8[], %b::float8[], %b::text[], %b::int2[], %b::text[]
)
ON CONFLICT (series_id) DO UPDATE SET
    ts = EXCLUDED.ts, value = EXCLUDED.value, text_value = EXCLUDED.text_value,
    quality = EXCLUDED.quality, reason = EXCLUDED.reason
WHERE ts_latest.ts <= EXCLUDED.ts
"""
_latest = table_of(TsLatest)


def newest_by_series(rows: Sequence[SampleRow]) -> list[SampleRow]:
    """The newest row of each series (the later one of equal timestamps), ordered by series id.

    The order is one lock order for concurrent writers of ``ts_latest``.
    """
    newest = {row[0]: row for row in sorted(rows, key=itemgetter(1))}  # stable: later wins ties
    return [newest[series_id] for series_id in sorted(newest)]


class SqlTimeSeriesStore:
    """``TimeSeriesStore`` on the relational database (the zero-setup and default backend)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ writing

    def write_batch(self, points: Sequence[Point], conn: Connection | None = None) -> int:
        rows = [
            (p.series_id, p.ts_ms, None if p.value is None else float(p.value), p.text_value,
             p.quality, p.reason)
            for p in points
        ]  # fmt: skip
        return self.write_rows(rows, conn)

    def write_rows(self, rows: Sequence[SampleRow], conn: Connection | None = None) -> int:
        """``write_batch`` for plain rows; ``value`` must already be a float (or None)."""
        if not rows:
            return 0
        if conn is None:
            with writer_engine(self.engine).begin() as own:
                return self._write(own, rows)
        return self._write(conn, rows)

    def _write(self, conn: Connection, rows: Sequence[SampleRow]) -> int:
        newest = newest_by_series(rows)
        if conn.dialect.name == "postgresql":
            dbapi: Any = conn.connection.dbapi_connection
            with dbapi.cursor() as cursor:
                with cursor.copy(_COPY_SQL) as copy:
                    copy.set_types(_COPY_TYPES)
                    write_row = copy.write_row
                    for row in rows:
                        write_row(row)
                columns = [list(column) for column in zip(*newest, strict=True)]
                cursor.execute(_LATEST_PG, columns)
        else:
            conn.exec_driver_sql(_INSERT_SQLITE, list(rows))
            self._advance_latest_sqlite(conn, newest)
        upsert_minutes(conn, minute_rollup(rows))
        return len(rows)

    @staticmethod
    def _advance_latest_sqlite(conn: Connection, newest: Sequence[SampleRow]) -> None:
        stmt = dialect_insert(conn, _latest)
        stmt = stmt.on_conflict_do_update(
            index_elements=["series_id"],
            set_={
                "ts": stmt.excluded.ts,
                "value": stmt.excluded.value,
                "text_value": stmt.excluded.text_value,
                "quality": stmt.excluded.quality,
                "reason": stmt.excluded.reason,
            },
            where=_latest.c.ts <= stmt.excluded.ts,
        )
        columns = ("series_id", "ts", "value", "text_value", "quality", "reason")
        conn.execute(stmt, [dict(zip(columns, row, strict=True)) for row in newest])

    # ------------------------------------------------------------------ reading

    def range_query(
        self,
        series_id: int,
        start_ms: int,
        end_ms: int,
        window_ms: int | None,
        aggregates: Collection[str] = AGGREGATES,
    ) -> RangeResult:
        cols = (ts_sample.c.ts, ts_sample.c.value, ts_sample.c.text_value, ts_sample.c.quality)
        in_range = (
            select(*cols, ts_sample.c.reason)
            .where(
                ts_sample.c.series_id == series_id,
                ts_sample.c.ts >= start_ms,
                ts_sample.c.ts < end_ms,
            )
            .order_by(ts_sample.c.ts)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(in_range).all()
            if window_ms is None:
                samples = [RawSample(r[0], r[1], r[2], r[3], r[4]) for r in rows]
                return RangeResult(series_id, start_ms, end_ms, None, samples=samples)
            windows = window_bounds(start_ms, end_ms, window_ms)
            before = conn.execute(
                select(*cols)
                .where(ts_sample.c.series_id == series_id, ts_sample.c.ts < start_ms)
                .order_by(ts_sample.c.ts.desc())
                .limit(1)
            ).all()
        fetched = [*before, *rows]
        ts = np.fromiter((r[0] for r in fetched), dtype=np.int64, count=len(fetched))
        values = np.fromiter(
            (np.nan if r[1] is None else r[1] for r in fetched),
            dtype=np.float64,
            count=len(fetched),
        )
        quality = np.fromiter((r[3] for r in fetched), dtype=np.int64, count=len(fetched))
        hold_until = min(end_ms, max(now_ms(), int(ts[-1]) if len(ts) else 0))
        aggregated = aggregate_windows(ts, values, quality, windows, hold_until, aggregates)
        return RangeResult(series_id, start_ms, end_ms, window_ms, windows=aggregated)

    def latest(self, series_ids: Iterable[int]) -> dict[int, LatestValue]:
        ids = list(series_ids)
        if not ids:
            return {}
        query = select(_latest).where(_latest.c.series_id.in_(ids))
        with self.engine.connect() as conn:
            return {
                r.series_id: LatestValue(
                    r.series_id, r.ts, r.value, r.text_value, r.quality, r.reason
                )
                for r in conn.execute(query)
            }
