"""Traceability tables: lots, units, what consumed what, and each unit's cycles and tests.

A consumption row links one consumer (a unit, or a work-order operation when the plant books
material against the operation rather than each unit) to one thing consumed (a material lot,
or a component unit by its serial); check constraints keep exactly one of each pair.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
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
    source: Mapped[str] = mapped_column(
        String(16), default="scan", server_default="scan"
    )  # scan or backflush


class UnitCycle(Base):
    """The machine cycle (or test) that worked on a unit: when, where, and how it was bound.

    ``source`` is ``plc`` (the machine's serial tag), ``scan`` or ``api``. A unit has one cycle
    per operation it passed through; the trace summarises parameters over these windows.
    """

    __tablename__ = "unit_cycle"
    __table_args__ = (Index("ix_unit_cycle_machine_start", "machine_id", "start_ms"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("unit.id"), index=True)
    operation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("work_order_operation.id")
    )
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machine.id"))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)  # None while the cycle runs
    source: Mapped[str] = mapped_column(String(8))


class UnitTest(Base):
    """A test of one unit (a valve's pressure test, a breaker's trip test) and its verdict."""

    __tablename__ = "unit_test"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("unit.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machine.id"))
    started_ms: Mapped[int] = mapped_column(BigInteger)
    finished_ms: Mapped[int] = mapped_column(BigInteger)
    passed: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(8))  # plc or api


class UnitTestValue(Base):
    """One measured value of a test, with the limits it was judged against."""

    __tablename__ = "unit_test_value"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    test_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("unit_test.id"), index=True)
    characteristic: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Double)
    unit: Mapped[str | None] = mapped_column(String(32))
    low_limit: Mapped[float | None] = mapped_column(Double)
    high_limit: Mapped[float | None] = mapped_column(Double)
    passed: Mapped[bool] = mapped_column(Boolean)


class Inspection(Base):
    """An inspection result recorded against a unit or a lot (exactly one)."""

    __tablename__ = "inspection"
    __table_args__ = (CheckConstraint("(unit_id IS NULL) <> (lot_id IS NULL)", name="one_subject"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("unit.id"), index=True)
    lot_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("material_lot.id"), index=True
    )
    operation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("work_order_operation.id")
    )
    characteristic: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Double)  # a variable characteristic
    attribute: Mapped[str | None] = mapped_column(String(64))  # or an attribute (ok, scratched)
    passed: Mapped[bool] = mapped_column(Boolean)
    inspector: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    ms: Mapped[int] = mapped_column(BigInteger)


class StagedLot(Base):
    """A lot staged at a work order's line for backflush (consumed as good units are counted)."""

    __tablename__ = "staged_lot"
    __table_args__ = (UniqueConstraint("work_order_id", "lot_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("work_order.id"))
    lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("material_lot.id"))
    ms: Mapped[int] = mapped_column(BigInteger)
