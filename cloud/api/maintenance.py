"""Routes for condition monitoring: vibration classes, machine condition, suggested maintenance
work orders, and raw vibration windows forwarded by the edge on demand.

A body or query that does not validate answers 400 naming the field; an unknown machine or
suggestion 404; a status change the suggestion's lifecycle refuses 409. Asking for waveforms
answers 503 when this cloud process has no MQTT connection for commands.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from cloud.api.commands import CommandOut, CommandsDep, send_command
from cloud.api.deps import BadRequestRoute, SessionDep, WriteSessionDep
from cloud.api.timeparse import parse_time_ms
from cloud.assets.models import Machine
from cloud.assets.service import get_machine
from cloud.errors import InvalidRequest, NotFound
from cloud.ingest.models import DeviceEvent
from cloud.maintenance.condition_config import ConditionSettings
from cloud.maintenance.models import (
    SUGGESTION_STATES,
    ConditionAssessment,
    MachineVibrationClass,
    MaintenanceSuggestion,
)
from cloud.maintenance.readings import feature_metrics, machine_series, overall_rms_metrics
from cloud.maintenance.service import set_vibration_class
from cloud.maintenance.suggestions import IllegalSuggestionMove, move_suggestion
from cloud.maintenance.zones import VibrationClass, load_vibration_classes
from cloud.timeseries.models import TsLatest, TsSeries
from protocols.clock import now_ms
from protocols.wire.messages import Value

router = APIRouter(prefix="/api/maintenance", tags=["maintenance"], route_class=BadRequestRoute)

WAVEFORM = "waveform"
SuggestionStatus = Literal["open", "accepted", "dismissed", "done"]


class VibrationClassOut(BaseModel):
    id: str
    title: str
    standard: str
    a_b: float = Field(description="zone A/B boundary, mm/s RMS")
    b_c: float
    c_d: float
    unit: str


class VibrationClassIn(BaseModel):
    class_id: str = Field(min_length=1, max_length=64)
    set_by: str = Field(min_length=1, max_length=128, description="who chose it")


class MachineClassOut(BaseModel):
    machine_id: int
    class_id: str
    set_by: str | None
    set_ms: int


class AssessmentOut(BaseModel):
    id: int
    machine_id: int
    metric: str
    signal: str = Field(description="vibration (zone, health, RUL) or temperature (trend)")
    assessed_ms: int
    data_to_ms: int | None
    class_id: str | None
    zone: str | None
    rms: float | None
    health: float | None = Field(description="100 healthy ... 0 failed")
    rul_h: float | None
    rul_low_h: float | None
    rul_high_h: float | None
    model: str | None
    points_used: int
    temperature_metric: str | None
    temperature_slope_c_per_h: float | None
    detail: dict[str, Any]


class MachineConditionOut(AssessmentOut):
    machine_name: str


class LatestValueOut(BaseModel):
    ts_ms: int
    value: float | None
    quality: int
    unit: str | None
    role: str


class MachineConditionHistoryOut(BaseModel):
    machine_id: int
    machine_name: str
    class_id: str | None = Field(description="the class set through the API (None: from config)")
    overall_metrics: list[str]
    features: dict[str, dict[str, str]] = Field(description="overall metric -> feature -> metric")
    latest: dict[str, LatestValueOut] = Field(description="newest value of every condition metric")
    assessments: list[AssessmentOut]


class SuggestionOut(BaseModel):
    id: int
    machine_id: int
    kind: str
    reason: str
    evidence: dict[str, Any]
    due_by_ms: int | None
    status: str
    created_ms: int
    updated_ms: int
    updated_by: str | None
    comment: str | None


class SuggestionPatch(BaseModel):
    status: SuggestionStatus
    by: str = Field(min_length=1, max_length=128, description="who changes it")
    comment: str | None = Field(default=None, max_length=4000)


class WaveformRequest(BaseModel):
    metric: str = Field(min_length=1, max_length=64, description="the waveform tag's name")
    windows: int = Field(default=1, ge=1, le=60, description="how many next windows")


class WaveformOut(BaseModel):
    id: int
    ts_ms: int
    metric: str | None
    sample_rate_hz: float | None
    unit: str | None
    samples: list[float]
    problem: str | None = Field(description="why the window could not be decoded, if it could not")


def _settings(request: Request) -> ConditionSettings:
    settings = getattr(request.app.state, "condition_settings", None)
    return settings if isinstance(settings, ConditionSettings) else ConditionSettings()


def _classes(request: Request) -> dict[str, VibrationClass]:
    return load_vibration_classes(_settings(request).vibration_classes_file)


def _class_out(cls: VibrationClass) -> VibrationClassOut:
    return VibrationClassOut(id=cls.id, title=cls.title, standard=cls.standard, a_b=cls.a_b,
                             b_c=cls.b_c, c_d=cls.c_d, unit=cls.unit)  # fmt: skip


def _assessment_out(row: ConditionAssessment) -> AssessmentOut:
    return AssessmentOut.model_validate(row, from_attributes=True)


def _suggestion_out(row: MaintenanceSuggestion) -> SuggestionOut:
    return SuggestionOut.model_validate(row, from_attributes=True)


def _suggestion(session: Session, suggestion_id: int) -> MaintenanceSuggestion:
    row = session.get(MaintenanceSuggestion, suggestion_id)
    if row is None:
        raise NotFound(
            f"maintenance suggestion {suggestion_id} does not exist "
            "(GET /api/maintenance/suggestions lists them)"
        )
    return row


@router.get("/vibration-classes", response_model=list[VibrationClassOut])
def vibration_classes(request: Request) -> list[VibrationClassOut]:
    """The vibration classes a machine can be given, with their zone boundaries (mm/s RMS)."""
    return [_class_out(cls) for _id, cls in sorted(_classes(request).items())]


@router.put("/machines/{machine_id}/vibration-class", response_model=MachineClassOut)
def put_vibration_class(
    machine_id: int, body: VibrationClassIn, request: Request, session: WriteSessionDep
) -> MachineClassOut:
    """Choose the machine's vibration class; it wins over the condition file's defaults."""
    set_vibration_class(
        session.connection(), machine_id, body.class_id, set_by=body.set_by, now_ms=now_ms(),
        classes=_classes(request),
    )  # fmt: skip
    session.commit()
    row = session.get(MachineVibrationClass, machine_id)
    assert row is not None
    session.refresh(row)
    return MachineClassOut.model_validate(row, from_attributes=True)


@router.get("/condition", response_model=list[MachineConditionOut])
def condition(session: SessionDep) -> list[MachineConditionOut]:
    """Every machine's latest assessment of each condition metric."""
    newest = (
        select(func.max(ConditionAssessment.id).label("id"))
        .group_by(ConditionAssessment.machine_id, ConditionAssessment.metric)
        .subquery()
    )
    rows = session.execute(
        select(ConditionAssessment, Machine.name)
        .join(newest, newest.c.id == ConditionAssessment.id)
        .join(Machine, Machine.id == ConditionAssessment.machine_id)
        .order_by(ConditionAssessment.machine_id, ConditionAssessment.metric)
    ).all()
    return [
        MachineConditionOut(**_assessment_out(row).model_dump(), machine_name=name)
        for row, name in rows
    ]


