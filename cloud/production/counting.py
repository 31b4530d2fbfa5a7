"""Machine counts attributed to the operation running on the machine, and the order's progress.

An operation's machine counts are the increases of its machine's PLC counters (cycle, good,
scrap; ``cloud.oee.counters`` reads resets and rollovers) over the operation's window
``[started_ms, finished_ms or now)``. They are recomputed from the stored samples each time,
not added up incrementally, so that samples which arrive late (an edge draining its
store-and-forward log after an outage) still land in the operation that was running when they
were measured, and so that two cloud processes recounting at once write the same figures.
Finished operations are recounted for ``settle_ms`` after they finish, for the same reason.

A machine without a good-count counter counts good units as cycles × units per cycle minus
scrap. One operation runs on a machine at a time (``service.operation_action`` refuses a
second), so counts are never split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.assets.models import Machine
from cloud.oee.counters import counter_increase
from cloud.oee.loader import counter_series, load_counters
from cloud.oee.models import MachineOeeSettings
from cloud.production import backflush, service
from cloud.production import lifecycle as lc
from cloud.production.models import RoutingOperation, WorkOrder, WorkOrderOperation

log = logging.getLogger(__name__)

SETTLE_MS = 600_000


@dataclass(frozen=True, slots=True)
class MachineCounts:
    cycles: int
    good: int
    scrap: int


def _rollover(session: Session, machine_id: int) -> int | None:
    row = session.execute(
        select(
            MachineOeeSettings.counter_rollover, Machine.counter_rollover, Machine.units_per_cycle
        )
        .select_from(Machine)
        .outerjoin(MachineOeeSettings, MachineOeeSettings.machine_id == Machine.id)
        .where(Machine.id == machine_id)
    ).first()
    if row is None:
        return None
    chosen = row[0] if row[0] is not None else row[1]
    return None if chosen is None else int(chosen)


def machine_counts(session: Session, machine_id: int, from_ms: int, to_ms: int) -> MachineCounts:
    """What the machine's counters added in ``[from_ms, to_ms)``."""
    conn = session.connection()
    series = counter_series(conn, [machine_id]).get(machine_id, {})
    if not series:
        return MachineCounts(0, 0, 0)
    samples = load_counters(conn, list(series.values()), from_ms, to_ms)
    rollover = _rollover(session, machine_id)
    added = {
        role: counter_increase(samples[series_id], from_ms, to_ms, rollover=rollover).total
        for role, series_id in series.items()
    }
    cycles = round(added.get("cycle_count", 0.0))
    scrap = round(added.get("scrap_count", 0.0))
    if "good_count" in added:
        good = round(added["good_count"])
    else:
        machine = session.get(Machine, machine_id)
        per_cycle = (machine.units_per_cycle if machine is not None else None) or 1
        good = max(0, cycles * per_cycle - scrap)
    return MachineCounts(cycles, good, scrap)


def count_operation(session: Session, operation: WorkOrderOperation, now: int) -> bool:
    """Recount the operation's machine counts; answers whether they changed."""
    if operation.machine_id is None or operation.started_ms is None:
        return False
    end = operation.finished_ms if operation.finished_ms is not None else now
    counts = machine_counts(session, operation.machine_id, operation.started_ms, end)
    before = (operation.machine_cycles, operation.machine_good, operation.machine_scrap)
    operation.machine_cycles, operation.machine_good, operation.machine_scrap = (
        counts.cycles, counts.good, counts.scrap,
    )  # fmt: skip
    operation.counted_to_ms = end
    return before != (counts.cycles, counts.good, counts.scrap)


def operations_to_count(session: Session, now: int, settle_ms: int = SETTLE_MS) -> list[int]:
    """Operations on a machine that run, are paused, or finished less than ``settle_ms`` ago."""
    query = select(WorkOrderOperation.id).where(
        WorkOrderOperation.machine_id.is_not(None),
        WorkOrderOperation.started_ms.is_not(None),
        or_(
            WorkOrderOperation.state.in_((lc.RUNNING, lc.PAUSED)),
            WorkOrderOperation.finished_ms >= now - settle_ms,
        ),
    )
    return list(session.scalars(query.order_by(WorkOrderOperation.id)))


