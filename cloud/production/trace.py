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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, aliased

from cloud.alarms.models import Alarm
from cloud.assets.models import Machine
from cloud.errors import InvalidRequest, NotFound
from cloud.production import lifecycle as lc
from cloud.production import records
from cloud.production.models import (
    OperationEvent,
    Product,
    RoutingOperation,
    WorkOrder,
    WorkOrderOperation,
)
from cloud.production.parameters import (
    ParameterSummary,
    Window,
    parameter_summaries,
    parameter_summary,
)
from cloud.production.trace_models import (
    Consumption,
    Inspection,
    MaterialLot,
    Unit,
    UnitCycle,
    UnitTest,
    UnitTestValue,
)


@dataclass(frozen=True, slots=True)
class LotSpec:
    product: str  # the product's external id
    quantity: float
    supplier: str | None = None
    supplier_lot: str | None = None  # supplier lot or heat number


@dataclass(frozen=True, slots=True)
class AlarmInWindow:
    id: int
    rule: str
    metric: str | None
    message: str
    raised_ms: int
    cleared_ms: int | None


@dataclass(frozen=True, slots=True)
class OperatorEntry:
    """An operator action on the operation (start, pause, report, finish...)."""

    action: str
    operator: str | None
    ms: int
    good: int
    scrap: int
    rework: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class OperationTrace:
    sequence: int
    name: str
    machine_id: int | None
    machine: str | None
    state: str
    started_ms: int | None
    finished_ms: int | None
    operators: list[str]
    good: int
    scrap: int
    rework: int
    window: str  # "unit_cycle": the unit's own cycle on the machine; "operation": the whole run
    window_start_ms: int | None
    window_end_ms: int | None
    parameters: list[ParameterSummary]
    alarms: list[AlarmInWindow]
    events: list[OperatorEntry]


@dataclass(frozen=True, slots=True)
class ConsumedLot:
    lot: str
    product: str
    supplier: str | None
    supplier_lot: str | None
    quantity: float
    ms: int
    via_operation: int | None  # the operation's sequence when booked against the operation
    source: str  # scan or backflush


@dataclass(frozen=True, slots=True)
class TestValueTrace:
    __test__ = False  # not a pytest test class
    characteristic: str
    value: float | None
    unit: str | None
    low_limit: float | None
    high_limit: float | None
    passed: bool


@dataclass(frozen=True, slots=True)
class TestTrace:
    __test__ = False  # not a pytest test class
    name: str
    machine: str | None
    started_ms: int
    finished_ms: int
    passed: bool
    source: str  # plc or api
    values: list[TestValueTrace]


@dataclass(frozen=True, slots=True)
class InspectionTrace:
    characteristic: str
    value: float | None
    attribute: str | None
    passed: bool
    inspector: str
    ms: int
    note: str | None
    lot: str | None  # set when the result was recorded against a lot the unit consumed


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
    tests: list[TestTrace] = field(default_factory=list)
    inspections: list[InspectionTrace] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ForwardUnit:
    serial: str
    product: str
    work_order_id: int
    work_order: str
    depth: int  # 1: consumed the lot directly (or through its operation); 2: through a component


@dataclass(frozen=True, slots=True)
class ForwardTrace:
    subject: str  # the lot number or the component serial traced
    kind: str  # "lot" or "unit"
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
    session: Session, work_order_id: int, sequence: int, serial: str, now: int,
    source: str = "scan",
) -> tuple[Unit, bool]:  # fmt: skip
    """Scan unit ``serial`` at a running operation: its cycle on that machine starts now.

    At a serialising operation an unknown serial creates the unit; at any later operation the
    serial must already exist in the same work order. Answers the unit and whether it was
    created. The scan closes the machine's previous open cycle (see ``records.start_cycle``).
    """
    order = session.get(WorkOrder, work_order_id)
    if order is None:
        raise NotFound(f"no work order {work_order_id}")
    operation = _operation(session, order.id, sequence)
    if operation.state != lc.RUNNING:
        raise InvalidRequest(
            f"sequence: operation {sequence} of {order.external_id} is {operation.state}; "
            "units are scanned while it runs"
        )
    unit = _unit(session, serial)
    created = unit is None
    if unit is not None and unit.work_order_id != order.id:
        raise InvalidRequest(f"serial: {serial!r} was made by another work order")
    if unit is None:
        step = session.get(RoutingOperation, operation.routing_operation_id)
        if step is None or not step.serialises:
            raise InvalidRequest(
                f"serial: no unit {serial!r} yet, and operation {sequence} of "
                f"{order.external_id} does not serialise units"
            )
        unit = Unit(
            serial=serial, product_id=order.product_id, work_order_id=order.id,
            operation_id=operation.id, created_ms=now,
        )  # fmt: skip
        session.add(unit)
        session.flush()
    records.start_cycle(session, unit, operation, now, source)
    return unit, created


