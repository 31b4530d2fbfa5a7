"""Production service functions over a SQLAlchemy session: ERP upserts, actions, dispatch.

Upserts are idempotent by the ERP's external id (one row, updated on a repeat). Actions go
through the transition tables of ``cloud.production.lifecycle``; an illegal one raises
``IllegalTransition``. Inputs are plain dataclasses; unknown references raise
``InvalidRequest`` naming the field. The caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.assets.models import Line, Machine
from cloud.errors import InvalidRequest, NotFound
from cloud.integration.events import enqueue_operation_completed, enqueue_work_order_completed
from cloud.production import backflush, records
from cloud.production import lifecycle as lc
from cloud.production.models import (
    DEFAULT_PRIORITY,
    BomItem,
    OperationEvent,
    Product,
    Routing,
    RoutingOperation,
    WorkOrder,
    WorkOrderOperation,
)


@dataclass(frozen=True, slots=True)
class ProductSpec:
    name: str
    unit_of_measure: str = "pcs"
    serialised: bool = False


@dataclass(frozen=True, slots=True)
class BomLine:
    component: str  # the component product's external id
    quantity_per_unit: float
    scrap_allowance_pct: float = 0.0


@dataclass(frozen=True, slots=True)
class OperationSpec:
    sequence: int
    name: str
    line_id: int | None = None
    machine_id: int | None = None
    ideal_cycle_time_s: float | None = None
    setup_time_s: float = 0.0
    serialises: bool = False


@dataclass(frozen=True, slots=True)
class RoutingSpec:
    product: str
    name: str
    operations: tuple[OperationSpec, ...]


@dataclass(frozen=True, slots=True)
class WorkOrderSpec:
    product: str
    quantity_ordered: int
    routing: str | None = None  # default: the product's routing, if it has exactly one
    due_ms: int | None = None
    priority: int = DEFAULT_PRIORITY


@dataclass(frozen=True, slots=True)
class DispatchEntry:
    work_order: WorkOrder
    operation: WorkOrderOperation
    routing_operation: RoutingOperation


def _product_by_external_id(session: Session, external_id: str, field: str) -> Product:
    product = session.scalar(select(Product).where(Product.external_id == external_id))
    if product is None:
        raise InvalidRequest(f"{field}: no product with external id {external_id!r}")
    return product


def upsert_product(session: Session, external_id: str, spec: ProductSpec, now: int) -> Product:
    """Create or update the product ``external_id``."""
    product = session.scalar(select(Product).where(Product.external_id == external_id))
    if product is None:
        product = Product(external_id=external_id, created_ms=now)
        session.add(product)
    product.name = spec.name
    product.unit_of_measure = spec.unit_of_measure
    product.serialised = spec.serialised
    product.updated_ms = now
    session.flush()
    return product


def _components_below(session: Session, product_id: int) -> set[int]:
    seen: set[int] = set()
    frontier = [product_id]
    while frontier:
        rows = session.scalars(
            select(BomItem.component_product_id).where(BomItem.parent_product_id.in_(frontier))
        )
        frontier = [row for row in rows if row not in seen]
        seen.update(frontier)
    return seen


def replace_bom(
    session: Session, external_id: str, lines: Sequence[BomLine], now: int
) -> list[BomItem]:
    """Make ``lines`` the product's bill of materials (a repeat leaves the same rows)."""
    parent = _product_by_external_id(session, external_id, "product")
    wanted: dict[int, BomLine] = {}
    for index, line in enumerate(lines):
        field = f"items[{index}].component"
        component = _product_by_external_id(session, line.component, field)
        if component.id == parent.id or parent.id in _components_below(session, component.id):
            raise InvalidRequest(
                f"{field}: {line.component!r} would make the BOM of {external_id!r} a cycle"
            )
        if component.id in wanted:
            raise InvalidRequest(f"{field}: {line.component!r} is listed twice")
        wanted[component.id] = line
    existing = {
        item.component_product_id: item
        for item in session.scalars(select(BomItem).where(BomItem.parent_product_id == parent.id))
    }
    for component_id, item in existing.items():
        if component_id not in wanted:
            session.delete(item)
    for component_id, line in wanted.items():
        item = existing.get(component_id) or BomItem(
            parent_product_id=parent.id, component_product_id=component_id
        )
        item.quantity_per_unit = line.quantity_per_unit
        item.scrap_allowance_pct = line.scrap_allowance_pct
        session.add(item)
    parent.updated_ms = now
    session.flush()
    return list(
        session.scalars(
            select(BomItem).where(BomItem.parent_product_id == parent.id).order_by(BomItem.id)
        )
    )


