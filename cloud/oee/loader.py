"""Bulk loading of what the OEE computation needs, in a handful of queries for many machines.

``load_machines`` (machines, their OEE overrides and calendars), ``load_spans`` (state intervals
overlapping a range, widened by the largest micro-stop threshold so stops are measured whole),
``load_counters`` (counter samples by role from ``ts_series.role`` + ``ts_sample``, with the last
good sample before the range as the baseline). ``prepare`` ties them into ``PreparedMachine``s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import BindParameter, Connection, and_, bindparam, or_, select

from cloud.assets.models import Machine
from cloud.db import table_of
from cloud.machine_state.models import StateInterval
from cloud.oee.calendar import Calendar
from cloud.oee.compute import COUNTER_ROLES, MachineParams, PreparedMachine, prepare_machine
from cloud.oee.counters import BAD_QUALITY, CounterSample
from cloud.oee.models import MachineOeeSettings
from cloud.oee.settings import OeeSettings
from cloud.oee.store import calendar_book
from cloud.oee.timemodel import StateSpan
from cloud.timeseries.models import TsSeries, ts_sample

_machine = table_of(Machine)
_settings = table_of(MachineOeeSettings)
_si = table_of(StateInterval)
_series = table_of(TsSeries)


@dataclass(frozen=True, slots=True)
class MachineInfo:
    """A machine as the OEE views need it: placement, fault texts, computation parameters."""

    id: int
    name: str
    site_id: str
    area_id: int | None
    line_id: int | None
    fault_codes: dict[str, dict[str, str]]
    params: MachineParams
    ideal_cycle_time_source: str
    """``override`` (OEE settings), ``profile`` (the machine's birth) or ``none``."""

    @property
    def calendar(self) -> Calendar:
        return self.params.calendar


def _rollover(setting: int | None, profile: int | None) -> int | None:
    """The machine's own setting, else its profile's ``workarounds.counter_rollover``."""
    chosen = setting if setting is not None else profile
    return None if chosen is None else int(chosen)


def load_machines(
    conn: Connection,
    settings: OeeSettings,
    *,
    machine_ids: Iterable[int] | None = None,
    site_id: str | None = None,
    line_id: int | None = None,
) -> list[MachineInfo]:
    """Machines (filtered by id, site or line) with their settings and calendars, by name."""
    query = select(
        _machine.c.id, _machine.c.name, _machine.c.site_id, _machine.c.area_id,
        _machine.c.line_id, _machine.c.fault_codes, _machine.c.ideal_cycle_time_s,
        _machine.c.units_per_cycle, _settings.c.ideal_cycle_time_s.label("override_cycle_s"),
        _settings.c.micro_stop_s, _settings.c.counter_rollover,
        _machine.c.counter_rollover.label("profile_rollover"),
    ).outerjoin(_settings, _settings.c.machine_id == _machine.c.id)  # fmt: skip
    if machine_ids is not None:
        query = query.where(_machine.c.id.in_(sorted(set(machine_ids))))
    if site_id is not None:
        query = query.where(_machine.c.site_id == site_id)
    if line_id is not None:
        query = query.where(_machine.c.line_id == line_id)
    rows = list(conn.execute(query.order_by(_machine.c.site_id, _machine.c.name, _machine.c.id)))
    book = calendar_book(conn, {r.site_id for r in rows})
    out = []
    for r in rows:
        if r.override_cycle_s is not None:
            cycle, source = float(r.override_cycle_s), "override"
        elif r.ideal_cycle_time_s is not None:
            cycle, source = float(r.ideal_cycle_time_s), "profile"
        else:
            cycle, source = None, "none"
        micro_ms = (
            settings.micro_stop_ms if r.micro_stop_s is None else round(r.micro_stop_s * 1000)
        )
        params = MachineParams(
            machine_id=int(r.id),
            calendar=book.for_line(r.site_id, r.line_id),
            ideal_cycle_time_s=cycle,
            units_per_cycle=int(r.units_per_cycle or 1),
            micro_stop_ms=micro_ms,
            counter_rollover=_rollover(r.counter_rollover, r.profile_rollover),
        )
        out.append(
            MachineInfo(
                int(r.id),
                r.name,
                r.site_id,
                r.area_id,
                r.line_id,
                dict(r.fault_codes or {}),
                params,
                source,
            )
        )
    return out


def load_spans(
    conn: Connection, machine_ids: Sequence[int], from_ms: int, to_ms: int, now_ms: int
) -> dict[int, list[StateSpan]]:
    """State intervals overlapping ``[from_ms, to_ms)``; the open one is closed at ``now_ms``."""
    out: dict[int, list[StateSpan]] = {m: [] for m in machine_ids}
    if not machine_ids:
        return out
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
    cols = (_si.c.machine_id, _si.c.state, _si.c.start_ms, _si.c.end_ms, _si.c.fault_code)
    # the interval holding at from_ms: one index probe per machine, then fetched by key
    holding = (
        select(_si.c.start_ms)
        .where(_si.c.machine_id == _machine.c.id, _si.c.start_ms < from_ms)
        .order_by(_si.c.start_ms.desc())
        .limit(1)
        .scalar_subquery()
    )
    keys = [
        (int(m), int(start))
        for m, start in conn.execute(
            select(_machine.c.id, holding).where(_machine.c.id.in_(ids)),
            {"ids": list(machine_ids)},
        )
        if start is not None
    ]
    # (an OR of key equalities: SQLite does not use the index for a row-value IN list)
    rows = []
    if keys:
        by_key = or_(*(and_(_si.c.machine_id == m, _si.c.start_ms == t) for m, t in keys))
        rows = list(conn.execute(select(*cols).where(by_key)))
    rest = select(*cols).where(
        _si.c.machine_id.in_(ids), _si.c.start_ms >= from_ms, _si.c.start_ms < to_ms
    )
    rows += conn.execute(rest, {"ids": list(machine_ids)}).all()
    for machine_id, state, start, end, fault in rows:
        end_ms = max(int(start), now_ms) if end is None else int(end)
        if end_ms > from_ms:
            out[int(machine_id)].append(StateSpan(state, int(start), end_ms, fault, end is None))
    for spans in out.values():
        spans.sort(key=lambda s: s.start_ms)
    return out


def counter_series(conn: Connection, machine_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Series id of each counter role of each machine (the first metric by name if several)."""
    query = (
        select(_machine.c.id, _series.c.role, _series.c.id.label("series_id"))
        .join(
            _series,
            and_(_series.c.edge == _machine.c.edge, _series.c.device == _machine.c.device),
        )
        .where(_machine.c.id.in_(bindparam("ids", expanding=True)))
        .where(_series.c.role.in_(COUNTER_ROLES))
        .order_by(_machine.c.id, _series.c.role, _series.c.metric)
    )
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for machine_id, role, series_id in conn.execute(query, {"ids": list(machine_ids)}):
        out[int(machine_id)].setdefault(role, int(series_id))
    return out


def load_counters(
    conn: Connection, series_ids: Sequence[int], from_ms: int, to_ms: int
) -> dict[int, list[CounterSample]]:
    """Samples of counter series in ``[from_ms, to_ms)``, led by the last good one before it."""
    out: dict[int, list[CounterSample]] = {s: [] for s in series_ids}
    if not series_ids:
        return out
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
    good = (ts_sample.c.quality < BAD_QUALITY, ts_sample.c.value.is_not(None))
    # the last good sample before from_ms: one index probe per series, then fetched by key
    # (ORDER BY ts DESC LIMIT 1 walks the index backwards and stops at the first good sample;
    # max(ts) with the quality filter would read every earlier sample on SQLite)
    last_before = (
        select(ts_sample.c.ts)
        .where(ts_sample.c.series_id == _series.c.id, ts_sample.c.ts < from_ms, *good)
        .order_by(ts_sample.c.ts.desc())
        .limit(1)
        .scalar_subquery()
    )
    params = {"ids": list(series_ids)}
    keys = [
        (int(sid), int(ts))
        for sid, ts in conn.execute(
            select(_series.c.id, last_before).where(_series.c.id.in_(ids)), params
        )
        if ts is not None
    ]
    cols = (ts_sample.c.series_id, ts_sample.c.ts, ts_sample.c.value, ts_sample.c.quality)
    if keys:
        by_key = or_(
            *(and_(ts_sample.c.series_id == sid, ts_sample.c.ts == ts) for sid, ts in keys)
        )
        base = select(*cols).where(by_key, *good)
        seen_base: set[int] = set()
        for series_id, ts, value, quality in conn.execute(base):
            if int(series_id) not in seen_base:
                seen_base.add(int(series_id))
                out[int(series_id)].append(CounterSample(int(ts), value, int(quality)))
    window = (
        select(*cols)
        .where(ts_sample.c.series_id.in_(ids), ts_sample.c.ts >= from_ms, ts_sample.c.ts < to_ms)
        .order_by(ts_sample.c.series_id, ts_sample.c.ts)
    )
    for series_id, ts, value, quality in conn.execute(window, params):
        out[int(series_id)].append(CounterSample(int(ts), value, int(quality)))
    return out


def prepare(
    conn: Connection,
    machines: Sequence[MachineInfo],
    from_ms: int,
    to_ms: int,
    now_ms: int,
    settings: OeeSettings,
) -> dict[int, PreparedMachine]:
    """Load and prepare ``machines`` over ``[from_ms, to_ms)`` (``to_ms`` ≤ now)."""
    if not machines:
        return {}
    ids = [m.id for m in machines]
    # stops are measured whole, and start-up scrap needs the setup that ended before the range
    margin = max(settings.startup_scrap_window_ms, *(m.params.micro_stop_ms for m in machines))
    spans = load_spans(conn, ids, from_ms - margin, min(to_ms + margin, now_ms + 1), now_ms)
    series = counter_series(conn, ids)
    samples = load_counters(
        conn, [sid for roles in series.values() for sid in roles.values()], from_ms, to_ms
    )
    return {
        m.id: prepare_machine(
            m.params,
            spans[m.id],
            {role: samples[sid] for role, sid in series.get(m.id, {}).items()},
            from_ms,
            to_ms,
            counter_gap_ms=settings.counter_gap_ms,
        )
        for m in machines
    }