def next_serial(session: Session, work_order_id: int) -> str:
    """A new serial for a unit of the order: ``<order external id>-<n, 5 digits>``, the first
    ``n`` after the order's units that is not taken."""
    order = session.get(WorkOrder, work_order_id)
    if order is None:
        raise NotFound(f"no work order {work_order_id}")
    made = session.scalar(select(func.count(Unit.id)).where(Unit.work_order_id == order.id)) or 0
    n = made + 1
    while _unit(session, f"{order.external_id}-{n:05d}") is not None:
        n += 1
    return f"{order.external_id}-{n:05d}"


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


# The statements of a backward trace, built once (building them per call costs more than
# running them on a warm database).
_op = WorkOrderOperation
_OPERATIONS = (
    select(_op.id, _op.sequence, RoutingOperation.name, _op.machine_id, Machine.name, _op.state,
           _op.started_ms, _op.finished_ms, _op.machine_good + _op.quantity_good,
           _op.machine_scrap + _op.quantity_scrap, _op.quantity_rework)
    .join(RoutingOperation, RoutingOperation.id == _op.routing_operation_id)
    .outerjoin(Machine, Machine.id == _op.machine_id)
    .where(_op.work_order_id == bindparam("order"))
    .order_by(_op.sequence)
)  # fmt: skip
_EVENTS = (
    select(OperationEvent.operation_id, OperationEvent.action, OperationEvent.operator,
           OperationEvent.ms, OperationEvent.good, OperationEvent.scrap, OperationEvent.rework,
           OperationEvent.reason)
    .where(OperationEvent.operation_id.in_(bindparam("ids", expanding=True)))
    .order_by(OperationEvent.ms, OperationEvent.id)
)  # fmt: skip
_CYCLES = select(UnitCycle.operation_id, UnitCycle.start_ms, UnitCycle.end_ms).where(
    UnitCycle.unit_id == bindparam("unit"), UnitCycle.operation_id.is_not(None)
)
_TESTS = (
    select(UnitTest.id, UnitTest.name, Machine.name, UnitTest.started_ms, UnitTest.finished_ms,
           UnitTest.passed, UnitTest.source, UnitTestValue.characteristic, UnitTestValue.value,
           UnitTestValue.unit, UnitTestValue.low_limit, UnitTestValue.high_limit,
           UnitTestValue.passed)
    .outerjoin(UnitTestValue, UnitTestValue.test_id == UnitTest.id)
    .outerjoin(Machine, Machine.id == UnitTest.machine_id)
    .where(UnitTest.unit_id == bindparam("unit"))
    .order_by(UnitTest.started_ms, UnitTest.id, UnitTestValue.id)
)  # fmt: skip
_INSPECTIONS = (
    select(Inspection.characteristic, Inspection.value, Inspection.attribute, Inspection.passed,
           Inspection.inspector, Inspection.ms, Inspection.note, MaterialLot.external_id)
    .outerjoin(MaterialLot, MaterialLot.id == Inspection.lot_id)
    .where(or_(Inspection.unit_id == bindparam("unit"),
               Inspection.lot_id.in_(bindparam("lots", expanding=True))))
    .order_by(Inspection.ms, Inspection.id)
)  # fmt: skip
_unit_head = (
    select(Unit.id, Unit.serial, Unit.work_order_id, Unit.created_ms, WorkOrder.external_id,
           Product.external_id, WorkOrderOperation.sequence)
    .join(Product, Product.id == Unit.product_id)
    .join(WorkOrder, WorkOrder.id == Unit.work_order_id)
    .join(WorkOrderOperation, WorkOrderOperation.id == Unit.operation_id)
)  # fmt: skip
_UNIT_BY_SERIAL = _unit_head.where(Unit.serial == bindparam("serial"))
_UNIT_BY_ID = _unit_head.where(Unit.id == bindparam("id"))
_lot_product = aliased(Product)
_CONSUMPTION = (
    select(Consumption.consumed_lot_id, Consumption.consumed_unit_id, MaterialLot.external_id,
           _lot_product.external_id, MaterialLot.supplier, MaterialLot.supplier_lot,
           Consumption.quantity, Consumption.ms, WorkOrderOperation.sequence, Consumption.source)
    .outerjoin(WorkOrderOperation, WorkOrderOperation.id == Consumption.consumer_operation_id)
    .outerjoin(MaterialLot, MaterialLot.id == Consumption.consumed_lot_id)
    .outerjoin(_lot_product, _lot_product.id == MaterialLot.product_id)
    .where(or_(Consumption.consumer_unit_id == bindparam("unit"),
               Consumption.consumer_operation_id.in_(bindparam("operations", expanding=True))))
    .order_by(Consumption.ms, Consumption.id)
)  # fmt: skip


