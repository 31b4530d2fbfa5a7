"""Condition monitoring: machine vibration classes, assessment history, maintenance suggestions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _machine_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["machine_id"], ["machine.id"], name=f"fk_{table}_machine_id_machine", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "machine_vibration_class",
        sa.Column("machine_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("class_id", sa.String(64), nullable=False),
        sa.Column("set_by", sa.String(128), nullable=True),
        sa.Column("set_ms", sa.BigInteger(), nullable=False),
        _machine_fk("machine_vibration_class"),
        sa.PrimaryKeyConstraint("machine_id", name="pk_machine_vibration_class"),
    )
    op.create_table(
        "condition_assessment",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("signal", sa.String(16), nullable=False),
        sa.Column("assessed_ms", sa.BigInteger(), nullable=False),
        sa.Column("data_to_ms", sa.BigInteger(), nullable=True),
        sa.Column("class_id", sa.String(64), nullable=True),
        sa.Column("zone", sa.String(1), nullable=True),
        sa.Column("rms", sa.Double(), nullable=True),
        sa.Column("health", sa.Double(), nullable=True),
        sa.Column("rul_h", sa.Double(), nullable=True),
        sa.Column("rul_low_h", sa.Double(), nullable=True),
        sa.Column("rul_high_h", sa.Double(), nullable=True),
        sa.Column("model", sa.String(16), nullable=True),
        sa.Column("points_used", sa.Integer(), nullable=False),
        sa.Column("temperature_metric", sa.String(64), nullable=True),
        sa.Column("temperature_slope_c_per_h", sa.Double(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        _machine_fk("condition_assessment"),
        sa.PrimaryKeyConstraint("id", name="pk_condition_assessment"),
        sa.UniqueConstraint(
            "machine_id",
            "metric",
            "signal",
            "data_to_ms",
            name="uq_condition_assessment_machine_id_metric_signal_data_to_ms",
        ),
        sa.CheckConstraint(
            "signal IN ('vibration', 'temperature')", name="ck_condition_assessment_known_signal"
        ),
    )
    op.create_index(
        "ix_condition_assessment_machine_assessed",
        "condition_assessment",
        ["machine_id", "assessed_ms"],
    )
    op.create_table(
        "maintenance_suggestion",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("due_by_ms", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("open_key", sa.String(96), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        _machine_fk("maintenance_suggestion"),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_suggestion"),
        sa.UniqueConstraint("open_key", name="uq_maintenance_suggestion_open_key"),
        sa.CheckConstraint(
            "kind IN ('vibration_zone', 'remaining_life', 'temperature_trend')",
            name="ck_maintenance_suggestion_known_kind",
        ),
        sa.CheckConstraint(
            "status IN ('open', 'accepted', 'dismissed', 'done')",
            name="ck_maintenance_suggestion_known_status",
        ),
    )
    op.create_index(
        "ix_maintenance_suggestion_machine_id", "maintenance_suggestion", ["machine_id"]
    )
    op.create_index(
        "ix_maintenance_suggestion_status_created",
        "maintenance_suggestion",
        ["status", "created_ms"],
    )


def downgrade() -> None:
    op.drop_table("maintenance_suggestion")
    op.drop_table("condition_assessment")
    op.drop_table("machine_vibration_class")
