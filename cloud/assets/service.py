"""Asset service functions: the hierarchy from births, and listing, renaming and placing machines.

A device birth creates or updates its machine (profile, protocol, state map, cycle time) and
places it in the area and line the birth hints at, unless a person placed it through the API
(``placed_by == "user"``): a manual placement is never overwritten by a birth.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from cloud.assets.models import PLACED_BY_BIRTH, PLACED_BY_USER, Area, Line, Machine, Site
from cloud.db import dialect_insert, table_of
from cloud.errors import InvalidRequest, NotFound
from protocols.wire import BirthMessage

_site = table_of(Site)
_area = table_of(Area)
_line = table_of(Line)
_machine = table_of(Machine)


def ensure_site(conn: Connection, site_id: str) -> None:
    """Create the site if it is new (its name starts as its id)."""
    stmt = dialect_insert(conn, _site).values(id=site_id, name=site_id)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


def ensure_area(conn: Connection, site_id: str, name: str) -> int:
    """The id of the area ``name`` of a site, created if new."""
    ensure_site(conn, site_id)
    stmt = dialect_insert(conn, _area).values(site_id=site_id, name=name)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["site_id", "name"]))
    found = conn.execute(
        select(_area.c.id).where(_area.c.site_id == site_id, _area.c.name == name)
    ).scalar_one()
    return int(found)


def ensure_line(conn: Connection, area_id: int, name: str) -> int:
    """The id of the line ``name`` of an area, created if new."""
    stmt = dialect_insert(conn, _line).values(area_id=area_id, name=name)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["area_id", "name"]))
    found = conn.execute(
        select(_line.c.id).where(_line.c.area_id == area_id, _line.c.name == name)
    ).scalar_one()
    return int(found)


def _placement(
    conn: Connection, site: str, area: str | None, line: str | None
) -> tuple[int | None, int | None]:
    if area is None:
        return None, None
    area_id = ensure_area(conn, site, area)
    return area_id, (ensure_line(conn, area_id, line) if line is not None else None)


@dataclass(frozen=True, slots=True)
class BirthOutcome:
    machine_id: int
    created: bool
    state_map_changed: bool  # the state map or the state rules: states must be derived again


def upsert_machine_from_birth(
    conn: Connection, site: str, edge: str, device: str, birth: BirthMessage, now_ms: int
) -> BirthOutcome:
    """Create or update the machine bound to ``(edge, device)`` from its birth message."""
    ensure_site(conn, site)
    stmt = dialect_insert(conn, _machine).values(
        name=device, site_id=site, edge=edge, device=device, units_per_cycle=1, state_map={},
        placed_by=PLACED_BY_BIRTH, created_ms=now_ms, updated_ms=now_ms,
    )  # fmt: skip
    inserted = conn.execute(
        stmt.on_conflict_do_nothing(index_elements=["edge", "device"]).returning(_machine.c.id)
    ).first()
    row = conn.execute(
        select(
            _machine.c.id, _machine.c.state_map, _machine.c.state_rules, _machine.c.placed_by
        ).where(_machine.c.edge == edge, _machine.c.device == device)
    ).one()
    state_rules = [{"state": r.state, "when": r.when} for r in birth.state_rules]
    values: dict[str, object] = {
        "profile": birth.profile,
        "protocol": birth.protocol,
        "ideal_cycle_time_s": birth.ideal_cycle_time_s,
        "units_per_cycle": birth.units_per_cycle,
        "state_map": dict(birth.state_map),
        "fault_codes": {
            code: {"reason": f.reason, "category": f.category}
            for code, f in birth.fault_codes.items()
        },
        "state_rules": state_rules or None,
        "counter_rollover": birth.counter_rollover,
        "updated_ms": now_ms,
    }
    if row.placed_by == PLACED_BY_BIRTH:
        area_id, line_id = _placement(conn, site, birth.area, birth.line)
        values |= {"site_id": site, "area_id": area_id, "line_id": line_id}
    conn.execute(update(_machine).where(_machine.c.id == row.id).values(**values))
    return BirthOutcome(
        machine_id=int(row.id),
        created=inserted is not None,
        state_map_changed=dict(row.state_map or {}) != dict(birth.state_map)
        or list(row.state_rules or []) != state_rules,
    )


# --------------------------------------------------------------------------- API-facing


def list_machines(session: Session) -> list[Machine]:
    return list(session.scalars(select(Machine).order_by(Machine.site_id, Machine.name)))


def get_machine(session: Session, machine_id: int) -> Machine:
    machine = session.get(Machine, machine_id)
    if machine is None:
        raise NotFound(f"machine {machine_id} does not exist (GET /api/machines lists them)")
    return machine


def placement_names(session: Session, machine: Machine) -> tuple[str | None, str | None]:
    """The names of the area and line a machine stands in (None where not placed)."""
    area = session.get(Area, machine.area_id) if machine.area_id is not None else None
    line = session.get(Line, machine.line_id) if machine.line_id is not None else None
    return (area.name if area else None), (line.name if line else None)


def update_machine(
    session: Session,
    machine_id: int,
    *,
    name: str | None = None,
    area: str | None = None,
    line: str | None = None,
    now_ms: int,
) -> Machine:
    """Rename and/or place a machine. A placement made here is kept over later births."""
    machine = get_machine(session, machine_id)
    if name is not None:
        if not name.strip():
            raise InvalidRequest("name must not be empty")
        machine.name = name.strip()
    if area is not None or line is not None:
        conn = session.connection()
        area_name = area
        if area_name is None:
            current_area, _ = placement_names(session, machine)
            if current_area is None:
                raise InvalidRequest(
                    f"machine {machine_id} has no area yet: give 'area' together with 'line'"
                )
            area_name = current_area
        area_id = ensure_area(conn, machine.site_id, area_name)
        machine.area_id = area_id
        machine.line_id = ensure_line(conn, area_id, line) if line is not None else None
        machine.placed_by = PLACED_BY_USER
    machine.updated_ms = now_ms
    session.flush()
    return machine
