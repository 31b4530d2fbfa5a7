"""OEE views over the database: a machine, a line, a site, every machine's current shift.

Each view loads what the pure functions need in a few queries (``cloud.oee.loader``),
computes, and returns plain dataclasses. A window defaults to the current shift of the
calendar in force (the last finished one between shifts) and never reaches past "now". A
line or site sums its machines' totals before forming ratios. Windows of more than a few
hours are summed from hourly roll-ups where every hour is there, plus live computation of the
partial hours at both ends; a machine with a missing hour is computed live over the whole
window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from cloud.assets.models import Area, Line, Machine
from cloud.db import table_of
from cloud.errors import InvalidRequest, NotFound
from cloud.machine_state.models import StateInterval
from cloud.oee.calendar import Calendar, PlannedWindow, current_window, last_window
from cloud.oee.compute import WindowResult, window_totals
from cloud.oee.downtime import DOWNTIME_STATES, DowntimeEvent, downtime_events
from cloud.oee.kpi import Kpis, Totals, compute_kpis
from cloud.oee.loader import MachineInfo, load_machines, load_spans, prepare
from cloud.oee.losses import Losses, six_big_losses
from cloud.oee.rollup import HOUR_MS, ceil_hour, floor_hour, hourly_sums
from cloud.oee.settings import OeeSettings
from cloud.oee.store import (
    OperatorReason,
    calendar_book,
    downtime_reasons,
    put_downtime_reason,
)
from cloud.oee.timemodel import classify_spans
from protocols.clock import now_ms

_si = table_of(StateInterval)
_line = table_of(Line)
_area = table_of(Area)
_machine = table_of(Machine)

MIN_ROLLUP_WINDOW_MS = 3 * HOUR_MS
"""Shorter windows are always computed live."""


@dataclass(frozen=True, slots=True)
class Window:
    """The window a view covers; ``shift`` is set when it defaulted to a shift instance."""

    from_ms: int
    to_ms: int
    shift: PlannedWindow | None
    live: bool
    """True while the window reaches "now" (figures still growing)."""


def resolve_window(calendar: Calendar, from_ms: int | None, to_ms: int | None, now: int) -> Window:
    """``[from_ms, to_ms)`` as asked (``to`` capped at now), or the current/last shift."""
    if from_ms is not None or to_ms is not None:
        end = now if to_ms is None else to_ms
        start = from_ms if from_ms is not None else end - 86_400_000
        if end <= start:
            raise InvalidRequest(f"from={start} is not before to={end}: give from < to")
        return Window(start, min(end, now), None, end >= now)
    shift = current_window(calendar, now) or last_window(calendar, now)
    if shift is None:
        return Window(now - 86_400_000, now, None, True)
    return Window(shift.start_ms, min(shift.end_ms, now), shift, shift.end_ms > now)


@dataclass(frozen=True, slots=True)
class MachineOee:
    machine: MachineInfo
    window: Window
    result: WindowResult
    kpis: Kpis


@dataclass(frozen=True, slots=True)
class GroupOee:
    """A line or a site: the sum of its machines, and each machine's own KPIs."""

    kind: str
    key: str
    name: str
    window: Window
    kpis: Kpis
    machines: list[tuple[MachineInfo, Kpis]]
    rollup_hours: int
    """Hours per machine taken from roll-ups (0: all live)."""


def _machine_or_404(conn: Connection, settings: OeeSettings, machine_id: int) -> MachineInfo:
    found = load_machines(conn, settings, machine_ids=[machine_id])
    if not found:
        raise NotFound(f"machine {machine_id} does not exist (GET /api/machines lists them)")
    return found[0]


def live_results(
    conn: Connection,
    machines: Sequence[MachineInfo],
    from_ms: int,
    to_ms: int,
    now: int,
    settings: OeeSettings,
) -> dict[int, WindowResult]:
    """Every machine over ``[from_ms, to_ms)`` computed from intervals and samples."""
    if to_ms <= from_ms:
        return {}
    prepared = prepare(conn, machines, from_ms, to_ms, now, settings)
    return {
        m.id: window_totals(
            prepared[m.id], from_ms, to_ms, reduced_yield_ms=settings.startup_scrap_window_ms
        )
        for m in machines
    }