def recount(session: Session, now: int, operation_ids: Sequence[int] | None = None) -> int:
    """Recount the given (default: every live) operation and roll their orders up; the caller
    commits. Answers how many operations changed."""
    changed = 0
    ids = operations_to_count(session, now) if operation_ids is None else operation_ids
    for operation_id in ids:
        operation = session.get(WorkOrderOperation, operation_id)
        if operation is None or not count_operation(session, operation, now):
            continue
        changed += 1
        order = session.get(WorkOrder, operation.work_order_id)
        if order is not None:
            service.roll_up(session, order)
            backflush.backflush(session, order, now)
    session.flush()
    return changed


@dataclass(frozen=True, slots=True)
class Progress:
    """Where an order is: its current operation, what is done, and when it should finish."""

    work_order_id: int
    state: str
    quantity_ordered: int
    quantity_good: int
    quantity_scrap: int
    current_sequence: int | None
    current_operation: str | None
    current_machine_id: int | None
    current_good: int
    rate_per_hour: float | None  # good units per hour of the current operation so far
    rate_source: str  # "observed", "ideal" (the routing's ideal cycle time) or "none"
    remaining_s: float | None
    estimated_completion_ms: int | None


def _remaining_steps_s(steps: Sequence[RoutingOperation], quantity: int) -> float:
    """Ideal time of routing steps still to run for ``quantity`` units (setup included)."""
    return sum(s.setup_time_s + (s.ideal_cycle_time_s or 0.0) * quantity for s in steps)


def progress(session: Session, order: WorkOrder, now: int) -> Progress:
    """The order's progress and an estimated completion time.

    The current operation is the first one not finished. Its remaining units (ordered minus
    good so far) go at the rate observed since it started (good units per elapsed running
    time, pauses left out) once it has made at least one unit, else at the routing's ideal
    cycle time; the steps after it add their setup plus ideal cycle time for every unit.
    """
    rows = list(
        session.execute(
            select(WorkOrderOperation, RoutingOperation)
            .join(RoutingOperation, RoutingOperation.id == WorkOrderOperation.routing_operation_id)
            .where(WorkOrderOperation.work_order_id == order.id)
            .order_by(WorkOrderOperation.sequence)
        )
    )
    current = next(((op, step) for op, step in rows if op.state != lc.FINISHED), None)
    if current is None or order.state in (lc.COMPLETED, lc.CLOSED, lc.ABORTED):
        return Progress(
            order.id, order.state, order.quantity_ordered, order.quantity_good,
            order.quantity_scrap, None, None, None, 0, None, "none", 0.0, None,
        )  # fmt: skip
    operation, step = current
    left = max(0, order.quantity_ordered - operation.good)
    rate_s: float | None = None
    source = "none"
    if operation.started_ms is not None and operation.good > 0:
        paused = operation.paused_ms + (
            now - operation.paused_since_ms if operation.paused_since_ms is not None else 0
        )
        running_s = max(0.001, (now - operation.started_ms - paused) / 1000)
        rate_s, source = running_s / operation.good, "observed"
    elif step.ideal_cycle_time_s:
        rate_s, source = step.ideal_cycle_time_s, "ideal"
    remaining: float | None = None
    if rate_s is not None:
        later = [s for op, s in rows if op.sequence > operation.sequence]
        setup = step.setup_time_s if operation.started_ms is None else 0.0
        remaining = setup + left * rate_s + _remaining_steps_s(later, order.quantity_ordered)
    return Progress(
        order.id, order.state, order.quantity_ordered, order.quantity_good, order.quantity_scrap,
        operation.sequence, step.name, operation.machine_id, operation.good,
        None if rate_s is None else 3600.0 / rate_s, source, remaining,
        None if remaining is None else now + round(remaining * 1000),
    )  # fmt: skip
