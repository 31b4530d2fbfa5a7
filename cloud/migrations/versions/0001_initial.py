"""Initial schema: time series, ingest bookkeeping, assets and machine-state intervals.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id() -> sa.Column[int]:
    # 64-bit on PostgreSQL; INTEGER PRIMARY KEY (the autoincrementing rowid) on SQLite.
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
        nullable=False,
    )  # fmt: skip


def _ms(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _id(name: str, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(64), nullable=nullable)


def upgrade() -> None:
    # ----------------------------------------------------------------- time series
    op.create_table(
        "ts_series",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _id("site"),
        _id("edge"),
        _id("device"),
        _id("metric"),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("data_type", sa.String(16), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("low_limit", sa.Double(), nullable=True),
        sa.Column("high_limit", sa.Double(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ts_series"),
        sa.UniqueConstraint("edge", "device", "metric", name="uq_ts_series_edge_device_metric"),
    )
    # No primary or foreign key on samples: COPY appends at full speed.
    op.create_table(
        "ts_sample",
        sa.Column("series_id", sa.Integer(), nullable=False),
        _ms("ts"),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        sa.Column("quality", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_ts_sample_series_id_ts", "ts_sample", ["series_id", "ts"])
    op.create_table(
        "ts_latest",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        _ms("ts"),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        sa.Column("quality", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("series_id", name="pk_ts_latest"),
    )

    # ----------------------------------------------------------------- ingest
    op.create_table(
        "ingest_message",
        _id("edge"),
        _id("session"),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _id("site"),
        _id("device"),
        sa.Column("kind", sa.String(16), nullable=False),
        _ms("received_ms"),
        sa.PrimaryKeyConstraint("edge", "session", "seq", name="pk_ingest_message"),
    )
    op.create_table(
        "dead_letter",
        _big_id(),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        _ms("received_ms"),
        _id("site", nullable=True),
        _id("edge", nullable=True),
        _id("session", nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letter"),
    )
    op.create_index("ix_dead_letter_received_ms", "dead_letter", ["received_ms"])
    op.create_table(
        "device_event",
        _big_id(),
        _id("site"),
        _id("edge"),
        _id("device"),
        _id("session"),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        _ms("ts_ms"),
        sa.Column("metric", sa.String(64), nullable=True),
        sa.Column("previous", sa.JSON(), nullable=True),
        sa.Column("current", sa.JSON(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("historical", sa.Boolean(), nullable=False),
        _ms("received_ms"),
        sa.PrimaryKeyConstraint("id", name="pk_device_event"),
    )
    op.create_index("ix_device_event_edge_device_ts", "device_event", ["edge", "device", "ts_ms"])
    op.create_table(
        "edge_node",
        _id("edge"),
        _id("site"),
        sa.Column("online", sa.Boolean(), nullable=False),
        _id("session", nullable=True),
        _ms("last_seen_ms"),
        _ms("status_created_ms", nullable=True),
        sa.Column("health", sa.JSON(), nullable=False),
        _ms("clock_skew_ms", nullable=True),
        sa.PrimaryKeyConstraint("edge", name="pk_edge_node"),
    )

    # ----------------------------------------------------------------- assets (ISA-95)
    op.create_table(
        "asset_site",
        _id("id"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_asset_site"),
    )
    op.create_table(
        "asset_area",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _id("site_id"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["asset_site.id"], name="fk_asset_area_site_id_asset_site"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_asset_area"),
        sa.UniqueConstraint("site_id", "name", name="uq_asset_area_site_id_name"),
    )
    op.create_table(
        "asset_line",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"], ["asset_area.id"], name="fk_asset_line_area_id_asset_area"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_asset_line"),
        sa.UniqueConstraint("area_id", "name", name="uq_asset_line_area_id_name"),
    )
    op.create_table(
        "machine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        _id("site_id"),
        sa.Column("area_id", sa.Integer(), nullable=True),
        sa.Column("line_id", sa.Integer(), nullable=True),
        _id("edge"),
        _id("device"),
        _id("profile", nullable=True),
        sa.Column("protocol", sa.String(32), nullable=True),
        sa.Column("ideal_cycle_time_s", sa.Double(), nullable=True),
        sa.Column("units_per_cycle", sa.Integer(), nullable=False),
        sa.Column("state_map", sa.JSON(), nullable=False),
        sa.Column("placed_by", sa.String(16), nullable=False),
        _ms("created_ms"),
        _ms("updated_ms"),
        sa.ForeignKeyConstraint(
            ["site_id"], ["asset_site.id"], name="fk_machine_site_id_asset_site"
        ),
        sa.ForeignKeyConstraint(
            ["area_id"], ["asset_area.id"], name="fk_machine_area_id_asset_area"
        ),
        sa.ForeignKeyConstraint(
            ["line_id"], ["asset_line.id"], name="fk_machine_line_id_asset_line"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_machine"),
        sa.UniqueConstraint("edge", "device", name="uq_machine_edge_device"),
    )

    # ----------------------------------------------------------------- machine state
    op.create_table(
        "state_interval",
        _big_id(),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("raw_code", sa.String(64), nullable=True),
        sa.Column("fault_code", sa.String(64), nullable=True),
        _ms("start_ms"),
        _ms("end_ms", nullable=True),
        sa.ForeignKeyConstraint(
            ["machine_id"],
            ["machine.id"],
            name="fk_state_interval_machine_id_machine",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_state_interval"),
    )
    op.create_index("ix_state_interval_machine_start", "state_interval", ["machine_id", "start_ms"])


def downgrade() -> None:
    op.drop_index("ix_state_interval_machine_start", table_name="state_interval")
    op.drop_table("state_interval")
    op.drop_table("machine")
    op.drop_table("asset_line")
    op.drop_table("asset_area")
    op.drop_table("asset_site")
    op.drop_table("edge_node")
    op.drop_index("ix_device_event_edge_device_ts", table_name="device_event")
    op.drop_table("device_event")
    op.drop_index("ix_dead_letter_received_ms", table_name="dead_letter")
    op.drop_table("dead_letter")
    op.drop_table("ingest_message")
    op.drop_table("ts_latest")
    op.drop_index("ix_ts_sample_series_id_ts", table_name="ts_sample")
    op.drop_table("ts_sample")
    op.drop_table("ts_series")
