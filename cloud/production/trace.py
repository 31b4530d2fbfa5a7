"""Traceability service: lots, units, consumption, and the backward and forward traces.

Plain functions over a SQLAlchemy session; the caller commits. Unknown references raise
``NotFound`` (the subject of the path) or ``InvalidRequest`` naming the body field.

Backward trace of a unit: its work order, every operation of that order (machine, state,
times) with a process-parameter summary over the operation's window ``[started_ms,
finished_ms)`` (an unfinished operation's window ends at ``now``) and the alarms its machine
raised in that window, plus what the unit consumed, recursively through component serials.
Material booked against an operation counts as consumed by every unit of its work order.

Forward trace of a lot: every unit and work order that consumed it, directly or through
component serials at any depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Float, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from cloud.alarms.models import Alarm
from cloud.assets.models import Machine
from cloud.errors import InvalidRequest, NotFound
from cloud.production import lifecycle as lc
from cloud.production.models import Product, RoutingOperation, WorkOrder, WorkOrderOperation
from cloud.production.trace_models import Consumption, MaterialLot, Unit
from cloud.timeseries.models import TsSeries, ts_sample

TRACED_ROLES = ("process_param", "temperature", "vibration")


@dataclass(frozen=True, slots=True)
class LotSpec:
    product: str  # the product's external id
    quantity: float
    supplier: str | None = None
    supplier_lot: str | None = None  # supplier lot or heat number


@dataclass(frozen=True, slots=True)
class ParameterSummary:
    series_id: int
    metric: str
    role: str
    unit: str | None
    low_limit: float | None
    high_limit: float | None
    count: int
    min: float | None
    max: float | None
    mean: float | None
    out_of_limits: int


@dataclass(frozen=True, slots=True)
class AlarmInWindow:
    id: int
    rule: str
    metric: str | None
    message: str
    raised_ms: int
    cleared_ms: int | None


@dataclass(frozen=True, slots=True)
class OperationTrace:
    sequence: int
    name: str
    machine_id: int | None
    machine: str | None
    state: str
    started_ms: int | None
    finished_ms: int | None
    parameters: list[ParameterSummary]
    alarms: list[AlarmInWindow]


@dataclass(frozen=True, slots=True)
class ConsumedLot:
    lot: str
    product: str
    supplier: str | None
    supplier_lot: str | None
    quantity: float
    ms: int
    via_operation: int | None  # the operation's sequence when booked against the operation


@dataclass(slots=True)
class UnitTrace:
    serial: str
    product: str
    work_order_id: int
    work_order: str
    created_at_operation: int
    created_ms: int
    operations: list[OperationTrace] = field(default_factory=list)
    lots: list[ConsumedLot] = field(default_factory=list)
    components: list[UnitTrace] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ForwardUnit:
    serial: str
    product: str
    work_order_id: int
    work_order: str
    depth: int  # 1: consumed the lot directly (or through its operation); 2: through a component


@dataclass(frozen=True, slots=True)
class ForwardTrace:
    lot: str
    units: list[ForwardUnit]
    work_orders: list[str]


def _product(session: Session, external_id: str, name: str) -> Product:
    product = session.scalar(select(Product).where(Product.external_id == external_id))
    if product is None:
        raise InvalidRequest(f"{name}: no product with external id {external_id!r}")
    return product


def _lot(session: Session, external_id: str) -> MaterialLot | None:
    return session.scalar(select(MaterialLot).where(MaterialLot.external_id == external_id))


def _unit(session: Session, serial: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.serial == serial))


def upsert_lot(session: Session, external_id: str, spec: LotSpec, now: int) -> MaterialLot:
    """Create or update the material lot ``external_id``."""
    product = _product(session, spec.product, "product")
    lot = _lot(session, external_id)
    if lot is None:
        lot = MaterialLot(external_id=external_id, created_ms=now)
        session.add(lot)
    lot.product_id = product.id
    lot.supplier, lot.supplier_lot = spec.supplier, spec.supplier_lot
    lot.quantity = spec.quantity
    lot.updated_ms = now
    session.flush()
    return lot


def _operation(session: Session, work_order_id: int, sequence: int) -> WorkOrderOperation:
    operation = session.scalar(
        select(WorkOrderOperation).where(
            WorkOrderOperation.work_order_id == work_order_id,
            WorkOrderOperation.sequence == sequence,
        )
    )
    if operation is None:
        raise NotFound(f"work order {work_order_id} has no operation {sequence}")
    return operation


def register_unit(
    session: Session, work_order_id: int, sequence: int, serial: str, now: int
) -> tuple[Unit, bool]:
    """Create the unit ``serial`` at a running serialising operation, or scan it again.

    Answers the unit and whether it was created. A serial already made by another work order
    is refused; a repeat scan in the same work order answers the existing unit.
    """
    order = session.get(WorkOrder, work_order_id)
    if order is None:
        raise NotFound(f"no work order {work_order_id}")
    operation = _operation(session, order.id, sequence)
    existing = _unit(session, serial)
    if existing is not None:
        if existing.work_order_id != order.id:
            raise InvalidRequest(f"serial: {serial!r} was made by another work order")
        return existing, False
    step = session.get(RoutingOperation, operation.routing_operation_id)
    if step is None or not step.serialises:
        raise InvalidRequest(
            f"sequence: operation {sequence} of {order.external_id} does not serialise units"
        )
    if operation.state != lc.RUNNING:
        raise InvalidRequest(
            f"sequence: operation {sequence} of {order.external_id} is {operation.state}; "
            "units are created while it runs"
        )
    unit = Unit(
        serial=serial, product_id=order.product_id, work_order_id=order.id,
        operation_id=operation.id, created_ms=now,
    )  # fmt: skip
    session.add(unit)
    session.flush()
    return unit, True


def record_consumption(
    session: Session,
    *,
    quantity: float,
    now: int,
    unit: str | None = None,
    operation: tuple[int, int] | None = None,
    lot: str | None = None,
    component: str | None = None,
) -> Consumption:
    """Record that a unit (serial) or an operation (work order id, sequence) consumed
    ``quantity`` of a lot or a component unit (serial). Exactly one of each pair."""
    if (unit is None) == (operation is None):
        raise InvalidRequest("unit: give exactly one consumer, unit or operation")
    if (lot is None) == (component is None):
        raise InvalidRequest("lot: give exactly one consumed, lot or component")
    row = Consumption(quantity=quantity, ms=now)
    if unit is not None:
        consumer = _unit(session, unit)
        if consumer is None:
            raise InvalidRequest(f"unit: no unit with serial {unit!r}")
        row.consumer_unit_id = consumer.id
    elif operation is not None:
        row.consumer_operation_id = _operation(session, *operation).id
    if lot is not None:
        material = _lot(session, lot)
        if material is None:
            raise InvalidRequest(f"lot: no material lot {lot!r}")
        row.consumed_lot_id = material.id
    elif component is not None:
        part = _unit(session, component)
        if part is None:
            raise InvalidRequest(f"component: no unit with serial {component!r}")
        if part.id == row.consumer_unit_id:
            raise InvalidRequest(f"component: {component!r} cannot consume itself")
        row.consumed_unit_id = part.id
    session.add(row)
    session.flush()
    return row


def parameter_summary(
    session: Session, machine_id: int, start_ms: int, end_ms: int
) -> list[ParameterSummary]:
    """Per traced series of the machine, the good values in ``[start_ms, end_ms)``: one query."""
    sample = ts_sample.alias("sample")
    value = sample.c.value
    outside = or_(
        and_(TsSeries.low_limit.is_not(None), value < TsSeries.low_limit),
        and_(TsSeries.high_limit.is_not(None), value > TsSeries.high_limit),
    )
    query = (
        select(
            TsSeries.id,
            TsSeries.metric,
            TsSeries.role,
            TsSeries.unit,
            TsSeries.low_limit,
            TsSeries.high_limit,
            func.count(value),
            func.min(value),
            func.max(value),
            func.avg(cast(value, Float)),
            func.coalesce(func.sum(case((outside, 1), else_=0)), 0),
        )
        .join(Machine, and_(Machine.edge == TsSeries.edge, Machine.device == TsSeries.device))
        .outerjoin(
            sample,
            and_(
                sample.c.series_id == TsSeries.id,
                sample.c.ts >= start_ms,
                sample.c.ts < end_ms,
                value.is_not(None),
            ),
        )
        .where(Machine.id == machine_id, TsSeries.role.in_(TRACED_ROLES))
        .group_by(
            TsSeries.id,
            TsSeries.metric,
            TsSeries.role,
            TsSeries.unit,
            TsSeries.low_limit,
            TsSeries.high_limit,
        )
        .order_by(TsSeries.metric)
    )
    return [
        ParameterSummary(
            series_id=row[0],
            metric=row[1],
            role=row[2],
            unit=row[3],
            low_limit=row[4],
            high_limit=row[5],
            count=int(row[6]),
            min=row[7],
            max=row[8],
            mean=None if row[9] is None else float(row[9]),
            out_of_limits=int(row[10]),
        )
        for row in session.execute(query)
    ]


def _alarms(session: Session, machine_id: int, start_ms: int, end_ms: int) -> list[AlarmInWindow]:
    query = (
        select(Alarm)
        .where(Alarm.machine_id == machine_id, Alarm.raised_ms >= start_ms)
        .where(Alarm.raised_ms < end_ms)
        .order_by(Alarm.raised_ms, Alarm.id)
    )
    return [
        AlarmInWindow(a.id, a.rule, a.metric, a.message, a.raised_ms, a.cleared_ms)
        for a in session.scalars(query)
    ]


def _operation_traces(session: Session, work_order_id: int, now: int) -> list[OperationTrace]:
    query = (
        select(WorkOrderOperation, RoutingOperation.name, Machine.name)
        .join(RoutingOperation, RoutingOperation.id == WorkOrderOperation.routing_operation_id)
        .outerjoin(Machine, Machine.id == WorkOrderOperation.machine_id)
        .where(WorkOrderOperation.work_order_id == work_order_id)
        .order_by(WorkOrderOperation.sequence)
    )
    traces = []
    for operation, name, machine in session.execute(query):
        parameters: list[ParameterSummary] = []
        alarms: list[AlarmInWindow] = []
        if operation.machine_id is not None and operation.started_ms is not None:
            end = operation.finished_ms if operation.finished_ms is not None else now
            parameters = parameter_summary(session, operation.machine_id, operation.started_ms, end)
            alarms = _alarms(session, operation.machine_id, operation.started_ms, end)
        traces.append(
            OperationTrace(
                operation.sequence, name, operation.machine_id, machine, operation.state,
                operation.started_ms, operation.finished_ms, parameters, alarms,
            )
        )  # fmt: skip
    return traces


def _unit_trace(session: Session, unit: Unit, now: int, seen: set[int]) -> UnitTrace:
    seen.add(unit.id)
    order = session.get(WorkOrder, unit.work_order_id)
    product = session.get(Product, unit.product_id)
    created_at = session.get(WorkOrderOperation, unit.operation_id)
    assert order is not None
    assert product is not None
    assert created_at is not None
    trace = UnitTrace(
        unit.serial, product.external_id, order.id, order.external_id, created_at.sequence,
        unit.created_ms, _operation_traces(session, order.id, now),
    )  # fmt: skip
    operation_ids = select(WorkOrderOperation.id).where(
        WorkOrderOperation.work_order_id == order.id
    )
    rows = session.execute(
        select(Consumption, WorkOrderOperation.sequence)
        .outerjoin(WorkOrderOperation, WorkOrderOperation.id == Consumption.consumer_operation_id)
        .where(
            or_(
                Consumption.consumer_unit_id == unit.id,
                Consumption.consumer_operation_id.in_(operation_ids),
            )
        )
        .order_by(Consumption.ms, Consumption.id)
    )
    for consumption, sequence in rows:
        if consumption.consumed_lot_id is not None:
            lot = session.get(MaterialLot, consumption.consumed_lot_id)
            assert lot is not None
            lot_product = session.get(Product, lot.product_id)
            assert lot_product is not None
            trace.lots.append(
                ConsumedLot(
                    lot.external_id, lot_product.external_id, lot.supplier, lot.supplier_lot,
                    consumption.quantity, consumption.ms, sequence,
                )
            )  # fmt: skip
        elif consumption.consumed_unit_id not in seen:
            component = session.get(Unit, consumption.consumed_unit_id)
            assert component is not None
            trace.components.append(_unit_trace(session, component, now, seen))
    return trace


def backward_trace(session: Session, serial: str, now: int) -> UnitTrace:
    """How unit ``serial`` was made (see the module docstring)."""
    unit = _unit(session, serial)
    if unit is None:
        raise NotFound(f"no unit with serial {serial!r}")
    return _unit_trace(session, unit, now, set())


def forward_trace(session: Session, lot_number: str) -> ForwardTrace:
    """Every unit and work order that consumed lot ``lot_number``, at any depth."""
    lot = _lot(session, lot_number)
    if lot is None:
        raise NotFound(f"no material lot {lot_number!r}")
    found: dict[int, int] = {}  # unit id -> depth
    orders: set[int] = set()
    consumed = Consumption.consumed_lot_id == lot.id
    depth = 1
    while True:
        direct = select(Consumption.consumer_unit_id).where(
            consumed, Consumption.consumer_unit_id.is_not(None)
        )
        booked = (
            select(WorkOrderOperation.work_order_id)
            .join(Consumption, Consumption.consumer_operation_id == WorkOrderOperation.id)
            .where(consumed)
        )
        orders.update(session.scalars(booked))
        new = {
            unit_id
            for unit_id in session.scalars(
                select(Unit.id).where(or_(Unit.id.in_(direct), Unit.work_order_id.in_(booked)))
            )
            if unit_id not in found
        }
        if not new:
            break
        found.update(dict.fromkeys(new, depth))
        consumed = Consumption.consumed_unit_id.in_(new)
        depth += 1
    query = (
        select(Unit, Product.external_id, WorkOrder.external_id)
        .join(Product, Product.id == Unit.product_id)
        .join(WorkOrder, WorkOrder.id == Unit.work_order_id)
        .where(Unit.id.in_(found))
        .order_by(Unit.serial)
    )
    units = [
        ForwardUnit(unit.serial, product, unit.work_order_id, order, found[unit.id])
        for unit, product, order in session.execute(query)
    ]
    orders.update(unit.work_order_id for unit in units)
    names = session.scalars(
        select(WorkOrder.external_id)
        .where(WorkOrder.id.in_(orders))
        .order_by(WorkOrder.external_id)
    )
    return ForwardTrace(lot.external_id, units, list(names))


__all__ = [
    "TRACED_ROLES",
    "AlarmInWindow",
    "ConsumedLot",
    "ForwardTrace",
    "ForwardUnit",
    "LotSpec",
    "OperationTrace",
    "ParameterSummary",
    "UnitTrace",
    "backward_trace",
    "forward_trace",
    "parameter_summary",
    "record_consumption",
    "register_unit",
    "upsert_lot",
]
