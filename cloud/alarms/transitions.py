"""Alarm transitions in the database, with the database as the arbiter between workers.

Every change is conditional: an alarm is opened with ``INSERT ... ON CONFLICT (open_key) DO
NOTHING`` (one open alarm per point, whoever raises it first), and updated with ``WHERE id = ?
AND version = ?`` (a change based on a state another worker or person has already moved is
re-read and decided again). A shelf expiry, an escalation step and the hand-over of an
API-recorded event to the notifier are claimed the same way, so exactly one worker tells.

Each function records history rows and returns the ``Notification`` objects to submit after
the caller commits (none for a shelved point).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, select, update

from cloud.alarms.condition import Change
from cloud.alarms.lifecycle import Step, next_escalation_ms, on_acknowledge, on_activate, on_return
from cloud.alarms.models import (
    ACTIVE_UNACK,
    CLEARED,
    NOTIFY_PENDING,
    NOTIFY_SENT,
    NOTIFY_SUPPRESSED,
    Alarm,
    AlarmEvent,
    AlarmShelf,
)
from cloud.alarms.notices import notification_of
from cloud.alarms.points import PointSpec
from cloud.alarms.rules import AlarmRule
from cloud.db import dialect_insert, table_of
from cloud.errors import InvalidRequest, NotFound
from cloud.notify.message import Notification

log = logging.getLogger(__name__)

_alarm = table_of(Alarm)
_event = table_of(AlarmEvent)
_shelf = table_of(AlarmShelf)
_RETRIES = 5


@dataclass(frozen=True, slots=True)
class PointChange:
    """A condition change of one point, worded for people; ``late`` for replayed backlog."""

    spec: PointSpec
    change: Change
    message: str
    late: bool = False


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _escalation_delay_ms(rule: AlarmRule | None) -> int | None:
    if rule is None or rule.escalation_delay_s is None:
        return None
    return round(rule.escalation_delay_s * 1000)


Row = dict[str, Any]


def _row(found: RowMapping | None) -> Row | None:
    return None if found is None else {str(k): v for k, v in found.items()}


def _rows(found: Sequence[RowMapping]) -> list[Row]:
    return [{str(k): v for k, v in r.items()} for r in found]


def _open_alarm(conn: Connection, key: str) -> Row | None:
    return _row(conn.execute(select(_alarm).where(_alarm.c.open_key == key)).mappings().first())


def _alarm_by_id(conn: Connection, alarm_id: int) -> Row:
    row = _row(conn.execute(select(_alarm).where(_alarm.c.id == alarm_id)).mappings().first())
    if row is None:
        raise NotFound(f"alarm {alarm_id} does not exist (GET /api/alarms lists them)")
    return row


def shelved_until(conn: Connection, point_key: str, now_ms: int) -> int | None:
    """Until when a point is shelved, or None if it is not (any more)."""
    until = conn.execute(
        select(_shelf.c.shelved_until_ms).where(
            _shelf.c.point_key == point_key, _shelf.c.shelved_until_ms > now_ms
        )
    ).scalar()
    return None if until is None else int(until)


def _record(
    conn: Connection,
    alarm_id: int,
    *,
    event: str,
    state: str,
    ts_ms: int,
    message: str,
    now_ms: int,
    notify: str,
    value: float | None = None,
    limit: float | None = None,
    actor: str | None = None,
    comment: str | None = None,
    level: int = 0,
    shelved_until_ms: int | None = None,
    late: bool = False,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "alarm_id": alarm_id, "event": event, "state": state, "ts_ms": ts_ms, "value": value,
        "limit_value": limit, "message": message, "actor": actor, "comment": comment,
        "escalation_level": level, "shelved_until_ms": shelved_until_ms, "late": late,
        "suppressed": notify == NOTIFY_SUPPRESSED, "notify": notify,
        "notified_ms": now_ms if notify == NOTIFY_SENT else None, "recorded_ms": now_ms,
    }  # fmt: skip
    conn.execute(_event.insert().values(**values))
    return values


def _conditional_update(conn: Connection, row: Mapping[str, Any], values: dict[str, Any]) -> bool:
    """Update ``row`` if nobody changed it since it was read; False if somebody did."""
    stmt = (
        update(_alarm)
        .where(_alarm.c.id == row["id"], _alarm.c.version == row["version"])
        .values(**values, version=row["version"] + 1)
    )
    return conn.execute(stmt).rowcount == 1


# --------------------------------------------------------------------------- from the engine


def _open(conn: Connection, pc: PointChange, now_ms: int) -> dict[str, Any] | None:
    spec, change = pc.spec, pc.change
    rule, machine = spec.rule, spec.machine
    values: dict[str, Any] = {
        "point_key": spec.key, "open_key": spec.key, "rule": rule.name, "kind": rule.kind,
        "priority": rule.priority, "machine_id": machine.id, "machine_name": machine.name,
        "site": machine.site, "area": machine.area, "line": machine.line,
        "metric": spec.metric, "unit": spec.unit, "state": ACTIVE_UNACK, "value": change.value,
        "limit_value": change.limit, "message": pc.message, "raised_ms": change.ts_ms,
        "active_ms": change.ts_ms, "returned_ms": None, "acked_ms": None, "acked_by": None,
        "ack_comment": None, "cleared_ms": None, "activations": 1, "escalation_level": 0,
        "next_escalation_ms": next_escalation_ms(
            now_ms, 0, _escalation_delay_ms(rule), rule.escalation_levels
        ),
        "late": pc.late, "cause": rule.help.cause, "consequence": rule.help.consequence,
        "action": rule.help.action, "roles": list(rule.roles), "version": 1,
        "updated_ms": now_ms,
    }  # fmt: skip
    stmt = dialect_insert(conn, _alarm).values(**values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["open_key"]).returning(_alarm.c.id)
    alarm_id = conn.execute(stmt).scalar()
    if alarm_id is None:
        return None  # another worker opened it first: decide again on its row
    return {**values, "id": int(alarm_id)}


def _move(
    conn: Connection, row: Row, step: Step, pc: PointChange, now_ms: int
) -> dict[str, Any] | None:
    change, rule = pc.change, pc.spec.rule
    values: dict[str, Any] = {"state": step.state, "updated_ms": now_ms}
    if pc.change.kind == "activate":
        values |= {
            "active_ms": change.ts_ms, "activations": row["activations"] + 1,
            "value": change.value, "limit_value": change.limit, "message": pc.message,
            "returned_ms": None, "escalation_level": 0, "late": pc.late,
            "next_escalation_ms": next_escalation_ms(
                now_ms, 0, _escalation_delay_ms(rule), rule.escalation_levels
            ),
        }  # fmt: skip
    else:
        values |= {"returned_ms": change.ts_ms, "next_escalation_ms": None}
    if step.closes:
        values |= {"open_key": None, "cleared_ms": change.ts_ms}
    if not _conditional_update(conn, row, values):
        return None
    return {**row, **values, "version": row["version"] + 1}


def apply_change(conn: Connection, pc: PointChange, now_ms: int) -> list[Notification]:
    """Apply one condition change to the point's alarm; the notification to send, if any."""
    for _attempt in range(_RETRIES):
        row = _open_alarm(conn, pc.spec.key)
        state = row["state"] if row is not None else None
        step = on_activate(state) if pc.change.kind == "activate" else on_return(state)
        if step is None:
            return []  # already there (e.g. another worker got the same change first)
        alarm = _open(conn, pc, now_ms) if row is None else _move(conn, row, step, pc, now_ms)
        if alarm is None:
            continue
        shelved = shelved_until(conn, pc.spec.key, now_ms)
        event = _record(
            conn, alarm["id"], event=step.event, state=step.state, ts_ms=pc.change.ts_ms,
            message=pc.message, now_ms=now_ms, value=pc.change.value, limit=pc.change.limit,
            late=pc.late, shelved_until_ms=shelved,
            notify=NOTIFY_SUPPRESSED if shelved is not None else NOTIFY_SENT,
        )  # fmt: skip
        return [] if shelved is not None else [notification_of(alarm, event)]
    log.error(
        "alarms: gave up on %s of %s after %d conflicting attempts (other workers keep changing "
        "it); the next reading decides again", pc.change.kind, pc.spec.key, _RETRIES,
    )  # fmt: skip
    return []


