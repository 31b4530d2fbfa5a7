"""Traceability tables: material lots, serialised units, and what consumed what.

A consumption row links one consumer (a unit, or a work-order operation when the plant books
material against the operation rather than each unit) to one thing consumed (a material lot,
or a component unit by its serial); check constraints keep exactly one of each pair.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Double, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId


class MaterialLot(Base):
    """A lot of material (a delivery, a heat, a batch) by the ERP's lot number."""

    __tablename__ = "material_lot"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    supplier: Mapped[str | None] = mapped_column(String(200))
    supplier_lot: Mapped[str | None] = mapped_column(String(64))  # supplier lot or heat number
    quantity: Mapped[float] = mapped_column(Double)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class Unit(Base):
    """One serialised unit, created at the serialising operation of its work order."""

    __tablename__ = "unit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    work_order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("work_order.id"), index=True)
    operation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("work_order_operation.id"), index=True
    )
    created_ms: Mapped[int] = mapped_column(BigInteger)


class Consumption(Base):
    """A quantity of a lot or a component unit that went into a unit or an operation."""

    __tablename__ = "consumption"
    __table_args__ = (
        CheckConstraint(
            "(consumer_unit_id IS NULL) <> (consumer_operation_id IS NULL)", name="one_consumer"
        ),
        CheckConstraint(
            "(consumed_lot_id IS NULL) <> (consumed_unit_id IS NULL)", name="one_consumed"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    consumer_unit_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("unit.id"), index=True
    )
    consumer_operation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("work_order_operation.id"), index=True
    )
    consumed_lot_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("material_lot.id"), index=True
    )
    consumed_unit_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("unit.id"), index=True
    )
    quantity: Mapped[float] = mapped_column(Double)
    ms: Mapped[int] = mapped_column(BigInteger)
