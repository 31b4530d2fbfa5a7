"""Tables of ingest: claimed message ids (dedup), dead letters, device events and edges."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId


class IngestMessage(Base):
    """One stored sequenced message. The key (edge, session, seq) is what makes ingest idempotent."""

    __tablename__ = "ingest_message"
    __table_args__ = (PrimaryKeyConstraint("edge", "session", "seq"),)

    edge: Mapped[str] = mapped_column(String(64))
    session: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    site: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    received_ms: Mapped[int] = mapped_column(BigInteger)


class DeadLetter(Base):
    """A message that broke the wire contract, kept as received with the reason."""

    __tablename__ = "dead_letter"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    received_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    site: Mapped[str | None] = mapped_column(String(64))
    edge: Mapped[str | None] = mapped_column(String(64))
    session: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger)


class DeviceEvent(Base):
    """Something that happened on a device (state change, counter reset, link down ...)."""

    __tablename__ = "device_event"
    __table_args__ = (Index("ix_device_event_edge_device_ts", "edge", "device", "ts_ms"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    edge: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    session: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    metric: Mapped[str | None] = mapped_column(String(64))
    previous: Mapped[Any] = mapped_column(JSON, nullable=True)
    current: Mapped[Any] = mapped_column(JSON, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text)
    historical: Mapped[bool] = mapped_column(Boolean, default=False)
    received_ms: Mapped[int] = mapped_column(BigInteger)


class EdgeNode(Base):
    """An edge agent as the cloud last heard of it: online, session, health and clock skew."""

    __tablename__ = "edge_node"

    edge: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    session: Mapped[str | None] = mapped_column(String(64))
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    status_created_ms: Mapped[int | None] = mapped_column(BigInteger)
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    clock_skew_ms: Mapped[int | None] = mapped_column(BigInteger)
