"""ERP webhook tables: the endpoints (subscriptions), the outbox of deliveries, every attempt.

An endpoint is keyed by its ``name``. A delivery names its endpoint by that name rather than by
a foreign key, so that the delivery log outlives an endpoint that is deleted (its pending
deliveries are failed then) and a re-created endpoint of the same name takes over. The body is
stored as the exact bytes that are signed and sent, so every retry sends the same bytes with the
same ``event_id``.

Delivery states: ``pending`` (due at ``next_attempt_ms``) → ``sending`` (claimed by one delivery
thread until ``claimed_until_ms``) → ``delivered``, or back to ``pending`` after a failed attempt,
or ``failed`` once the attempts are used up. A manual retry puts a failed one back to pending.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId

OPERATION_COMPLETED = "operation.completed"
WORK_ORDER_COMPLETED = "work_order.completed"
EVENTS = (OPERATION_COMPLETED, WORK_ORDER_COMPLETED)

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"
DELIVERY_STATES = (PENDING, SENDING, DELIVERED, FAILED)


class ErpWebhook(Base):
    """An ERP endpoint subscribed to completion events, with the secret that signs its bodies."""

    __tablename__ = "erp_webhook"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str | None] = mapped_column(String(200))  # None: bodies are not signed
    events: Mapped[str] = mapped_column(String(200))  # subscribed events, comma-separated
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    @property
    def event_list(self) -> tuple[str, ...]:
        return tuple(name for name in self.events.split(",") if name)


class ErpDelivery(Base):
    """One event on its way to one endpoint: the signed body, its state and its schedule."""

    __tablename__ = "erp_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint", "event_id"),
        Index("ix_erp_delivery_state_next_attempt", "state", "next_attempt_ms"),
        Index("ix_erp_delivery_endpoint_id", "endpoint", "id"),
        CheckConstraint(
            "state IN ('pending', 'sending', 'delivered', 'failed')", name="known_state"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))  # the same on every retry
    event: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(64))  # ErpWebhook.name
    work_order: Mapped[str] = mapped_column(String(64))  # the work order's external id
    operation_sequence: Mapped[int | None] = mapped_column(Integer)  # operation events only
    body: Mapped[str] = mapped_column(Text)  # the JSON sent, exactly
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)  # every attempt so far, manual retries too
    round_start: Mapped[int] = mapped_column(Integer)  # ``attempts`` at the last manual retry
    next_attempt_ms: Mapped[int] = mapped_column(BigInteger)
    claim: Mapped[str | None] = mapped_column(String(32))  # the delivery thread's claim token
    claimed_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of the last attempt
    last_error: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    delivered_ms: Mapped[int | None] = mapped_column(BigInteger)


class ErpDeliveryAttempt(Base):
    """One POST of a delivery: when, how long, and the HTTP status or the error."""

    __tablename__ = "erp_delivery_attempt"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("erp_delivery.id"))
    attempt: Mapped[int] = mapped_column(Integer)  # 1-based
    ms: Mapped[int] = mapped_column(BigInteger)  # when it started
    http_status: Mapped[int | None] = mapped_column(Integer)  # None: no HTTP answer
    error: Mapped[str | None] = mapped_column(Text)  # None: delivered
    duration_ms: Mapped[int] = mapped_column(Integer)
