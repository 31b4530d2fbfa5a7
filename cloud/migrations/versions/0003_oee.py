"""OEE, shift calendars, downtime reasons and KPI roll-ups.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ms(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _machine_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["machine_id"], ["machine.id"], name=f"fk_{table}_machine_id_machine", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "oee_calendar",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(96), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        _ms("updated_ms"),
        sa.ForeignKeyConstraint(
            ["site_id"], ["asset_site.id"], name="fk_oee_calendar_site_id_asset_site"
        ),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["asset_line.id"],
            name="fk_oee_calendar_line_id_asset_line",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_oee_calendar"),
        sa.UniqueConstraint("name", name="uq_oee_calendar_name"),
        sa.UniqueConstraint("scope", name="uq_oee_calendar_scope"),
    )
    op.create_table(
        "oee_machine_settings",
        sa.Column("machine_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ideal_cycle_time_s", sa.Double(), nullable=True),
        sa.Column("micro_stop_s", sa.Double(), nullable=True),
        sa.Column("counter_rollover", sa.BigInteger(), nullable=True),
        _ms("updated_ms"),
        _machine_fk("oee_machine_settings"),
        sa.PrimaryKeyConstraint("machine_id", name="pk_oee_machine_settings"),
    )
    op.create_table(
        "oee_downtime_reason",
        sa.Column("machine_id", sa.Integer(), autoincrement=False, nullable=False),
        _ms("start_ms"),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("entered_by", sa.String(128), nullable=False),
        _ms("entered_ms"),
        _machine_fk("oee_downtime_reason"),
        sa.PrimaryKeyConstraint("machine_id", "start_ms", name="pk_oee_downtime_reason"),
    )
    op.create_table(
        "oee_rollup",
        sa.Column("machine_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("period_kind", sa.String(8), nullable=False),
        _ms("period_start_ms"),
        _ms("period_end_ms"),
        sa.Column("shift_name", sa.String(64), nullable=True),
        sa.Column("local_date", sa.String(10), nullable=True),
        *(_ms(n) for n in ("pot_ms", "pdot_ms", "apt_ms", "aust_ms", "adet_ms", "adot_ms")),
        _ms("unkt_ms"),
        _ms("micro_stop_ms"),
        sa.Column("micro_stops", sa.Integer(), nullable=False),
        sa.Column("failure_events", sa.Integer(), nullable=False),
        *(
            sa.Column(n, sa.Double(), nullable=True)
            for n in (
                "produced",
                "good",
                "scrap",
                "startup_scrap",
                "ideal_produced_s",
                "ideal_good_s",
                "ideal_startup_scrap_s",
            )
        ),
        _ms("computed_ms"),
        _machine_fk("oee_rollup"),
        sa.PrimaryKeyConstraint(
            "machine_id", "period_kind", "period_start_ms", name="pk_oee_rollup"
        ),
    )
    op.create_index("ix_oee_rollup_kind_start", "oee_rollup", ["period_kind", "period_start_ms"])


def downgrade() -> None:
    op.drop_index("ix_oee_rollup_kind_start", table_name="oee_rollup")
    op.drop_table("oee_rollup")
    op.drop_table("oee_downtime_reason")
    op.drop_table("oee_machine_settings")
    op.drop_table("oee_calendar")
