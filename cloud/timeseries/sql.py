"""The SQL time-series backend (SQLite or PostgreSQL through SQLAlchemy).

Samples go to ``ts_sample``: on PostgreSQL with ``COPY ... FROM STDIN`` on the raw psycopg
connection of the caller's transaction, on SQLite with one ``executemany``. ``ts_latest`` is
upserted only when the new timestamp is at least the stored one, so replayed history never
overwrites a current value. Aggregation happens in numpy over the fetched rows
(``cloud.timeseries.aggregate``).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, select

from cloud.db import dialect_insert, table_of, writer_engine
from cloud.timeseries.aggregate import aggregate_windows, window_bounds
from cloud.timeseries.models import TsLatest, ts_sample
from cloud.timeseries.store import (
    AGGREGATES,
    LatestValue,
    Point,
    RangeResult,
    RawSample,
)

_COPY_SQL = "COPY ts_sample (series_id, ts, value, text_value, quality, reason) FROM STDIN"
_latest = table_of(TsLatest)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqlTimeSeriesStore:
    """``TimeSeriesStore`` on the relational database (the zero-setup and default backend)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ writing

    def write_batch(self, points: Sequence[Point], conn: Connection | None = None) -> int:
        if not points:
            return 0
        if conn is None:
            with writer_engine(self.engine).begin() as own:
                return self._write(own, points)
        return self._write(conn, points)

    def _write(self, conn: Connection, points: Sequence[Point]) -> int:
        if conn.dialect.name == "postgresql":
            self._copy(conn, points)
        else:
            conn.execute(
                ts_sample.insert(),
                [
                    {
                        "series_id": p.series_id, "ts": p.ts_ms, "value": p.value,
                        "text_value": p.text_value, "quality": p.quality, "reason": p.reason,
                    }
                    for p in points
                ],
            )  # fmt: skip
        self._advance_latest(conn, points)
        return len(points)

    @staticmethod
    def _copy(conn: Connection, points: Sequence[Point]) -> None:
        dbapi: Any = conn.connection.dbapi_connection
        with dbapi.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
            for p in points:
                copy.write_row((p.series_id, p.ts_ms, p.value, p.text_value, p.quality, p.reason))

    @staticmethod
    def _advance_latest(conn: Connection, points: Sequence[Point]) -> None:
        newest: dict[int, Point] = {}
        for p in points:
            held = newest.get(p.series_id)
            if held is None or p.ts_ms >= held.ts_ms:
                newest[p.series_id] = p
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
        rows = [
            {
                "series_id": p.series_id, "ts": p.ts_ms, "value": p.value,
                "text_value": p.text_value, "quality": p.quality, "reason": p.reason,
            }
            for _, p in sorted(newest.items())  # one lock order for concurrent writers
        ]  # fmt: skip
        conn.execute(stmt, rows)

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
        hold_until = min(end_ms, max(_now_ms(), int(ts[-1]) if len(ts) else 0))
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
