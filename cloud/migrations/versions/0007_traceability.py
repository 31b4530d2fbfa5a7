"""Traceability: material lots, serialised units, consumption records.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "material_lot",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("supplier", sa.String(200), nullable=True),
        sa.Column("supplier_lot", sa.String(64), nullable=True),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_material_lot"),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name="fk_material_lot_product_id_product"
        ),
        sa.UniqueConstraint("external_id", name="uq_material_lot_external_id"),
    )
    op.create_index("ix_material_lot_product_id", "material_lot", ["product_id"])
    op.create_table(
        "unit",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("work_order_id", sa.BigInteger(), nullable=False),
        sa.Column("operation_id", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unit"),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name="fk_unit_product_id_product"),
        sa.ForeignKeyConstraint(
            ["work_order_id"], ["work_order.id"], name="fk_unit_work_order_id_work_order"
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["work_order_operation.id"],
            name="fk_unit_operation_id_work_order_operation",
        ),
        sa.UniqueConstraint("serial", name="uq_unit_serial"),
    )  # fmt: skip
    for column in ("product_id", "work_order_id", "operation_id"):
        op.create_index(f"ix_unit_{column}", "unit", [column])
    op.create_table(
        "consumption",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("consumer_unit_id", sa.BigInteger(), nullable=True),
        sa.Column("consumer_operation_id", sa.BigInteger(), nullable=True),
        sa.Column("consumed_lot_id", sa.BigInteger(), nullable=True),
        sa.Column("consumed_unit_id", sa.BigInteger(), nullable=True),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.Column("ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consumption"),
        sa.ForeignKeyConstraint(
            ["consumer_unit_id"], ["unit.id"], name="fk_consumption_consumer_unit_id_unit"
        ),
        sa.ForeignKeyConstraint(
            ["consumer_operation_id"], ["work_order_operation.id"],
            name="fk_consumption_consumer_operation_id_work_order_operation",
        ),
        sa.ForeignKeyConstraint(
            ["consumed_lot_id"], ["material_lot.id"],
            name="fk_consumption_consumed_lot_id_material_lot",
        ),
        sa.ForeignKeyConstraint(
            ["consumed_unit_id"], ["unit.id"], name="fk_consumption_consumed_unit_id_unit"
        ),
        sa.CheckConstraint(
            "(consumer_unit_id IS NULL) <> (consumer_operation_id IS NULL)",
            name="ck_consumption_one_consumer",
        ),
        sa.CheckConstraint(
            "(consumed_lot_id IS NULL) <> (consumed_unit_id IS NULL)",
            name="ck_consumption_one_consumed",
        ),
    )  # fmt: skip
    for column in ("consumer_unit_id", "consumer_operation_id", "consumed_lot_id",
                   "consumed_unit_id"):  # fmt: skip
        op.create_index(f"ix_consumption_{column}", "consumption", [column])


def downgrade() -> None:
    op.drop_table("consumption")
    op.drop_table("unit")
    op.drop_table("material_lot")
