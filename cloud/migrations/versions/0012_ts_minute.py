"""Per-minute min/max roll-up of the samples (``ts_minute``), back-filled from ``ts_sample``.

Long-window charts read one row a minute instead of every sample (docs/charts.md). The
back-fill is one ``INSERT ... SELECT ... GROUP BY`` over the good numeric samples already
stored; the time of each minute's min and max is the earliest sample holding it, found by an
index range scan of that minute. It runs on SQLite and PostgreSQL alike.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ts floored to its minute, also for times before 1970 (SQL's % keeps the dividend's sign)
_MINUTE = "ts - ((ts % 60000) + 60000) % 60000"
_GOOD = "quality = 0 AND value IS NOT NULL"
_EARLIEST = (
    "(SELECT min(s.ts) FROM ts_sample s WHERE s.series_id = m.series_id"
    " AND s.ts >= m.minute_ms AND s.ts < m.minute_ms + 60000"
    " AND s.quality = 0 AND s.value = m.{extreme})"
)
BACKFILL_SQL = f"""
INSERT INTO ts_minute (series_id, minute_ms, n, vmin, vmin_ts, vmax, vmax_ts)
SELECT m.series_id, m.minute_ms, m.n,
       m.vmin, {_EARLIEST.format(extreme="vmin")},
       m.vmax, {_EARLIEST.format(extreme="vmax")}
FROM (
    SELECT series_id, {_MINUTE} AS minute_ms, count(*) AS n,
           min(value) AS vmin, max(value) AS vmax
    FROM ts_sample
    WHERE {_GOOD}
    GROUP BY series_id, {_MINUTE}
) m
"""  # noqa: S608 - constant fragments only


def upgrade() -> None:
    op.create_table(
        "ts_minute",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("minute_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("vmin", sa.Double(), nullable=False),
        sa.Column("vmin_ts", sa.BigInteger(), nullable=False),
        sa.Column("vmax", sa.Double(), nullable=False),
        sa.Column("vmax_ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "minute_ms", name="pk_ts_minute"),
    )
    op.execute(BACKFILL_SQL)


def downgrade() -> None:
    op.drop_table("ts_minute")
