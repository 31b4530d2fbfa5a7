"""Alarm reads and edits for the API: alarms with history, rules, per-machine limits, figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Select, and_, delete, func, or_, select

from cloud.alarms.builtin import builtin_rules
from cloud.alarms.catalog import load_stored_rules
from cloud.alarms.models import (
    ACTIVE_ACK,
    ACTIVE_UNACK,
    ALARM_STATES,
    CLEARED,
    NOTIFY_SUPPRESSED,
    RTN_UNACK,
    Alarm,
    AlarmEvent,
    AlarmLimit,
    AlarmRuleRow,
    AlarmShelf,
)
from cloud.alarms.performance import Activation, OpenAlarm, Performance, compute, position_of
from cloud.alarms.rules import AlarmRule, RuleEntry, combine_rules
from cloud.alarms.schemas import AlarmDetailOut, AlarmEventOut, AlarmOut, LimitIn, LimitOut, RuleOut
from cloud.assets.models import Machine
from cloud.db import dialect_insert, table_of
from cloud.errors import InvalidRequest, NotFound

_alarm = table_of(Alarm)
_event = table_of(AlarmEvent)
_shelf = table_of(AlarmShelf)
_rules = table_of(AlarmRuleRow)
_limits = table_of(AlarmLimit)
_machine = table_of(Machine)

STATE_FILTERS: dict[str, tuple[str, ...]] = {
    "open": (ACTIVE_UNACK, ACTIVE_ACK, RTN_UNACK),
    "active": (ACTIVE_UNACK, ACTIVE_ACK),
    "unacknowledged": (ACTIVE_UNACK, RTN_UNACK),
    "all": ALARM_STATES,
    **{state: (state,) for state in ALARM_STATES},
}


def _alarm_query(now_ms: int) -> Select[Any]:
    shelf = and_(_shelf.c.point_key == _alarm.c.point_key, _shelf.c.shelved_until_ms > now_ms)
    return select(
        _alarm, _shelf.c.shelved_until_ms, _shelf.c.shelved_by
    ).outerjoin(_shelf, shelf)  # fmt: skip


def _alarm_out(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"], "point_key": m["point_key"], "rule": m["rule"], "kind": m["kind"],
        "priority": m["priority"], "state": m["state"] if m["open_key"] is not None else CLEARED,
        "machine_id": m["machine_id"], "machine": m["machine_name"], "site": m["site"],
        "area": m["area"], "line": m["line"], "metric": m["metric"], "unit": m["unit"],
        "value": m["value"], "limit": m["limit_value"], "message": m["message"],
        "raised_ms": m["raised_ms"], "active_ms": m["active_ms"], "returned_ms": m["returned_ms"],
        "acked_ms": m["acked_ms"], "acked_by": m["acked_by"], "ack_comment": m["ack_comment"],
        "cleared_ms": m["cleared_ms"], "activations": m["activations"],
        "escalation_level": m["escalation_level"], "late": m["late"],
        "shelved_until_ms": m["shelved_until_ms"], "shelved_by": m["shelved_by"],
        "roles": list(m["roles"] or ()),
        "help": {"cause": m["cause"], "consequence": m["consequence"], "action": m["action"]},
    }  # fmt: skip


def _event_out(row: Any) -> AlarmEventOut:
    m = row._mapping
    return AlarmEventOut(
        id=m["id"], alarm_id=m["alarm_id"], event=m["event"], state=m["state"],
        ts_ms=m["ts_ms"], value=m["value"], limit=m["limit_value"], message=m["message"],
        actor=m["actor"], comment=m["comment"], escalation_level=m["escalation_level"],
        shelved_until_ms=m["shelved_until_ms"], late=m["late"], suppressed=m["suppressed"],
        notify=m["notify"],
    )  # fmt: skip


def list_alarms(
    conn: Connection,
    now_ms: int,
    *,
    state: str = "open",
    machine_id: int | None = None,
    line: str | None = None,
    priority: str | None = None,
    limit: int = 500,
) -> list[AlarmOut]:
    """Alarms, newest activation first; ``state`` is one of ``STATE_FILTERS``."""
    states = STATE_FILTERS.get(state)
    if states is None:
        raise InvalidRequest(f"state={state!r}: use one of {', '.join(STATE_FILTERS)}")
    wanted = []
    open_states = [s for s in states if s != CLEARED]
    if open_states:
        wanted.append(and_(_alarm.c.open_key.is_not(None), _alarm.c.state.in_(open_states)))
    if CLEARED in states:
        wanted.append(_alarm.c.open_key.is_(None))
    query = _alarm_query(now_ms).where(or_(*wanted))
    if machine_id is not None:
        query = query.where(_alarm.c.machine_id == machine_id)
    if line is not None:
        query = query.where(_alarm.c.line == line)
    if priority is not None:
        query = query.where(_alarm.c.priority == priority)
    query = query.order_by(_alarm.c.active_ms.desc(), _alarm.c.id.desc()).limit(limit)
    return [AlarmOut(**_alarm_out(row)) for row in conn.execute(query)]


def get_alarm(conn: Connection, alarm_id: int, now_ms: int) -> AlarmDetailOut:
    """One alarm with its help text and its whole history, in the order it was recorded."""
    row = conn.execute(_alarm_query(now_ms).where(_alarm.c.id == alarm_id)).first()
    if row is None:
        raise NotFound(f"alarm {alarm_id} does not exist (GET /api/alarms lists them)")
    events = conn.execute(select(_event).where(_event.c.alarm_id == alarm_id).order_by(_event.c.id))
    return AlarmDetailOut(**_alarm_out(row), history=[_event_out(e) for e in events])


def history(
    conn: Connection,
    from_ms: int,
    to_ms: int,
    *,
    machine_id: int | None = None,
    limit: int = 10_000,
) -> list[AlarmEventOut]:
    """Every transition in ``[from_ms, to_ms)``, oldest first."""
    query = select(_event).where(_event.c.ts_ms >= from_ms, _event.c.ts_ms < to_ms)
    if machine_id is not None:
        query = query.join(_alarm, _alarm.c.id == _event.c.alarm_id).where(
            _alarm.c.machine_id == machine_id
        )
    query = query.order_by(_event.c.ts_ms, _event.c.id).limit(limit)
    return [_event_out(row) for row in conn.execute(query)]


# --------------------------------------------------------------------------- rules


def effective_rules(
    conn: Connection, builtin: bool, file_rules: Sequence[AlarmRule]
) -> list[RuleEntry]:
    return combine_rules(builtin_rules() if builtin else (), file_rules, load_stored_rules(conn))


def list_rules(conn: Connection, builtin: bool, file_rules: Sequence[AlarmRule]) -> list[RuleOut]:
    stamps = {
        r.name: (r.updated_ms, r.updated_by)
        for r in conn.execute(select(_rules.c.name, _rules.c.updated_ms, _rules.c.updated_by))
    }
    out = []
    for entry in effective_rules(conn, builtin, file_rules):
        updated_ms, updated_by = stamps.get(entry.rule.name, (None, None))
        out.append(RuleOut(name=entry.rule.name, source=entry.source, rule=entry.rule,
                           updated_ms=updated_ms, updated_by=updated_by))  # fmt: skip
    return out


def get_rule(
    conn: Connection, name: str, builtin: bool, file_rules: Sequence[AlarmRule]
) -> RuleOut:
    for rule in list_rules(conn, builtin, file_rules):
        if rule.name == name:
            return rule
    raise NotFound(f"alarm rule {name!r} does not exist (GET /api/alarm-rules lists them)")


def _definition(rule: AlarmRule) -> dict[str, Any]:
    return rule.model_dump(mode="json", exclude_defaults=True)


def store_rule(
    conn: Connection, rule: AlarmRule, user: str | None, now_ms: int, *, create: bool
) -> None:
    """Store a rule (``create``: refuse a name already stored; otherwise insert or replace)."""
    values = {"name": rule.name, "definition": _definition(rule), "created_ms": now_ms,
              "updated_ms": now_ms, "updated_by": user}  # fmt: skip
    stmt = dialect_insert(conn, _rules).values(**values)
    if create:
        inserted = stmt.on_conflict_do_nothing(index_elements=["name"]).returning(_rules.c.id)
        if conn.execute(inserted).first() is None:
            raise InvalidRequest(
                f"alarm rule {rule.name!r} is already stored: change it with "
                f"PUT /api/alarm-rules/{rule.name}"
            )
        return
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "definition": stmt.excluded.definition,
                "updated_ms": now_ms,
                "updated_by": user,
            },
        )
    )


def delete_rule(conn: Connection, name: str) -> None:
    removed = conn.execute(delete(_rules).where(_rules.c.name == name)).rowcount
    if removed != 1:
        raise NotFound(
            f"alarm rule {name!r} is not stored through the API; a built-in or file rule is "
            f"taken out of service with PUT /api/alarm-rules/{name} and enabled: false"
        )


# --------------------------------------------------------------------------- limits


def _machine_exists(conn: Connection, machine_id: int) -> None:
    if conn.execute(select(_machine.c.id).where(_machine.c.id == machine_id)).first() is None:
        raise NotFound(f"machine {machine_id} does not exist (GET /api/machines lists them)")


def _limit_out(row: Any) -> LimitOut:
    m = row._mapping
    return LimitOut(
        machine_id=m["machine_id"], metric=m["metric"], low_low=m["low_low"], low=m["low"],
        high=m["high"], high_high=m["high_high"], updated_ms=m["updated_ms"],
        updated_by=m["updated_by"],
    )  # fmt: skip


def list_limits(conn: Connection, machine_id: int) -> list[LimitOut]:
    _machine_exists(conn, machine_id)
    query = select(_limits).where(_limits.c.machine_id == machine_id).order_by(_limits.c.metric)
    return [_limit_out(r) for r in conn.execute(query)]


def put_limit(
    conn: Connection, machine_id: int, metric: str, body: LimitIn, now_ms: int
) -> LimitOut:
    """Set a machine's limits of one metric (all four; a None is "not overridden")."""
    _machine_exists(conn, machine_id)
    values = {
        "machine_id": machine_id, "metric": metric, "low_low": body.low_low, "low": body.low,
        "high": body.high, "high_high": body.high_high, "updated_ms": now_ms,
        "updated_by": body.user,
    }  # fmt: skip
    stmt = dialect_insert(conn, _limits).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["machine_id", "metric"],
            set_={k: stmt.excluded[k] for k in values if k not in ("machine_id", "metric")},
        )
    )
    row = conn.execute(
        select(_limits).where(_limits.c.machine_id == machine_id, _limits.c.metric == metric)
    ).one()
    return _limit_out(row)


