"""Routes for alarms: list, detail with history, acknowledge, shelve, rules, limits, figures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Connection

from cloud.alarms import service, transitions
from cloud.alarms.rules import AlarmRule
from cloud.alarms.schemas import (
    AcknowledgeIn,
    AlarmDetailOut,
    AlarmEventOut,
    AlarmOut,
    LimitIn,
    LimitOut,
    RuleOut,
    ShelveIn,
    UnshelveIn,
)
from cloud.api.deps import EngineDep
from cloud.api.timeparse import parse_time_ms
from cloud.db import writer_engine
from cloud.errors import InvalidRequest
from cloud.notify.message import Priority
from protocols.clock import now_ms

if TYPE_CHECKING:
    from cloud.alarms.engine import AlarmEngine

router = APIRouter(tags=["alarms"])
_DAY_MS = 86_400_000


def get_alarm_engine(request: Request) -> AlarmEngine | None:
    engine: AlarmEngine | None = getattr(request.app.state, "alarms", None)
    return engine


AlarmEngineDep = Annotated["AlarmEngine | None", Depends(get_alarm_engine)]


@contextmanager
def _writing(db: EngineDep, alarms: AlarmEngine | None) -> Iterator[Connection]:
    """A write transaction; afterwards the running engine reloads and tells at once."""
    with writer_engine(db).begin() as conn:
        yield conn
    if alarms is not None:
        alarms.wake()


def _rule_sources(alarms: AlarmEngine | None) -> tuple[bool, tuple[AlarmRule, ...]]:
    if alarms is None:
        return True, ()
    return alarms.builtin, alarms.file_rules


def _window(start: str | None, end: str | None) -> tuple[int, int]:
    to_ms = parse_time_ms(end, "to") if end else now_ms()
    from_ms = parse_time_ms(start, "from") if start else to_ms - _DAY_MS
    return from_ms, to_ms


# --------------------------------------------------------------------------- alarms


@router.get("/api/alarms", response_model=list[AlarmOut])
def list_alarms(
    db: EngineDep,
    state: str = Query(
        "open",
        description="open (default: active or unacknowledged), active, unacknowledged, "
        "active_unack, active_ack, rtn_unack, cleared, all",
    ),
    machine: int | None = Query(None, description="machine id"),
    line: str | None = Query(None, description="line name"),
    priority: Priority | None = None,
    limit: int = Query(500, ge=1, le=10_000),
) -> list[AlarmOut]:
    """Alarms, newest activation first."""
    with db.connect() as conn:
        return service.list_alarms(
            conn, now_ms(), state=state, machine_id=machine, line=line, priority=priority,
            limit=limit,
        )  # fmt: skip


@router.get("/api/alarms/history", response_model=list[AlarmEventOut])
def alarm_history(
    db: EngineDep,
    start: str | None = Query(None, alias="from", description="ISO 8601 or ms; default: to - 24 h"),
    end: str | None = Query(None, alias="to", description="ISO 8601 or ms; default: now"),
    machine: int | None = Query(None, description="machine id"),
    limit: int = Query(10_000, ge=1, le=100_000),
) -> list[AlarmEventOut]:
    """Every alarm transition in ``[from, to)``: time, state, value, who and why."""
    from_ms, to_ms = _window(start, end)
    with db.connect() as conn:
        return service.history(conn, from_ms, to_ms, machine_id=machine, limit=limit)


@router.get("/api/alarms/performance")
def alarm_performance(
    db: EngineDep,
    alarms: AlarmEngineDep,
    start: str | None = Query(None, alias="from", description="ISO 8601 or ms; default: to - 24 h"),
    end: str | None = Query(None, alias="to", description="ISO 8601 or ms; default: now"),
    position: str | None = Query(
        None, pattern="^(line|area|site)$", description="operator position; default: config"
    ),
) -> dict[str, Any]:
    """ISA-18.2 figures: alarms per hour per operator position, floods, standing, top 10,
    chattering, priorities (definitions in docs/alarms.md)."""
    from_ms, to_ms = _window(start, end)
    mode = position or (alarms.operator_position if alarms is not None else "line")
    with db.connect() as conn:
        return asdict(service.performance(conn, from_ms, to_ms, now_ms(), mode))


@router.get("/api/alarms/{alarm_id}", response_model=AlarmDetailOut)
def get_alarm(alarm_id: int, db: EngineDep) -> AlarmDetailOut:
    """One alarm with its help text and its history."""
    with db.connect() as conn:
        return service.get_alarm(conn, alarm_id, now_ms())


@router.post("/api/alarms/{alarm_id}/acknowledge", response_model=AlarmDetailOut)
def acknowledge(
    alarm_id: int, body: AcknowledgeIn, db: EngineDep, alarms: AlarmEngineDep
) -> AlarmDetailOut:
    """Acknowledge: active → acknowledged; returned to normal → cleared."""
    now = now_ms()
    with _writing(db, alarms) as conn:
        transitions.acknowledge(conn, alarm_id, body.user, body.comment, now)
    with db.connect() as conn:
        return service.get_alarm(conn, alarm_id, now)


@router.post("/api/alarms/{alarm_id}/shelve", response_model=AlarmDetailOut)
def shelve(alarm_id: int, body: ShelveIn, db: EngineDep, alarms: AlarmEngineDep) -> AlarmDetailOut:
    """Shelve the alarm's point for ``for_s`` seconds or until ``until``: no notifications."""
    now = now_ms()
    until = (
        now + round(body.for_s * 1000) if body.for_s else parse_time_ms(body.until or "", "until")
    )
    with _writing(db, alarms) as conn:
        transitions.shelve(conn, alarm_id, body.user, body.comment, until, now)
    with db.connect() as conn:
        return service.get_alarm(conn, alarm_id, now)


