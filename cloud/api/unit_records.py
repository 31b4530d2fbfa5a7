"""Routes for what happened to units and lots: cycles, tests, inspections; recall scope.

Times are epoch milliseconds. A body that does not validate answers 400 naming the field.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud.api.deps import BadRequestRoute, SessionDep, WriteSessionDep
from cloud.api.timeparse import parse_time_ms
from cloud.errors import InvalidRequest, NotFound
from cloud.production import recall, records, trace
from cloud.production.models import WorkOrderOperation
from cloud.production.trace_models import MaterialLot, Unit
from protocols.clock import now_ms

router = APIRouter(prefix="/api", tags=["traceability"], route_class=BadRequestRoute)


def _unit(session: SessionDep, serial: str) -> Unit:
    unit = session.scalar(select(Unit).where(Unit.serial == serial))
    if unit is None:
        raise NotFound(f"no unit with serial {serial!r}")
    return unit


def _operation(session: SessionDep, unit: Unit, sequence: int) -> WorkOrderOperation:
    operation = session.scalar(
        select(WorkOrderOperation).where(
            WorkOrderOperation.work_order_id == unit.work_order_id,
            WorkOrderOperation.sequence == sequence,
        )
    )
    if operation is None:
        raise InvalidRequest(f"sequence: the unit's work order has no operation {sequence}")
    return operation


class CycleIn(BaseModel):
    sequence: int = Field(description="the operation of the unit's work order")
    start_ms: int = Field(ge=0)
    end_ms: int = Field(ge=0)
    source: Literal["api", "scan", "plc"] = "api"


class CycleOut(BaseModel):
    id: int
    unit_id: int
    operation_id: int | None
    machine_id: int | None
    start_ms: int
    end_ms: int | None
    source: str


@router.post("/units/{serial}/cycles", response_model=CycleOut, status_code=201)
def post_cycle(serial: str, body: CycleIn, session: WriteSessionDep) -> CycleOut:
    """A whole cycle of the unit on its operation's machine, known after the fact."""
    unit = _unit(session, serial)
    operation = _operation(session, unit, body.sequence)
    cycle = records.record_cycle(session, unit, operation, body.start_ms, body.end_ms, body.source)
    session.commit()
    return CycleOut.model_validate(cycle, from_attributes=True)


class TestValueIn(BaseModel):
    characteristic: str = Field(min_length=1, max_length=64)
    value: float | None
    unit: str | None = Field(default=None, max_length=32)
    low_limit: float | None = None
    high_limit: float | None = None
    passed: bool | None = Field(default=None, description="default: judged against the limits")


class TestIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="e.g. shell pressure test")
    machine_id: int | None = None
    started_ms: int = Field(ge=0)
    finished_ms: int = Field(ge=0)
    passed: bool | None = Field(default=None, description="default: every value passed")
    values: list[TestValueIn] = Field(min_length=1)


class TestOut(BaseModel):
    id: int
    unit_id: int
    name: str
    passed: bool
    started_ms: int
    finished_ms: int


@router.post("/units/{serial}/tests", response_model=TestOut, status_code=201)
def post_test(serial: str, body: TestIn, session: WriteSessionDep) -> TestOut:
    """A test of the unit with its measured values, limits and verdicts."""
    unit = _unit(session, serial)
    values = [records.TestValueSpec(**v.model_dump()) for v in body.values]
    test = records.record_test(
        session, unit, body.name, body.started_ms, body.finished_ms, values,
        machine_id=body.machine_id, passed=body.passed, source="api",
    )  # fmt: skip
    session.commit()
    return TestOut.model_validate(test, from_attributes=True)


class InspectionIn(BaseModel):
    characteristic: str = Field(min_length=1, max_length=64)
    passed: bool
    inspector: str = Field(min_length=1, max_length=64)
    value: float | None = None
    attribute: str | None = Field(default=None, max_length=64)
    note: str | None = None


class InspectionOut(InspectionIn):
    id: int
    unit_id: int | None
    lot_id: int | None
    ms: int


@router.post("/units/{serial}/inspections", response_model=InspectionOut, status_code=201)
def post_unit_inspection(
    serial: str, body: InspectionIn, session: WriteSessionDep
) -> InspectionOut:
    """An inspection result against a unit."""
    spec = records.InspectionSpec(**body.model_dump())
    row = records.record_inspection(session, spec, now_ms(), unit=_unit(session, serial))
    session.commit()
    return InspectionOut.model_validate(row, from_attributes=True)


@router.post("/lots/{lot}/inspections", response_model=InspectionOut, status_code=201)
def post_lot_inspection(lot: str, body: InspectionIn, session: WriteSessionDep) -> InspectionOut:
    """An inspection result against a material lot (e.g. incoming inspection)."""
    material = session.scalar(select(MaterialLot).where(MaterialLot.external_id == lot))
    if material is None:
        raise NotFound(f"no material lot {lot!r}")
    spec = records.InspectionSpec(**body.model_dump())
    row = records.record_inspection(session, spec, now_ms(), lot=material)
    session.commit()
    return InspectionOut.model_validate(row, from_attributes=True)


@router.get("/trace/components/{serial}")
def get_component_trace(serial: str, session: SessionDep) -> trace.ForwardTrace:
    """Forward trace of a component unit: every unit and order that consumed it, any depth."""
    return trace.forward_trace_of_unit(session, serial)


@router.get("/trace/recall")
def get_recall(
    session: SessionDep,
    response: Response,
    machine: int = Query(description="machine id"),
    metric: str = Query(description="the parameter, as in the device profile"),
    start: str = Query(description="ISO 8601 or epoch ms"),
    end: str = Query(description="ISO 8601 or epoch ms"),
    low: float | None = Query(None, description="default: the parameter's own limits"),
    high: float | None = Query(None, description="default: the parameter's own limits"),
) -> recall.RecallScope:
    """Every unit processed on the machine while the parameter was outside the limits in
    ``[start, end)``, and every unit that consumed one of them. (For a bad lot: GET
    /api/trace/lots/{lot}.)"""
    scope = recall.recall_by_excursion(
        session, machine, metric, parse_time_ms(start, "start"), parse_time_ms(end, "end"),
        low, high,
    )  # fmt: skip
    response.headers["X-Units-In-Scope"] = str(len(scope.units))
    return scope
