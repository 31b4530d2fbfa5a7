"""The ingest worker end to end: a real Mosquitto, a paho publisher, a real database."""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from cloud.config import CloudConfig
from cloud.ingest.models import DeadLetter
from cloud.ingest.worker import IngestWorker, subscriptions
from cloud.timeseries.queries import count_samples
from protocols.wire import DataMessage, JsonCodec, Sample, Topic, TopicKind

pytestmark = pytest.mark.integration
CODEC = JsonCodec()


def wait_for(condition, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class EdgeStandIn:
    """A paho client publishing data as an edge would, and collecting the cloud's acks."""

    def __init__(self, url_port: int, site="plant1", edge="edge1") -> None:
        self.site, self.edge = site, edge
        self.session = uuid.uuid4().hex
        self.acks: list[dict] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", url_port)
        self.client.loop_start()
        self.client.subscribe(str(Topic.edge_topic(TopicKind.ACK, site, edge)), qos=1)
        assert self._subscribed.wait(5)

    def _on_message(self, _client, _userdata, message):
        ack = CODEC.decode(TopicKind.ACK, message.payload)
        with self._lock:
            self.acks.append(ack.ranges)

    def acked(self) -> set[int]:
        with self._lock:
            return {
                seq
                for ranges in self.acks
                for first, last in ranges.get(self.session, ())
                for seq in range(first, last + 1)
            }

    def payload(self, seq: int, device="press1", samples=3) -> tuple[str, bytes]:
        message = DataMessage(
            self.session, seq, 1_000,
            tuple(Sample(f"m{j}", 1_000 + seq, float(seq * 10 + j)) for j in range(samples)),
        )  # fmt: skip
        topic = Topic.device_topic(TopicKind.DATA, self.site, self.edge, device)
        return str(topic), CODEC.encode(message)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def run_worker(db_engine):
    started: list[IngestWorker] = []

    def start(broker, **settings) -> IngestWorker:
        config = CloudConfig(mqtt_url=broker.url, worker_id=f"w{len(started)}", **settings)
        worker = IngestWorker(config, db_engine)
        worker.start()
        started.append(worker)
        assert worker.wait_connected(10), broker.log()
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_subscriptions_share_data_but_not_retained_births():
    shared = subscriptions(CloudConfig(share_group="g1"))
    assert shared == [
        "$share/g1/forgeline/v1/+/+/+/data",
        "$share/g1/forgeline/v1/+/+/+/event",
        "forgeline/v1/+/+/+/birth",
        "forgeline/v1/+/+/status",
    ]
    assert subscriptions(CloudConfig(shared_subscription=False))[0] == "forgeline/v1/+/+/+/data"


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "direct"])
def test_published_messages_are_stored_once_and_acked(mosquitto, db_engine, run_worker, shared):
    worker = run_worker(mosquitto, shared_subscription=shared, batch_max_ms=50)
    edge = EdgeStandIn(mosquitto.port)
    try:
        time.sleep(0.2)  # let the subscription settle on the broker
        for seq in range(1, 101):
            edge.publish(*edge.payload(seq))
        wait_for(lambda: edge.acked() >= set(range(1, 101)), what="acks for 1..100")
        assert count_samples(db_engine, device="press1") == 300

        # re-send a stretch (an edge whose acks were lost): acked again, stored once
        for seq in range(40, 61):
            edge.publish(*edge.payload(seq))
        wait_for(lambda: worker.counters.snapshot()["duplicates"] >= 21, what="21 duplicates")
        assert count_samples(db_engine, device="press1") == 300
        counters = worker.counters.snapshot()
        assert counters["duplicate_samples_by_device"] == {"press1": 63}
        assert counters["stored_messages"] == 100
        assert counters["stored_samples"] == 300
        assert counters["acks_published"] >= 1
        ranges = [r[edge.session] for r in edge.acks if edge.session in r]
        assert all(first <= last for rs in ranges for first, last in rs)
    finally:
        edge.close()


