"""Completion events for the ERP: payload builders and the outbox ``enqueue_*`` functions.

``enqueue_operation_completed(session, operation, now)`` and
``enqueue_work_order_completed(session, order, now)`` build the event's payload once and add
one ``erp_delivery`` row per enabled endpoint subscribed to the event, in the caller's
transaction: the caller commits, so an event is queued if and only if the completion is stored.
The delivery thread (``cloud.integration.delivery``) sends it later.

Every payload carries ``event`` (its name), ``event_id`` (unique, the same on every retry and
for every endpoint, so the ERP can drop duplicates), ``schema_version`` and ``occurred_ms``.

- An operation event reports the operation (sequence, name, machine, good / scrap / rework with
  the operator-reported and machine-counted parts, labour time, operators) and the consumption
  booked against it or against the units created at it.
- A work-order event reports the order's quantities, every operation as above, the order's
  total labour time and operators, and every consumption of the order.

Labour time in seconds is ``finished - started - paused`` of an operation (a pause still open at
the finish counts as paused up to the finish); operators are every named operator of the
operation's events (``operation_event``) and the one on the operation, in order of appearance.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, aliased

from cloud.assets.models import Machine
from cloud.integration.models import (
    OPERATION_COMPLETED,
    PENDING,
    WORK_ORDER_COMPLETED,
    ErpDelivery,
    ErpWebhook,
)
from cloud.production.models import (
    OperationEvent,
    Product,
    RoutingOperation,
    WorkOrder,
    WorkOrderOperation,
)
from cloud.production.trace_models import Consumption, MaterialLot, Unit

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class WorkOrderRef:
    id: int
    external_id: str
    product: str  # the product's external id
    quantity_ordered: int
    state: str


@dataclass(frozen=True, slots=True)
class ConsumptionLine:
    """A quantity of a lot, or a component unit by its serial, that went into the work."""

    product: str  # the consumed product's external id
    unit_of_measure: str
    quantity: float
    lot: str | None  # the material lot, or
    component_serial: str | None  # the component unit
    consumer_serial: str | None  # the unit it went into; None: booked against the operation
    operation_sequence: int | None  # the operation it was booked against
    source: str  # scan or backflush
    ms: int


@dataclass(frozen=True, slots=True)
class OperationReport:
    sequence: int
    name: str
    machine_id: int | None
    machine: str | None
    state: str
    started_ms: int | None
    finished_ms: int | None
    paused_s: float
    labour_time_s: float
    good: int  # reported by operators + counted by the machine
    scrap: int
    rework: int
    reported_good: int
    reported_scrap: int
    machine_good: int
    machine_scrap: int
    machine_cycles: int
    operators: list[str]


@dataclass(frozen=True, slots=True)
class OperationCompleted:
    event_id: str
    occurred_ms: int
    work_order: WorkOrderRef
    operation: OperationReport
    consumption: list[ConsumptionLine]
    event: str = OPERATION_COMPLETED
    schema_version: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class WorkOrderCompleted:
    event_id: str
    occurred_ms: int
    work_order: WorkOrderRef
    good: int
    scrap: int
    rework: int
    labour_time_s: float
    operators: list[str]
    operations: list[OperationReport]
    consumption: list[ConsumptionLine]
    event: str = WORK_ORDER_COMPLETED
    schema_version: int = SCHEMA_VERSION


# --------------------------------------------------------------------------- pure parts


def paused_ms_of(operation: WorkOrderOperation) -> int:
    """Total pause time: finished pauses, plus a pause still open at the finish."""
    paused = operation.paused_ms or 0
    since, finished = operation.paused_since_ms, operation.finished_ms
    if since is not None and finished is not None and finished > since:
        paused += finished - since
    return paused


def labour_time_s(operation: WorkOrderOperation) -> float:
    """``finished - started - paused`` in seconds; 0 for an operation that never ran through."""
    if operation.started_ms is None or operation.finished_ms is None:
        return 0.0
    return max(0, operation.finished_ms - operation.started_ms - paused_ms_of(operation)) / 1000


def encode_body(payload: OperationCompleted | WorkOrderCompleted) -> str:
    """The JSON body: compact, the event's name, id and schema version first, then the fields
    in declaration order; non-ASCII kept as is."""
    head = {"event": payload.event, "event_id": payload.event_id}
    body = head | {"schema_version": payload.schema_version} | asdict(payload)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _in_order(names: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(name for name in names if name))


# --------------------------------------------------------------------------- queries


def _work_order_ref(session: Session, order: WorkOrder) -> WorkOrderRef:
    product = session.get(Product, order.product_id)
    assert product is not None  # a foreign key
    return WorkOrderRef(
        order.id, order.external_id, product.external_id, order.quantity_ordered, order.state
    )


def _operators(session: Session, operations: Sequence[WorkOrderOperation]) -> dict[int, list[str]]:
    """Operation id -> its operators in order of appearance."""
    ids = [operation.id for operation in operations]
    query = (
        select(OperationEvent.operation_id, OperationEvent.operator)
        .where(OperationEvent.operation_id.in_(ids), OperationEvent.operator.is_not(None))
        .order_by(OperationEvent.ms, OperationEvent.id)
    )
    named: dict[int, list[str | None]] = {operation.id: [] for operation in operations}
    for operation_id, operator in session.execute(query):
        named[operation_id].append(operator)
    for operation in operations:
        named[operation.id].append(operation.operator)
    return {operation_id: _in_order(names) for operation_id, names in named.items()}


def _reports(session: Session, operations: Sequence[WorkOrderOperation]) -> list[OperationReport]:
    if not operations:
        return []
    operators = _operators(session, operations)
    step_ids = {op.routing_operation_id for op in operations}
    names = {
        step_id: name
        for step_id, name in session.execute(
            select(RoutingOperation.id, RoutingOperation.name).where(
                RoutingOperation.id.in_(step_ids)
            )
        )
    }
    machine_ids = {op.machine_id for op in operations if op.machine_id is not None}
    machines = {
        machine_id: name
        for machine_id, name in session.execute(
            select(Machine.id, Machine.name).where(Machine.id.in_(machine_ids))
        )
    }
    return [
        OperationReport(
            sequence=op.sequence,
            name=names[op.routing_operation_id],
            machine_id=op.machine_id,
            machine=machines.get(op.machine_id) if op.machine_id is not None else None,
            state=op.state,
            started_ms=op.started_ms,
            finished_ms=op.finished_ms,
            paused_s=paused_ms_of(op) / 1000,
            labour_time_s=labour_time_s(op),
            good=op.good,
            scrap=op.scrap,
            rework=op.quantity_rework,
            reported_good=op.quantity_good,
            reported_scrap=op.quantity_scrap,
            machine_good=op.machine_good,
            machine_scrap=op.machine_scrap,
            machine_cycles=op.machine_cycles,
            operators=operators[op.id],
        )
        for op in operations
    ]


def _consumption(session: Session, where: ColumnElement[bool]) -> list[ConsumptionLine]:
    """Consumption rows matching ``where`` with their lot / component, product and consumer."""
    component = aliased(Unit)
    consumer = aliased(Unit)
    query = (
        select(
            Consumption,
            MaterialLot.external_id,
            component.serial,
            consumer.serial,
            WorkOrderOperation.sequence,
            Product.external_id,
            Product.unit_of_measure,
        )
        .outerjoin(MaterialLot, MaterialLot.id == Consumption.consumed_lot_id)
        .outerjoin(component, component.id == Consumption.consumed_unit_id)
        .outerjoin(consumer, consumer.id == Consumption.consumer_unit_id)
        .outerjoin(WorkOrderOperation, WorkOrderOperation.id == Consumption.consumer_operation_id)
        .join(Product, Product.id == func.coalesce(MaterialLot.product_id, component.product_id))
        .where(where)
        .order_by(Consumption.ms, Consumption.id)
    )
    return [
        ConsumptionLine(
            product=product,
            unit_of_measure=unit_of_measure,
            quantity=row.quantity,
            lot=lot,
            component_serial=component_serial,
            consumer_serial=consumer_serial,
            operation_sequence=sequence,
            source=row.source,
            ms=row.ms,
        )
        for row, lot, component_serial, consumer_serial, sequence, product, unit_of_measure in (
            session.execute(query)
        )
    ]


def _operations_of(session: Session, order: WorkOrder) -> list[WorkOrderOperation]:
    query = select(WorkOrderOperation).where(WorkOrderOperation.work_order_id == order.id)
    return list(session.scalars(query.order_by(WorkOrderOperation.sequence)))


# --------------------------------------------------------------------------- payloads


def operation_completed(
    session: Session, operation: WorkOrderOperation, event_id: str, now: int
) -> OperationCompleted:
    """The ``operation.completed`` payload of ``operation``.

    Its consumption: what was booked against the operation, and what the units created at it
    consumed (so that, over an order, every consumption row is reported by one operation).
    """
    session.flush()
    order = session.get(WorkOrder, operation.work_order_id)
    assert order is not None  # a foreign key
    made_here = select(Unit.id).where(Unit.operation_id == operation.id)
    consumption = _consumption(
        session,
        or_(
            Consumption.consumer_operation_id == operation.id,
            Consumption.consumer_unit_id.in_(made_here),
        ),
    )
    (report,) = _reports(session, [operation])
    return OperationCompleted(event_id, now, _work_order_ref(session, order), report, consumption)


def work_order_completed(
    session: Session, order: WorkOrder, event_id: str, now: int
) -> WorkOrderCompleted:
    """The ``work_order.completed`` payload of ``order``: its quantities (as rolled up by the
    production service), every operation, and every consumption of the order."""
    session.flush()
    operations = _operations_of(session, order)
    reports = _reports(session, operations)
    units = select(Unit.id).where(Unit.work_order_id == order.id)
    consumption = _consumption(
        session,
        or_(
            Consumption.consumer_operation_id.in_([op.id for op in operations]),
            Consumption.consumer_unit_id.in_(units),
        ),
    )
    return WorkOrderCompleted(
        event_id=event_id,
        occurred_ms=now,
        work_order=_work_order_ref(session, order),
        good=order.quantity_good,
        scrap=order.quantity_scrap,
        rework=order.quantity_rework,
        labour_time_s=round(sum(report.labour_time_s for report in reports), 3),
        operators=_in_order([name for report in reports for name in report.operators]),
        operations=reports,
        consumption=consumption,
    )


# --------------------------------------------------------------------------- outbox


def subscribed_endpoints(session: Session, event: str) -> list[ErpWebhook]:
    """The enabled endpoints subscribed to ``event``, by name."""
    query = select(ErpWebhook).where(ErpWebhook.enabled.is_(True)).order_by(ErpWebhook.name)
    return [endpoint for endpoint in session.scalars(query) if event in endpoint.event_list]


def _enqueue(
    session: Session,
    event: str,
    build: Callable[[str], OperationCompleted | WorkOrderCompleted],
    work_order: str,
    operation_sequence: int | None,
    now: int,
) -> list[ErpDelivery]:
    endpoints = subscribed_endpoints(session, event)
    if not endpoints:
        return []
    event_id = uuid.uuid4().hex
    body = encode_body(build(event_id))
    deliveries = [
        ErpDelivery(
            event_id=event_id,
            event=event,
            endpoint=endpoint.name,
            work_order=work_order,
            operation_sequence=operation_sequence,
            body=body,
            state=PENDING,
            attempts=0,
            round_start=0,
            next_attempt_ms=now,
            created_ms=now,
            updated_ms=now,
        )
        for endpoint in endpoints
    ]
    session.add_all(deliveries)
    session.flush()
    return deliveries


def enqueue_operation_completed(
    session: Session, operation: WorkOrderOperation, now: int
) -> list[ErpDelivery]:
    """Queue ``operation.completed`` for every subscribed endpoint (the caller commits)."""
    order = session.get(WorkOrder, operation.work_order_id)
    assert order is not None  # a foreign key
    return _enqueue(
        session,
        OPERATION_COMPLETED,
        lambda event_id: operation_completed(session, operation, event_id, now),
        order.external_id,
        operation.sequence,
        now,
    )


def enqueue_work_order_completed(session: Session, order: WorkOrder, now: int) -> list[ErpDelivery]:
    """Queue ``work_order.completed`` for every subscribed endpoint (the caller commits)."""
    return _enqueue(
        session,
        WORK_ORDER_COMPLETED,
        lambda event_id: work_order_completed(session, order, event_id, now),
        order.external_id,
        None,
        now,
    )


def payload_of(delivery: ErpDelivery) -> Any:
    """The stored body, parsed (for the API)."""
    return json.loads(delivery.body)


__all__ = [
    "SCHEMA_VERSION",
    "ConsumptionLine",
    "OperationCompleted",
    "OperationReport",
    "WorkOrderCompleted",
    "WorkOrderRef",
    "encode_body",
    "enqueue_operation_completed",
    "enqueue_work_order_completed",
    "labour_time_s",
    "operation_completed",
    "paused_ms_of",
    "payload_of",
    "subscribed_endpoints",
    "work_order_completed",
]
