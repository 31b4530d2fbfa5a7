"""The shared fixtures themselves: brokers that restart on their port, migrated databases."""

from __future__ import annotations

import socket
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import inspect

pytestmark = pytest.mark.integration


def _round_trip(port: int, topic: str = "fixture/check") -> bytes:
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"chk-{uuid.uuid4().hex[:6]}")
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda _c, _u, m: (got.append(m.payload), done.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        assert subscribed.wait(5)
        client.publish(topic, b"ping", qos=1)
        assert done.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_broker_serves_stops_and_restarts_on_the_same_port(mosquitto):
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert _round_trip(mosquitto.port) == b"ping"
    port = mosquitto.port
    mosquitto.stop()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass
    mosquitto.restart()
    assert mosquitto.port == port
    assert _round_trip(port) == b"ping"
    mosquitto.kill()
    assert not mosquitto.running


def test_a_persistent_broker_keeps_queued_messages_across_a_restart(mosquitto_factory):
    broker = mosquitto_factory(persistence=True, extra_config=["max_queued_messages 5000"])
    assert "persistence true" in broker.conf_path.read_text()
    assert "max_queued_messages 5000" in broker.conf_path.read_text()
    subscribed = threading.Event()
    sub = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="durable-sub", clean_session=False
    )
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    sub.subscribe("durable/#", qos=1)
    assert subscribed.wait(5)
    sub.disconnect()
    sub.loop_stop()

    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="durable-pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish("durable/x", b"kept", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    broker.restart()

    got = threading.Event()
    sub = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="durable-sub", clean_session=False
    )
    sub.on_message = lambda _c, _u, m: got.set() if m.payload == b"kept" else None
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    try:
        assert got.wait(5), broker.log()
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_db_url_is_migrated_and_empty(db_engine):
    tables = set(inspect(db_engine).get_table_names())
    assert {"ts_series", "ts_sample", "ts_latest", "ingest_message", "machine"} <= tables
    assert "alembic_version" in tables
    with db_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM ts_sample").scalar() == 0