def machine_oee(
    conn: Connection,
    settings: OeeSettings,
    machine_id: int,
    from_ms: int | None = None,
    to_ms: int | None = None,
    now: int | None = None,
) -> MachineOee:
    """One machine's KPIs, computed live (default window: its current shift)."""
    now = now_ms() if now is None else now
    machine = _machine_or_404(conn, settings, machine_id)
    window = resolve_window(machine.calendar, from_ms, to_ms, now)
    result = live_results(conn, [machine], window.from_ms, window.to_ms, now, settings).get(
        machine.id
    )
    if result is None:  # an empty window
        result = window_totals(
            prepare(conn, [machine], window.from_ms, window.from_ms, now, settings)[machine.id],
            window.from_ms,
            window.from_ms,
        )
    return MachineOee(machine, window, result, compute_kpis(result.totals))


def machine_losses(
    conn: Connection,
    settings: OeeSettings,
    machine_id: int,
    from_ms: int | None = None,
    to_ms: int | None = None,
    now: int | None = None,
) -> tuple[MachineOee, Losses]:
    view = machine_oee(conn, settings, machine_id, from_ms, to_ms, now)
    return view, six_big_losses(view.result.totals)


def group_totals(
    conn: Connection,
    machines: Sequence[MachineInfo],
    from_ms: int,
    to_ms: int,
    now: int,
    settings: OeeSettings,
    *,
    use_rollups: bool = True,
) -> tuple[dict[int, Totals], int]:
    """Each machine's totals over the window; hourly roll-ups for whole hours where complete."""
    to_ms = min(to_ms, now)
    lo, hi = ceil_hour(from_ms), floor_hour(to_ms)
    if not use_rollups or hi - lo < MIN_ROLLUP_WINDOW_MS or not machines:
        live = live_results(conn, machines, from_ms, to_ms, now, settings)
        return {m: r.totals for m, r in live.items()}, 0
    expected = (hi - lo) // HOUR_MS
    sums = hourly_sums(conn, [m.id for m in machines], lo, hi)
    covered = [m for m in machines if sums.get(m.id, (0, None))[0] == expected]
    missing = [m for m in machines if sums.get(m.id, (0, None))[0] != expected]
    out: dict[int, Totals] = {}
    for m_id, result in live_results(conn, missing, from_ms, to_ms, now, settings).items():
        out[m_id] = result.totals
    head = live_results(conn, covered, from_ms, lo, now, settings)
    tail = live_results(conn, covered, hi, to_ms, now, settings)
    for m in covered:
        total = sums[m.id][1]
        if m.id in head:
            total = total + head[m.id].totals
        if m.id in tail:
            total = total + tail[m.id].totals
        out[m.id] = Totals(
            total.elements, total.quantities, total.ideal_produced_s, total.ideal_good_s,
            total.ideal_startup_scrap_s, 1,
        )  # fmt: skip
    return out, (expected if covered else 0)


def _group(
    conn: Connection,
    settings: OeeSettings,
    kind: str,
    key: str,
    name: str,
    machines: list[MachineInfo],
    calendar: Calendar,
    from_ms: int | None,
    to_ms: int | None,
    now: int,
    use_rollups: bool,
) -> GroupOee:
    window = resolve_window(calendar, from_ms, to_ms, now)
    per_machine, hours = group_totals(
        conn, machines, window.from_ms, window.to_ms, now, settings, use_rollups=use_rollups
    )
    total = sum((per_machine[m.id] for m in machines), Totals())
    return GroupOee(
        kind, key, name, window, compute_kpis(total),
        [(m, compute_kpis(per_machine[m.id])) for m in machines], hours,
    )  # fmt: skip


def line_oee(
    conn: Connection,
    settings: OeeSettings,
    line_id: int,
    from_ms: int | None = None,
    to_ms: int | None = None,
    now: int | None = None,
    *,
    use_rollups: bool = True,
) -> GroupOee:
    """A line's KPIs: its machines summed (default window: the line calendar's current shift)."""
    now = now_ms() if now is None else now
    row = conn.execute(
        select(_line.c.id, _line.c.name, _area.c.site_id)
        .join(_area, _area.c.id == _line.c.area_id)
        .where(_line.c.id == line_id)
    ).first()
    if row is None:
        raise NotFound(f"line {line_id} does not exist (GET /api/machines shows each line)")
    machines = load_machines(conn, settings, line_id=line_id)
    calendar = calendar_book(conn, [row.site_id]).for_line(row.site_id, line_id)
    return _group(
        conn, settings, "line", str(line_id), row.name, machines, calendar, from_ms, to_ms,
        now, use_rollups,
    )  # fmt: skip


