"""The machine-state interval table: which canonical state a machine was in, and when."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId


class StateInterval(Base):
    """A stretch of one state; ``end_ms`` is NULL for the open (current) interval."""

    __tablename__ = "state_interval"
    __table_args__ = (Index("ix_state_interval_machine_start", "machine_id", "start_ms"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machine.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    raw_code: Mapped[str | None] = mapped_column(String(64))
    fault_code: Mapped[str | None] = mapped_column(String(64))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
