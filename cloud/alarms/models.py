"""Alarm tables: rules and per-machine limits, alarms (one row per occurrence), history, shelves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId

# Lifecycle states of an alarm row (ISA-18.2); "normal" is the absence of an open alarm.
ACTIVE_UNACK = "active_unack"
ACTIVE_ACK = "active_ack"
RTN_UNACK = "rtn_unack"
CLEARED = "cleared"
ALARM_STATES = (ACTIVE_UNACK, ACTIVE_ACK, RTN_UNACK, CLEARED)
OPEN_STATES = (ACTIVE_UNACK, ACTIVE_ACK, RTN_UNACK)

# Notification bookkeeping of a history row.
NOTIFY_SENT = "sent"  # handed to the notifier by the engine that recorded it
NOTIFY_PENDING = "pending"  # recorded by the API; the next engine sweep hands it over
NOTIFY_SUPPRESSED = "suppressed"  # shelved point: recorded, never sent


class AlarmRuleRow(Base):
    """A rule stored through the API; it replaces a file or built-in rule of the same name."""

    __tablename__ = "alarm_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class AlarmLimit(Base):
    """Per-machine alarm limits of one metric; they win over the rule's and the profile's."""

    __tablename__ = "alarm_limit"
    __table_args__ = (UniqueConstraint("machine_id", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(64))
    low_low: Mapped[float | None] = mapped_column(Double)
    low: Mapped[float | None] = mapped_column(Double)
    high: Mapped[float | None] = mapped_column(Double)
    high_high: Mapped[float | None] = mapped_column(Double)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class Alarm(Base):
    """One occurrence of an alarm at one alarm point (rule × machine × metric), raise to clear.

    ``open_key`` equals ``point_key`` while the alarm is open (not cleared) and is NULL after;
    its unique index lets at most one open alarm exist per point, whichever worker raises it.
    ``version`` grows with every update: updates are conditional on it (optimistic locking).
    """

    __tablename__ = "alarm"
    __table_args__ = (
        Index("ix_alarm_machine_active", "machine_id", "active_ms"),
        Index("ix_alarm_next_escalation_ms", "next_escalation_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    point_key: Mapped[str] = mapped_column(String(255), index=True)
    open_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    rule: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id", ondelete="CASCADE"))
    machine_name: Mapped[str] = mapped_column(String(128))
    site: Mapped[str] = mapped_column(String(64))
    area: Mapped[str | None] = mapped_column(String(128))
    line: Mapped[str | None] = mapped_column(String(128))
    metric: Mapped[str | None] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Double)
    limit_value: Mapped[float | None] = mapped_column(Double)
    message: Mapped[str] = mapped_column(Text)
    raised_ms: Mapped[int] = mapped_column(BigInteger)
    active_ms: Mapped[int] = mapped_column(BigInteger)
    returned_ms: Mapped[int | None] = mapped_column(BigInteger)
    acked_ms: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(128))
    ack_comment: Mapped[str | None] = mapped_column(Text)
    cleared_ms: Mapped[int | None] = mapped_column(BigInteger)
    activations: Mapped[int] = mapped_column(Integer, default=1)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_ms: Mapped[int | None] = mapped_column(BigInteger)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    cause: Mapped[str | None] = mapped_column(Text)
    consequence: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class AlarmEvent(Base):
    """One transition of an alarm: when, to which state, the value, who and why (the history)."""

    __tablename__ = "alarm_event"
    __table_args__ = (Index("ix_alarm_event_alarm_id_ts", "alarm_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarm.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16))
    ts_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    value: Mapped[float | None] = mapped_column(Double)
    limit_value: Mapped[float | None] = mapped_column(Double)
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    shelved_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    notify: Mapped[str] = mapped_column(String(12), index=True)
    notified_ms: Mapped[int | None] = mapped_column(BigInteger)
    recorded_ms: Mapped[int] = mapped_column(BigInteger)


class AlarmShelf(Base):
    """A shelved alarm point: no notifications until ``shelved_until_ms`` (or an unshelve)."""

    __tablename__ = "alarm_shelf"

    point_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarm.id", ondelete="CASCADE"))
    shelved_until_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    shelved_by: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    shelved_ms: Mapped[int] = mapped_column(BigInteger)
