"""Alarm rules, alarms and their history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id(name: str = "id") -> sa.Column[int]:
    # 64-bit on PostgreSQL; INTEGER PRIMARY KEY (the autoincrementing rowid) on SQLite.
    return sa.Column(
        name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
        nullable=False,
    )  # fmt: skip


def _alarm_ref() -> sa.Column[int]:
    return sa.Column(
        "alarm_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
    )


def _ms(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alarm_rule",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        _ms("created_ms"),
        _ms("updated_ms"),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_rule"),
        sa.UniqueConstraint("name", name="uq_alarm_rule_name"),
    )
    op.create_table(
        "alarm_limit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("low_low", sa.Double(), nullable=True),
        sa.Column("low", sa.Double(), nullable=True),
        sa.Column("high", sa.Double(), nullable=True),
        sa.Column("high_high", sa.Double(), nullable=True),
        _ms("updated_ms"),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["machine_id"],
            ["machine.id"],
            name="fk_alarm_limit_machine_id_machine",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_limit"),
        sa.UniqueConstraint("machine_id", "metric", name="uq_alarm_limit_machine_id_metric"),
    )
    op.create_table(
        "alarm",
        _big_id(),
        sa.Column("point_key", sa.String(255), nullable=False),
        sa.Column("open_key", sa.String(255), nullable=True),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=False),
        sa.Column("machine_name", sa.String(128), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("area", sa.String(128), nullable=True),
        sa.Column("line", sa.String(128), nullable=True),
        sa.Column("metric", sa.String(64), nullable=True),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("limit_value", sa.Double(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        _ms("raised_ms"),
        _ms("active_ms"),
        _ms("returned_ms", nullable=True),
        _ms("acked_ms", nullable=True),
        sa.Column("acked_by", sa.String(128), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        _ms("cleared_ms", nullable=True),
        sa.Column("activations", sa.Integer(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        _ms("next_escalation_ms", nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("consequence", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _ms("updated_ms"),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machine.id"], name="fk_alarm_machine_id_machine", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alarm"),
        sa.UniqueConstraint("open_key", name="uq_alarm_open_key"),
    )
    op.create_index("ix_alarm_point_key", "alarm", ["point_key"])
    op.create_index("ix_alarm_machine_active", "alarm", ["machine_id", "active_ms"])
    op.create_index("ix_alarm_next_escalation_ms", "alarm", ["next_escalation_ms"])
    op.create_table(
        "alarm_event",
        _big_id(),
        _alarm_ref(),
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ms("ts_ms"),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("limit_value", sa.Double(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        _ms("shelved_until_ms", nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("notify", sa.String(12), nullable=False),
        _ms("notified_ms", nullable=True),
        _ms("recorded_ms"),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarm.id"], name="fk_alarm_event_alarm_id_alarm", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_alarm_event"),
    )
    op.create_index("ix_alarm_event_alarm_id_ts", "alarm_event", ["alarm_id", "ts_ms"])
    op.create_index("ix_alarm_event_ts_ms", "alarm_event", ["ts_ms"])
    op.create_index("ix_alarm_event_notify", "alarm_event", ["notify"])
    op.create_table(
        "alarm_shelf",
        sa.Column("point_key", sa.String(255), nullable=False),
        _alarm_ref(),
        _ms("shelved_until_ms"),
        sa.Column("shelved_by", sa.String(128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        _ms("shelved_ms"),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarm.id"], name="fk_alarm_shelf_alarm_id_alarm", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("point_key", name="pk_alarm_shelf"),
    )
    op.create_index("ix_alarm_shelf_shelved_until_ms", "alarm_shelf", ["shelved_until_ms"])


def downgrade() -> None:
    op.drop_index("ix_alarm_shelf_shelved_until_ms", table_name="alarm_shelf")
    op.drop_table("alarm_shelf")
    op.drop_index("ix_alarm_event_notify", table_name="alarm_event")
    op.drop_index("ix_alarm_event_ts_ms", table_name="alarm_event")
    op.drop_index("ix_alarm_event_alarm_id_ts", table_name="alarm_event")
    op.drop_table("alarm_event")
    op.drop_index("ix_alarm_next_escalation_ms", table_name="alarm")
    op.drop_index("ix_alarm_machine_active", table_name="alarm")
    op.drop_index("ix_alarm_point_key", table_name="alarm")
    op.drop_table("alarm")
    op.drop_table("alarm_limit")
    op.drop_table("alarm_rule")
