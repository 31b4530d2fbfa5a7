"""Recall scope: every unit processed on a machine while a parameter was outside given limits.

The excursions are found the way the parameter summary reads the series (a sample holds its
value until the next; the one before the range carries in): each maximal stretch of time in
``[start_ms, end_ms)`` during which the value was below ``low`` or above ``high``. A unit is in
scope when its own cycle on that machine overlaps an excursion; when an operation on that
machine overlaps one but bound no unit cycles (units scanned elsewhere, or none), every unit of
its work order is in scope, marked so. Every unit that consumed an affected unit, at any depth,
is in scope as well (the assembly contains the suspect part).

For a bad lot, the scope is the lot's forward trace (``trace.forward_trace``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cloud.assets.models import Machine
from cloud.errors import InvalidRequest, NotFound
from cloud.production.models import WorkOrder, WorkOrderOperation
from cloud.production.trace import consumers_of
from cloud.production.trace_models import Unit, UnitCycle
from cloud.timeseries.models import TsSeries, ts_sample


@dataclass(frozen=True, slots=True)
class Excursion:
    start_ms: int
    end_ms: int
    worst: float  # the value farthest outside the limits


@dataclass(frozen=True, slots=True)
class RecallUnit:
    serial: str
    work_order: str
    reason: str  # "cycle": its own cycle overlapped; "operation": its order's run did; "component"
    depth: int  # 0 for units processed on the machine, n for their consumers n levels up


@dataclass(frozen=True, slots=True)
class RecallScope:
    machine_id: int
    metric: str
    low: float | None
    high: float | None
    excursions: list[Excursion]
    units: list[RecallUnit]
    work_orders: list[str]


def _series(session: Session, machine_id: int, metric: str) -> TsSeries:
    machine = session.get(Machine, machine_id)
    if machine is None:
        raise NotFound(f"no machine {machine_id}")
    series = session.scalar(
        select(TsSeries).where(
            TsSeries.edge == machine.edge, TsSeries.device == machine.device,
            TsSeries.metric == metric,
        )
    )  # fmt: skip
    if series is None:
        raise NotFound(f"machine {machine_id} has no metric {metric!r}")
    return series


def excursions(
    session: Session, series_id: int, start_ms: int, end_ms: int, low: float | None,
    high: float | None,
) -> list[Excursion]:  # fmt: skip
    """Maximal stretches of ``[start_ms, end_ms)`` held by values outside ``[low, high]``."""
    before = session.execute(
        select(ts_sample.c.ts, ts_sample.c.value)
        .where(ts_sample.c.series_id == series_id, ts_sample.c.ts < start_ms)
        .order_by(ts_sample.c.ts.desc())
        .limit(1)
    ).all()
    inside = session.execute(
        select(ts_sample.c.ts, ts_sample.c.value)
        .where(
            ts_sample.c.series_id == series_id,
            ts_sample.c.ts >= start_ms,
            ts_sample.c.ts < end_ms,
        )
        .order_by(ts_sample.c.ts)
    ).all()
    points = [(start_ms, v) for _, v in before] + [(int(t), v) for t, v in inside]
    found: list[Excursion] = []
    for (ts, value), following in zip(points, [*points[1:], (end_ms, None)], strict=True):
        if ts >= following[0] or value is None:
            continue
        below = low is not None and value < low
        above = high is not None and value > high
        if not (below or above):
            continue
        if found and found[-1].end_ms == ts:
            last = found[-1]
            worst = max(last.worst, float(value), key=lambda v: _beyond(v, low, high))
            found[-1] = Excursion(last.start_ms, following[0], worst)
        else:
            found.append(Excursion(ts, following[0], float(value)))
    return found


def _beyond(value: float, low: float | None, high: float | None) -> float:
    if low is not None and value < low:
        return low - value
    if high is not None and value > high:
        return value - high
    return 0.0


def recall_by_excursion(
    session: Session, machine_id: int, metric: str, start_ms: int, end_ms: int,
    low: float | None = None, high: float | None = None,
) -> RecallScope:  # fmt: skip
    """Units processed on the machine while ``metric`` was outside ``[low, high]`` (default: the
    series' own limits) in ``[start_ms, end_ms)``, and their consumers."""
    if end_ms <= start_ms:
        raise InvalidRequest(f"end: {end_ms} must be after start {start_ms}")
    series = _series(session, machine_id, metric)
    if low is None and high is None:
        low, high = series.low_limit, series.high_limit
    if low is None and high is None:
        raise InvalidRequest(f"low: {metric!r} has no limits; give low and/or high")
    found = excursions(session, series.id, start_ms, end_ms, low, high)
    reasons: dict[int, str] = {}
    for excursion in found:
        overlaps = and_(
            UnitCycle.machine_id == machine_id,
            UnitCycle.start_ms < excursion.end_ms,
            or_(UnitCycle.end_ms.is_(None), UnitCycle.end_ms > excursion.start_ms),
        )
        for unit_id in session.scalars(select(UnitCycle.unit_id).where(overlaps)):
            reasons[unit_id] = "cycle"
        uncycled = select(WorkOrderOperation.work_order_id).where(
            WorkOrderOperation.machine_id == machine_id,
            WorkOrderOperation.started_ms < excursion.end_ms,
            or_(
                WorkOrderOperation.finished_ms.is_(None),
                WorkOrderOperation.finished_ms > excursion.start_ms,
            ),
            ~select(UnitCycle.id).where(UnitCycle.operation_id == WorkOrderOperation.id).exists(),
        )
        for unit_id in session.scalars(select(Unit.id).where(Unit.work_order_id.in_(uncycled))):
            reasons.setdefault(unit_id, "operation")
    rows = session.execute(
        select(Unit.id, Unit.serial, WorkOrder.external_id)
        .join(WorkOrder, WorkOrder.id == Unit.work_order_id)
        .where(Unit.id.in_(reasons))
    )
    units = [RecallUnit(serial, order, reasons[uid], 0) for uid, serial, order in rows]
    if reasons:
        consumers = consumers_of(session, unit_ids=set(reasons), skip=set(reasons))
        units += [RecallUnit(u.serial, u.work_order, "component", u.depth) for u in consumers.units]
    units.sort(key=lambda u: (u.depth, u.serial))
    orders = sorted({u.work_order for u in units})
    return RecallScope(machine_id, metric, low, high, found, units, orders)