@router.post("/api/alarms/{alarm_id}/unshelve", response_model=AlarmDetailOut)
def unshelve(
    alarm_id: int, body: UnshelveIn, db: EngineDep, alarms: AlarmEngineDep
) -> AlarmDetailOut:
    """Lift the shelf of the alarm's point."""
    now = now_ms()
    with _writing(db, alarms) as conn:
        transitions.unshelve(conn, alarm_id, body.user, body.comment, now)
    with db.connect() as conn:
        return service.get_alarm(conn, alarm_id, now)


# --------------------------------------------------------------------------- rules


@router.get("/api/alarm-rules", response_model=list[RuleOut])
def list_rules(db: EngineDep, alarms: AlarmEngineDep) -> list[RuleOut]:
    """The effective rules: built-in, from the rules file, and stored here (by name)."""
    with db.connect() as conn:
        return service.list_rules(conn, *_rule_sources(alarms))


@router.get("/api/alarm-rules/{name}", response_model=RuleOut)
def get_rule(name: str, db: EngineDep, alarms: AlarmEngineDep) -> RuleOut:
    with db.connect() as conn:
        return service.get_rule(conn, name, *_rule_sources(alarms))


@router.post("/api/alarm-rules", response_model=RuleOut, status_code=201)
def create_rule(
    rule: AlarmRule, db: EngineDep, alarms: AlarmEngineDep, user: str | None = None
) -> RuleOut:
    """Store a new rule (a name already stored is refused: use PUT)."""
    with _writing(db, alarms) as conn:
        service.store_rule(conn, rule, user, now_ms(), create=True)
    with db.connect() as conn:
        return service.get_rule(conn, rule.name, *_rule_sources(alarms))


@router.put("/api/alarm-rules/{name}", response_model=RuleOut)
def put_rule(
    name: str, rule: AlarmRule, db: EngineDep, alarms: AlarmEngineDep, user: str | None = None
) -> RuleOut:
    """Store or replace a rule; a built-in or file rule of that name is replaced by it."""
    if rule.name != name:
        raise InvalidRequest(f"the body names rule {rule.name!r} but the path {name!r}")
    with _writing(db, alarms) as conn:
        service.store_rule(conn, rule, user, now_ms(), create=False)
    with db.connect() as conn:
        return service.get_rule(conn, name, *_rule_sources(alarms))


@router.delete("/api/alarm-rules/{name}", status_code=204)
def delete_rule(name: str, db: EngineDep, alarms: AlarmEngineDep) -> Response:
    """Delete a stored rule (a built-in or file rule of that name applies again)."""
    with _writing(db, alarms) as conn:
        service.delete_rule(conn, name)
    return Response(status_code=204)


# --------------------------------------------------------------------------- limits


@router.get("/api/machines/{machine_id}/alarm-limits", response_model=list[LimitOut])
def list_limits(machine_id: int, db: EngineDep) -> list[LimitOut]:
    """The machine's alarm limit overrides, by metric."""
    with db.connect() as conn:
        return service.list_limits(conn, machine_id)


@router.put("/api/machines/{machine_id}/alarm-limits/{metric}", response_model=LimitOut)
def put_limit(
    machine_id: int, metric: str, body: LimitIn, db: EngineDep, alarms: AlarmEngineDep
) -> LimitOut:
    """Override the machine's limits of one metric (they win over rules and the profile)."""
    with _writing(db, alarms) as conn:
        return service.put_limit(conn, machine_id, metric, body, now_ms())


@router.delete("/api/machines/{machine_id}/alarm-limits/{metric}", status_code=204)
def delete_limit(machine_id: int, metric: str, db: EngineDep, alarms: AlarmEngineDep) -> Response:
    with _writing(db, alarms) as conn:
        service.delete_limit(conn, machine_id, metric)
    return Response(status_code=204)
