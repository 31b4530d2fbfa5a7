"""A pump with a seeded wearing bearing (and a few other machines) written through the real
ingest writer, for the condition-monitoring tests.

pump1 carries a ``simulators.bearing.BearingModel`` (life 1000 h) whose waveform windows are turned
into features exactly as the edge does (``edge.features.window_features``), one window per
running hour, one running hour per wall-clock hour, with the bearing housing temperature at a
constant 80 % load.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from cloud.alarms.models import Alarm
from cloud.db import writer_engine
from cloud.ingest.writer import IngestWriter, ReceivedMessage
from cloud.maintenance.condition_config import (
    ConditionSettings,
    MachineCondition,
    TemperatureWatch,
)
from cloud.maintenance.models import MaintenanceSuggestion
from cloud.maintenance.service import Assessment, assess_machine
from edge.features import WindowFeatures, window_features
from protocols.wire import BirthMessage, MetricDefinition, TopicKind
from simulators.bearing import BearingModel
from tests.cloud.conftest import CODEC, Wire

HOUR = 3_600_000
T0 = int(datetime(2026, 5, 4, tzinfo=UTC).timestamp() * 1000)
MODEL = BearingModel(seed=11, life_h=1000.0)
TAG = "motor_de"
RMS = f"{TAG}_rms"
HOURS = 1000  # windows at running hours 0 .. 999
CLASS = "iso20816_3_group2_rigid"  # A/B 1.4, B/C 2.8, C/D 4.5 mm/s
LOAD_PCT = 80.0

SETTINGS = ConditionSettings(
    lookback_h=2000,
    trend_bucket_s=0,
    zone_windows=3,
    baseline_windows=50,
    rul_horizon_h=168,
    machines={
        "pump1": MachineCondition(
            vibration_class=CLASS,
            temperature=TemperatureWatch(load_metric="motor_load", limit_c=90.0),
        )
    },
)


@functools.cache
def bearing_windows() -> tuple[WindowFeatures, ...]:
    """The features of the bearing's window at each running hour (computed as the edge does)."""
    return tuple(window_features(MODEL.window(float(h), h)) for h in range(HOURS))


def ts_of(hour: int) -> int:
    return T0 + hour * HOUR


def birth(wire: Wire, device: str, metrics: tuple[MetricDefinition, ...]) -> ReceivedMessage:
    message = BirthMessage(
        session=wire.session, created_ms=1_000, profile="acme-pump", protocol="opcua",
        metrics=metrics, area="Pump house", line="Cooling water",
    )  # fmt: skip
    return ReceivedMessage(wire.topic(TopicKind.BIRTH, device), CODEC.encode(message), 0)


PUMP_METRICS = (
    MetricDefinition(RMS, "float64", "vibration", unit="mm/s"),
    MetricDefinition(f"{TAG}_peak", "float64", "vibration", unit="mm/s"),
    MetricDefinition(f"{TAG}_crest_factor", "float64", "vibration"),
    MetricDefinition(f"{TAG}_kurtosis", "float64", "vibration"),
    MetricDefinition("bearing_temp", "float64", "temperature", unit="degC"),
    MetricDefinition("motor_load", "float64", "process_param", unit="%"),
)


def machine_id(engine: Engine, device: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT id FROM machine WHERE device = :d"), {"d": device})
                   .scalar_one())  # fmt: skip


def write_pump(engine: Engine, wire: Wire, device: str = "pump1") -> int:
    """pump1's birth and its 1000 hourly windows (features, housing temperature, load)."""
    writer = IngestWriter(engine)
    writer.write([birth(wire, device, PUMP_METRICS)])
    messages = []
    for first in range(0, HOURS, 250):
        samples: list[tuple[str, int, Any]] = []
        for hour in range(first, min(first + 250, HOURS)):
            features, ts = bearing_windows()[hour], ts_of(hour)
            samples += [
                (RMS, ts, features.rms), (f"{TAG}_peak", ts, features.peak),
                (f"{TAG}_crest_factor", ts, features.crest_factor),
                (f"{TAG}_kurtosis", ts, features.kurtosis),
                ("bearing_temp", ts, MODEL.temperature(hour, LOAD_PCT)),
                ("motor_load", ts, LOAD_PCT),
            ]  # fmt: skip
        messages.append(wire.data(device, samples))
    writer.write(messages)
    return machine_id(engine, device)


def assess(engine: Engine, machine: int, now_ms: int, settings: ConditionSettings = SETTINGS
           ) -> dict[str, Assessment]:  # fmt: skip
    with writer_engine(engine).begin() as conn:
        return {a.metric: a for a in assess_machine(conn, machine, now_ms, settings)}


def alarm(engine: Engine, key: str) -> Alarm | None:
    with Session(engine) as session:
        return session.scalars(
            select(Alarm).where(Alarm.point_key == key).order_by(Alarm.id.desc())
        ).first()


def suggestions(engine: Engine, machine: int) -> list[MaintenanceSuggestion]:
    with Session(engine) as session:
        query = select(MaintenanceSuggestion).where(MaintenanceSuggestion.machine_id == machine)
        return list(session.scalars(query.order_by(MaintenanceSuggestion.id)))


def plain_vibration_machine(engine: Engine, wire: Wire, values: list[float]) -> int:
    """cnc1: one plain overall-RMS tag (no features), one sample a minute."""
    writer = IngestWriter(engine)
    metrics = (MetricDefinition("spindle_vibration", "float32", "vibration", unit="mm/s"),)
    writer.write([birth(wire, "cnc1", metrics)])
    writer.write([wire.data("cnc1", [("spindle_vibration", T0 + i * 60_000, v)
                                     for i, v in enumerate(values)])])  # fmt: skip
    return machine_id(engine, "cnc1")
