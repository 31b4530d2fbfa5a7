"""Realistic encoded data messages for the ingest benchmark: a small plant of edges and devices.

Every device publishes one data message per poll with one sample per metric: process floats
(noisy around a set point), three counters, two flags. About 4 % of samples are bad (value
``None`` with a reason such as ``comm:timeout``) and 2 % uncertain. Modbus devices stamp every
sample with the edge's clock at the read; OPC UA devices carry each node's own source timestamp.
Each edge has one session (a UUID) and one sequence space over all its devices, as the wire
contract says. Alongside each encoded message the stream keeps the ``ts_sample`` rows it must
become, so that raw baselines can write the same rows without decoding anything.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from cloud.ingest.writer import ReceivedMessage
from cloud.timeseries.store import QUALITY_CODE
from protocols.quality import (
    REASON_TIMEOUT,
    Quality,
    modbus_exception_reason,
    opcua_status_reason,
)
from protocols.wire import (
    BirthMessage,
    DataMessage,
    JsonCodec,
    MetricDefinition,
    Sample,
    Topic,
    TopicKind,
    Value,
)
from protocols.wire.messages import DataType

RawRow = tuple[int, int, float | None, str | None, int, str | None]
"""A ``ts_sample`` row: series_id, ts, value, text_value, quality, reason."""

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so that runs write the same data
POLL_MS = 1_000
BAD_SHARE = 0.04
UNCERTAIN_SHARE = 0.02

# (name, unit, set point, noise): the process values of a press, a moulding machine, a spindle.
_PROCESS = (
    ("melt_temp_zone1", "degC", 215.0, 1.5),
    ("melt_temp_zone2", "degC", 225.0, 1.5),
    ("melt_temp_zone3", "degC", 232.0, 1.5),
    ("mold_temp", "degC", 45.0, 0.8),
    ("hydraulic_pressure", "bar", 138.0, 2.5),
    ("injection_pressure", "bar", 1_120.0, 15.0),
    ("clamp_force", "kN", 1_800.0, 12.0),
    ("screw_speed", "rpm", 95.0, 1.2),
    ("spindle_speed", "rpm", 3_000.0, 8.0),
    ("motor_current", "A", 42.0, 0.9),
    ("vibration_rms", "mm/s", 2.1, 0.2),
    ("coolant_flow", "l/min", 18.0, 0.4),
    ("oil_temp", "degC", 48.0, 0.5),
    ("cycle_time", "s", 32.5, 0.6),
    ("power", "kW", 27.0, 1.1),
)
_COUNTERS = (
    ("cycle_count", "cycle_count"),
    ("good_count", "good_count"),
    ("scrap_count", "scrap_count"),
)
_FLAGS = ("running", "door_open")


@dataclass(frozen=True, slots=True)
class MetricPlan:
    """One metric every device publishes, and how its values behave."""

    name: str
    data_type: DataType
    role: str
    unit: str | None = None
    set_point: float = 0.0
    noise: float = 0.0


def metric_plans(count: int) -> tuple[MetricPlan, ...]:
    """``count`` metrics: three counters, two flags, then process floats (named ``param_N`` past 15)."""
    plans: list[MetricPlan] = [MetricPlan(name, "uint32", role) for name, role in _COUNTERS]
    plans += [MetricPlan(name, "bool", "info") for name in _FLAGS]
    for i in range(max(0, count - len(plans))):
        if i < len(_PROCESS):
            name, unit, set_point, noise = _PROCESS[i]
        else:
            name, unit, set_point, noise = f"param_{i}", None, 100.0, 1.0
        plans.append(MetricPlan(name, "float64", "process_param", unit, set_point, noise))
    return tuple(plans[:count])


@dataclass(frozen=True, slots=True)
class Device:
    """One machine behind one edge. ``opcua`` devices carry per-node source timestamps."""

    site: str
    edge: str
    name: str
    opcua: bool


@dataclass
class Stream:
    """Encoded data messages in delivery order, and the rows each one becomes."""

    messages: list[ReceivedMessage]
    rows: list[list[RawRow]]

    @property
    def samples(self) -> int:
        return sum(len(r) for r in self.rows)


@dataclass
class Plant:
    """Edges, devices and metrics; series ids are fixed in advance for the raw baselines."""

    devices: tuple[Device, ...]
    metrics: tuple[MetricPlan, ...]
    series_ids: dict[tuple[str, str, str], int] = field(default_factory=dict)
    codec: JsonCodec = field(default_factory=JsonCodec)

    def __post_init__(self) -> None:
        for device in self.devices:
            for metric in self.metrics:
                key = (device.edge, device.name, metric.name)
                self.series_ids[key] = len(self.series_ids) + 1

    def births(self, created_ms: int = START_MS) -> list[ReceivedMessage]:
        """One birth per device: the metric definitions (roles, units), as an edge sends them."""
        definitions = tuple(
            MetricDefinition(m.name, m.data_type, m.role, m.unit) for m in self.metrics
        )
        out = []
        for device in self.devices:
            birth = BirthMessage(
                session=str(uuid.uuid5(uuid.NAMESPACE_URL, f"forgeline-bench/{device.edge}")),
                created_ms=created_ms,
                profile="bench-press" if not device.opcua else "bench-moulder",
                protocol="opcua" if device.opcua else "modbus_tcp",
                metrics=definitions,
            )
            topic = Topic.device_topic(TopicKind.BIRTH, device.site, device.edge, device.name)
            out.append(ReceivedMessage(str(topic), self.codec.encode(birth), created_ms))
        return out

    def stream(self, n_messages: int, start_ms: int, seed: int) -> Stream:
        """``n_messages`` data messages, polls round-robin over the devices from ``start_ms``.

        Each edge gets a fresh session (from ``seed``) with sequence numbers from 1.
        """
        rng = random.Random(seed)
        sessions = {
            d.edge: str(uuid.UUID(int=rng.getrandbits(128), version=4)) for d in self.devices
        }
        next_seq = dict.fromkeys(sessions, 1)
        counters = {d.name: [0, 0, 0] for d in self.devices}
        messages: list[ReceivedMessage] = []
        rows: list[list[RawRow]] = []
        for i in range(n_messages):
            device = self.devices[i % len(self.devices)]
            poll_ms = start_ms + (i // len(self.devices)) * POLL_MS + (i % len(self.devices)) * 7
            samples = tuple(
                self._sample(rng, device, metric, poll_ms, counters[device.name])
                for metric in self.metrics
            )
            seq = next_seq[device.edge]
            next_seq[device.edge] = seq + 1
            message = DataMessage(sessions[device.edge], seq, poll_ms + rng.randint(1, 15), samples)
            topic = Topic.device_topic(TopicKind.DATA, device.site, device.edge, device.name)
            received_ms = message.created_ms + rng.randint(2, 40)
            messages.append(ReceivedMessage(str(topic), self.codec.encode(message), received_ms))
            rows.append([self._row(device, s) for s in samples])
        return Stream(messages, rows)

    @staticmethod
    def _sample(
        rng: random.Random, device: Device, metric: MetricPlan, poll_ms: int, counts: list[int]
    ) -> Sample:
        ts_ms = poll_ms - rng.randint(0, 900) if device.opcua else poll_ms
        value: Value
        if metric.data_type == "uint32":
            index = [name for name, _ in _COUNTERS].index(metric.name)
            if index == 0:
                counts[0] += 1
                counts[1 if rng.random() > 0.03 else 2] += 1
            value = counts[index]
        elif metric.data_type == "bool":
            value = rng.random() < (0.9 if metric.name == "running" else 0.05)
        else:
            value = rng.gauss(metric.set_point, metric.noise)
        draw = rng.random()
        if draw < BAD_SHARE:
            if device.opcua:
                reason = opcua_status_reason(
                    rng.choice(("BadSensorFailure", "BadCommunicationError"))
                )
            else:
                reason = rng.choice((REASON_TIMEOUT, modbus_exception_reason(2)))
            return Sample(metric.name, ts_ms, None, Quality.BAD, reason)
        if draw < BAD_SHARE + UNCERTAIN_SHARE:
            reason = (
                opcua_status_reason("UncertainLastUsableValue") if device.opcua else "value:clamped"
            )
            return Sample(metric.name, ts_ms, value, Quality.UNCERTAIN, reason)
        return Sample(metric.name, ts_ms, value)

    def _row(self, device: Device, sample: Sample) -> RawRow:
        value = sample.value
        number = None if value is None or isinstance(value, str) else float(value)
        text = value if isinstance(value, str) else None
        series_id = self.series_ids[(device.edge, device.name, sample.metric)]
        return (series_id, sample.ts_ms, number, text, QUALITY_CODE[sample.quality], sample.reason)


def build_plant(samples_per_message: int, edges: int = 4, devices_per_edge: int = 5) -> Plant:
    """A plant of ``edges`` edges with ``devices_per_edge`` devices each; every other one OPC UA."""
    devices = tuple(
        Device("plant1", f"line{e}-ipc", f"line{e}-m{d:02d}", opcua=d % 2 == 0)
        for e in range(1, edges + 1)
        for d in range(1, devices_per_edge + 1)
    )
    return Plant(devices, metric_plans(samples_per_message))