@router.get("/machines/{machine_id}/condition", response_model=MachineConditionHistoryOut)
def machine_condition(
    machine_id: int,
    session: SessionDep,
    start: str | None = Query(None, alias="from", description="ISO 8601 or epoch ms"),
    end: str | None = Query(None, alias="to", description="ISO 8601 or epoch ms"),
    limit: int = Query(1000, ge=1, le=100_000),
) -> MachineConditionHistoryOut:
    """The machine's assessment history (oldest first) and the newest value of every
    vibration, feature and temperature metric."""
    machine = get_machine(session, machine_id)
    query = select(ConditionAssessment).where(ConditionAssessment.machine_id == machine_id)
    if start:
        query = query.where(ConditionAssessment.assessed_ms >= parse_time_ms(start, "from"))
    if end:
        query = query.where(ConditionAssessment.assessed_ms < parse_time_ms(end, "to"))
    history = session.scalars(
        query.order_by(ConditionAssessment.assessed_ms.desc(), ConditionAssessment.id.desc()).limit(
            limit
        )
    ).all()
    series = machine_series(session.connection(), machine)
    overall = overall_rms_metrics(series)
    latest_rows = session.execute(
        select(TsSeries.metric, TsSeries.unit, TsSeries.role, TsLatest)
        .join(TsLatest, TsLatest.series_id == TsSeries.id)
        .where(
            and_(TsSeries.edge == machine.edge, TsSeries.device == machine.device,
                 TsSeries.role.in_(("vibration", "temperature")))
        )
    ).all()  # fmt: skip
    chosen = session.get(MachineVibrationClass, machine_id)
    return MachineConditionHistoryOut(
        machine_id=machine.id, machine_name=machine.name,
        class_id=None if chosen is None else chosen.class_id,
        overall_metrics=overall,
        features={metric: feature_metrics(metric, series) for metric in overall},
        latest={
            metric: LatestValueOut(ts_ms=latest.ts, value=latest.value, quality=latest.quality,
                                   unit=unit, role=role)
            for metric, unit, role, latest in latest_rows
        },
        assessments=[_assessment_out(row) for row in reversed(history)],
    )  # fmt: skip


