"""Routes that act on machines through their edge: southbound writes, and the device events
(state changes, faults, write results) that tell what happened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud.api.deps import SessionDep
from cloud.api.timeparse import parse_time_ms
from cloud.assets.models import Machine
from cloud.assets.service import get_machine
from cloud.ingest.models import DeviceEvent
from protocols.wire.messages import Value

if TYPE_CHECKING:
    from cloud.commands import CommandPublisher

router = APIRouter(prefix="/api/machines", tags=["commands"])


class WriteIn(BaseModel):
    metric: str = Field(description="a tag the device profile marks writable")
    value: float | int | bool | str
    user: str = Field(min_length=1, description="who asks: recorded in the edge's audit")


class CommandOut(BaseModel):
    command_id: str
    topic_edge: str
    status: str = Field(description="sent: the result arrives as a write_result event")


class EventOut(BaseModel):
    ts_ms: int
    kind: str
    metric: str | None
    previous: object | None
    current: object | None
    detail: str | None
    historical: bool


def get_commands(request: Request) -> CommandPublisher | None:
    publisher: CommandPublisher | None = getattr(request.app.state, "commands", None)
    return publisher


CommandsDep = Annotated["CommandPublisher | None", Depends(get_commands)]


@router.post("/{machine_id}/write", response_model=CommandOut, status_code=202)
def write(machine_id: int, body: WriteIn, session: SessionDep, commands: CommandsDep) -> CommandOut:
    """Ask the machine's edge to write one tag. The edge checks that the tag is writable and
    the value within its limits, audits the request, and reports a ``write_result`` event."""
    machine = get_machine(session, machine_id)
    args: dict[str, Value] = {
        "device": machine.device, "metric": body.metric, "value": body.value, "user": body.user,
    }  # fmt: skip
    return send_command(commands, machine, "write", args)


def send_command(
    commands: CommandPublisher | None, machine: Machine, command: str, args: dict[str, Value]
) -> CommandOut:
    """Publish ``command`` to the machine's edge; 503 when this process cannot publish."""
    from cloud.commands import CommandUnavailable

    if commands is None:
        raise HTTPException(503, "this cloud process has no MQTT connection for commands")
    try:
        sent = commands.send(machine.site_id, machine.edge, command, args)
    except CommandUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    return CommandOut(command_id=sent.command_id, topic_edge=machine.edge, status="sent")


@router.get("/{machine_id}/events", response_model=list[EventOut])
def events(
    machine_id: int,
    session: SessionDep,
    kind: str | None = Query(None, description="e.g. state_change, fault, write_result"),
    start: str | None = Query(None, description="ISO 8601 or epoch ms"),
    limit: int = Query(100, ge=1, le=10_000),
) -> list[EventOut]:
    """The machine's device events, newest first."""
    machine = get_machine(session, machine_id)
    query = select(DeviceEvent).where(
        DeviceEvent.edge == machine.edge, DeviceEvent.device == machine.device
    )
    if kind:
        query = query.where(DeviceEvent.kind == kind)
    if start:
        query = query.where(DeviceEvent.ts_ms >= parse_time_ms(start, "start"))
    rows = session.scalars(query.order_by(DeviceEvent.ts_ms.desc()).limit(limit)).all()
    return [
        EventOut(ts_ms=e.ts_ms, kind=e.kind, metric=e.metric, previous=e.previous,
                 current=e.current, detail=e.detail, historical=e.historical)
        for e in rows
    ]  # fmt: skip