def upsert_routing(session: Session, external_id: str, spec: RoutingSpec, now: int) -> Routing:
    """Create or update the routing ``external_id`` and its operations (keyed by sequence)."""
    product = _product_by_external_id(session, spec.product, "product")
    for index, op in enumerate(spec.operations):
        field = f"operations[{index}]"
        if (op.line_id is None) == (op.machine_id is None):
            raise InvalidRequest(f"{field}: give exactly one work centre, line_id or machine_id")
        if op.line_id is not None and session.get(Line, op.line_id) is None:
            raise InvalidRequest(f"{field}.line_id: no line {op.line_id}")
        if op.machine_id is not None and session.get(Machine, op.machine_id) is None:
            raise InvalidRequest(f"{field}.machine_id: no machine {op.machine_id}")
    sequences = [op.sequence for op in spec.operations]
    if len(set(sequences)) != len(sequences):
        raise InvalidRequest("operations: sequence numbers must be unique")
    routing = session.scalar(select(Routing).where(Routing.external_id == external_id))
    if routing is None:
        routing = Routing(external_id=external_id, created_ms=now)
        session.add(routing)
    elif routing.product_id != product.id and _routing_in_use(session, routing.id):
        raise InvalidRequest("product: the routing is used by work orders; it cannot move")
    routing.product_id = product.id
    routing.name = spec.name
    routing.updated_ms = now
    session.flush()
    existing = {
        row.sequence: row
        for row in session.scalars(
            select(RoutingOperation).where(RoutingOperation.routing_id == routing.id)
        )
    }
    for sequence, row in existing.items():
        if sequence not in sequences:
            used = session.scalar(
                select(WorkOrderOperation.id)
                .where(WorkOrderOperation.routing_operation_id == row.id)
                .limit(1)
            )
            if used is not None:
                raise InvalidRequest(
                    f"operations: operation {sequence} is used by work orders; keep it"
                )
            session.delete(row)
    for op in spec.operations:
        row = existing.get(op.sequence) or RoutingOperation(
            routing_id=routing.id, sequence=op.sequence
        )
        row.name = op.name
        row.line_id, row.machine_id = op.line_id, op.machine_id
        row.ideal_cycle_time_s = op.ideal_cycle_time_s
        row.setup_time_s = op.setup_time_s
        row.serialises = op.serialises
        session.add(row)
    session.flush()
    return routing


def _routing_in_use(session: Session, routing_id: int) -> bool:
    found = session.scalar(select(WorkOrder.id).where(WorkOrder.routing_id == routing_id).limit(1))
    return found is not None


def routing_operations(session: Session, routing_id: int) -> list[RoutingOperation]:
    query = select(RoutingOperation).where(RoutingOperation.routing_id == routing_id)
    return list(session.scalars(query.order_by(RoutingOperation.sequence)))


def _routing_for(session: Session, product: Product, external_id: str | None) -> int | None:
    if external_id is not None:
        routing = session.scalar(select(Routing).where(Routing.external_id == external_id))
        if routing is None:
            raise InvalidRequest(f"routing: no routing with external id {external_id!r}")
        if routing.product_id != product.id:
            raise InvalidRequest(f"routing: {external_id!r} makes another product")
        return routing.id
    ids = list(session.scalars(select(Routing.id).where(Routing.product_id == product.id)))
    return ids[0] if len(ids) == 1 else None


def upsert_work_order(
    session: Session, external_id: str, spec: WorkOrderSpec, now: int
) -> WorkOrder:
    """Create or update the work order ``external_id``.

    Quantity, due date and priority may change until the order is completed; product and
    routing only while it is planned.
    """
    product = _product_by_external_id(session, spec.product, "product")
    routing_id = _routing_for(session, product, spec.routing)
    order = session.scalar(select(WorkOrder).where(WorkOrder.external_id == external_id))
    if order is None:
        order = WorkOrder(
            external_id=external_id, state=lc.PLANNED, quantity_good=0, quantity_scrap=0,
            quantity_rework=0, created_ms=now,
        )  # fmt: skip
        session.add(order)
    elif order.state in (lc.COMPLETED, lc.CLOSED, lc.ABORTED):
        raise lc.IllegalTransition(f"work order {external_id}", order.state, "update", ())
    elif order.state != lc.PLANNED and (
        order.product_id != product.id or order.routing_id != routing_id
    ):
        raise InvalidRequest(f"product: work order {external_id} is {order.state}; keep them")
    order.product_id = product.id
    order.routing_id = routing_id
    order.quantity_ordered = spec.quantity_ordered
    order.due_ms = spec.due_ms
    order.priority = spec.priority
    order.updated_ms = now
    session.flush()
    return order


