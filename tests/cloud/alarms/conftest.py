"""Helpers for the alarm tests: a collecting notifier, a plant's births, an edge on MQTT."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from cloud.alarms.engine import AlarmEngine
from cloud.alarms.rules import AlarmRule
from cloud.config import CloudConfig
from cloud.ingest.worker import IngestWorker
from cloud.ingest.writer import ReceivedMessage
from cloud.notify.message import Notification
from protocols.quality import Quality
from protocols.wire import (
    BirthMessage,
    DataMessage,
    JsonCodec,
    MetricDefinition,
    Sample,
    StatusMessage,
    Topic,
    TopicKind,
)

CODEC = JsonCodec()
SITE, EDGE = "plant1", "edge1"
STATES = {"1": "idle", "2": "running", "3": "down"}
# temperature: engineering limits 20..90 degC from the birth (the profile's limits)
METRICS = (
    MetricDefinition("state", "uint16", "state"),
    MetricDefinition("temperature", "float32", "temperature", unit="degC", low_limit=20.0,
                     high_limit=90.0),
    MetricDefinition("pressure", "float32", "process_param", unit="bar"),
    MetricDefinition("cycles", "uint32", "cycle_count"),
)  # fmt: skip


class CollectingNotifier:
    """The receiving end of the ``Notifier`` seam: keeps every notification in a list."""

    def __init__(self) -> None:
        self.received: list[Notification] = []
        self._lock = threading.Lock()

    def submit(self, notification: Notification) -> None:
        with self._lock:
            self.received.append(notification)

    def events(self, alarm_id: int | None = None) -> list[str]:
        with self._lock:
            return [n.event for n in self.received if alarm_id in (None, n.alarm_id)]

    def of(self, event: str) -> list[Notification]:
        with self._lock:
            return [n for n in self.received if n.event == event]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Edge:
    """Builds an edge's messages (births, data with a running sequence, statuses)."""

    def __init__(self, edge: str = EDGE) -> None:
        self.edge = edge
        self.session = uuid.uuid4().hex
        self._seq = itertools.count(1)

    def birth(self, device: str, *, line: str = "Line 1") -> ReceivedMessage:
        message = BirthMessage(
            session=self.session, created_ms=1_000, profile="acme-press",
            protocol="modbus_tcp", metrics=METRICS, state_map=dict(STATES),
            ideal_cycle_time_s=2.0, area="Press shop", line=line,
        )  # fmt: skip
        topic = Topic.device_topic(TopicKind.BIRTH, SITE, self.edge, device)
        return ReceivedMessage(str(topic), CODEC.encode(message), 0)

    def data(
        self,
        device: str,
        samples: Sequence[tuple[str, int, Any] | tuple[str, int, Any, Quality]],
        *,
        historical: bool = False,
    ) -> ReceivedMessage:
        built = tuple(
            Sample(s[0], s[1], s[2], s[3] if len(s) > 3 else Quality.GOOD)  # type: ignore[misc]
            for s in samples
        )
        message = DataMessage(self.session, next(self._seq), 1_000, built, historical)
        topic = Topic.device_topic(TopicKind.DATA, SITE, self.edge, device)
        return ReceivedMessage(str(topic), CODEC.encode(message), 0)

    def status(self, online: bool) -> ReceivedMessage:
        message = StatusMessage(online, now_ms(), self.session, {})
        topic = Topic.edge_topic(TopicKind.STATUS, SITE, self.edge)
        return ReceivedMessage(str(topic), CODEC.encode(message), now_ms())


class MqttEdge(Edge):
    """An edge that publishes its messages through the broker with paho (QoS 1)."""

    def __init__(self, port: int, edge: str = EDGE) -> None:
        super().__init__(edge)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{uuid.uuid4().hex[:8]}"
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, message: ReceivedMessage, retain: bool = False) -> None:
        self.client.publish(message.topic, message.payload, qos=1, retain=retain).wait_for_publish(
            5
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Plant:
    """A real ingest worker on the broker feeding a real alarm engine, and an edge publishing."""

    def __init__(
        self, broker: Any, db_engine: Any, rules: Sequence[AlarmRule], **engine_options: Any
    ) -> None:
        self.db_engine = db_engine
        self.notifier = CollectingNotifier()
        options = {"builtin": False, "tick_s": 0.05, "refresh_s": 0.5} | engine_options
        self.alarms = AlarmEngine(db_engine, self.notifier, file_rules=rules, **options)
        self.alarms.start()
        # a share group of its own: a stopped worker's persistent session in the same group
        # would still be handed its share of the messages
        worker_id = f"w{uuid.uuid4().hex[:6]}"
        config = CloudConfig(mqtt_url=broker.url, worker_id=worker_id, batch_max_ms=20,
                             share_group=f"g{worker_id}")  # fmt: skip
        self.worker = IngestWorker(config, db_engine, observers=[self.alarms.observe])
        self.worker.start()
        assert self.worker.wait_connected(10), broker.log()
        time.sleep(0.2)  # let the subscriptions settle on the broker
        self.edge = MqttEdge(broker.port)

    def send(self, *messages: ReceivedMessage) -> None:
        for message in messages:
            self.edge.send(message)

    def birth(self, device: str = "press1", **placement: Any) -> int:
        """Publish a device birth; wait until its machine exists; return the machine id."""
        from sqlalchemy import select

        from cloud.assets.models import Machine

        self.send(self.edge.birth(device, **placement))

        def machine_id() -> int | None:
            with self.db_engine.connect() as conn:
                return conn.execute(select(Machine.id).where(Machine.device == device)).scalar()

        found = wait_for(machine_id, what=f"machine {device}")
        self.alarms.flush()
        return int(found)

    def stop(self) -> None:
        self.edge.close()
        self.worker.stop()
        self.alarms.stop()


@pytest.fixture
def plant_factory(mosquitto, db_engine):
    made: list[Plant] = []

    def make(rules: Sequence[AlarmRule], **options: Any) -> Plant:
        plant = Plant(mosquitto, db_engine, rules, **options)
        made.append(plant)
        return plant

    yield make
    for plant in made:
        plant.stop()
