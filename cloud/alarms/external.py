"""Alarms raised by other domains: SPC rule violations and predictive-maintenance signals.

The alarm engine evaluates rules over the stream itself; an SPC chart or the condition monitor
decides on its own when something is abnormal and calls ``raise_signal`` / ``return_signal``
inside its own transaction. The alarm row, its lifecycle (ISA-18.2: active → acknowledged →
cleared), shelving and escalation are the same as for engine alarms, and acknowledging through
the API works the same. The history rows are recorded ``pending``: the next sweep of an alarm
engine (any worker) claims them and hands the notifications over, so the caller needs no
notifier and a notification is sent exactly once.

A signal's point key is the caller's (e.g. ``spc:12``, ``pdm:7:motor_de_rms:zone``); the
engine leaves points it does not know alone, so the two never fight over an alarm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from cloud.alarms.catalog import load_machines
from cloud.alarms.lifecycle import on_activate, on_return
from cloud.alarms.models import ACTIVE_UNACK, NOTIFY_PENDING, NOTIFY_SUPPRESSED
from cloud.alarms.transitions import (
    _alarm,
    _conditional_update,
    _open_alarm,
    _record,
    shelved_until,
)
from cloud.db import dialect_insert
from cloud.errors import NotFound
from cloud.notify.message import Priority

log = logging.getLogger(__name__)

_RETRIES = 5


@dataclass(frozen=True, slots=True)
class SignalPoint:
    """An alarm point owned by another domain: what people see when it is raised."""

    key: str
    rule: str
    kind: str
    priority: Priority
    machine_id: int
    metric: str | None = None
    unit: str | None = None
    cause: str | None = None
    consequence: str | None = None
    action: str | None = None
    roles: tuple[str, ...] = ("quality",)


def _opened(conn: Connection, point: SignalPoint, ts_ms: int, message: str, value: float | None,
            limit: float | None, now_ms: int) -> dict[str, Any] | None:  # fmt: skip
    machines = load_machines(conn, [point.machine_id])
    if not machines:
        raise NotFound(f"machine {point.machine_id} does not exist; cannot raise {point.rule}")
    machine = next(iter(machines.values()))
    values: dict[str, Any] = {
        "point_key": point.key, "open_key": point.key, "rule": point.rule, "kind": point.kind,
        "priority": point.priority, "machine_id": machine.id, "machine_name": machine.name,
        "site": machine.site, "area": machine.area, "line": machine.line,
        "metric": point.metric, "unit": point.unit, "state": ACTIVE_UNACK, "value": value,
        "limit_value": limit, "message": message, "raised_ms": ts_ms, "active_ms": ts_ms,
        "returned_ms": None, "acked_ms": None, "acked_by": None, "ack_comment": None,
        "cleared_ms": None, "activations": 1, "escalation_level": 0, "next_escalation_ms": None,
        "late": False, "cause": point.cause, "consequence": point.consequence,
        "action": point.action, "roles": list(point.roles), "version": 1, "updated_ms": now_ms,
    }  # fmt: skip
    stmt = dialect_insert(conn, _alarm).values(**values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["open_key"]).returning(_alarm.c.id)
    alarm_id = conn.execute(stmt).scalar()
    return None if alarm_id is None else {**values, "id": int(alarm_id)}


def _tell(conn: Connection, alarm_id: int, event: str, state: str, key: str, ts_ms: int,
          message: str, value: float | None, limit: float | None, now_ms: int) -> None:  # fmt: skip
    shelved = shelved_until(conn, key, now_ms)
    _record(
        conn, alarm_id, event=event, state=state, ts_ms=ts_ms, message=message, now_ms=now_ms,
        value=value, limit=limit, shelved_until_ms=shelved,
        notify=NOTIFY_SUPPRESSED if shelved is not None else NOTIFY_PENDING,
    )  # fmt: skip


def raise_signal(
    conn: Connection,
    point: SignalPoint,
    *,
    ts_ms: int,
    message: str,
    value: float | None = None,
    limit: float | None = None,
    now_ms: int,
) -> int | None:
    """Open the point's alarm, or activate it again; its id, or None if it was already active."""
    for _attempt in range(_RETRIES):
        row = _open_alarm(conn, point.key)
        step = on_activate(row["state"] if row is not None else None)
        if step is None:
            return None
        if row is None:
            alarm = _opened(conn, point, ts_ms, message, value, limit, now_ms)
        else:
            moved = {
                "state": step.state, "active_ms": ts_ms, "activations": row["activations"] + 1,
                "value": value, "limit_value": limit, "message": message, "returned_ms": None,
                "updated_ms": now_ms,
            }  # fmt: skip
            alarm = {**row, **moved} if _conditional_update(conn, row, moved) else None
        if alarm is None:
            continue
        _tell(conn, int(alarm["id"]), step.event, step.state, point.key, ts_ms, message, value,
              limit, now_ms)  # fmt: skip
        return int(alarm["id"])
    log.error("alarms: gave up raising %s after %d conflicting attempts", point.key, _RETRIES)
    return None


def return_signal(
    conn: Connection,
    key: str,
    *,
    ts_ms: int,
    message: str,
    value: float | None = None,
    now_ms: int,
) -> None:
    """The point's condition is normal again (an acknowledged alarm clears; else it waits)."""
    for _attempt in range(_RETRIES):
        row = _open_alarm(conn, key)
        step = on_return(row["state"] if row is not None else None)
        if row is None or step is None:
            return
        moved: dict[str, Any] = {"state": step.state, "returned_ms": ts_ms, "updated_ms": now_ms}
        if step.closes:
            moved |= {"open_key": None, "cleared_ms": ts_ms}
        if _conditional_update(conn, row, moved):
            _tell(conn, int(row["id"]), step.event, step.state, key, ts_ms, message, value, None,
                  now_ms)  # fmt: skip
            return
    log.error("alarms: gave up returning %s after %d conflicting attempts", key, _RETRIES)