def get_work_order(session: Session, work_order_id: int) -> WorkOrder:
    order = session.get(WorkOrder, work_order_id)
    if order is None:
        raise NotFound(f"no work order {work_order_id}")
    return order


def operations_of(session: Session, work_order_id: int) -> list[WorkOrderOperation]:
    query = select(WorkOrderOperation).where(WorkOrderOperation.work_order_id == work_order_id)
    return list(session.scalars(query.order_by(WorkOrderOperation.sequence)))


def work_order_action(session: Session, work_order_id: int, action: str, now: int) -> WorkOrder:
    """Apply ``action`` to the work order; release creates its operations from the routing."""
    order = get_work_order(session, work_order_id)
    subject = f"work order {order.external_id}"
    new_state = lc.work_order_next(subject, order.state, action)
    if action == "release":
        if order.routing_id is None:
            raise InvalidRequest(
                f"routing: work order {order.external_id} has no routing; give one to release it"
            )
        steps = routing_operations(session, order.routing_id)
        if not steps:
            raise InvalidRequest(f"routing: the routing of {order.external_id} has no operations")
        for index, step in enumerate(steps):
            session.add(
                WorkOrderOperation(
                    work_order_id=order.id, sequence=step.sequence,
                    routing_operation_id=step.id, machine_id=step.machine_id,
                    state=lc.READY if index == 0 else lc.PENDING,
                    quantity_good=0, quantity_scrap=0, quantity_rework=0,
                )
            )  # fmt: skip
    order.state = new_state
    order.updated_ms = now
    session.flush()
    if action == "complete":
        enqueue_work_order_completed(session, order, now)
    return order


def roll_up(session: Session, order: WorkOrder) -> None:
    """The order's quantities from its operations (machine counts and reports): good from the
    last, losses summed."""
    operations = operations_of(session, order.id)
    order.quantity_good = operations[-1].good if operations else 0
    order.quantity_scrap = sum(op.scrap for op in operations)
    order.quantity_rework = sum(op.quantity_rework for op in operations)


def _busy_on(session: Session, machine_id: int, operation_id: int) -> WorkOrderOperation | None:
    """Another operation running or paused on the machine (counts go to one operation)."""
    return session.scalar(
        select(WorkOrderOperation).where(
            WorkOrderOperation.machine_id == machine_id,
            WorkOrderOperation.state.in_((lc.RUNNING, lc.PAUSED)),
            WorkOrderOperation.id != operation_id,
        )
    )


def _start(
    session: Session, order: WorkOrder, operation: WorkOrderOperation, machine_id: int | None,
    now: int,
) -> None:  # fmt: skip
    chosen = machine_id if machine_id is not None else operation.machine_id
    if chosen is None:
        raise InvalidRequest("machine_id: give the machine the operation starts on")
    if session.get(Machine, chosen) is None:
        raise InvalidRequest(f"machine_id: no machine {chosen}")
    other = _busy_on(session, chosen, operation.id)
    if other is not None:
        owner = session.get(WorkOrder, other.work_order_id)
        name = owner.external_id if owner is not None else other.work_order_id
        raise InvalidRequest(
            f"machine_id: machine {chosen} is running operation {other.sequence} of work order "
            f"{name}; pause counts there would be ambiguous, so finish or abort it first"
        )
    operation.machine_id = chosen
    operation.started_ms = now
    if order.state == lc.RELEASED:
        order.state = lc.work_order_next(f"work order {order.external_id}", order.state, "start")


def _end_pause(operation: WorkOrderOperation, now: int) -> None:
    if operation.paused_since_ms is not None:
        operation.paused_ms += max(0, now - operation.paused_since_ms)
        operation.paused_since_ms = None


