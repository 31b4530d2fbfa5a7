"""Routes for OEE: machine/line/site KPIs, losses, downtime and reasons, roll-ups, calendars.

Every KPI response carries the time elements (ms) and quantities it came from. Time
parameters ``from`` and ``to`` take ISO 8601 or epoch ms (``cloud/api/timeparse.py``); without
them a view covers the current shift of the calendar in force (the last finished shift when
none is running).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from cloud.api.deps import EngineDep
from cloud.api.timeparse import parse_time_ms
from cloud.db import writer_engine
from cloud.errors import InvalidRequest
from cloud.oee.calendar import planned_windows
from cloud.oee.calendar_schema import CalendarSpec
from cloud.oee.rollup import KINDS, list_rollups, roll_up
from cloud.oee.schemas import (
    CalendarOut,
    DowntimeListOut,
    DowntimeOut,
    GroupOeeOut,
    LossesOut,
    MachineOeeOut,
    PlannedWindowOut,
    ReasonIn,
    RollupOut,
    SettingsIn,
    SettingsOut,
    calendar_out,
    downtime_out,
    group_out,
    kpis_out,
    losses_out,
    machine_oee_out,
    window_out,
)
from cloud.oee.service import (
    current_oee,
    line_oee,
    machine_downtime,
    machine_losses,
    machine_oee,
    set_downtime_reason,
    site_oee,
)
from cloud.oee.settings import OeeSettings
from cloud.oee.store import (
    SOURCE_API,
    MachineSettings,
    OperatorReason,
    delete_calendar,
    get_calendar,
    get_machine_settings,
    list_calendars,
    put_machine_settings,
    save_calendar,
)
from protocols.clock import now_ms

router = APIRouter(tags=["oee"])

FROM = Query(None, alias="from", description="ISO 8601 or epoch ms; default: the current shift")
TO = Query(None, alias="to", description="ISO 8601 or epoch ms; default: now / the shift's end")


def get_oee_settings(request: Request) -> OeeSettings:
    settings = getattr(request.app.state, "oee_settings", None)
    return settings if isinstance(settings, OeeSettings) else OeeSettings()


OeeSettingsDep = Annotated[OeeSettings, Depends(get_oee_settings)]


def _times(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    return (
        parse_time_ms(start, "from") if start else None,
        parse_time_ms(end, "to") if end else None,
    )


# --------------------------------------------------------------------------- bodies


@router.get("/api/oee/machines/{machine_id}", response_model=MachineOeeOut)
def oee_of_machine(
    machine_id: int,
    db: EngineDep,
    settings: OeeSettingsDep,
    start: str | None = FROM,
    end: str | None = TO,
) -> MachineOeeOut:
    """One machine's OEE and ISO 22400 KPIs, computed live over the window."""
    from_ms, to_ms = _times(start, end)
    with db.connect() as conn:
        return machine_oee_out(machine_oee(conn, settings, machine_id, from_ms, to_ms))


@router.get("/api/oee/machines/{machine_id}/losses", response_model=LossesOut)
def losses_of_machine(
    machine_id: int,
    db: EngineDep,
    settings: OeeSettingsDep,
    start: str | None = FROM,
    end: str | None = TO,
) -> LossesOut:
    """The six big losses (plus idle and unknown time) in seconds; they add up to PBT − PRI×GQ."""
    from_ms, to_ms = _times(start, end)
    with db.connect() as conn:
        view, losses = machine_losses(conn, settings, machine_id, from_ms, to_ms)
    return losses_out(view, losses)


@router.get("/api/oee/lines/{line_id}", response_model=GroupOeeOut)
def oee_of_line(
    line_id: int,
    db: EngineDep,
    settings: OeeSettingsDep,
    start: str | None = FROM,
    end: str | None = TO,
    rollups: bool = Query(True, description="sum hourly roll-ups for whole hours"),
) -> GroupOeeOut:
    """A line: its machines' time elements and quantities summed, then the ratios."""
    from_ms, to_ms = _times(start, end)
    with db.connect() as conn:
        return group_out(line_oee(conn, settings, line_id, from_ms, to_ms, use_rollups=rollups))


