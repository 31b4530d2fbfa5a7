"""Routes for OEE: machine/line/site KPIs, losses, downtime and reasons, roll-ups, calendars.

Every KPI response carries the time elements (ms) and quantities it came from. Time
parameters ``from`` and ``to`` take ISO 8601 or epoch ms (``cloud/api/timeparse.py``); without
them a view covers the current shift of the calendar in force (the last finished shift when
none is running).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.deps import EngineDep
from cloud.api.timeparse import parse_time_ms
from cloud.db import writer_engine
from cloud.errors import InvalidRequest
from cloud.oee.calendar import PlannedWindow, planned_windows
from cloud.oee.calendar_schema import CalendarSpec
from cloud.oee.downtime import DowntimeEvent
from cloud.oee.kpi import Kpis
from cloud.oee.losses import Losses
from cloud.oee.rollup import KINDS, list_rollups, roll_up
from cloud.oee.service import (
    GroupOee,
    MachineOee,
    Window,
    current_oee,
    line_oee,
    machine_downtime,
    machine_losses,
    machine_oee,
    now_ms,
    set_downtime_reason,
    site_oee,
)
from cloud.oee.settings import OeeSettings
from cloud.oee.store import (
    SOURCE_API,
    MachineSettings,
    OperatorReason,
    StoredCalendar,
    delete_calendar,
    get_calendar,
    get_machine_settings,
    list_calendars,
    put_machine_settings,
    save_calendar,
)

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


class ShiftOut(BaseModel):
    name: str
    local_date: str
    key: str
    start_ms: int
    end_ms: int


class WindowOut(BaseModel):
    from_ms: int
    to_ms: int
    live: bool = Field(description="the window reaches now: figures still grow")
    shift: ShiftOut | None = Field(description="the shift instance when none was asked for")


class ElementsOut(BaseModel):
    pot_ms: int
    pdot_ms: int
    pbt_ms: int
    apt_ms: int
    aust_ms: int
    adet_ms: int
    adot_ms: int
    unkt_ms: int
    aupt_ms: int
    micro_stop_ms: int
    micro_stops: int
    failure_events: int


class QuantitiesOut(BaseModel):
    produced: float | None = Field(description="PQ")
    good: float | None = Field(description="GQ")
    scrap: float | None = Field(description="SQ")
    startup_scrap: float | None
    rework: float | None = Field(default=None, description="RQ: not recorded yet")


class KpisOut(BaseModel):
    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None
    nee: float | None
    technical_efficiency: float | None
    setup_rate: float | None
    scrap_ratio: float | None
    rework_ratio: float | None
    first_pass_yield: float | None
    throughput_per_hour: float | None = Field(description="PQ per hour of AUPT")
    mtbf_s: float | None = Field(description="AUPT / (FE + 1)")
    mttr_s: float | None = Field(description="ADET / FE")
    reasons: dict[str, str] = Field(description="why a KPI is None")
    time_elements: ElementsOut
    quantities: QuantitiesOut
    ideal_produced_s: float | None = Field(description="PRI × PQ")
    ideal_good_s: float | None = Field(description="PRI × GQ")
    machines: int


class MachineOeeOut(BaseModel):
    machine_id: int
    name: str
    site: str
    line_id: int | None
    calendar: str
    window: WindowOut
    ideal_cycle_time_s: float | None
    ideal_cycle_time_source: str = Field(description="override, profile or none")
    units_per_cycle: int
    pri_s: float | None = Field(description="planned run time per item")
    micro_stop_s: float
    counter_roles: list[str]
    counter_gap_ms: int = Field(description="longest stretch without a good counter sample")
    counter_resets: int
    counter_rollovers: int
    units_outside_planned: float = Field(description="counted in breaks or off shift")
    kpis: KpisOut


class MachineLineOut(BaseModel):
    machine_id: int
    name: str
    kpis: KpisOut


class GroupOeeOut(BaseModel):
    kind: str
    id: str
    name: str
    window: WindowOut
    rollup_hours: int = Field(description="hours per machine summed from roll-ups")
    kpis: KpisOut
    machines: list[MachineLineOut]


class LossLineOut(BaseModel):
    name: str
    seconds: float | None


class LossesOut(BaseModel):
    machine_id: int
    window: WindowOut
    pbt_s: float
    valuable_s: float | None = Field(description="PRI × GQ")
    lines: list[LossLineOut]
    total_s: float | None = Field(description="adds up to PBT − PRI × GQ")
    reasons: dict[str, str]
    kpis: KpisOut


class DowntimeOut(BaseModel):
    state: str
    start_ms: int
    end_ms: int | None
    duration_ms: int
    in_window_ms: int
    micro_stop: bool
    fault_code: str | None
    reason: str | None
    category: str | None
    reason_source: str | None
    entered_by: str | None
    entered_ms: int | None
    comment: str | None


class DowntimeListOut(BaseModel):
    machine_id: int
    window: WindowOut
    events: list[DowntimeOut]


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200)
    category: str | None = Field(default=None, max_length=32)
    comment: str | None = Field(default=None, max_length=2000)
    entered_by: str = Field(min_length=1, max_length=128)


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ideal_cycle_time_s: float | None = Field(default=None, gt=0)
    micro_stop_s: float | None = Field(default=None, gt=0)
    counter_rollover: int | None = Field(default=None, gt=0)


class SettingsOut(SettingsIn):
    machine_id: int
    updated_ms: int | None


class RollupOut(BaseModel):
    machine_id: int
    period_kind: str
    period_start_ms: int
    period_end_ms: int
    shift_name: str | None
    local_date: str | None
    computed_ms: int
    kpis: KpisOut


class CalendarOut(BaseModel):
    calendar: dict[str, Any]
    scope: str
    line_id: int | None
    source: str
    updated_ms: int


class PlannedWindowOut(ShiftOut):
    breaks: list[tuple[int, int]]


# --------------------------------------------------------------------------- converters


def _shift(window: PlannedWindow | None) -> ShiftOut | None:
    if window is None:
        return None
    return ShiftOut(
        name=window.shift, local_date=window.local_date.isoformat(), key=window.key,
        start_ms=window.start_ms, end_ms=window.end_ms,
    )  # fmt: skip


def _window(window: Window) -> WindowOut:
    return WindowOut(
        from_ms=window.from_ms, to_ms=window.to_ms, live=window.live, shift=_shift(window.shift)
    )


def kpis_out(kpis: Kpis) -> KpisOut:
    t = kpis.totals
    e, q = t.elements, t.quantities
    return KpisOut(
        availability=kpis.availability, effectiveness=kpis.effectiveness,
        quality_ratio=kpis.quality_ratio, oee=kpis.oee, nee=kpis.nee,
        technical_efficiency=kpis.technical_efficiency, setup_rate=kpis.setup_rate,
        scrap_ratio=kpis.scrap_ratio, rework_ratio=kpis.rework_ratio,
        first_pass_yield=kpis.first_pass_yield, throughput_per_hour=kpis.throughput_per_hour,
        mtbf_s=kpis.mtbf_s, mttr_s=kpis.mttr_s, reasons=kpis.reasons,
        time_elements=ElementsOut(
            pot_ms=e.pot_ms, pdot_ms=e.pdot_ms, pbt_ms=e.pbt_ms, apt_ms=e.apt_ms,
            aust_ms=e.aust_ms, adet_ms=e.adet_ms, adot_ms=e.adot_ms, unkt_ms=e.unkt_ms,
            aupt_ms=e.aupt_ms, micro_stop_ms=e.micro_stop_ms, micro_stops=e.micro_stops,
            failure_events=e.failure_events,
        ),
        quantities=QuantitiesOut(
            produced=q.produced, good=q.good, scrap=q.scrap, startup_scrap=q.startup_scrap
        ),
        ideal_produced_s=t.ideal_produced_s, ideal_good_s=t.ideal_good_s, machines=t.machines,
    )  # fmt: skip


def machine_oee_out(view: MachineOee) -> MachineOeeOut:
    m, r = view.machine, view.result
    return MachineOeeOut(
        machine_id=m.id, name=m.name, site=m.site_id, line_id=m.line_id,
        calendar=m.calendar.name, window=_window(view.window),
        ideal_cycle_time_s=m.params.ideal_cycle_time_s,
        ideal_cycle_time_source=m.ideal_cycle_time_source,
        units_per_cycle=m.params.units_per_cycle, pri_s=m.params.pri_s,
        micro_stop_s=m.params.micro_stop_ms / 1000, counter_roles=list(r.counter_roles),
        counter_gap_ms=r.counter_gap_ms, counter_resets=r.counter_resets,
        counter_rollovers=r.counter_rollovers, units_outside_planned=r.units_outside_planned,
        kpis=kpis_out(view.kpis),
    )  # fmt: skip


def _group_out(view: GroupOee) -> GroupOeeOut:
    return GroupOeeOut(
        kind=view.kind, id=view.key, name=view.name, window=_window(view.window),
        rollup_hours=view.rollup_hours, kpis=kpis_out(view.kpis),
        machines=[
            MachineLineOut(machine_id=m.id, name=m.name, kpis=kpis_out(k))
            for m, k in view.machines
        ],
    )  # fmt: skip


def _losses_out(view: MachineOee, losses: Losses) -> LossesOut:
    return LossesOut(
        machine_id=view.machine.id, window=_window(view.window), pbt_s=losses.pbt_s,
        valuable_s=losses.valuable_s,
        lines=[LossLineOut(name=n, seconds=s) for n, s in losses.lines()],
        total_s=losses.total_s, reasons=losses.reasons, kpis=kpis_out(view.kpis),
    )  # fmt: skip


def _downtime_out(event: DowntimeEvent) -> DowntimeOut:
    return DowntimeOut(
        state=event.state, start_ms=event.start_ms, end_ms=event.end_ms,
        duration_ms=event.duration_ms, in_window_ms=event.in_window_ms,
        micro_stop=event.micro_stop, fault_code=event.fault_code, reason=event.reason,
        category=event.category, reason_source=event.reason_source,
        entered_by=event.entered_by, entered_ms=event.entered_ms, comment=event.comment,
    )  # fmt: skip


def _calendar_out(stored: StoredCalendar) -> CalendarOut:
    return CalendarOut(
        calendar=stored.spec.model_dump(mode="json"), scope=stored.scope,
        line_id=stored.line_id, source=stored.source, updated_ms=stored.updated_ms,
    )  # fmt: skip


# --------------------------------------------------------------------------- KPI routes


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
    return _losses_out(view, losses)


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
        return _group_out(line_oee(conn, settings, line_id, from_ms, to_ms, use_rollups=rollups))


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
        return _group_out(site_oee(conn, settings, site_id, from_ms, to_ms, use_rollups=rollups))


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
        machine_id=machine_id, window=_window(window), events=[_downtime_out(e) for e in events]
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
    return _downtime_out(next(e for e in events if e.start_ms == start_ms))


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
        return [_calendar_out(c) for c in list_calendars(conn)]


@router.post("/api/calendars", response_model=CalendarOut, status_code=201)
def create_calendar(body: CalendarSpec, db: EngineDep) -> CalendarOut:
    """Store a calendar for a site, or for a line (``area`` + ``line``) of it."""
    with writer_engine(db).begin() as conn:
        if body.name in {c.spec.name for c in list_calendars(conn)}:
            raise InvalidRequest(
                f"calendar {body.name!r} exists: change it with PUT /api/calendars/{body.name}"
            )
        return _calendar_out(save_calendar(conn, body, SOURCE_API, now_ms()))


@router.get("/api/calendars/{name}", response_model=CalendarOut)
def calendar(name: str, db: EngineDep) -> CalendarOut:
    with db.connect() as conn:
        return _calendar_out(get_calendar(conn, name))


@router.put("/api/calendars/{name}", response_model=CalendarOut)
def replace_calendar(name: str, body: CalendarSpec, db: EngineDep) -> CalendarOut:
    """Create or replace the calendar ``name`` (the body's name must match)."""
    if body.name != name:
        raise InvalidRequest(f"the body names calendar {body.name!r} but the path {name!r}")
    with writer_engine(db).begin() as conn:
        return _calendar_out(save_calendar(conn, body, SOURCE_API, now_ms()))


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
