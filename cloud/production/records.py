"""What happened to one unit: its cycles on machines, its tests, its inspection results.

A unit's *cycle* is the window in which a machine worked on it, so that a trace summarises the
parameters of that unit's own cycle, not of a shift-long operation. A machine works on one unit
at a time: starting a cycle closes the machine's open one (a scan of the next serial, or the
PLC's serial tag changing, ends the previous unit's cycle). Finishing an operation closes its
open cycles.

Plain functions over a session; the caller commits. Bad references raise ``InvalidRequest``
naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.errors import InvalidRequest
from cloud.production.models import WorkOrderOperation
from cloud.production.trace_models import (
    Inspection,
    MaterialLot,
    Unit,
    UnitCycle,
    UnitTest,
    UnitTestValue,
)

CYCLE_SOURCES = ("plc", "scan", "api")


def close_machine_cycles(session: Session, machine_id: int, end_ms: int) -> None:
    """End every open cycle on the machine at ``end_ms`` (never before its own start)."""
    open_cycles = session.scalars(
        select(UnitCycle).where(UnitCycle.machine_id == machine_id, UnitCycle.end_ms.is_(None))
    )
    for cycle in open_cycles:
        cycle.end_ms = max(end_ms, cycle.start_ms)
    session.flush()


def close_operation_cycles(session: Session, operation_id: int, end_ms: int) -> None:
    """End the open cycles of an operation (it finished, or was aborted)."""
    session.execute(
        update(UnitCycle)
        .where(UnitCycle.operation_id == operation_id, UnitCycle.end_ms.is_(None))
        .values(end_ms=end_ms)
    )


def start_cycle(
    session: Session, unit: Unit, operation: WorkOrderOperation, start_ms: int, source: str
) -> UnitCycle:
    """The machine of ``operation`` starts working on ``unit`` at ``start_ms``."""
    if source not in CYCLE_SOURCES:
        raise InvalidRequest(f"source: {source!r} is not one of {', '.join(CYCLE_SOURCES)}")
    if operation.machine_id is not None:
        close_machine_cycles(session, operation.machine_id, start_ms)
    cycle = UnitCycle(
        unit_id=unit.id, operation_id=operation.id, machine_id=operation.machine_id,
        start_ms=start_ms, end_ms=None, source=source,
    )  # fmt: skip
    session.add(cycle)
    session.flush()
    return cycle


def record_cycle(
    session: Session,
    unit: Unit,
    operation: WorkOrderOperation,
    start_ms: int,
    end_ms: int,
    source: str = "api",
) -> UnitCycle:
    """A whole cycle known after the fact (e.g. posted by a cell controller)."""
    if end_ms < start_ms:
        raise InvalidRequest(f"end_ms: {end_ms} is before start_ms {start_ms}")
    if source not in CYCLE_SOURCES:
        raise InvalidRequest(f"source: {source!r} is not one of {', '.join(CYCLE_SOURCES)}")
    cycle = UnitCycle(
        unit_id=unit.id, operation_id=operation.id, machine_id=operation.machine_id,
        start_ms=start_ms, end_ms=end_ms, source=source,
    )  # fmt: skip
    session.add(cycle)
    session.flush()
    return cycle


@dataclass(frozen=True, slots=True)
class TestValueSpec:
    characteristic: str
    value: float | None
    unit: str | None = None
    low_limit: float | None = None
    high_limit: float | None = None
    passed: bool | None = None  # None: judged against the limits


def judge(value: float | None, low: float | None, high: float | None) -> bool:
    """Inside the limits (a missing value never passes)."""
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def record_test(
    session: Session,
    unit: Unit,
    name: str,
    started_ms: int,
    finished_ms: int,
    values: Sequence[TestValueSpec],
    *,
    machine_id: int | None = None,
    passed: bool | None = None,
    source: str = "api",
) -> UnitTest:
    """A test of ``unit`` with its measured values; the verdict, unless given, is that every
    value passed."""
    if finished_ms < started_ms:
        raise InvalidRequest(f"finished_ms: {finished_ms} is before started_ms {started_ms}")
    if not values:
        raise InvalidRequest("values: a test records at least one measured value")
    verdicts = [
        v.passed if v.passed is not None else judge(v.value, v.low_limit, v.high_limit)
        for v in values
    ]
    test = UnitTest(
        unit_id=unit.id, name=name, machine_id=machine_id, started_ms=started_ms,
        finished_ms=finished_ms, passed=all(verdicts) if passed is None else passed,
        source=source,
    )  # fmt: skip
    session.add(test)
    session.flush()
    session.add_all(
        UnitTestValue(
            test_id=test.id, characteristic=v.characteristic, value=v.value, unit=v.unit,
            low_limit=v.low_limit, high_limit=v.high_limit, passed=verdict,
        )
        for v, verdict in zip(values, verdicts, strict=True)
    )  # fmt: skip
    session.flush()
    return test


@dataclass(frozen=True, slots=True)
class InspectionSpec:
    characteristic: str
    passed: bool
    inspector: str
    value: float | None = None
    attribute: str | None = None
    note: str | None = None


def record_inspection(
    session: Session,
    spec: InspectionSpec,
    now: int,
    *,
    unit: Unit | None = None,
    lot: MaterialLot | None = None,
    operation_id: int | None = None,
) -> Inspection:
    """An inspection result against a unit or a lot (exactly one)."""
    if (unit is None) == (lot is None):
        raise InvalidRequest("unit: give exactly one subject, unit or lot")
    if spec.value is None and spec.attribute is None:
        raise InvalidRequest("value: give a measured value or an attribute")
    row = Inspection(
        unit_id=None if unit is None else unit.id, lot_id=None if lot is None else lot.id,
        operation_id=operation_id, characteristic=spec.characteristic, value=spec.value,
        attribute=spec.attribute, passed=spec.passed, inspector=spec.inspector, note=spec.note,
        ms=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row