def apply_changes(
    conn: Connection, changes: Sequence[PointChange], now_ms: int
) -> list[Notification]:
    """Apply changes point by point (sorted by key, in time order per point: one lock order)."""
    told: list[Notification] = []
    for pc in sorted(changes, key=lambda c: c.spec.key):
        told.extend(apply_change(conn, pc, now_ms))
    return told


def escalate_due(
    conn: Connection, now_ms: int, rules: Mapping[str, AlarmRule]
) -> list[Notification]:
    """Escalate each unacknowledged active alarm whose next escalation is due (one level)."""
    told: list[Notification] = []
    query = select(_alarm).where(
        _alarm.c.next_escalation_ms <= now_ms, _alarm.c.open_key.is_not(None)
    )
    due = _rows(conn.execute(query.order_by(_alarm.c.id)).mappings().all())
    for row in due:
        if row["state"] != ACTIVE_UNACK:
            _conditional_update(conn, row, {"next_escalation_ms": None, "updated_ms": now_ms})
            continue
        shelved = shelved_until(conn, row["point_key"], now_ms)
        if shelved is not None:  # escalate after the shelf, if still unacknowledged then
            _conditional_update(conn, row, {"next_escalation_ms": shelved, "updated_ms": now_ms})
            continue
        rule = rules.get(row["rule"])
        level = row["escalation_level"] + 1
        levels = rule.escalation_levels if rule is not None else level
        following = next_escalation_ms(
            row["next_escalation_ms"], level, _escalation_delay_ms(rule), levels
        )
        values = {"escalation_level": level, "next_escalation_ms": following, "updated_ms": now_ms}
        if not _conditional_update(conn, row, values):
            continue  # another worker escalated it
        unacked_s = (now_ms - row["active_ms"]) / 1000
        event = _record(
            conn, row["id"], event="escalated", state=row["state"], ts_ms=now_ms,
            message=f"{row['message']}: unacknowledged for {unacked_s:.0f} s, escalation "
            f"level {level}", now_ms=now_ms, notify=NOTIFY_SENT, value=row["value"],
            limit=row["limit_value"], level=level,
        )  # fmt: skip
        told.append(notification_of(row, event))
    return told


