"""ERP webhooks: endpoints, the delivery outbox and every delivery attempt.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "erp_webhook",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=True),
        sa.Column("events", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erp_webhook"),
        sa.UniqueConstraint("name", name="uq_erp_webhook_name"),
    )
    op.create_table(
        "erp_delivery",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("work_order", sa.String(64), nullable=False),
        sa.Column("operation_sequence", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("round_start", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("claim", sa.String(32), nullable=True),
        sa.Column("claimed_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_erp_delivery"),
        sa.UniqueConstraint("endpoint", "event_id", name="uq_erp_delivery_endpoint_event_id"),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'delivered', 'failed')",
            name="ck_erp_delivery_known_state",
        ),
    )
    op.create_index(
        "ix_erp_delivery_state_next_attempt", "erp_delivery", ["state", "next_attempt_ms"]
    )
    op.create_index("ix_erp_delivery_endpoint_id", "erp_delivery", ["endpoint", "id"])
    op.create_table(
        "erp_delivery_attempt",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ms", sa.BigInteger(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_erp_delivery_attempt"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["erp_delivery.id"],
            name="fk_erp_delivery_attempt_delivery_id_erp_delivery",
        ),
        sa.UniqueConstraint(
            "delivery_id", "attempt", name="uq_erp_delivery_attempt_delivery_id_attempt"
        ),
    )


def downgrade() -> None:
    op.drop_table("erp_delivery_attempt")
    op.drop_table("erp_delivery")
    op.drop_table("erp_webhook")
