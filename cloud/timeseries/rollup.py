"""The per-minute roll-up ``ts_minute``: for each series and minute, the count of good numeric
samples and the min and max with the time each first occurs, so that a chart over a month reads
43,200 minute rows instead of 2.6 M samples (``cloud.charts.service``).

``SqlTimeSeriesStore`` keeps it in the same transaction as the samples it writes:
``minute_rollup`` aggregates a batch in Python, ``upsert_minutes`` merges it in one statement
(counts add up, the smaller min and larger max win; of equal extremes the earlier time). So a
duplicate that never reaches ``ts_sample`` never reaches the roll-up, and a late sample lands in
its own minute. Migration 0012 back-fills it from the samples stored before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from cloud.timeseries.store import QUALITY_CODE
from protocols.quality import Quality

SampleRow = tuple[int, int, float | None, str | None, int, str | None]
"""A ``ts_sample`` row: series_id, ts_ms, value (a float or None), text_value, quality, reason."""

MINUTE_MS = 60_000
_GOOD = QUALITY_CODE[Quality.GOOD]
# Merging a batch's minute into the stored one: counts add up, the smaller min and larger max
# win, and of equal extremes the earlier time. SET expressions read the row as it was.
_MINUTE_MERGE = """
ON CONFLICT (series_id, minute_ms) DO UPDATE SET
    n = ts_minute.n + excluded.n,
    vmin = {least}(ts_minute.vmin, excluded.vmin),
    vmin_ts = CASE
        WHEN excluded.vmin < ts_minute.vmin THEN excluded.vmin_ts
        WHEN excluded.vmin = ts_minute.vmin THEN {least}(ts_minute.vmin_ts, excluded.vmin_ts)
        ELSE ts_minute.vmin_ts END,
    vmax = {greatest}(ts_minute.vmax, excluded.vmax),
    vmax_ts = CASE
        WHEN excluded.vmax > ts_minute.vmax THEN excluded.vmax_ts
        WHEN excluded.vmax = ts_minute.vmax THEN {least}(ts_minute.vmax_ts, excluded.vmax_ts)
        ELSE ts_minute.vmax_ts END
"""
_MINUTES_PG = (  # constant fragments only; every value is a bound parameter
    "INSERT INTO ts_minute (series_id, minute_ms, n, vmin, vmin_ts, vmax, vmax_ts)\n"  # noqa: S608
    "SELECT * FROM unnest(%b::int4[], %b::int8[], %b::int4[], %b::float8[], %b::int8[],"
    " %b::float8[], %b::int8[])" + _MINUTE_MERGE.format(least="LEAST", greatest="GREATEST")
)
_MINUTES_SQLITE = (
    "INSERT INTO ts_minute (series_id, minute_ms, n, vmin, vmin_ts, vmax, vmax_ts)\n"
    "VALUES (?, ?, ?, ?, ?, ?, ?)" + _MINUTE_MERGE.format(least="min", greatest="max")
)

MinuteRow = tuple[int, int, int, float, int, float, int]
"""A ``ts_minute`` row: series_id, minute_ms, n, vmin, vmin_ts, vmax, vmax_ts."""


def minute_rollup(rows: Iterable[SampleRow]) -> list[MinuteRow]:
    """The good numeric samples of ``rows`` per (series, minute): their count, and the min and
    max with the earliest time each occurs; ordered by (series, minute), one lock order."""
    minutes: dict[tuple[int, int], list[Any]] = {}
    for series_id, ts_ms, value, _text, quality, _reason in rows:
        if quality != _GOOD or value is None:
            continue
        key = (series_id, ts_ms - ts_ms % MINUTE_MS)  # Python's % floors, also before 1970
        held = minutes.get(key)
        if held is None:
            minutes[key] = [1, value, ts_ms, value, ts_ms]
            continue
        held[0] += 1
        if value < held[1] or (value == held[1] and ts_ms < held[2]):
            held[1], held[2] = value, ts_ms
        if value > held[3] or (value == held[3] and ts_ms < held[4]):
            held[3], held[4] = value, ts_ms
    return [(key[0], key[1], *held) for key, held in sorted(minutes.items())]


def upsert_minutes(conn: Connection, minutes: Sequence[MinuteRow]) -> None:
    """Merge ``minutes`` into ``ts_minute`` in one statement (PostgreSQL) or one executemany."""
    if not minutes:
        return
    if conn.dialect.name == "postgresql":
        dbapi: Any = conn.connection.dbapi_connection
        with dbapi.cursor() as cursor:
            cursor.execute(_MINUTES_PG, [list(column) for column in zip(*minutes, strict=True)])
    else:
        conn.exec_driver_sql(_MINUTES_SQLITE, list(minutes))
