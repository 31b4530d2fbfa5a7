"""OEE records in the database: shift calendars, per-machine settings, operator downtime reasons.

Calendars are stored per scope (``site:<site>`` or ``line:<line id>``), one per scope; those
from the calendars file are written at start with ``source="file"`` (``sync_calendars_file``)
and replace what the API stored under the same name. A machine's calendar is its line's, else
its site's, else ``ALWAYS`` (planned around the clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from cloud.assets.models import Area, Line, Machine
from cloud.assets.service import ensure_area, ensure_line, ensure_site
from cloud.db import dialect_insert, table_of, writer_engine
from cloud.errors import InvalidRequest, NotFound
from cloud.oee.calendar import ALWAYS, Calendar
from cloud.oee.calendar_schema import CalendarSpec, load_calendars_file
from cloud.oee.models import (
    SCOPE_LINE,
    SCOPE_SITE,
    DowntimeReason,
    MachineOeeSettings,
    ShiftCalendar,
)

_cal = table_of(ShiftCalendar)
_settings = table_of(MachineOeeSettings)
_reasons = table_of(DowntimeReason)
_machine = table_of(Machine)
_line = table_of(Line)
_area = table_of(Area)

SOURCE_FILE = "file"
SOURCE_API = "api"


# --------------------------------------------------------------------------- calendars


def site_scope(site_id: str) -> str:
    return f"{SCOPE_SITE}:{site_id}"


def line_scope(line_id: int) -> str:
    return f"{SCOPE_LINE}:{line_id}"


@dataclass(frozen=True, slots=True)
class StoredCalendar:
    spec: CalendarSpec
    scope: str
    line_id: int | None
    source: str
    updated_ms: int


def _stored(row: Any) -> StoredCalendar:
    spec = CalendarSpec.model_validate(row.definition)
    return StoredCalendar(spec, row.scope, row.line_id, row.source, row.updated_ms)


def save_calendar(conn: Connection, spec: CalendarSpec, source: str, now_ms: int) -> StoredCalendar:
    """Create or replace the calendar ``spec.name``; its site/area/line are created if new."""
    ensure_site(conn, spec.site)
    line_id: int | None = None
    if spec.area is not None and spec.line is not None:
        line_id = ensure_line(conn, ensure_area(conn, spec.site, spec.area), spec.line)
    scope = line_scope(line_id) if line_id is not None else site_scope(spec.site)
    holder = conn.execute(select(_cal.c.name).where(_cal.c.scope == scope)).scalar()
    if holder is not None and holder != spec.name:
        where = f"line {spec.area}/{spec.line}" if line_id is not None else f"site {spec.site}"
        raise InvalidRequest(
            f"{where} already has the calendar {holder!r}: edit that one "
            f"(PUT /api/calendars/{holder}) or delete it first"
        )
    values = {
        "name": spec.name, "scope": scope, "site_id": spec.site, "line_id": line_id,
        "time_zone": spec.time_zone, "definition": spec.model_dump(mode="json"),
        "source": source, "updated_ms": now_ms,
    }  # fmt: skip
    stmt = dialect_insert(conn, _cal).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"], set_={k: v for k, v in values.items() if k != "name"}
        )
    )
    return StoredCalendar(spec, scope, line_id, source, now_ms)


def get_calendar(conn: Connection, name: str) -> StoredCalendar:
    row = conn.execute(select(_cal).where(_cal.c.name == name)).first()
    if row is None:
        raise NotFound(f"calendar {name!r} does not exist (GET /api/calendars lists them)")
    return _stored(row)


def list_calendars(conn: Connection) -> list[StoredCalendar]:
    return [_stored(r) for r in conn.execute(select(_cal).order_by(_cal.c.name))]


def delete_calendar(conn: Connection, name: str) -> None:
    if conn.execute(delete(_cal).where(_cal.c.name == name)).rowcount == 0:
        raise NotFound(f"calendar {name!r} does not exist (GET /api/calendars lists them)")


def sync_calendars_file(engine: Engine, path: str | Path, now_ms: int) -> list[str]:
    """Write every calendar of the YAML file (validated first: nothing is written on error)."""
    specs = load_calendars_file(path)
    with writer_engine(engine).begin() as conn:
        for spec in specs:
            save_calendar(conn, spec, SOURCE_FILE, now_ms)
    return [s.name for s in specs]


@dataclass(frozen=True, slots=True)
class CalendarBook:
    """Every stored calendar by scope, to pick a machine's, line's or site's."""

    by_scope: dict[str, Calendar]

    def for_site(self, site_id: str) -> Calendar:
        return self.by_scope.get(site_scope(site_id), ALWAYS)

    def for_line(self, site_id: str, line_id: int | None) -> Calendar:
        if line_id is not None and line_scope(line_id) in self.by_scope:
            return self.by_scope[line_scope(line_id)]
        return self.for_site(site_id)