def _alarms(session: Session, windows: list[Window]) -> list[list[AlarmInWindow]]:
    """Per window: the alarms its machine raised in it, or raised before and active in it."""
    out: list[list[AlarmInWindow]] = [[] for _ in windows]
    if not windows:
        return out
    overlaps = [
        and_(Alarm.machine_id == w.machine_id, Alarm.raised_ms < w.end_ms,
             or_(Alarm.cleared_ms.is_(None), Alarm.cleared_ms >= w.start_ms))
        for w in windows
    ]  # fmt: skip
    query = (
        select(Alarm.id, Alarm.rule, Alarm.metric, Alarm.message, Alarm.raised_ms,
               Alarm.cleared_ms, Alarm.machine_id)
        .where(or_(*overlaps))
        .order_by(Alarm.raised_ms, Alarm.id)
    )  # fmt: skip
    for a in session.execute(query):
        for i, w in enumerate(windows):
            active_in = a.raised_ms < w.end_ms and (
                a.cleared_ms is None or a.cleared_ms >= w.start_ms
            )
            if a.machine_id == w.machine_id and active_in:
                out[i].append(AlarmInWindow(*a[:6]))
    return out


def _events(session: Session, operation_ids: list[int]) -> dict[int, list[OperatorEntry]]:
    events: dict[int, list[OperatorEntry]] = {}
    for row in session.execute(_EVENTS, {"ids": operation_ids}):
        events.setdefault(row[0], []).append(OperatorEntry(*row[1:]))
    return events


def _cycle_windows(session: Session, unit_id: int, now: int) -> dict[int, tuple[int, int]]:
    """Operation id → the span of the unit's cycles in it (an open cycle ends at ``now``)."""
    windows: dict[int, tuple[int, int]] = {}
    for operation_id, start, end_ms in session.execute(_CYCLES, {"unit": unit_id}):
        if operation_id is None:  # excluded by the query; for the type checker
            continue
        end = end_ms if end_ms is not None else max(now, start)
        start0, end0 = windows.get(operation_id, (start, end))
        windows[operation_id] = (min(start0, start), max(end0, end))
    return windows