@router.get("/suggestions", response_model=list[SuggestionOut])
def suggestions(
    session: SessionDep,
    status: str | None = Query(None, description="open | accepted | dismissed | done"),
    machine_id: int | None = Query(None),
    limit: int = Query(500, ge=1, le=10_000),
) -> list[SuggestionOut]:
    """Suggested maintenance work orders, newest first."""
    query = select(MaintenanceSuggestion)
    if status is not None:
        if status not in SUGGESTION_STATES:
            raise InvalidRequest(f"status={status!r}: one of {', '.join(SUGGESTION_STATES)}")
        query = query.where(MaintenanceSuggestion.status == status)
    if machine_id is not None:
        query = query.where(MaintenanceSuggestion.machine_id == machine_id)
    rows = session.scalars(
        query.order_by(
            MaintenanceSuggestion.created_ms.desc(), MaintenanceSuggestion.id.desc()
        ).limit(limit)
    ).all()
    return [_suggestion_out(row) for row in rows]


@router.get("/suggestions/{suggestion_id}", response_model=SuggestionOut)
def suggestion(suggestion_id: int, session: SessionDep) -> SuggestionOut:
    """One suggested maintenance work order with its evidence."""
    return _suggestion_out(_suggestion(session, suggestion_id))


@router.patch("/suggestions/{suggestion_id}", response_model=SuggestionOut)
def patch_suggestion(
    suggestion_id: int, body: SuggestionPatch, session: WriteSessionDep
) -> SuggestionOut:
    """Accept, dismiss or close a suggestion (open → accepted | dismissed | done;
    accepted → done | dismissed)."""
    try:
        move_suggestion(session.connection(), suggestion_id, body.status, by=body.by,
                        comment=body.comment, now_ms=now_ms())  # fmt: skip
    except IllegalSuggestionMove as error:
        raise HTTPException(409, str(error)) from None
    session.commit()
    row = _suggestion(session, suggestion_id)
    session.refresh(row)
    return _suggestion_out(row)


@router.post("/machines/{machine_id}/waveforms", response_model=CommandOut, status_code=202)
def request_waveforms(
    machine_id: int, body: WaveformRequest, session: SessionDep, commands: CommandsDep
) -> CommandOut:
    """Ask the machine's edge to forward the next raw windows of a waveform tag; they arrive
    as ``waveform`` events (GET the same path to read them)."""
    machine = get_machine(session, machine_id)
    series = machine_series(session.connection(), machine)
    if body.metric not in series and f"{body.metric}_rms" not in series:
        raise InvalidRequest(
            f"metric: machine {machine_id} has no waveform tag {body.metric!r} (no series "
            f"{body.metric}_rms); its vibration metrics: "
            f"{', '.join(overall_rms_metrics(series)) or '(none)'}"
        )
    args: dict[str, Value] = {"device": machine.device, "metric": body.metric,
                              "windows": body.windows}  # fmt: skip
    return send_command(commands, machine, "forward_waveform", args)


@router.get("/machines/{machine_id}/waveforms", response_model=list[WaveformOut])
def waveforms(
    machine_id: int,
    session: SessionDep,
    metric: str | None = Query(None, description="the waveform tag"),
    start: str | None = Query(None, alias="from", description="ISO 8601 or epoch ms"),
    end: str | None = Query(None, alias="to", description="ISO 8601 or epoch ms"),
    limit: int = Query(60, ge=1, le=1000),
) -> list[WaveformOut]:
    """Raw windows the edge forwarded (newest first), decoded: sample rate, unit, samples."""
    machine = get_machine(session, machine_id)
    query = select(DeviceEvent).where(
        DeviceEvent.edge == machine.edge, DeviceEvent.device == machine.device,
        DeviceEvent.kind == WAVEFORM,
    )  # fmt: skip
    if metric:
        query = query.where(DeviceEvent.metric == metric)
    if start:
        query = query.where(DeviceEvent.ts_ms >= parse_time_ms(start, "from"))
    if end:
        query = query.where(DeviceEvent.ts_ms < parse_time_ms(end, "to"))
    rows = session.scalars(
        query.order_by(DeviceEvent.ts_ms.desc(), DeviceEvent.id.desc()).limit(limit)
    ).all()
    return [_waveform_out(row) for row in rows]


def _waveform_out(event: DeviceEvent) -> WaveformOut:
    try:
        detail = json.loads(event.detail or "")
        if not isinstance(detail, dict):
            raise ValueError("detail is not a JSON object")
        rate = detail["sample_rate_hz"]
        unit = detail.get("unit")
        samples = [float(x) for x in detail["samples"]]
        return WaveformOut(id=event.id, ts_ms=event.ts_ms, metric=event.metric,
                           sample_rate_hz=float(rate), unit=unit, samples=samples,
                           problem=None)  # fmt: skip
    except (ValueError, KeyError, TypeError) as error:
        return WaveformOut(id=event.id, ts_ms=event.ts_ms, metric=event.metric,
                           sample_rate_hz=None, unit=None, samples=[],
                           problem=f"{error.__class__.__name__}: {error}")  # fmt: skip
