"""Routes for production: ERP upserts, work-order and operation actions, the dispatch list.

An illegal lifecycle action answers 409 with the transition error; a body that does not
validate answers 400 naming the field (this router's route class turns FastAPI's 422 into 400).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud.api.deps import BadRequestRoute, SessionDep, WriteSessionDep
from cloud.production import backflush, counting, service, trace
from cloud.production.lifecycle import WORK_ORDER_STATES, IllegalTransition
from cloud.production.models import DEFAULT_PRIORITY, WorkOrder, WorkOrderOperation
from cloud.production.trace_models import Unit
from protocols.clock import now_ms

router = APIRouter(prefix="/api", tags=["production"], route_class=BadRequestRoute)


class ProductIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    unit_of_measure: str = Field(default="pcs", min_length=1, max_length=16)
    serialised: bool = False


class ProductOut(ProductIn):
    id: int
    external_id: str
    created_ms: int
    updated_ms: int


class BomItemIn(BaseModel):
    component: str = Field(min_length=1, max_length=64, description="component's external id")
    quantity_per_unit: float = Field(gt=0)
    scrap_allowance_pct: float = Field(default=0.0, ge=0, lt=100)


class BomIn(BaseModel):
    items: list[BomItemIn]


class BomItemOut(BaseModel):
    component_product_id: int
    quantity_per_unit: float
    scrap_allowance_pct: float


class RoutingOperationIn(BaseModel):
    sequence: int = Field(ge=0)
    name: str = Field(min_length=1, max_length=200)
    line_id: int | None = Field(default=None, description="work centre: a line, or")
    machine_id: int | None = Field(default=None, description="work centre: a machine")
    ideal_cycle_time_s: float | None = Field(default=None, gt=0)
    setup_time_s: float = Field(default=0.0, ge=0)
    serialises: bool = False


class RoutingIn(BaseModel):
    product: str = Field(min_length=1, max_length=64, description="product's external id")
    name: str = Field(min_length=1, max_length=200)
    operations: list[RoutingOperationIn] = Field(min_length=1)


class RoutingOut(BaseModel):
    id: int
    external_id: str
    product_id: int
    name: str
    operations: list[RoutingOperationIn]


class WorkOrderIn(BaseModel):
    product: str = Field(min_length=1, max_length=64, description="product's external id")
    quantity_ordered: int = Field(gt=0)
    routing: str | None = Field(
        default=None, description="routing's external id (default: the only)"
    )
    due_ms: int | None = Field(default=None, ge=0)
    priority: int = Field(default=DEFAULT_PRIORITY, description="smaller is more urgent")


class OperationOut(BaseModel):
    id: int
    sequence: int
    routing_operation_id: int
    machine_id: int | None
    state: str
    started_ms: int | None
    finished_ms: int | None
    quantity_good: int = Field(description="good units reported by operators")
    quantity_scrap: int
    quantity_rework: int
    machine_cycles: int = Field(description="cycles counted by the machine while it ran")
    machine_good: int
    machine_scrap: int
    good: int = Field(description="machine_good + quantity_good")
    scrap: int
    operator: str | None
    paused_ms: int


class WorkOrderOut(BaseModel):
    id: int
    external_id: str
    product_id: int
    routing_id: int | None
    quantity_ordered: int
    quantity_good: int
    quantity_scrap: int
    quantity_rework: int
    due_ms: int | None
    priority: int
    state: str
    created_ms: int
    updated_ms: int
    operations: list[OperationOut]


class OperationActionIn(BaseModel):
    machine_id: int | None = Field(default=None, description="start: the machine it runs on")
    good: int = Field(default=0, ge=0)
    scrap: int = Field(default=0, ge=0)
    rework: int = Field(default=0, ge=0)
    operator: str | None = Field(default=None, max_length=64, description="badge or name")
    reason: str | None = Field(
        default=None, max_length=200, description="report: why the scrap; pause: why"
    )


class DispatchOut(BaseModel):
    work_order_id: int
    work_order: str
    priority: int
    due_ms: int | None
    sequence: int
    operation: str
    state: str
    machine_id: int | None
    quantity_ordered: int
    quantity_good: int


def _operation_out(operation: WorkOrderOperation) -> OperationOut:
    return OperationOut.model_validate(operation, from_attributes=True)


def _work_order_out(session: SessionDep, order: WorkOrder) -> WorkOrderOut:
    operations = [_operation_out(op) for op in service.operations_of(session, order.id)]
    fields = {
        name: getattr(order, name) for name in WorkOrderOut.model_fields if name != "operations"
    }
    return WorkOrderOut(**fields, operations=operations)


def _conflict(error: IllegalTransition) -> HTTPException:
    return HTTPException(409, str(error))


@router.put("/erp/products/{external_id}", response_model=ProductOut)
def put_product(external_id: str, body: ProductIn, session: WriteSessionDep) -> ProductOut:
    """Create or update a product by the ERP's id (a repeat changes nothing)."""
    spec = service.ProductSpec(body.name, body.unit_of_measure, body.serialised)
    product = service.upsert_product(session, external_id, spec, now_ms())
    session.commit()
    return ProductOut.model_validate(product, from_attributes=True)