def test_malformed_messages_do_not_stop_the_worker(mosquitto, db_engine, run_worker):
    worker = run_worker(mosquitto, batch_max_ms=20)
    edge = EdgeStandIn(mosquitto.port)
    try:
        time.sleep(0.2)
        topic, _ = edge.payload(1)
        edge.publish(topic, b"\xff not json")
        edge.publish(topic, f'{{"v":99,"session":"{edge.session}","seq":1}}'.encode())
        edge.publish(*edge.payload(2))
        wait_for(lambda: edge.acked() >= {1, 2}, what="acks of the enveloped dead letter and seq 2")
        with db_engine.connect() as conn:
            letters = conn.execute(select(DeadLetter.error)).scalars().all()
        assert len(letters) == 2
        assert worker.counters.snapshot()["dead_letters"] == 2
        assert count_samples(db_engine) == 3
    finally:
        edge.close()


def test_worker_survives_a_broker_restart(mosquitto_factory, db_engine, run_worker):
    broker = mosquitto_factory(persistence=True)
    worker = run_worker(broker, batch_max_ms=20)
    edge = EdgeStandIn(broker.port)
    try:
        time.sleep(0.2)
        edge.publish(*edge.payload(1))
        wait_for(lambda: 1 in edge.acked(), what="ack of seq 1")
        edge.close()
        broker.restart()
        wait_for(lambda: worker.counters.snapshot()["connected"], what="worker reconnected")
        edge = EdgeStandIn(broker.port)
        edge.publish(*edge.payload(2))
        wait_for(lambda: worker.counters.snapshot()["stored_messages"] == 2, what="seq 2 stored")
        assert count_samples(db_engine) == 6
    finally:
        edge.close()


def test_a_database_outage_keeps_the_batch_until_it_can_be_stored(mosquitto, tmp_path):
    from cloud.db import create_engine_for, migrate

    url = f"sqlite:///{tmp_path / 'not-yet.db'}"
    engine = create_engine_for(url)  # no schema yet: every write fails like a missing database
    config = CloudConfig(mqtt_url=mosquitto.url, worker_id="outage", batch_max_ms=20)
    worker = IngestWorker(config, engine)
    worker.start()
    edge = None
    try:
        assert worker.wait_connected(10)
        edge = EdgeStandIn(mosquitto.port)
        time.sleep(0.2)
        edge.publish(*edge.payload(1))
        wait_for(lambda: worker.counters.snapshot()["db_errors"] >= 2, what="failed attempts")
        assert edge.acked() == set()  # nothing acknowledged while nothing is stored
        assert not worker.counters.snapshot()["db_available"]

        migrate(url)  # the database comes back
        wait_for(lambda: 1 in edge.acked(), what="ack after the database came back")
        assert count_samples(engine) == 3
        assert worker.counters.snapshot()["db_available"]
    finally:
        if edge is not None:
            edge.close()
        worker.stop()
        engine.dispose()


def test_presence_is_retained_online_and_offline_after_stop(mosquitto, db_engine):
    config = CloudConfig(mqtt_url=mosquitto.url, worker_id="presence-w")
    worker = IngestWorker(config, db_engine)
    worker.start()
    assert worker.wait_connected(10)
    seen: list = []
    got = threading.Event()

    def on_message(_c, _u, message):
        seen.append(CODEC.decode(TopicKind.PRESENCE, message.payload))
        got.set()

    def read_retained():
        got.clear()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex[:10])
        client.on_message = on_message
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        client.subscribe(str(Topic.presence("presence-w")), qos=1)
        assert got.wait(5)
        client.disconnect()
        client.loop_stop()
        return seen[-1]

    try:
        wait_for(lambda: read_retained().online, what="retained online presence")
    finally:
        worker.stop()
    assert read_retained().online is False
    assert seen[-1].worker == "presence-w"