@router.get("/api/oee/sites/{site_id}", response_model=GroupOeeOut)
def oee_of_site(
    site_id: str,
    db: EngineDep,
    settings: OeeSettingsDep,
    start: str | None = FROM,
    end: str | None = TO,
    rollups: bool = Query(True, description="sum hourly roll-ups for whole hours"),
) -> GroupOeeOut:
    """A site: every machine summed, then the ratios."""
    from_ms, to_ms = _times(start, end)
    with db.connect() as conn:
        return group_out(site_oee(conn, settings, site_id, from_ms, to_ms, use_rollups=rollups))


@router.get("/api/oee/current", response_model=list[MachineOeeOut])
def oee_now(db: EngineDep, settings: OeeSettingsDep) -> list[MachineOeeOut]:
    """Every machine over its own current shift, computed live (the live view polls this)."""
    with db.connect() as conn:
        return [machine_oee_out(v) for v in current_oee(conn, settings)]


# --------------------------------------------------------------------------- downtime


@router.get("/api/machines/{machine_id}/downtime", response_model=DowntimeListOut)
def downtime(
    machine_id: int,
    db: EngineDep,
    settings: OeeSettingsDep,
    start: str | None = FROM,
    end: str | None = TO,
) -> DowntimeListOut:
    """Down, idle and setup intervals with duration, micro-stop flag, fault code and reason."""
    from_ms, to_ms = _times(start, end)
    with db.connect() as conn:
        window, events = machine_downtime(conn, settings, machine_id, from_ms, to_ms)
    return DowntimeListOut(
        machine_id=machine_id, window=window_out(window), events=[downtime_out(e) for e in events]
    )


@router.put("/api/machines/{machine_id}/downtime/{start_ms}/reason", response_model=DowntimeOut)
def put_reason(
    machine_id: int,
    start_ms: int,
    body: ReasonIn,
    db: EngineDep,
    settings: OeeSettingsDep,
) -> DowntimeOut:
    """An operator's reason for the stop that started at ``start_ms`` (wins over the PLC's)."""
    entered = now_ms()
    reason = OperatorReason(body.reason, body.category, body.comment, body.entered_by, entered)
    with writer_engine(db).begin() as conn:
        set_downtime_reason(conn, machine_id, start_ms, reason)
    with db.connect() as conn:
        _, events = machine_downtime(conn, settings, machine_id, start_ms, start_ms + 1)
    return downtime_out(next(e for e in events if e.start_ms == start_ms))


# --------------------------------------------------------------------------- settings


@router.get("/api/oee/machines/{machine_id}/settings", response_model=SettingsOut)
def machine_settings(machine_id: int, db: EngineDep) -> SettingsOut:
    """A machine's OEE overrides (None: the profile's ideal cycle time, the plant default)."""
    with db.connect() as conn:
        found = get_machine_settings(conn, machine_id)
    return SettingsOut(
        machine_id=machine_id, ideal_cycle_time_s=found.ideal_cycle_time_s,
        micro_stop_s=found.micro_stop_s, counter_rollover=found.counter_rollover,
        updated_ms=found.updated_ms,
    )  # fmt: skip


@router.put("/api/oee/machines/{machine_id}/settings", response_model=SettingsOut)
def set_machine_settings(machine_id: int, body: SettingsIn, db: EngineDep) -> SettingsOut:
    """Set the ideal cycle time override, micro-stop threshold and counter rollover.

    Roll-ups already stored keep the old figures: recompute them with
    ``POST /api/oee/rollups/run``.
    """
    updated = now_ms()
    with writer_engine(db).begin() as conn:
        put_machine_settings(
            conn,
            MachineSettings(
                machine_id,
                body.ideal_cycle_time_s,
                body.micro_stop_s,
                body.counter_rollover,
                updated,
            ),
            updated,
        )
    return SettingsOut(machine_id=machine_id, updated_ms=updated, **body.model_dump())


# --------------------------------------------------------------------------- roll-ups