def expire_shelves(conn: Connection, now_ms: int) -> list[Notification]:
    """Lift every shelf that has run out; each is told once, as ``unshelved``."""
    told: list[Notification] = []
    expired = conn.execute(
        select(_shelf.c.point_key, _shelf.c.shelved_until_ms).where(
            _shelf.c.shelved_until_ms <= now_ms
        )
    ).all()
    for point_key, until in expired:
        removed = conn.execute(
            delete(_shelf).where(
                _shelf.c.point_key == point_key, _shelf.c.shelved_until_ms == until
            )
        ).rowcount
        if removed != 1:
            continue  # lifted or renewed meanwhile
        row = _latest_alarm(conn, point_key)
        if row is None:
            continue
        event = _record(
            conn, row["id"], event="unshelved", state=_state_of(row), ts_ms=int(until),
            message=f"{row['message']}: shelf expired", now_ms=now_ms, notify=NOTIFY_SENT,
            comment="shelf expired",
        )  # fmt: skip
        told.append(notification_of(row, event))
    return told


def _latest_alarm(conn: Connection, point_key: str) -> Row | None:
    newest = select(func.max(_alarm.c.id)).where(_alarm.c.point_key == point_key)
    query = select(_alarm).where(_alarm.c.id == newest.scalar_subquery())
    return _row(conn.execute(query).mappings().first())


def _state_of(row: Mapping[str, Any]) -> str:
    return str(row["state"]) if row["open_key"] is not None else CLEARED


