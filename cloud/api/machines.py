"""Routes for machines: list with current state and latest values, get, rename/place, states."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.api.deps import SessionDep
from cloud.api.schemas import LatestOut, MachineOut, MachinePatch, StateIntervalOut
from cloud.api.timeparse import parse_time_ms
from cloud.assets.models import Machine
from cloud.assets.service import get_machine, list_machines, placement_names, update_machine
from cloud.machine_state.models import StateInterval
from cloud.timeseries.models import TsLatest, TsSeries
from cloud.timeseries.store import QUALITY_NAME
from protocols.clock import now_ms

router = APIRouter(prefix="/api/machines", tags=["machines"])


def machine_out(session: Session, machine: Machine) -> MachineOut:
    area, line = placement_names(session, machine)
    current = session.scalars(
        select(StateInterval)
        .where(StateInterval.machine_id == machine.id, StateInterval.end_ms.is_(None))
        .order_by(StateInterval.start_ms.desc())
        .limit(1)
    ).first()
    rows = session.execute(
        select(TsSeries, TsLatest)
        .join(TsLatest, TsLatest.series_id == TsSeries.id)
        .where(TsSeries.edge == machine.edge, TsSeries.device == machine.device)
        .order_by(TsSeries.metric)
    ).all()
    values = {
        series.metric: LatestOut(
            series_id=series.id, metric=series.metric, unit=series.unit, role=series.role,
            ts_ms=latest.ts, value=latest.value, text_value=latest.text_value,
            quality=QUALITY_NAME.get(latest.quality, "bad"), reason=latest.reason,
        )
        for series, latest in rows
    }  # fmt: skip
    return MachineOut(
        id=machine.id, name=machine.name, site=machine.site_id, area=area, line=line,
        edge=machine.edge, device=machine.device, profile=machine.profile,
        protocol=machine.protocol, ideal_cycle_time_s=machine.ideal_cycle_time_s,
        units_per_cycle=machine.units_per_cycle, placed_by=machine.placed_by,
        state=current.state if current else None,
        state_since_ms=current.start_ms if current else None,
        fault_code=current.fault_code if current else None,
        values=values,
    )  # fmt: skip


@router.get("", response_model=list[MachineOut])
def list_all(session: SessionDep) -> list[MachineOut]:
    """Every machine with its current state and the latest value of each of its metrics."""
    return [machine_out(session, m) for m in list_machines(session)]


@router.get("/{machine_id}", response_model=MachineOut)
def get_one(machine_id: int, session: SessionDep) -> MachineOut:
    return machine_out(session, get_machine(session, machine_id))


@router.patch("/{machine_id}", response_model=MachineOut)
def patch(machine_id: int, body: MachinePatch, session: SessionDep) -> MachineOut:
    """Rename a machine and/or place it in an area and line (kept over later births)."""
    machine = update_machine(
        session, machine_id, name=body.name, area=body.area, line=body.line, now_ms=now_ms()
    )
    session.commit()
    return machine_out(session, machine)


@router.get("/{machine_id}/states", response_model=list[StateIntervalOut])
def states(
    machine_id: int,
    session: SessionDep,
    start: str | None = Query(None, description="ISO 8601 or epoch ms; default: end - 24 h"),
    end: str | None = Query(None, description="ISO 8601 or epoch ms; default: now"),
) -> list[StateIntervalOut]:
    """State intervals overlapping ``[start, end)``, oldest first."""
    get_machine(session, machine_id)
    end_ms = parse_time_ms(end, "end") if end else now_ms()
    start_ms = parse_time_ms(start, "start") if start else end_ms - 86_400_000
    rows = session.scalars(
        select(StateInterval)
        .where(
            StateInterval.machine_id == machine_id,
            StateInterval.start_ms < end_ms,
            or_(StateInterval.end_ms.is_(None), StateInterval.end_ms > start_ms),
        )
        .order_by(StateInterval.start_ms)
    )
    return [
        StateIntervalOut(
            state=r.state, raw_code=r.raw_code, fault_code=r.fault_code,
            start_ms=r.start_ms, end_ms=r.end_ms,
        )
        for r in rows
    ]  # fmt: skip
