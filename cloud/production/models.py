"""Production tables after ISA-95: products, BOM items, routings, work orders, operations.

Every ERP-facing object (product, routing, work order) carries the ERP's ``external_id``,
unique, so that a repeated upsert updates one row. A routing operation runs on a work centre:
a line (``line_id``) or a single machine (``machine_id``), exactly one of the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId

DEFAULT_PRIORITY = 500  # smaller is more urgent


class Product(Base):
    """A material definition: what is made or consumed, in which unit, serialised or not."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_of_measure: Mapped[str] = mapped_column(String(16))
    serialised: Mapped[bool] = mapped_column(Boolean)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class BomItem(Base):
    """One line of a product's bill of materials (multi-level through the component's own)."""

    __tablename__ = "bom_item"
    __table_args__ = (UniqueConstraint("parent_product_id", "component_product_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    component_product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    quantity_per_unit: Mapped[float] = mapped_column(Double)
    scrap_allowance_pct: Mapped[float] = mapped_column(Double)


class Routing(Base):
    """The ordered operations that make a product."""

    __tablename__ = "routing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class RoutingOperation(Base):
    """One step of a routing, on a line or a machine, with its ideal cycle and setup times."""

    __tablename__ = "routing_operation"
    __table_args__ = (UniqueConstraint("routing_id", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    routing_id: Mapped[int] = mapped_column(ForeignKey("routing.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("asset_line.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machine.id"), index=True)
    ideal_cycle_time_s: Mapped[float | None] = mapped_column(Double)
    setup_time_s: Mapped[float] = mapped_column(Double)
    serialises: Mapped[bool] = mapped_column(Boolean)


class WorkOrder(Base):
    """An order to make a quantity of a product by a due date (ISA-95 job order)."""

    __tablename__ = "work_order"
    __table_args__ = (Index("ix_work_order_state_priority", "state", "priority"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    routing_id: Mapped[int | None] = mapped_column(ForeignKey("routing.id"))
    quantity_ordered: Mapped[int] = mapped_column(Integer)
    quantity_good: Mapped[int] = mapped_column(Integer)
    quantity_scrap: Mapped[int] = mapped_column(Integer)
    quantity_rework: Mapped[int] = mapped_column(Integer)
    due_ms: Mapped[int | None] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class WorkOrderOperation(Base):
    """One routing step of one work order, as dispatched to (and run on) a machine."""

    __tablename__ = "work_order_operation"
    __table_args__ = (
        UniqueConstraint("work_order_id", "sequence"),
        Index("ix_work_order_operation_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("work_order.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    routing_operation_id: Mapped[int] = mapped_column(
        ForeignKey("routing_operation.id"), index=True
    )
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machine.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    started_ms: Mapped[int | None] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)
    quantity_good: Mapped[int] = mapped_column(Integer)  # reported by operators
    quantity_scrap: Mapped[int] = mapped_column(Integer)
    quantity_rework: Mapped[int] = mapped_column(Integer)
    operator: Mapped[str | None] = mapped_column(String(64))  # who started or last resumed it
    paused_ms: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0"
    )  # total, finished pauses
    paused_since_ms: Mapped[int | None] = mapped_column(BigInteger)
    # Counted by the machine's PLC counters while the operation ran (cloud.production.counting)
    machine_cycles: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    machine_good: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    machine_scrap: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    counted_to_ms: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def good(self) -> int:
        """Good units: the machine's count plus what operators reported beside it."""
        return self.machine_good + self.quantity_good

    @property
    def scrap(self) -> int:
        return self.machine_scrap + self.quantity_scrap


class OperationEvent(Base):
    """One operator action on an operation: who, when, and the counts or reason it carried."""

    __tablename__ = "operation_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    operation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("work_order_operation.id"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str | None] = mapped_column(String(64))
    ms: Mapped[int] = mapped_column(BigInteger)
    good: Mapped[int] = mapped_column(Integer)
    scrap: Mapped[int] = mapped_column(Integer)
    rework: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(200))  # the scrap or pause reason