def hand_over_pending(conn: Connection, now_ms: int, limit: int = 500) -> list[Notification]:
    """Claim history rows recorded by the API (``pending``) and return their notifications."""
    told: list[Notification] = []
    query = select(_event).where(_event.c.notify == NOTIFY_PENDING)
    pending = _rows(conn.execute(query.order_by(_event.c.id).limit(limit)).mappings().all())
    for event in pending:
        claimed = conn.execute(
            update(_event)
            .where(_event.c.id == event["id"], _event.c.notify == NOTIFY_PENDING)
            .values(notify=NOTIFY_SENT, notified_ms=now_ms)
        ).rowcount
        if claimed == 1:
            told.append(notification_of(_alarm_by_id(conn, int(event["alarm_id"])), event))
    return told


# --------------------------------------------------------------------------- from people (API)


def acknowledge(
    conn: Connection, alarm_id: int, user: str, comment: str | None, now_ms: int
) -> None:
    """Acknowledge an alarm (active → acknowledged; returned-to-normal → cleared)."""
    for _attempt in range(_RETRIES):
        row = _alarm_by_id(conn, alarm_id)
        state = _state_of(row)
        step = on_acknowledge(state)
        if step is None:
            by = f" by {row['acked_by']} at {_iso(row['acked_ms'])}" if row["acked_ms"] else ""
            raise InvalidRequest(
                f"alarm {alarm_id} is {state}: nothing to acknowledge (acknowledged{by})"
            )
        values: dict[str, Any] = {
            "state": step.state, "acked_ms": now_ms, "acked_by": user, "ack_comment": comment,
            "next_escalation_ms": None, "updated_ms": now_ms,
        }  # fmt: skip
        if step.closes:
            values |= {"open_key": None, "cleared_ms": now_ms}
        if not _conditional_update(conn, row, values):
            continue
        shelved = shelved_until(conn, row["point_key"], now_ms)
        _record(
            conn, alarm_id, event=step.event, state=step.state, ts_ms=now_ms,
            message=f"{row['message']}: acknowledged by {user}", now_ms=now_ms,
            notify=NOTIFY_SUPPRESSED if shelved is not None else NOTIFY_PENDING,
            value=row["value"], limit=row["limit_value"], actor=user, comment=comment,
            shelved_until_ms=shelved,
        )  # fmt: skip
        return
    raise InvalidRequest(f"alarm {alarm_id} keeps changing under this request; try again")


def shelve(
    conn: Connection, alarm_id: int, user: str, comment: str | None, until_ms: int, now_ms: int
) -> None:
    """Shelve the alarm's point until ``until_ms``: its transitions are recorded, not told."""
    if until_ms <= now_ms:
        raise InvalidRequest(f"shelve until {_iso(until_ms)}: that is not in the future")
    row = _alarm_by_id(conn, alarm_id)
    values = {
        "point_key": row["point_key"], "alarm_id": alarm_id, "shelved_until_ms": until_ms,
        "shelved_by": user, "comment": comment, "shelved_ms": now_ms,
    }  # fmt: skip
    stmt = dialect_insert(conn, _shelf).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["point_key"],
            set_={k: stmt.excluded[k] for k in values if k != "point_key"},
        )
    )
    _record(
        conn, alarm_id, event="shelved", state=_state_of(row), ts_ms=now_ms,
        message=f"{row['message']}: shelved by {user} until {_iso(until_ms)}", now_ms=now_ms,
        notify=NOTIFY_PENDING, actor=user, comment=comment, shelved_until_ms=until_ms,
    )  # fmt: skip


def unshelve(conn: Connection, alarm_id: int, user: str, comment: str | None, now_ms: int) -> None:
    """Lift the shelf of the alarm's point."""
    row = _alarm_by_id(conn, alarm_id)
    removed = conn.execute(delete(_shelf).where(_shelf.c.point_key == row["point_key"])).rowcount
    if removed != 1:
        raise InvalidRequest(f"alarm {alarm_id} is not shelved: nothing to unshelve")
    _record(
        conn, alarm_id, event="unshelved", state=_state_of(row), ts_ms=now_ms,
        message=f"{row['message']}: unshelved by {user}", now_ms=now_ms, notify=NOTIFY_PENDING,
        actor=user, comment=comment,
    )  # fmt: skip
