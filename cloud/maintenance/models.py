"""Condition-monitoring tables: each machine's vibration class, the assessment history and the
suggested maintenance work orders that the condition monitor raises.

A suggestion is *live* while its status is ``open`` or ``accepted``; ``open_key``
(``"<machine_id>:<kind>"``) is set while it is live and NULL after, and its unique index keeps
one live suggestion per machine × kind, whichever worker writes it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
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

SUGGESTION_KINDS = ("vibration_zone", "remaining_life", "temperature_trend")
SUGGESTION_STATES = ("open", "accepted", "dismissed", "done")
LIVE_STATES = ("open", "accepted")  # open_key is held in these
SIGNAL_VIBRATION = "vibration"
SIGNAL_TEMPERATURE = "temperature"


def suggestion_open_key(machine_id: int, kind: str) -> str:
    """The ``open_key`` of a machine's live suggestion of one kind."""
    return f"{machine_id}:{kind}"


class MachineVibrationClass(Base):
    """The vibration class (ISO 20816 / 10816 table) a person chose for a machine."""

    __tablename__ = "machine_vibration_class"

    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machine.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    class_id: Mapped[str] = mapped_column(String(64))
    set_by: Mapped[str | None] = mapped_column(String(128))
    set_ms: Mapped[int] = mapped_column(BigInteger)


class ConditionAssessment(Base):
    """One assessment of one condition metric of a machine (history: a row per pass).

    ``signal`` is ``vibration`` (``metric`` is an overall velocity RMS: zone, health, RUL) or
    ``temperature`` (``metric`` is a temperature: the trend columns). ``data_to_ms`` is the
    source time of the newest sample the assessment saw; one row per machine, metric, signal
    and ``data_to_ms``, so that workers assessing the same data store it once (a NULL
    ``data_to_ms``, no sample in the look-back, is not deduplicated).
    """

    __tablename__ = "condition_assessment"
    __table_args__ = (
        Index("ix_condition_assessment_machine_assessed", "machine_id", "assessed_ms"),
        UniqueConstraint("machine_id", "metric", "signal", "data_to_ms"),
        CheckConstraint("signal IN ('vibration', 'temperature')", name="known_signal"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(64))
    signal: Mapped[str] = mapped_column(String(16))
    assessed_ms: Mapped[int] = mapped_column(BigInteger)
    data_to_ms: Mapped[int | None] = mapped_column(BigInteger)
    class_id: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(1))
    rms: Mapped[float | None] = mapped_column(Double)
    health: Mapped[float | None] = mapped_column(Double)
    rul_h: Mapped[float | None] = mapped_column(Double)
    rul_low_h: Mapped[float | None] = mapped_column(Double)
    rul_high_h: Mapped[float | None] = mapped_column(Double)
    model: Mapped[str | None] = mapped_column(String(16))
    points_used: Mapped[int] = mapped_column(Integer)
    temperature_metric: Mapped[str | None] = mapped_column(String(64))
    temperature_slope_c_per_h: Mapped[float | None] = mapped_column(Double)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class MaintenanceSuggestion(Base):
    """A suggested maintenance work order: machine, reason, evidence, due by, status."""

    __tablename__ = "maintenance_suggestion"
    __table_args__ = (
        Index("ix_maintenance_suggestion_status_created", "status", "created_ms"),
        CheckConstraint(
            "kind IN ('vibration_zone', 'remaining_life', 'temperature_trend')", name="known_kind"
        ),
        CheckConstraint("status IN ('open', 'accepted', 'dismissed', 'done')", name="known_status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machine.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    due_by_ms: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    open_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