def site_oee(
    conn: Connection,
    settings: OeeSettings,
    site_id: str,
    from_ms: int | None = None,
    to_ms: int | None = None,
    now: int | None = None,
    *,
    use_rollups: bool = True,
) -> GroupOee:
    """A site's KPIs: every machine summed (default window: the site calendar's current shift)."""
    now = now_ms() if now is None else now
    machines = load_machines(conn, settings, site_id=site_id)
    if not machines:
        raise NotFound(f"site {site_id!r} has no machines (GET /api/machines lists them)")
    calendar = calendar_book(conn, [site_id]).for_site(site_id)
    return _group(
        conn, settings, "site", site_id, site_id, machines, calendar, from_ms, to_ms, now,
        use_rollups,
    )  # fmt: skip


def current_oee(
    conn: Connection, settings: OeeSettings, now: int | None = None
) -> list[MachineOee]:
    """Every machine over its own current shift (the last finished one between shifts), live."""
    now = now_ms() if now is None else now
    machines = load_machines(conn, settings)
    by_window: dict[tuple[int, int], list[tuple[MachineInfo, Window]]] = {}
    for m in machines:
        window = resolve_window(m.calendar, None, None, now)
        by_window.setdefault((window.from_ms, window.to_ms), []).append((m, window))
    out: dict[int, MachineOee] = {}
    for (start, end), group in by_window.items():
        results = live_results(conn, [m for m, _ in group], start, end, now, settings)
        for m, window in group:
            result = results.get(m.id)
            if result is not None:
                out[m.id] = MachineOee(m, window, result, compute_kpis(result.totals))
    return [out[m.id] for m in machines if m.id in out]


# --------------------------------------------------------------------------- downtime


def machine_downtime(
    conn: Connection,
    settings: OeeSettings,
    machine_id: int,
    from_ms: int | None = None,
    to_ms: int | None = None,
    now: int | None = None,
) -> tuple[Window, list[DowntimeEvent]]:
    """Down, idle and setup intervals of a machine in the window, with reasons."""
    now = now_ms() if now is None else now
    machine = _machine_or_404(conn, settings, machine_id)
    window = resolve_window(machine.calendar, from_ms, to_ms, now)
    margin = machine.params.micro_stop_ms
    spans = load_spans(
        conn, [machine.id], window.from_ms - margin, min(window.to_ms + margin, now + 1), now
    )[machine.id]
    classified = classify_spans(spans, machine.params.micro_stop_ms)
    reasons = downtime_reasons(
        conn, machine.id, min((s.start_ms for s in spans), default=window.from_ms), window.to_ms
    )
    events = downtime_events(classified, window.from_ms, window.to_ms, machine.fault_codes, reasons)
    return window, events


def set_downtime_reason(
    conn: Connection, machine_id: int, start_ms: int, reason: OperatorReason
) -> None:
    """Record an operator's reason for the down/idle/setup interval that started at ``start_ms``."""
    if conn.execute(select(_machine.c.id).where(_machine.c.id == machine_id)).first() is None:
        raise NotFound(f"machine {machine_id} does not exist (GET /api/machines lists them)")
    state = conn.execute(
        select(_si.c.state).where(_si.c.machine_id == machine_id, _si.c.start_ms == start_ms)
    ).scalar()
    if state is None:
        raise NotFound(
            f"machine {machine_id} has no state interval starting at {start_ms}: take start_ms "
            f"from GET /api/machines/{machine_id}/downtime"
        )
    if state not in DOWNTIME_STATES:
        raise InvalidRequest(
            f"the interval of machine {machine_id} at {start_ms} is {state!r}: reasons are "
            f"kept for {', '.join(DOWNTIME_STATES)} only"
        )
    put_downtime_reason(conn, machine_id, start_ms, reason)
