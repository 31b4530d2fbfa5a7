"""Backflush: book the BOM's components as consumed from the lots staged for a work order.

For plants that do not scan every component. Material enters at the order's first operation,
so what that operation has made (good + scrap, machine counts and reports) times each direct
BOM line's quantity per unit is what should have been consumed. Backflush books the difference
between that and what is already backflushed for the component, against the first operation,
from the lots of that component staged for the order, oldest staging first, each no further
than what is left of the lot. It is idempotent (it books differences), so it runs after every
recount and report. What no staged lot can cover is a shortage: reported, never invented.

The BOM's scrap allowance is for planning the pick (how much to stage), not for booking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import InvalidRequest
from cloud.production.models import BomItem, Product, WorkOrder, WorkOrderOperation
from cloud.production.trace_models import Consumption, MaterialLot, StagedLot

log = logging.getLogger(__name__)
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class ComponentBalance:
    component: str  # product external id
    required: float  # quantity per unit x units made at the first operation
    backflushed: float
    shortage: float  # what no staged lot could cover


def stage_lot(session: Session, order: WorkOrder, lot_number: str, now: int) -> StagedLot:
    """Stage a lot for the order's backflush (its product must be in the order's BOM)."""
    lot = session.scalar(select(MaterialLot).where(MaterialLot.external_id == lot_number))
    if lot is None:
        raise InvalidRequest(f"lot: no material lot {lot_number!r}")
    in_bom = session.scalar(
        select(BomItem.id).where(
            BomItem.parent_product_id == order.product_id,
            BomItem.component_product_id == lot.product_id,
        )
    )
    if in_bom is None:
        raise InvalidRequest(
            f"lot: {lot_number!r} is not of a component in the BOM of {order.external_id}"
        )
    staged = session.scalar(
        select(StagedLot).where(StagedLot.work_order_id == order.id, StagedLot.lot_id == lot.id)
    )
    if staged is None:
        staged = StagedLot(work_order_id=order.id, lot_id=lot.id, ms=now)
        session.add(staged)
        session.flush()
    return staged


def _lot_left(session: Session, lot: MaterialLot) -> float:
    used = session.scalar(
        select(func.coalesce(func.sum(Consumption.quantity), 0.0)).where(
            Consumption.consumed_lot_id == lot.id
        )
    )
    return lot.quantity - float(used or 0.0)


def _first_operation(session: Session, order: WorkOrder) -> WorkOrderOperation | None:
    return session.scalar(
        select(WorkOrderOperation)
        .where(WorkOrderOperation.work_order_id == order.id)
        .order_by(WorkOrderOperation.sequence)
        .limit(1)
    )


def backflush(session: Session, order: WorkOrder, now: int) -> list[ComponentBalance]:
    """Book what the first operation's output has consumed and is not booked yet."""
    first = _first_operation(session, order)
    if first is None:
        return []
    made = first.good + first.scrap
    lines = session.execute(
        select(BomItem, Product.external_id)
        .join(Product, Product.id == BomItem.component_product_id)
        .where(BomItem.parent_product_id == order.product_id)
        .order_by(Product.external_id)
    )
    balances = []
    for line, component in lines:
        staged = list(
            session.scalars(
                select(MaterialLot)
                .join(StagedLot, StagedLot.lot_id == MaterialLot.id)
                .where(
                    StagedLot.work_order_id == order.id,
                    MaterialLot.product_id == line.component_product_id,
                )
                .order_by(StagedLot.ms, StagedLot.id)
            )
        )
        done = session.scalar(
            select(func.coalesce(func.sum(Consumption.quantity), 0.0))
            .join(MaterialLot, MaterialLot.id == Consumption.consumed_lot_id)
            .where(
                Consumption.consumer_operation_id == first.id,
                Consumption.source == "backflush",
                MaterialLot.product_id == line.component_product_id,
            )
        )
        required = line.quantity_per_unit * made
        booked = float(done or 0.0)
        due = required - booked
        for lot in staged:
            if due <= EPSILON:
                break
            take = min(due, _lot_left(session, lot))
            if take <= EPSILON:
                continue
            session.add(
                Consumption(
                    consumer_operation_id=first.id, consumed_lot_id=lot.id, quantity=take,
                    ms=now, source="backflush",
                )
            )  # fmt: skip
            booked += take
            due -= take
        shortage = max(0.0, due)
        if shortage > EPSILON:
            log.warning(
                "backflush: work order %s is short of %.6g %s (%.6g required, %.6g booked); "
                "stage another lot of it: POST /api/work-orders/%d/staged-lots",
                order.external_id, shortage, component, required, booked, order.id,
            )  # fmt: skip
        balances.append(ComponentBalance(component, required, booked, shortage))
    session.flush()
    return balances
