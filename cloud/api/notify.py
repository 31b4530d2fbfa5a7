"""Routes for notifications: deliveries, channels, a test send, and the alarm WebSocket stream."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud.api.deps import SessionDep
from cloud.errors import NotFound
from cloud.notify.message import Notification, Priority
from cloud.notify.models import NotificationDelivery
from protocols.clock import now_ms

if TYPE_CHECKING:
    from cloud.notify.dispatcher import Dispatcher
    from cloud.notify.stream import StreamClient

router = APIRouter(prefix="/api", tags=["notifications"])

TEST_TIMEOUT_S = 60.0  # the longest a test send may take (channel timeouts are at most 600 s)


def get_notifier(request: Request) -> Dispatcher | None:
    notifier: Dispatcher | None = getattr(request.app.state, "notifier", None)
    return notifier


NotifierDep = Annotated["Dispatcher | None", Depends(get_notifier)]


def _running(notifier: Dispatcher | None) -> Dispatcher:
    if notifier is None:
        raise HTTPException(503, "this cloud process runs no notification dispatcher")
    return notifier


class DeliveryOut(BaseModel):
    id: int
    delivery_key: str
    alarm_id: int = Field(description="0 for test notifications")
    channel: str
    channel_type: str
    event: str
    priority: str
    escalation_level: int
    message: str
    status: str = Field(description="pending, sent or failed")
    attempts: int
    last_error: str | None = Field(description="why the last attempt failed")
    notification_ms: int
    created_ms: int
    updated_ms: int
    sent_ms: int | None


class ChannelOut(BaseModel):
    name: str
    type: str
    settings: dict[str, Any] = Field(description="as configured, secrets masked")
    counters: dict[str, Any]


class ChannelsOut(BaseModel):
    running: bool
    counters: dict[str, Any]
    channels: list[ChannelOut]


class TestIn(BaseModel):
    channel: str = Field(description="a configured channel name")
    priority: Priority = "low"
    message: str = "Test notification from forgeline: if you read this, the channel works"
    site: str = "test"
    line: str | None = None
    machine: str = "Test machine"


class TestOut(BaseModel):
    delivery_key: str
    channel: str
    status: str
    attempts: int
    error: str | None


@router.get("/notifications/deliveries", response_model=list[DeliveryOut])
def deliveries(
    session: SessionDep,
    status: Literal["pending", "sent", "failed"] | None = Query(None),
    channel: str | None = Query(None, description="a configured channel name"),
    alarm_id: int | None = Query(None),
    before_id: int | None = Query(None, description="page back: only ids below this"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[DeliveryOut]:
    """Deliveries, newest first; ``status=failed`` lists what did not arrive, with the error."""
    query = select(NotificationDelivery)
    if status is not None:
        query = query.where(NotificationDelivery.status == status)
    if channel is not None:
        query = query.where(NotificationDelivery.channel == channel)
    if alarm_id is not None:
        query = query.where(NotificationDelivery.alarm_id == alarm_id)
    if before_id is not None:
        query = query.where(NotificationDelivery.id < before_id)
    rows = session.scalars(query.order_by(NotificationDelivery.id.desc()).limit(limit))
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/notifications/channels", response_model=ChannelsOut)
def channels(notifier: NotifierDep) -> ChannelsOut:
    """The configured channels with their counters (secrets masked), and the dispatcher's."""
    running = _running(notifier)
    snapshot = running.snapshot()
    snapshot.pop("channels")
    return ChannelsOut(
        running=bool(snapshot.pop("running")),
        counters=snapshot,
        channels=[ChannelOut(**view) for view in running.channel_views()],
    )


@router.post("/notifications/test", response_model=TestOut)
def send_test(body: TestIn, notifier: NotifierDep) -> TestOut:
    """Send one test notification through one channel and wait for the outcome: 200 when the
    far side accepted it, 502 with the error when not (recorded like any delivery, alarm 0)."""
    running = _running(notifier)
    if body.channel not in running.channels:
        raise NotFound(
            f"no channel named {body.channel!r}; configured: {', '.join(sorted(running.channels))}"
        )
    now = now_ms()
    notification = Notification(
        alarm_id=0, event="raised", priority=body.priority, rule="notification_test",
        kind="test", message=body.message, site=body.site, area=None, line=body.line,
        machine_id=0, machine=body.machine, metric=None, value=None, limit=None, unit=None,
        ts_ms=now, raised_ms=now, action="Nothing to do: this is a test.",
    )  # fmt: skip
    record = running.send_test(body.channel, notification, TEST_TIMEOUT_S)
    if record is None:
        raise HTTPException(
            504, f"channel {body.channel!r} did not finish within {TEST_TIMEOUT_S} s"
        )
    out = TestOut(
        delivery_key=record.delivery_key, channel=record.channel, status=record.status,
        attempts=record.attempts, error=record.last_error,
    )  # fmt: skip
    if record.status != "sent":
        raise HTTPException(502, out.model_dump())
    return out


async def _pump(websocket: WebSocket, client: StreamClient, send_timeout_s: float) -> str:
    """Send the client's messages until it is dropped; return why it was dropped."""
    while True:
        text = await client.next()
        if text is None:
            return client.dropped_reason or "dropped"
        try:
            with anyio.fail_after(send_timeout_s):
                await websocket.send_text(text)
        except TimeoutError:
            client.drop(f"one message took longer than {send_timeout_s} s to send")
            return client.dropped_reason or "dropped"


async def _listen(websocket: WebSocket) -> None:
    """Return when the client disconnects (whatever it sends is ignored)."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


@router.websocket("/alarms/stream")
async def alarm_stream(websocket: WebSocket) -> None:
    """Every alarm notification routed to a ``websocket`` channel, as JSON text messages (the
    body of docs/notifications.md). A client that falls behind is closed with code 1013."""
    notifier: Dispatcher | None = getattr(websocket.app.state, "notifier", None)
    if notifier is None:
        await websocket.accept()
        await websocket.close(
            code=1011, reason="this cloud process runs no notification dispatcher"
        )
        return
    broadcaster = notifier.broadcaster
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    client = broadcaster.subscribe(asyncio.get_running_loop(), peer)
    dropped: list[str] = []

    async def pump(scope: anyio.CancelScope) -> None:
        dropped.append(await _pump(websocket, client, broadcaster.send_timeout_s))
        scope.cancel()

    async def listen(scope: anyio.CancelScope) -> None:
        await _listen(websocket)
        scope.cancel()

    try:
        await websocket.accept()  # subscribed first: nothing published after the accept is missed
        async with anyio.create_task_group() as group:
            group.start_soon(pump, group.cancel_scope)
            group.start_soon(listen, group.cancel_scope)
        if dropped:
            broadcaster.note_dropped(client)
            with anyio.move_on_after(broadcaster.send_timeout_s), contextlib.suppress(Exception):
                await websocket.close(code=1013, reason=f"too slow: {dropped[0]}"[:120])
    finally:
        broadcaster.unsubscribe(client)
