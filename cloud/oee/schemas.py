"""The OEE API's request and response bodies, and their conversion from the domain results."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.oee.calendar import PlannedWindow
from cloud.oee.downtime import DowntimeEvent
from cloud.oee.kpi import Kpis
from cloud.oee.losses import Losses
from cloud.oee.service import GroupOee, MachineOee, Window
from cloud.oee.store import StoredCalendar


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


def shift_out(window: PlannedWindow | None) -> ShiftOut | None:
    if window is None:
        return None
    return ShiftOut(
        name=window.shift, local_date=window.local_date.isoformat(), key=window.key,
        start_ms=window.start_ms, end_ms=window.end_ms,
    )  # fmt: skip


def window_out(window: Window) -> WindowOut:
    return WindowOut(
        from_ms=window.from_ms, to_ms=window.to_ms, live=window.live, shift=shift_out(window.shift)
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
        calendar=m.calendar.name, window=window_out(view.window),
        ideal_cycle_time_s=m.params.ideal_cycle_time_s,
        ideal_cycle_time_source=m.ideal_cycle_time_source,
        units_per_cycle=m.params.units_per_cycle, pri_s=m.params.pri_s,
        micro_stop_s=m.params.micro_stop_ms / 1000, counter_roles=list(r.counter_roles),
        counter_gap_ms=r.counter_gap_ms, counter_resets=r.counter_resets,
        counter_rollovers=r.counter_rollovers, units_outside_planned=r.units_outside_planned,
        kpis=kpis_out(view.kpis),
    )  # fmt: skip


def group_out(view: GroupOee) -> GroupOeeOut:
    return GroupOeeOut(
        kind=view.kind, id=view.key, name=view.name, window=window_out(view.window),
        rollup_hours=view.rollup_hours, kpis=kpis_out(view.kpis),
        machines=[
            MachineLineOut(machine_id=m.id, name=m.name, kpis=kpis_out(k))
            for m, k in view.machines
        ],
    )  # fmt: skip


def losses_out(view: MachineOee, losses: Losses) -> LossesOut:
    return LossesOut(
        machine_id=view.machine.id, window=window_out(view.window), pbt_s=losses.pbt_s,
        valuable_s=losses.valuable_s,
        lines=[LossLineOut(name=n, seconds=s) for n, s in losses.lines()],
        total_s=losses.total_s, reasons=losses.reasons, kpis=kpis_out(view.kpis),
    )  # fmt: skip


def downtime_out(event: DowntimeEvent) -> DowntimeOut:
    return DowntimeOut(
        state=event.state, start_ms=event.start_ms, end_ms=event.end_ms,
        duration_ms=event.duration_ms, in_window_ms=event.in_window_ms,
        micro_stop=event.micro_stop, fault_code=event.fault_code, reason=event.reason,
        category=event.category, reason_source=event.reason_source,
        entered_by=event.entered_by, entered_ms=event.entered_ms, comment=event.comment,
    )  # fmt: skip


def calendar_out(stored: StoredCalendar) -> CalendarOut:
    return CalendarOut(
        calendar=stored.spec.model_dump(mode="json"), scope=stored.scope,
        line_id=stored.line_id, source=stored.source, updated_ms=stored.updated_ms,
    )  # fmt: skip


# --------------------------------------------------------------------------- KPI routes