def _operation_traces(
    session: Session, unit: _UnitRow, now: int
) -> tuple[list[OperationTrace], list[int]]:
    """The traces of the operations of the unit's order, and their ids."""
    rows = list(session.execute(_OPERATIONS, {"order": unit.work_order_id}))
    ids = [row[0] for row in rows]
    events = _events(session, ids)
    cycles = _cycle_windows(session, unit.id, now)
    spans: list[tuple[str, int | None, int | None]] = []
    windows: list[Window] = []
    for row in rows:
        window, start, end = "operation", row.started_ms, row.finished_ms
        if row.id in cycles:
            window, (start, end) = "unit_cycle", cycles[row.id]
        elif start is not None and end is None:
            end = now
        spans.append((window, start, end))
        if row.machine_id is not None and start is not None and end is not None:
            windows.append(Window(row.machine_id, start, end))
    summaries = iter(parameter_summaries(session, windows))
    alarms = iter(_alarms(session, windows))
    traces = []
    for row, (window, start, end) in zip(rows, spans, strict=True):
        (_, sequence, name, machine_id, machine, state, started, finished, good, scrap,
         rework) = row  # fmt: skip
        summarised = machine_id is not None and start is not None and end is not None
        entries = events.get(row.id, [])
        operators = sorted({e.operator for e in entries if e.operator})
        traces.append(
            OperationTrace(
                sequence, name, machine_id, machine, state, started, finished, operators,
                int(good), int(scrap), rework, window, start, end,
                next(summaries) if summarised else [], next(alarms) if summarised else [],
                entries,
            )
        )  # fmt: skip
    return traces, ids


def _tests(session: Session, unit_id: int) -> list[TestTrace]:
    rows = session.execute(_TESTS, {"unit": unit_id})
    tests: dict[int, TestTrace] = {}
    for row in rows:
        (test_id, name, machine, started, finished, passed, source, characteristic, value, unit,
         low, high, value_passed) = row  # fmt: skip
        test = tests.get(test_id)
        if test is None:
            test = tests[test_id] = TestTrace(
                name, machine, started, finished, passed, source, values=[]
            )
        if characteristic is not None:  # a test without values has one row of NULLs
            test.values.append(TestValueTrace(characteristic, value, unit, low, high, value_passed))
    return list(tests.values())


def _inspections(session: Session, unit_id: int, lot_ids: list[int]) -> list[InspectionTrace]:
    params = {"unit": unit_id, "lots": lot_ids}
    return [InspectionTrace(*row) for row in session.execute(_INSPECTIONS, params)]


@dataclass(frozen=True, slots=True)
class _UnitRow:
    id: int
    serial: str
    work_order_id: int
    created_ms: int
    work_order: str
    product: str
    created_at_operation: int


def _unit_row(session: Session, *, serial: str | None = None, unit_id: int | None = None
              ) -> _UnitRow | None:  # fmt: skip
    query, params = (
        (_UNIT_BY_SERIAL, {"serial": serial}) if serial else (_UNIT_BY_ID, {"id": unit_id})
    )
    row = session.execute(query, params).first()
    return None if row is None else _UnitRow(*row)


def _unit_trace(session: Session, unit: _UnitRow, now: int, seen: set[int]) -> UnitTrace:
    seen.add(unit.id)
    operations, operation_ids = _operation_traces(session, unit, now)
    trace = UnitTrace(
        unit.serial, unit.product, unit.work_order_id, unit.work_order,
        unit.created_at_operation, unit.created_ms, operations,
    )  # fmt: skip
    rows = session.execute(_CONSUMPTION, {"unit": unit.id, "operations": operation_ids})
    lot_ids: list[int] = []
    for row in rows:
        if row.consumed_lot_id is not None:
            lot_ids.append(row.consumed_lot_id)
            trace.lots.append(
                ConsumedLot(row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9])
            )
        elif row.consumed_unit_id not in seen:
            component = _unit_row(session, unit_id=row.consumed_unit_id)
            assert component is not None
            trace.components.append(_unit_trace(session, component, now, seen))
    trace.tests = _tests(session, unit.id)
    trace.inspections = _inspections(session, unit.id, lot_ids)
    return trace


def backward_trace(session: Session, serial: str, now: int) -> UnitTrace:
    """How unit ``serial`` was made (see the module docstring)."""
    unit = _unit_row(session, serial=serial)
    if unit is None:
        raise NotFound(f"no unit with serial {serial!r}")
    return _unit_trace(session, unit, now, set())


CHUNK = 500  # ids per IN list: literal lists let PostgreSQL use the indexes, chunks keep
# SQLite under its bound-parameter limit


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(ids)
    for i in range(0, len(ordered), CHUNK):
        yield ordered[i : i + CHUNK]


