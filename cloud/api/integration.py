"""Routes for the ERP webhooks: the endpoints (subscriptions) and the delivery log.

Endpoints are kept by name (``PUT`` replaces one whole; the secret is never shown back, only
whether there is one). Deleting an endpoint fails its pending deliveries, so the log keeps them.
The delivery log lists deliveries newest first; one delivery shows its payload and every
attempt; a failed one can be put back to pending (``retry``), with a fresh set of attempts. A
body that does not validate answers 400 naming the field; a retry of a delivery that is not
failed or pending answers 409.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, update

from cloud.api.deps import BadRequestRoute, SessionDep, WriteSessionDep
from cloud.db import table_of
from cloud.errors import NotFound
from cloud.integration.events import payload_of
from cloud.integration.models import (
    DELIVERY_STATES,
    FAILED,
    PENDING,
    ErpDelivery,
    ErpDeliveryAttempt,
    ErpWebhook,
)
from protocols.clock import now_ms

if TYPE_CHECKING:
    from cloud.integration.delivery import WebhookDelivery


router = APIRouter(prefix="/api/integration", tags=["erp integration"], route_class=BadRequestRoute)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EventName = Literal["operation.completed", "work_order.completed"]


class WebhookIn(BaseModel):
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL the ERP listens on")
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="signs every body: X-Forgeline-Signature: sha256=<hex HMAC-SHA256>",
    )
    events: list[EventName] = Field(
        default=["operation.completed", "work_order.completed"], min_length=1
    )
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.split("/")[0]:
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        return value


class WebhookOut(BaseModel):
    name: str
    url: str
    has_secret: bool = Field(description="bodies are signed (the secret is never shown)")
    events: list[str]
    enabled: bool
    created_ms: int
    updated_ms: int


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="the same on every retry: the ERP drops duplicates by it")
    event: str
    endpoint: str
    work_order: str
    operation_sequence: int | None
    state: str = Field(description="pending, sending, delivered or failed")
    attempts: int
    next_attempt_ms: int = Field(description="pending: when it is tried next")
    last_status: int | None = Field(description="HTTP status of the last attempt")
    last_error: str | None = Field(description="why the last attempt failed")
    created_ms: int
    updated_ms: int
    delivered_ms: int | None


class AttemptOut(BaseModel):
    attempt: int
    ms: int
    http_status: int | None
    error: str | None
    duration_ms: int


class DeliveryDetailOut(DeliveryOut):
    payload: dict[str, Any]
    attempts_log: list[AttemptOut]


def _webhook_out(endpoint: ErpWebhook) -> WebhookOut:
    return WebhookOut(
        name=endpoint.name, url=endpoint.url, has_secret=bool(endpoint.secret),
        events=list(endpoint.event_list), enabled=endpoint.enabled,
        created_ms=endpoint.created_ms, updated_ms=endpoint.updated_ms,
    )  # fmt: skip


def _endpoint(session: SessionDep, name: str) -> ErpWebhook:
    endpoint = session.scalar(select(ErpWebhook).where(ErpWebhook.name == name))
    if endpoint is None:
        raise NotFound(f"no ERP webhook named {name!r}")
    return endpoint


def _delivery(session: SessionDep, delivery_id: int) -> ErpDelivery:
    delivery = session.get(ErpDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no ERP webhook delivery {delivery_id}")
    return delivery


def _detail(session: SessionDep, delivery: ErpDelivery) -> DeliveryDetailOut:
    attempts = session.scalars(
        select(ErpDeliveryAttempt)
        .where(ErpDeliveryAttempt.delivery_id == delivery.id)
        .order_by(ErpDeliveryAttempt.attempt)
    )
    return DeliveryDetailOut(
        **DeliveryOut.model_validate(delivery, from_attributes=True).model_dump(),
        payload=payload_of(delivery),
        attempts_log=[AttemptOut.model_validate(row, from_attributes=True) for row in attempts],
    )


def _wake(request: Request) -> None:
    delivery: WebhookDelivery | None = getattr(request.app.state, "erp_webhooks", None)
    if delivery is not None:
        delivery.wake()


NamePath = Path(pattern=NAME_PATTERN, description="the endpoint's name")


@router.put("/webhooks/{name}", response_model=WebhookOut)
def put_webhook(body: WebhookIn, session: WriteSessionDep, name: str = NamePath) -> WebhookOut:
    """Create or replace the endpoint ``name`` (a repeat changes nothing but ``updated_ms``)."""
    now = now_ms()
    endpoint = session.scalar(select(ErpWebhook).where(ErpWebhook.name == name))
    if endpoint is None:
        endpoint = ErpWebhook(name=name, created_ms=now)
        session.add(endpoint)
    endpoint.url = body.url
    endpoint.secret = body.secret
    endpoint.events = ",".join(sorted(set(body.events)))
    endpoint.enabled = body.enabled
    endpoint.updated_ms = now
    session.commit()
    return _webhook_out(endpoint)


@router.get("/webhooks", response_model=list[WebhookOut])
def get_webhooks(session: SessionDep) -> list[WebhookOut]:
    """Every endpoint, by name."""
    return [
        _webhook_out(endpoint)
        for endpoint in session.scalars(select(ErpWebhook).order_by(ErpWebhook.name))
    ]


@router.get("/webhooks/{name}", response_model=WebhookOut)
def get_webhook(session: SessionDep, name: str = NamePath) -> WebhookOut:
    return _webhook_out(_endpoint(session, name))


@router.delete("/webhooks/{name}", status_code=204)
def delete_webhook(session: WriteSessionDep, name: str = NamePath) -> Response:
    """Delete the endpoint; its pending deliveries are failed (kept in the log)."""
    endpoint = _endpoint(session, name)
    now = now_ms()
    table = table_of(ErpDelivery)
    session.execute(
        update(table)
        .where(table.c.endpoint == name, table.c.state == PENDING)
        .values(
            state=FAILED,
            last_error=f"not sent: the webhook endpoint {name!r} was deleted",
            updated_ms=now,
        )
    )
    session.delete(endpoint)
    session.commit()
    return Response(status_code=204)


@router.get("/deliveries", response_model=list[DeliveryOut])
def get_deliveries(
    session: SessionDep,
    state: Literal[DELIVERY_STATES] | None = Query(None),  # type: ignore[valid-type]
    endpoint: str | None = Query(None, description="an endpoint's name"),
    before_id: int | None = Query(None, description="page back: only ids below this"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[DeliveryOut]:
    """Deliveries, newest first; ``state=failed`` lists what the ERP did not get, with why."""
    query = select(ErpDelivery)
    if state is not None:
        query = query.where(ErpDelivery.state == state)
    if endpoint is not None:
        query = query.where(ErpDelivery.endpoint == endpoint)
    if before_id is not None:
        query = query.where(ErpDelivery.id < before_id)
    rows = session.scalars(query.order_by(ErpDelivery.id.desc()).limit(limit))
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetailOut)
def get_delivery(delivery_id: int, session: SessionDep) -> DeliveryDetailOut:
    """One delivery with its payload and every attempt (when, HTTP status or error, duration)."""
    return _detail(session, _delivery(session, delivery_id))


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryDetailOut)
def retry_delivery(
    delivery_id: int, request: Request, session: WriteSessionDep
) -> DeliveryDetailOut:
    """Send a failed (or waiting) delivery again now, with a fresh set of attempts."""
    delivery = _delivery(session, delivery_id)
    if delivery.state not in (FAILED, PENDING):
        raise HTTPException(
            409,
            f"delivery {delivery_id} is {delivery.state}; only a failed or pending one is retried",
        )
    now = now_ms()
    table = table_of(ErpDelivery)
    retried = session.connection().execute(
        update(table)
        .where(table.c.id == delivery_id, table.c.state.in_((FAILED, PENDING)))
        .values(state=PENDING, next_attempt_ms=now, round_start=table.c.attempts, updated_ms=now)
    )
    if retried.rowcount != 1:  # claimed by a delivery thread meanwhile
        session.rollback()
        raise HTTPException(409, f"delivery {delivery_id} is being sent right now; look again")
    session.commit()
    session.refresh(delivery)
    _wake(request)
    return _detail(session, delivery)
