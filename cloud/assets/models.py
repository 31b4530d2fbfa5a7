"""ISA-95 equipment hierarchy tables: site → area → line → machine."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base

PLACED_BY_BIRTH = "birth"
PLACED_BY_USER = "user"


class Site(Base):
    """A plant; its id is the site level of the MQTT topics."""

    __tablename__ = "asset_site"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))


class Area(Base):
    """A hall or department of a site."""

    __tablename__ = "asset_area"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("asset_site.id"))
    name: Mapped[str] = mapped_column(String(128))


class Line(Base):
    """A production line (or cell) of an area."""

    __tablename__ = "asset_line"
    __table_args__ = (UniqueConstraint("area_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("asset_area.id"))
    name: Mapped[str] = mapped_column(String(128))


class Machine(Base):
    """A machine, bound to one device of one edge and the profile it was read with."""

    __tablename__ = "machine"
    __table_args__ = (UniqueConstraint("edge", "device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    site_id: Mapped[str] = mapped_column(ForeignKey("asset_site.id"))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("asset_area.id"))
    line_id: Mapped[int | None] = mapped_column(ForeignKey("asset_line.id"))
    edge: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str | None] = mapped_column(String(64))
    protocol: Mapped[str | None] = mapped_column(String(32))
    ideal_cycle_time_s: Mapped[float | None] = mapped_column(Double)
    units_per_cycle: Mapped[int] = mapped_column(Integer, default=1)
    state_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # fault code (as text) -> {"reason": "Spindle overload", "category": "breakdown"}
    fault_codes: Mapped[dict[str, dict[str, str]] | None] = mapped_column(JSON)
    # ordered [{"state": "running", "when": "spindle_speed > 0 and door_closed"}, ...]
    state_rules: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    # the profile's workarounds.counter_rollover: counters wrap to 0 after this value
    counter_rollover: Mapped[int | None] = mapped_column(BigInteger)
    placed_by: Mapped[str] = mapped_column(String(16), default=PLACED_BY_BIRTH)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