def _consumers(
    session: Session, lot_id: int | None, unit_ids: set[int]
) -> tuple[set[int], set[int]]:
    """Units that consumed the lot or the units directly, and work orders whose operations
    did (their units all count)."""
    conditions: list[ColumnElement[bool]] = []
    if lot_id is not None:
        conditions.append(Consumption.consumed_lot_id == lot_id)
    conditions += [Consumption.consumed_unit_id.in_(chunk) for chunk in _chunks(unit_ids)]
    units: set[int] = set()
    orders: set[int] = set()
    for condition in conditions:
        rows = session.execute(
            select(Consumption.consumer_unit_id, WorkOrderOperation.work_order_id)
            .outerjoin(
                WorkOrderOperation, WorkOrderOperation.id == Consumption.consumer_operation_id
            )
            .where(condition)
        )
        for unit_id, order_id in rows:
            if unit_id is not None:
                units.add(unit_id)
            if order_id is not None:
                orders.add(order_id)
    for chunk in _chunks(orders):
        units.update(session.scalars(select(Unit.id).where(Unit.work_order_id.in_(chunk))))
    return units, orders


def consumers_of(
    session: Session, *, lot_id: int | None = None, unit_ids: Iterable[int] = (),
    skip: Iterable[int] = (),
) -> ForwardTrace:  # fmt: skip
    """Units and work orders that consumed the lot and/or the units, then their consumers, at
    any depth; units in ``skip`` are left out."""
    found: dict[int, int] = {}  # unit id -> depth
    orders: set[int] = set()
    left_out = set(skip)
    frontier = set(unit_ids)
    depth = 1
    while lot_id is not None or frontier:
        units, booked = _consumers(session, lot_id, frontier)
        orders |= booked
        lot_id = None
        frontier = {u for u in units if u not in found and u not in left_out}
        found.update(dict.fromkeys(frontier, depth))
        depth += 1
    units_out: list[ForwardUnit] = []
    for chunk in _chunks(found):
        query = (
            select(Unit, Product.external_id, WorkOrder.external_id)
            .join(Product, Product.id == Unit.product_id)
            .join(WorkOrder, WorkOrder.id == Unit.work_order_id)
            .where(Unit.id.in_(chunk))
        )
        units_out += [
            ForwardUnit(unit.serial, product, unit.work_order_id, order, found[unit.id])
            for unit, product, order in session.execute(query)
        ]
    units_out.sort(key=lambda u: u.serial)
    orders.update(unit.work_order_id for unit in units_out)
    names: list[str] = []
    for chunk in _chunks(orders):
        names += session.scalars(select(WorkOrder.external_id).where(WorkOrder.id.in_(chunk)))
    return ForwardTrace("", "", units_out, sorted(names))


def forward_trace(session: Session, lot_number: str) -> ForwardTrace:
    """Every unit and work order that consumed lot ``lot_number``, at any depth."""
    lot = _lot(session, lot_number)
    if lot is None:
        raise NotFound(f"no material lot {lot_number!r}")
    found = consumers_of(session, lot_id=lot.id)
    return ForwardTrace(lot.external_id, "lot", found.units, found.work_orders)


def forward_trace_of_unit(session: Session, serial: str) -> ForwardTrace:
    """Every unit and work order that consumed the component unit ``serial``, at any depth."""
    unit = _unit(session, serial)
    if unit is None:
        raise NotFound(f"no unit with serial {serial!r}")
    found = consumers_of(session, unit_ids={unit.id}, skip={unit.id})
    return ForwardTrace(unit.serial, "unit", found.units, found.work_orders)


__all__ = [
    "AlarmInWindow",
    "ConsumedLot",
    "ForwardTrace",
    "ForwardUnit",
    "InspectionTrace",
    "LotSpec",
    "OperationTrace",
    "OperatorEntry",
    "ParameterSummary",
    "TestTrace",
    "TestValueTrace",
    "UnitTrace",
    "backward_trace",
    "consumers_of",
    "forward_trace",
    "forward_trace_of_unit",
    "next_serial",
    "parameter_summary",
    "record_consumption",
    "register_unit",
    "upsert_lot",
]
