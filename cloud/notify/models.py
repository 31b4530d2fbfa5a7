"""The delivery table: one row per (notification, channel), updated after every attempt."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId

DELIVERY_STATUSES = ("pending", "sent", "failed")


class NotificationDelivery(Base):
    """The fate of one notification on one channel: pending → sent, or failed with its error.

    ``delivery_key`` is made by the dispatcher when the notification is routed, so that every
    later attempt updates the same row without reading it back. ``alarm_id`` has no foreign key:
    test notifications carry 0, and alarm history may be pruned before its deliveries.
    """

    __tablename__ = "notification_delivery"
    __table_args__ = (
        Index("ix_notification_delivery_status_id", "status", "id"),
        Index("ix_notification_delivery_channel_id", "channel", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_key: Mapped[str] = mapped_column(String(32), unique=True)
    alarm_id: Mapped[int] = mapped_column(BigInteger, index=True)
    channel: Mapped[str] = mapped_column(String(64))
    channel_type: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    escalation_level: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    notification_ms: Mapped[int] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    sent_ms: Mapped[int | None] = mapped_column(BigInteger)
