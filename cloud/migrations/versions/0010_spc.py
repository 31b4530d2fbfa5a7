"""SPC: control charts, their frozen phase I limits, the plotted points and rule violations.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "spc_chart",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("chart_type", sa.String(8), nullable=False),
        sa.Column("subgroup_size", sa.Integer(), nullable=True),
        sa.Column("subgroup_window_s", sa.Integer(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("lsl", sa.Double(), nullable=True),
        sa.Column("target", sa.Double(), nullable=True),
        sa.Column("usl", sa.Double(), nullable=True),
        sa.Column("alarm", sa.Boolean(), nullable=False),
        sa.Column("alarm_priority", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_spc_chart"),
        sa.UniqueConstraint("name", name="uq_spc_chart_name"),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machine.id"], name="fk_spc_chart_machine_id_machine",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name="fk_spc_chart_product_id_product",
            ondelete="CASCADE",
        ),
    )  # fmt: skip
    op.create_index("ix_spc_chart_machine_id", "spc_chart", ["machine_id"])
    op.create_table(
        "spc_limits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chart_id", sa.Integer(), nullable=False),
        sa.Column("centre", sa.Double(), nullable=False),
        sa.Column("ucl", sa.Double(), nullable=False),
        sa.Column("lcl", sa.Double(), nullable=False),
        sa.Column("sigma", sa.Double(), nullable=False),
        sa.Column("dispersion_centre", sa.Double(), nullable=True),
        sa.Column("dispersion_ucl", sa.Double(), nullable=True),
        sa.Column("dispersion_lcl", sa.Double(), nullable=True),
        sa.Column("sample_size", sa.Double(), nullable=False),
        sa.Column("baseline_from_ms", sa.BigInteger(), nullable=False),
        sa.Column("baseline_to_ms", sa.BigInteger(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("subgroups_used", sa.Integer(), nullable=False),
        sa.Column("points_used", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_ms", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_spc_limits"),
        sa.ForeignKeyConstraint(
            ["chart_id"], ["spc_chart.id"], name="fk_spc_limits_chart_id_spc_chart",
            ondelete="CASCADE",
        ),
    )  # fmt: skip
    op.create_index("ix_spc_limits_chart_id_set_ms", "spc_limits", ["chart_id", "set_ms"])
    op.create_table(
        "spc_point",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("chart_id", sa.Integer(), nullable=False),
        sa.Column("limits_id", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_sample_ms", sa.BigInteger(), nullable=False),
        sa.Column("statistic", sa.Double(), nullable=False),
        sa.Column("dispersion", sa.Double(), nullable=True),
        sa.Column("sample_size", sa.Double(), nullable=False),
        sa.Column("z", sa.Double(), nullable=False),
        sa.Column("violations", sa.Integer(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_spc_point"),
        sa.ForeignKeyConstraint(
            ["chart_id"], ["spc_chart.id"], name="fk_spc_point_chart_id_spc_chart",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["limits_id"], ["spc_limits.id"], name="fk_spc_point_limits_id_spc_limits",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("chart_id", "ts_ms", name="uq_spc_point_chart_id_ts_ms"),
    )  # fmt: skip
    op.create_table(
        "spc_violation",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("chart_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(16), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("statistic", sa.Double(), nullable=False),
        sa.Column("alarm_id", sa.BigInteger(), nullable=True),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_spc_violation"),
        sa.ForeignKeyConstraint(
            ["chart_id"], ["spc_chart.id"], name="fk_spc_violation_chart_id_spc_chart",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "chart_id", "rule", "ts_ms", name="uq_spc_violation_chart_id_rule_ts_ms"
        ),
    )  # fmt: skip
    op.create_index("ix_spc_violation_chart_id_ts_ms", "spc_violation", ["chart_id", "ts_ms"])


def downgrade() -> None:
    op.drop_table("spc_violation")
    op.drop_table("spc_point")
    op.drop_table("spc_limits")
    op.drop_index("ix_spc_chart_machine_id", table_name="spc_chart")
    op.drop_table("spc_chart")