@router.put("/erp/products/{external_id}/bom", response_model=list[BomItemOut])
def put_bom(external_id: str, body: BomIn, session: WriteSessionDep) -> list[BomItemOut]:
    """Replace the product's bill of materials (components by their external ids)."""
    lines = [
        service.BomLine(item.component, item.quantity_per_unit, item.scrap_allowance_pct)
        for item in body.items
    ]
    items = service.replace_bom(session, external_id, lines, now_ms())
    session.commit()
    return [BomItemOut.model_validate(item, from_attributes=True) for item in items]


@router.put("/erp/routings/{external_id}", response_model=RoutingOut)
def put_routing(external_id: str, body: RoutingIn, session: WriteSessionDep) -> RoutingOut:
    """Create or update a routing and its operations (keyed by sequence)."""
    spec = service.RoutingSpec(
        body.product,
        body.name,
        tuple(service.OperationSpec(**op.model_dump()) for op in body.operations),
    )
    routing = service.upsert_routing(session, external_id, spec, now_ms())
    session.commit()
    operations = [
        RoutingOperationIn.model_validate(op, from_attributes=True)
        for op in service.routing_operations(session, routing.id)
    ]
    return RoutingOut(
        id=routing.id, external_id=routing.external_id, product_id=routing.product_id,
        name=routing.name, operations=operations,
    )  # fmt: skip


@router.put("/erp/work-orders/{external_id}", response_model=WorkOrderOut)
def put_work_order(external_id: str, body: WorkOrderIn, session: WriteSessionDep) -> WorkOrderOut:
    """Create (planned) or update a work order by the ERP's id."""
    spec = service.WorkOrderSpec(
        body.product, body.quantity_ordered, body.routing, body.due_ms, body.priority
    )
    try:
        order = service.upsert_work_order(session, external_id, spec, now_ms())
    except IllegalTransition as error:
        raise _conflict(error) from error
    session.commit()
    return _work_order_out(session, order)


@router.get("/work-orders", response_model=list[WorkOrderOut])
def get_work_orders(
    session: SessionDep,
    state: Literal[WORK_ORDER_STATES] | None = Query(None),  # type: ignore[valid-type]
    limit: int = Query(500, ge=1, le=5000),
) -> list[WorkOrderOut]:
    """Work orders, most urgent first (priority, due date), optionally in one state."""
    orders = service.list_work_orders(session, state, limit)
    return [_work_order_out(session, order) for order in orders]


@router.get("/work-orders/{work_order_id}", response_model=WorkOrderOut)
def get_work_order(work_order_id: int, session: SessionDep) -> WorkOrderOut:
    """One work order with its operations."""
    return _work_order_out(session, service.get_work_order(session, work_order_id))


@router.get("/work-orders/{work_order_id}/progress")
def get_progress(work_order_id: int, session: SessionDep) -> counting.Progress:
    """Where is my order: the current operation, quantities done, estimated completion."""
    order = service.get_work_order(session, work_order_id)
    return counting.progress(session, order, now_ms())