def calendar_book(conn: Connection, site_ids: Iterable[str] | None = None) -> CalendarBook:
    """The calendars of ``site_ids`` (all if None), parsed."""
    query = select(_cal.c.scope, _cal.c.definition)
    if site_ids is not None:
        query = query.where(_cal.c.site_id.in_(sorted(set(site_ids))))
    return CalendarBook(
        {
            row.scope: CalendarSpec.model_validate(row.definition).to_calendar()
            for row in conn.execute(query)
        }
    )


# --------------------------------------------------------------------------- machine settings


@dataclass(frozen=True, slots=True)
class MachineSettings:
    machine_id: int
    ideal_cycle_time_s: float | None
    micro_stop_s: float | None
    counter_rollover: int | None
    updated_ms: int | None


def get_machine_settings(conn: Connection, machine_id: int) -> MachineSettings:
    row = conn.execute(select(_settings).where(_settings.c.machine_id == machine_id)).first()
    if row is None:
        return MachineSettings(machine_id, None, None, None, None)
    return MachineSettings(
        machine_id, row.ideal_cycle_time_s, row.micro_stop_s, row.counter_rollover, row.updated_ms
    )


def put_machine_settings(conn: Connection, settings: MachineSettings, now_ms: int) -> None:
    """Store a machine's overrides (None: use the profile's value or the plant default)."""
    if (
        conn.execute(select(_machine.c.id).where(_machine.c.id == settings.machine_id)).first()
        is None
    ):
        raise NotFound(
            f"machine {settings.machine_id} does not exist (GET /api/machines lists them)"
        )
    values = {
        "ideal_cycle_time_s": settings.ideal_cycle_time_s,
        "micro_stop_s": settings.micro_stop_s,
        "counter_rollover": settings.counter_rollover,
        "updated_ms": now_ms,
    }
    stmt = dialect_insert(conn, _settings).values(machine_id=settings.machine_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["machine_id"], set_=values))


# --------------------------------------------------------------------------- downtime reasons


@dataclass(frozen=True, slots=True)
class OperatorReason:
    reason: str
    category: str | None
    comment: str | None
    entered_by: str
    entered_ms: int


def put_downtime_reason(
    conn: Connection, machine_id: int, start_ms: int, reason: OperatorReason
) -> None:
    """Store (or replace) the operator's reason for the stop that started at ``start_ms``."""
    values = {
        "reason": reason.reason, "category": reason.category, "comment": reason.comment,
        "entered_by": reason.entered_by, "entered_ms": reason.entered_ms,
    }  # fmt: skip
    stmt = dialect_insert(conn, _reasons).values(machine_id=machine_id, start_ms=start_ms, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["machine_id", "start_ms"], set_=values))


def downtime_reasons(
    conn: Connection, machine_id: int, from_ms: int, to_ms: int
) -> dict[int, OperatorReason]:
    """Operator reasons of stops starting in ``[from_ms, to_ms)``, by start."""
    rows = conn.execute(
        select(_reasons).where(
            _reasons.c.machine_id == machine_id,
            _reasons.c.start_ms >= from_ms,
            _reasons.c.start_ms < to_ms,
        )
    )
    return {
        int(r.start_ms): OperatorReason(r.reason, r.category, r.comment, r.entered_by, r.entered_ms)
        for r in rows
    }
