"""OEE tables: shift calendars, per-machine OEE settings, operator downtime reasons, roll-ups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base

SCOPE_SITE = "site"
SCOPE_LINE = "line"


class ShiftCalendar(Base):
    """A site's or a line's shift calendar; ``scope`` is ``site:<id>`` or ``line:<id>``."""

    __tablename__ = "oee_calendar"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    scope: Mapped[str] = mapped_column(String(96), unique=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("asset_site.id"))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("asset_line.id", ondelete="CASCADE"))
    time_zone: Mapped[str] = mapped_column(String(64))
    # the CalendarSpec as JSON (shifts, holidays, overtime, and the area/line names)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16))  # "file" or "api"
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class MachineOeeSettings(Base):
    """Per-machine overrides: ideal cycle time, micro-stop threshold, counter rollover."""

    __tablename__ = "oee_machine_settings"

    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machine.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    ideal_cycle_time_s: Mapped[float | None] = mapped_column(Double)
    micro_stop_s: Mapped[float | None] = mapped_column(Double)
    counter_rollover: Mapped[int | None] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class DowntimeReason(Base):
    """An operator's reason for a stop, keyed by the state interval's start (ids change)."""

    __tablename__ = "oee_downtime_reason"

    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machine.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    reason: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    entered_by: Mapped[str] = mapped_column(String(128))
    entered_ms: Mapped[int] = mapped_column(BigInteger)


class OeeRollup(Base):
    """One machine's time elements and quantities over one hour or one shift instance."""

    __tablename__ = "oee_rollup"
    __table_args__ = (Index("ix_oee_rollup_kind_start", "period_kind", "period_start_ms"),)

    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machine.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    period_kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "hour" | "shift"
    period_start_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    period_end_ms: Mapped[int] = mapped_column(BigInteger)
    shift_name: Mapped[str | None] = mapped_column(String(64))
    local_date: Mapped[str | None] = mapped_column(String(10))
    pot_ms: Mapped[int] = mapped_column(BigInteger)
    pdot_ms: Mapped[int] = mapped_column(BigInteger)
    apt_ms: Mapped[int] = mapped_column(BigInteger)
    aust_ms: Mapped[int] = mapped_column(BigInteger)
    adet_ms: Mapped[int] = mapped_column(BigInteger)
    adot_ms: Mapped[int] = mapped_column(BigInteger)
    unkt_ms: Mapped[int] = mapped_column(BigInteger)
    micro_stop_ms: Mapped[int] = mapped_column(BigInteger)
    micro_stops: Mapped[int] = mapped_column(Integer)
    failure_events: Mapped[int] = mapped_column(Integer)
    produced: Mapped[float | None] = mapped_column(Double)
    good: Mapped[float | None] = mapped_column(Double)
    scrap: Mapped[float | None] = mapped_column(Double)
    startup_scrap: Mapped[float | None] = mapped_column(Double)
    ideal_produced_s: Mapped[float | None] = mapped_column(Double)
    ideal_good_s: Mapped[float | None] = mapped_column(Double)
    ideal_startup_scrap_s: Mapped[float | None] = mapped_column(Double)
    computed_ms: Mapped[int] = mapped_column(BigInteger)