class OrderUnitOut(BaseModel):
    serial: str
    operation_id: int
    created_ms: int


@router.get("/work-orders/{work_order_id}/units", response_model=list[OrderUnitOut])
def get_order_units(
    work_order_id: int, session: SessionDep, limit: int = Query(1000, ge=1, le=100_000)
) -> list[OrderUnitOut]:
    """The units made by the order, oldest first."""
    order = service.get_work_order(session, work_order_id)
    query = select(Unit).where(Unit.work_order_id == order.id).order_by(Unit.created_ms, Unit.id)
    return [
        OrderUnitOut.model_validate(u, from_attributes=True)
        for u in session.scalars(query.limit(limit))
    ]


class StagedLotIn(BaseModel):
    lot: str = Field(min_length=1, max_length=64, description="the lot number")


@router.post("/work-orders/{work_order_id}/staged-lots", status_code=201)
def post_staged_lot(
    work_order_id: int, body: StagedLotIn, session: WriteSessionDep
) -> list[backflush.ComponentBalance]:
    """Stage a lot of a BOM component for the order's backflush; answers the balances."""
    order = service.get_work_order(session, work_order_id)
    now = now_ms()
    backflush.stage_lot(session, order, body.lot, now)
    balances = backflush.backflush(session, order, now)
    session.commit()
    return balances


@router.post("/work-orders/{work_order_id}/{action}", response_model=WorkOrderOut)
def post_work_order_action(
    work_order_id: int,
    action: Literal["release", "start", "hold", "resume", "complete", "close", "abort"],
    session: WriteSessionDep,
) -> WorkOrderOut:
    """A lifecycle action; 409 when the order's state does not allow it."""
    try:
        order = service.work_order_action(session, work_order_id, action, now_ms())
    except IllegalTransition as error:
        raise _conflict(error) from error
    session.commit()
    return _work_order_out(session, order)


class UnitIn(BaseModel):
    serial: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="the scanned serial; none: the next one is generated (<order>-00001 ...)",
    )  # fmt: skip
    at_ms: int | None = Field(
        default=None, ge=0, description="when it was scanned (default: now); its cycle starts"
    )
    source: Literal["scan", "api"] = "scan"


class UnitOut(BaseModel):
    id: int
    serial: str
    product_id: int
    work_order_id: int
    operation_id: int
    created_ms: int
    created: bool = Field(description="false when the serial was scanned again")


# before the operation-action route, whose {action} would otherwise take "units"
@router.post("/work-orders/{work_order_id}/operations/{sequence}/units", response_model=UnitOut)
def post_unit(
    work_order_id: int, sequence: int, body: UnitIn, session: WriteSessionDep, response: Response
) -> UnitOut:
    """Create the unit at a running serialising operation (201), or scan it again (200).
    Without a serial, the next serial of the order is generated."""
    at = body.at_ms if body.at_ms is not None else now_ms()
    source = body.source
    serial = body.serial
    if serial is None:
        serial, source = trace.next_serial(session, work_order_id), "api"
    unit, created = trace.register_unit(session, work_order_id, sequence, serial, at, source)
    session.commit()
    response.status_code = 201 if created else 200
    return UnitOut(
        id=unit.id, serial=unit.serial, product_id=unit.product_id,
        work_order_id=unit.work_order_id, operation_id=unit.operation_id,
        created_ms=unit.created_ms, created=created,
    )  # fmt: skip


@router.post("/work-orders/{work_order_id}/operations/{sequence}/{action}")
def post_operation_action(
    work_order_id: int,
    sequence: int,
    action: Literal["start", "pause", "resume", "finish", "report"],
    session: WriteSessionDep,
    body: OperationActionIn | None = None,
) -> OperationOut:
    """An operator action: start (on a machine), pause, resume, finish, report counts."""
    given = body or OperationActionIn()
    try:
        operation = service.operation_action(
            session, work_order_id, sequence, action, now_ms(),
            machine_id=given.machine_id, good=given.good, scrap=given.scrap, rework=given.rework,
            operator=given.operator, reason=given.reason,
        )  # fmt: skip
    except IllegalTransition as error:
        raise _conflict(error) from error
    if action in ("finish", "report"):
        counting.recount(session, now_ms(), [operation.id])  # its final machine counts
    session.commit()
    return _operation_out(operation)