def operation_action(
    session: Session,
    work_order_id: int,
    sequence: int,
    action: str,
    now: int,
    *,
    machine_id: int | None = None,
    good: int = 0,
    scrap: int = 0,
    rework: int = 0,
    operator: str | None = None,
    reason: str | None = None,
) -> WorkOrderOperation:
    """Apply an operator action to operation ``sequence`` of the work order.

    ``start`` needs the order released or running (a released order starts with it) and a
    machine (given, or the routing step's own) that runs no other operation; ``pause`` and
    ``resume`` keep the paused time (labour time leaves it out); ``report`` adds good, scrap
    (with a reason) and rework counts beside what the machine counts; ``finish`` closes the
    operation's unit cycles and makes the next operation ready. Every action is logged with
    its operator (``OperationEvent``).
    """
    order = get_work_order(session, work_order_id)
    operation = session.scalar(
        select(WorkOrderOperation).where(
            WorkOrderOperation.work_order_id == order.id, WorkOrderOperation.sequence == sequence
        )
    )
    if operation is None:
        raise NotFound(f"work order {order.external_id} has no operation {sequence}")
    subject = f"operation {sequence} of work order {order.external_id}"
    new_state = lc.operation_next(subject, operation.state, action)
    if action in ("start", "resume", "report") and order.state not in (lc.RELEASED, lc.RUNNING):
        raise lc.IllegalTransition(
            f"work order {order.external_id}", order.state, f"{action} operation {sequence}",
            tuple(lc.WORK_ORDER_TRANSITIONS[order.state]),
        )  # fmt: skip
    if action == "start":
        _start(session, order, operation, machine_id, now)
    if action in ("start", "resume") and operator:
        operation.operator = operator
    if action == "pause":
        operation.paused_since_ms = now
    if action in ("resume", "finish"):
        _end_pause(operation, now)
    if action == "report":
        if min(good, scrap, rework) < 0:
            raise InvalidRequest("good, scrap, rework: counts cannot be negative")
        if scrap and not reason:
            raise InvalidRequest("reason: give the reason for the scrap reported")
        operation.quantity_good += good
        operation.quantity_scrap += scrap
        operation.quantity_rework += rework
    if action == "finish":
        operation.finished_ms = now
        records.close_operation_cycles(session, operation.id, now)
        following = session.scalar(
            select(WorkOrderOperation)
            .where(
                WorkOrderOperation.work_order_id == order.id,
                WorkOrderOperation.sequence > sequence,
            )
            .order_by(WorkOrderOperation.sequence)
            .limit(1)
        )
        if following is not None and following.state == lc.PENDING:
            following.state = lc.operation_next("next operation", following.state, "ready")
    operation.state = new_state
    session.add(
        OperationEvent(
            operation_id=operation.id, action=action, operator=operator, ms=now,
            good=good if action == "report" else 0, scrap=scrap if action == "report" else 0,
            rework=rework if action == "report" else 0, reason=reason,
        )
    )  # fmt: skip
    session.flush()
    roll_up(session, order)
    if action in ("report", "finish"):
        backflush.backflush(session, order, now)
    order.updated_ms = now
    session.flush()
    if action == "finish":
        enqueue_operation_completed(session, operation, now)  # to the ERP, in this transaction
    return operation


def list_work_orders(
    session: Session, state: str | None = None, limit: int = 500
) -> list[WorkOrder]:
    """Work orders, most urgent first (priority, then due date), optionally in one state."""
    query = select(WorkOrder)
    if state is not None:
        query = query.where(WorkOrder.state == state)
    query = query.order_by(
        WorkOrder.priority, WorkOrder.due_ms.is_(None), WorkOrder.due_ms, WorkOrder.id
    )
    return list(session.scalars(query.limit(limit)))


def dispatch_list(session: Session, line_id: int) -> list[DispatchEntry]:
    """Ready, running and paused operations of released/running orders on line ``line_id``.

    An operation belongs to the line when its routing step names the line, or a machine of
    that line (the step's or the one it was started on). Ordered by priority, due date.
    """
    if session.get(Line, line_id) is None:
        raise NotFound(f"no line {line_id}")
    line_machines = select(Machine.id).where(Machine.line_id == line_id)
    query = (
        select(WorkOrder, WorkOrderOperation, RoutingOperation)
        .join(WorkOrderOperation, WorkOrderOperation.work_order_id == WorkOrder.id)
        .join(RoutingOperation, RoutingOperation.id == WorkOrderOperation.routing_operation_id)
        .where(
            WorkOrder.state.in_((lc.RELEASED, lc.RUNNING)),
            WorkOrderOperation.state.in_((lc.READY, lc.RUNNING, lc.PAUSED)),
            or_(
                RoutingOperation.line_id == line_id,
                RoutingOperation.machine_id.in_(line_machines),
                WorkOrderOperation.machine_id.in_(line_machines),
            ),
        )
        .order_by(
            WorkOrder.priority,
            WorkOrder.due_ms.is_(None),
            WorkOrder.due_ms,
            WorkOrder.id,
            WorkOrderOperation.sequence,
        )
    )
    return [DispatchEntry(*row) for row in session.execute(query)]


__all__ = [
    "BomLine",
    "DispatchEntry",
    "OperationSpec",
    "ProductSpec",
    "RoutingSpec",
    "WorkOrderSpec",
    "dispatch_list",
    "get_work_order",
    "list_work_orders",
    "operation_action",
    "operations_of",
    "replace_bom",
    "routing_operations",
    "upsert_product",
    "upsert_routing",
    "upsert_work_order",
    "work_order_action",
]