def delete_limit(conn: Connection, machine_id: int, metric: str) -> None:
    removed = conn.execute(
        delete(_limits).where(_limits.c.machine_id == machine_id, _limits.c.metric == metric)
    ).rowcount
    if removed != 1:
        raise NotFound(f"machine {machine_id} has no alarm limits of {metric!r}")


# --------------------------------------------------------------------------- figures


def performance(
    conn: Connection, from_ms: int, to_ms: int, now_ms: int, operator_position: str = "line"
) -> Performance:
    """The ISA-18.2 style figures of ``[from_ms, to_ms)`` (see ``cloud.alarms.performance``)."""
    if to_ms <= from_ms:
        raise InvalidRequest("the window is empty: 'to' must be after 'from'")
    raised = (
        select(
            _event.c.ts_ms,
            _event.c.suppressed,
            _alarm.c.point_key,
            _alarm.c.rule,
            _alarm.c.machine_id,
            _alarm.c.machine_name,
            _alarm.c.metric,
            _alarm.c.priority,
            _alarm.c.site,
            _alarm.c.area,
            _alarm.c.line,
        )
        .join(_alarm, _alarm.c.id == _event.c.alarm_id)
        .where(_event.c.event == "raised", _event.c.ts_ms >= from_ms, _event.c.ts_ms < to_ms)
    )
    activations, suppressed = [], 0
    for r in conn.execute(raised):
        if r.suppressed:
            suppressed += 1
            continue
        activations.append(Activation(
            int(r.ts_ms), r.point_key, r.rule, int(r.machine_id), r.machine_name, r.metric,
            r.priority, position_of(operator_position, r.site, r.area, r.line),
        ))  # fmt: skip
    standing = select(_alarm).where(
        _alarm.c.open_key.is_not(None), _alarm.c.state.in_((ACTIVE_UNACK, ACTIVE_ACK))
    )
    open_alarms = [
        OpenAlarm(int(r.id), r.point_key, r.rule, r.machine_name, r.metric, r.priority,
                  position_of(operator_position, r.site, r.area, r.line), int(r.active_ms))
        for r in conn.execute(standing)
    ]  # fmt: skip
    return compute(activations, open_alarms, from_ms, to_ms, now_ms, operator_position, suppressed)


def count_events(conn: Connection, notify: str = NOTIFY_SUPPRESSED) -> int:
    """How many history rows have this notification status (for tests and metrics)."""
    return int(conn.execute(select(func.count()).where(_event.c.notify == notify)).scalar_one())