@router.get("/work-centres/{line_id}/dispatch", response_model=list[DispatchOut])
def get_dispatch(line_id: int, session: SessionDep) -> list[DispatchOut]:
    """The line's dispatch list: operations to run or running, most urgent first."""
    return [
        DispatchOut(
            work_order_id=entry.work_order.id,
            work_order=entry.work_order.external_id,
            priority=entry.work_order.priority,
            due_ms=entry.work_order.due_ms,
            sequence=entry.operation.sequence,
            operation=entry.routing_operation.name,
            state=entry.operation.state,
            machine_id=entry.operation.machine_id,
            quantity_ordered=entry.work_order.quantity_ordered,
            quantity_good=entry.operation.quantity_good,
        )
        for entry in service.dispatch_list(session, line_id)
    ]


class LotIn(BaseModel):
    product: str = Field(min_length=1, max_length=64, description="product's external id")
    quantity: float = Field(ge=0)
    supplier: str | None = Field(default=None, max_length=200)
    supplier_lot: str | None = Field(
        default=None, max_length=64, description="supplier lot or heat number"
    )


class LotOut(LotIn):
    id: int
    external_id: str
    created_ms: int
    updated_ms: int


class ConsumerOperationIn(BaseModel):
    work_order_id: int
    sequence: int


class ConsumptionIn(BaseModel):
    unit: str | None = Field(default=None, description="consumer: a unit serial, or")
    operation: ConsumerOperationIn | None = Field(default=None, description="an operation")
    lot: str | None = Field(default=None, description="consumed: a lot number, or")
    component: str | None = Field(default=None, description="a component unit's serial")
    quantity: float = Field(default=1.0, gt=0)


class ConsumptionOut(BaseModel):
    id: int
    consumer_unit_id: int | None
    consumer_operation_id: int | None
    consumed_lot_id: int | None
    consumed_unit_id: int | None
    quantity: float
    ms: int


@router.put("/erp/lots/{lot}", response_model=LotOut)
def put_lot(lot: str, body: LotIn, session: WriteSessionDep) -> LotOut:
    """Create or update a material lot by its lot number."""
    spec = trace.LotSpec(body.product, body.quantity, body.supplier, body.supplier_lot)
    row = trace.upsert_lot(session, lot, spec, now_ms())
    session.commit()
    return LotOut(
        id=row.id, external_id=row.external_id, product=body.product, quantity=row.quantity,
        supplier=row.supplier, supplier_lot=row.supplier_lot, created_ms=row.created_ms,
        updated_ms=row.updated_ms,
    )  # fmt: skip


@router.post("/consumption", response_model=ConsumptionOut, status_code=201)
def post_consumption(body: ConsumptionIn, session: WriteSessionDep) -> ConsumptionOut:
    """Record that a unit or an operation consumed a lot or a component unit."""
    operation = (body.operation.work_order_id, body.operation.sequence) if body.operation else None
    row = trace.record_consumption(
        session, quantity=body.quantity, now=now_ms(), unit=body.unit, operation=operation,
        lot=body.lot, component=body.component,
    )  # fmt: skip
    session.commit()
    return ConsumptionOut.model_validate(row, from_attributes=True)


@router.get("/trace/units/{serial}")
def get_unit_trace(serial: str, session: SessionDep) -> trace.UnitTrace:
    """Backward trace: how the unit was made, with parameter summaries and alarms."""
    return trace.backward_trace(session, serial, now_ms())


@router.get("/trace/lots/{lot}")
def get_lot_trace(lot: str, session: SessionDep) -> trace.ForwardTrace:
    """Forward trace: every unit and work order that consumed the lot, at any depth."""
    return trace.forward_trace(session, lot)
