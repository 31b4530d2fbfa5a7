"""Production records: operator events, machine counts per operation, unit cycles, tests,
inspections, lots staged for backflush.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _operation_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("paused_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("paused_since_ms", sa.BigInteger(), nullable=True),
        sa.Column("machine_cycles", sa.Integer(), server_default="0", nullable=False),
        sa.Column("machine_good", sa.Integer(), server_default="0", nullable=False),
        sa.Column("machine_scrap", sa.Integer(), server_default="0", nullable=False),
        sa.Column("counted_to_ms", sa.BigInteger(), nullable=True),
    )


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    referred = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}_{referred}")


def upgrade() -> None:
    with op.batch_alter_table("work_order_operation") as batch:
        for column in _operation_columns():
            batch.add_column(column)
    with op.batch_alter_table("consumption") as batch:
        batch.add_column(sa.Column("source", sa.String(16), server_default="scan", nullable=False))
    op.create_table(
        "operation_event",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("operation_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("ms", sa.BigInteger(), nullable=False),
        sa.Column("good", sa.Integer(), nullable=False),
        sa.Column("scrap", sa.Integer(), nullable=False),
        sa.Column("rework", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_operation_event"),
        _fk("operation_event", "operation_id", "work_order_operation.id"),
    )
    op.create_index("ix_operation_event_operation_id", "operation_event", ["operation_id"])
    op.create_table(
        "unit_cycle",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("unit_id", sa.BigInteger(), nullable=False),
        sa.Column("operation_id", sa.BigInteger(), nullable=True),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unit_cycle"),
        _fk("unit_cycle", "unit_id", "unit.id"),
        _fk("unit_cycle", "operation_id", "work_order_operation.id"),
        _fk("unit_cycle", "machine_id", "machine.id"),
    )
    op.create_index("ix_unit_cycle_unit_id", "unit_cycle", ["unit_id"])
    op.create_index("ix_unit_cycle_machine_start", "unit_cycle", ["machine_id", "start_ms"])
    op.create_table(
        "unit_test",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("unit_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unit_test"),
        _fk("unit_test", "unit_id", "unit.id"),
        _fk("unit_test", "machine_id", "machine.id"),
    )
    op.create_index("ix_unit_test_unit_id", "unit_test", ["unit_id"])
    op.create_table(
        "unit_test_value",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("test_id", sa.BigInteger(), nullable=False),
        sa.Column("characteristic", sa.String(64), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("low_limit", sa.Double(), nullable=True),
        sa.Column("high_limit", sa.Double(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unit_test_value"),
        _fk("unit_test_value", "test_id", "unit_test.id"),
    )
    op.create_index("ix_unit_test_value_test_id", "unit_test_value", ["test_id"])
    op.create_table(
        "inspection",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("unit_id", sa.BigInteger(), nullable=True),
        sa.Column("lot_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_id", sa.BigInteger(), nullable=True),
        sa.Column("characteristic", sa.String(64), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("attribute", sa.String(64), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("inspector", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inspection"),
        _fk("inspection", "unit_id", "unit.id"),
        _fk("inspection", "lot_id", "material_lot.id"),
        _fk("inspection", "operation_id", "work_order_operation.id"),
        sa.CheckConstraint(
            "(unit_id IS NULL) <> (lot_id IS NULL)", name="ck_inspection_one_subject"
        ),
    )
    op.create_index("ix_inspection_unit_id", "inspection", ["unit_id"])
    op.create_index("ix_inspection_lot_id", "inspection", ["lot_id"])
    op.create_table(
        "staged_lot",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("work_order_id", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staged_lot"),
        _fk("staged_lot", "work_order_id", "work_order.id"),
        _fk("staged_lot", "lot_id", "material_lot.id"),
        sa.UniqueConstraint("work_order_id", "lot_id", name="uq_staged_lot_work_order_id_lot_id"),
    )


def downgrade() -> None:
    for table in ("staged_lot", "inspection", "unit_test_value", "unit_test", "unit_cycle",
                  "operation_event"):  # fmt: skip
        op.drop_table(table)
    with op.batch_alter_table("consumption") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("work_order_operation") as batch:
        for column in reversed(_operation_columns()):
            batch.drop_column(column.name)
