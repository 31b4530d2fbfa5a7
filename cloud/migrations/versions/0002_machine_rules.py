"""Machines learn their fault-code texts, state rules and counter rollover from the device birth.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("machine") as batch:
        batch.add_column(sa.Column("fault_codes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("state_rules", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("counter_rollover", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machine") as batch:
        batch.drop_column("counter_rollover")
        batch.drop_column("state_rules")
        batch.drop_column("fault_codes")