@router.get("/api/oee/rollups", response_model=list[RollupOut])
def rollups(
    db: EngineDep,
    machine_id: int = Query(...),
    kind: str = Query("hour", description="hour or shift"),
    start: str | None = Query(None, alias="from", description="default: to - 24 h"),
    end: str | None = Query(None, alias="to", description="default: now"),
) -> list[RollupOut]:
    """Stored roll-ups of a machine whose period starts in ``[from, to)``, oldest first."""
    if kind not in KINDS:
        raise InvalidRequest(f"kind={kind!r}: give one of {', '.join(KINDS)}")
    to_ms = parse_time_ms(end, "to") if end else now_ms()
    from_ms = parse_time_ms(start, "from") if start else to_ms - 86_400_000
    with db.connect() as conn:
        rows = list_rollups(conn, machine_id, kind, from_ms, to_ms)
    return [
        RollupOut(
            machine_id=r.machine_id, period_kind=r.period_kind, period_start_ms=r.period_start_ms,
            period_end_ms=r.period_end_ms, shift_name=r.shift_name, local_date=r.local_date,
            computed_ms=r.computed_ms, kpis=kpis_out(r.kpis),
        )
        for r in rows
    ]  # fmt: skip


@router.post("/api/oee/rollups/run")
def run_rollups(
    db: EngineDep,
    settings: OeeSettingsDep,
    start: str = Query(..., alias="from"),
    end: str | None = Query(None, alias="to", description="default: now"),
) -> dict[str, int]:
    """Compute (again) every hour and shift that ended in the window, for every machine."""
    now = now_ms()
    to_ms = parse_time_ms(end, "to") if end else now
    written = roll_up(db, settings, parse_time_ms(start, "from"), to_ms, now)
    return {"rows": written}


# --------------------------------------------------------------------------- calendars


@router.get("/api/calendars", response_model=list[CalendarOut])
def calendars(db: EngineDep) -> list[CalendarOut]:
    """Every stored shift calendar (from the calendars file and from this API)."""
    with db.connect() as conn:
        return [calendar_out(c) for c in list_calendars(conn)]


@router.post("/api/calendars", response_model=CalendarOut, status_code=201)
def create_calendar(body: CalendarSpec, db: EngineDep) -> CalendarOut:
    """Store a calendar for a site, or for a line (``area`` + ``line``) of it."""
    with writer_engine(db).begin() as conn:
        if body.name in {c.spec.name for c in list_calendars(conn)}:
            raise InvalidRequest(
                f"calendar {body.name!r} exists: change it with PUT /api/calendars/{body.name}"
            )
        return calendar_out(save_calendar(conn, body, SOURCE_API, now_ms()))


@router.get("/api/calendars/{name}", response_model=CalendarOut)
def calendar(name: str, db: EngineDep) -> CalendarOut:
    with db.connect() as conn:
        return calendar_out(get_calendar(conn, name))


@router.put("/api/calendars/{name}", response_model=CalendarOut)
def replace_calendar(name: str, body: CalendarSpec, db: EngineDep) -> CalendarOut:
    """Create or replace the calendar ``name`` (the body's name must match)."""
    if body.name != name:
        raise InvalidRequest(f"the body names calendar {body.name!r} but the path {name!r}")
    with writer_engine(db).begin() as conn:
        return calendar_out(save_calendar(conn, body, SOURCE_API, now_ms()))


@router.delete("/api/calendars/{name}", status_code=204)
def remove_calendar(name: str, db: EngineDep) -> None:
    with writer_engine(db).begin() as conn:
        delete_calendar(conn, name)


@router.get("/api/calendars/{name}/windows", response_model=list[PlannedWindowOut])
def calendar_windows(
    name: str,
    db: EngineDep,
    start: str = Query(..., alias="from"),
    end: str = Query(..., alias="to"),
) -> list[PlannedWindowOut]:
    """The shift instances (and overtime) of a calendar that overlap ``[from, to)``."""
    from_ms, to_ms = parse_time_ms(start, "from"), parse_time_ms(end, "to")
    if to_ms - from_ms > 366 * 86_400_000:
        raise InvalidRequest("ask for at most a year of windows at a time")
    with db.connect() as conn:
        spec = get_calendar(conn, name).spec
    return [
        PlannedWindowOut(
            name=w.shift, local_date=w.local_date.isoformat(), key=w.key, start_ms=w.start_ms,
            end_ms=w.end_ms, breaks=list(w.breaks),
        )
        for w in planned_windows(spec.to_calendar(), from_ms, to_ms)
    ]  # fmt: skip
