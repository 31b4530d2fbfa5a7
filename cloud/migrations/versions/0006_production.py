"""Production model: products, BOM items, routings, work orders and their operations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "product",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit_of_measure", sa.String(16), nullable=False),
        sa.Column("serialised", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_product"),
        sa.UniqueConstraint("external_id", name="uq_product_external_id"),
    )
    op.create_table(
        "bom_item",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("parent_product_id", sa.Integer(), nullable=False),
        sa.Column("component_product_id", sa.Integer(), nullable=False),
        sa.Column("quantity_per_unit", sa.Double(), nullable=False),
        sa.Column("scrap_allowance_pct", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bom_item"),
        sa.ForeignKeyConstraint(
            ["parent_product_id"], ["product.id"],
            name="fk_bom_item_parent_product_id_product",
        ),
        sa.ForeignKeyConstraint(
            ["component_product_id"], ["product.id"],
            name="fk_bom_item_component_product_id_product",
        ),
        sa.UniqueConstraint(
            "parent_product_id", "component_product_id",
            name="uq_bom_item_parent_product_id_component_product_id",
        ),
    )  # fmt: skip
    op.create_index("ix_bom_item_component_product_id", "bom_item", ["component_product_id"])
    op.create_table(
        "routing",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routing"),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name="fk_routing_product_id_product"
        ),
        sa.UniqueConstraint("external_id", name="uq_routing_external_id"),
    )
    op.create_index("ix_routing_product_id", "routing", ["product_id"])
    op.create_table(
        "routing_operation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("routing_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=True),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("ideal_cycle_time_s", sa.Double(), nullable=True),
        sa.Column("setup_time_s", sa.Double(), nullable=False),
        sa.Column("serialises", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routing_operation"),
        sa.ForeignKeyConstraint(
            ["routing_id"], ["routing.id"], name="fk_routing_operation_routing_id_routing"
        ),
        sa.ForeignKeyConstraint(
            ["line_id"], ["asset_line.id"], name="fk_routing_operation_line_id_asset_line"
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machine.id"], name="fk_routing_operation_machine_id_machine"
        ),
        sa.UniqueConstraint(
            "routing_id", "sequence", name="uq_routing_operation_routing_id_sequence"
        ),
    )
    op.create_index("ix_routing_operation_line_id", "routing_operation", ["line_id"])
    op.create_index("ix_routing_operation_machine_id", "routing_operation", ["machine_id"])
    op.create_table(
        "work_order",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("routing_id", sa.Integer(), nullable=True),
        sa.Column("quantity_ordered", sa.Integer(), nullable=False),
        sa.Column("quantity_good", sa.Integer(), nullable=False),
        sa.Column("quantity_scrap", sa.Integer(), nullable=False),
        sa.Column("quantity_rework", sa.Integer(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_order"),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name="fk_work_order_product_id_product"
        ),
        sa.ForeignKeyConstraint(
            ["routing_id"], ["routing.id"], name="fk_work_order_routing_id_routing"
        ),
        sa.UniqueConstraint("external_id", name="uq_work_order_external_id"),
    )
    op.create_index("ix_work_order_product_id", "work_order", ["product_id"])
    op.create_index("ix_work_order_state_priority", "work_order", ["state", "priority"])
    op.create_table(
        "work_order_operation",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("work_order_id", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("routing_operation_id", sa.Integer(), nullable=False),
        sa.Column("machine_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("quantity_good", sa.Integer(), nullable=False),
        sa.Column("quantity_scrap", sa.Integer(), nullable=False),
        sa.Column("quantity_rework", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_work_order_operation"),
        sa.ForeignKeyConstraint(
            ["work_order_id"], ["work_order.id"],
            name="fk_work_order_operation_work_order_id_work_order",
        ),
        sa.ForeignKeyConstraint(
            ["routing_operation_id"], ["routing_operation.id"],
            name="fk_work_order_operation_routing_operation_id_routing_operation",
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machine.id"], name="fk_work_order_operation_machine_id_machine"
        ),
        sa.UniqueConstraint(
            "work_order_id", "sequence", name="uq_work_order_operation_work_order_id_sequence"
        ),
    )  # fmt: skip
    op.create_index(
        "ix_work_order_operation_routing_operation_id",
        "work_order_operation",
        ["routing_operation_id"],
    )
    op.create_index("ix_work_order_operation_machine_id", "work_order_operation", ["machine_id"])
    op.create_index("ix_work_order_operation_state", "work_order_operation", ["state"])


def downgrade() -> None:
    op.drop_table("work_order_operation")
    op.drop_table("work_order")
    op.drop_table("routing_operation")
    op.drop_table("routing")
    op.drop_table("bom_item")
    op.drop_table("product")
