"""The MQTT channel through a real Mosquitto: the body on forgeline/v1/{site}/_alarm (QoS 1),
and a publish while the broker is down is a failed attempt that the dispatcher retries."""

from __future__ import annotations

import json
import queue
import random
import time
from dataclasses import replace
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from cloud.config import CloudConfig
from cloud.notify.channels.base import ChannelContext
from cloud.notify.channels.registry import build_channel
from cloud.notify.dispatcher import build_dispatcher
from cloud.notify.errors import DeliveryError
from cloud.notify.models import NotificationDelivery
from cloud.notify.render import RenderContext
from cloud.notify.settings import MqttChannelSettings
from protocols.mqtt_url import parse_mqtt_url
from tests.cloud.notify.notify_kit import EXAMPLE, golden, pretty, wait_until

RENDER = RenderContext("Asia/Shanghai", "https://mom.plant.local/alarms/{alarm_id}")


class Subscriber:
    """A paho client that puts every message of ``forgeline/v1/+/_alarm`` on a queue."""

    def __init__(self, broker: Any) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscribed = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alarm-watcher")
        self.client.on_message = lambda c, u, message: self.messages.put(message)
        self.client.on_subscribe = lambda *args: subscribed.put(True)
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("forgeline/v1/+/_alarm", qos=1)
        self.client.loop_start()
        subscribed.get(timeout=10)

    def next(self, timeout: float = 10.0) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber():
    made: list[Subscriber] = []

    def make(broker: Any) -> Subscriber:
        made.append(Subscriber(broker))
        return made[-1]

    yield make
    for item in made:
        item.close()


def test_the_body_arrives_on_the_sites_alarm_topic_with_qos_1(mosquitto, subscriber):
    watcher = subscriber(mosquitto)
    context = ChannelContext(render=RENDER, mqtt=parse_mqtt_url(mosquitto.url), mqtt_client_id="t")
    channel = build_channel("bus", MqttChannelSettings(), context)
    channel.start()
    try:
        assert channel.wait_connected(10)
        channel.deliver(EXAMPLE)
        message = watcher.next()
    finally:
        channel.close()
    assert (message.topic, message.qos, message.retain) == ("forgeline/v1/plant1/_alarm", 1, False)
    golden("mqtt.json", pretty(json.loads(message.payload)))

    with pytest.raises(DeliveryError, match="not connected") as down:
        channel.deliver(EXAMPLE)  # closed: nothing is queued in paho
    assert down.value.retryable


def test_a_site_that_cannot_be_a_topic_level_fails_for_good(mosquitto):
    context = ChannelContext(render=RENDER, mqtt=parse_mqtt_url(mosquitto.url))
    channel = build_channel("bus", MqttChannelSettings(), context)
    with pytest.raises(DeliveryError, match="site id") as bad:
        channel.render(replace(EXAMPLE, site="plant/1"))
    assert not bad.value.retryable


def test_a_publish_while_the_broker_is_down_is_retried_until_it_is_back(
    db_engine, mosquitto_factory, subscriber
):
    broker = mosquitto_factory()
    config = CloudConfig(
        mqtt_url=broker.url,
        notifications={
            "channels": {"bus": {"type": "mqtt", "timeout_s": 2}},
            "routes": [{"channels": ["bus"]}],
            "retry": {"max_attempts": 30, "initial_backoff_s": 0.2, "max_backoff_s": 0.5},
        },
    )
    notifier = build_dispatcher(config, db_engine, rng=random.Random(3))
    notifier.start()
    try:
        bus = notifier.channels["bus"]
        assert bus.wait_connected(10)
        broker.stop()
        wait_until(lambda: not bus.connected, what="the channel to see the broker go")

        notifier.submit(EXAMPLE)
        wait_until(lambda: notifier.snapshot()["channels"]["bus"]["retries"] >= 1,
                   what="a failed attempt")  # fmt: skip
        broker.start()
        watcher = subscriber(broker)
        message = watcher.next(timeout=20)
        assert message.topic == "forgeline/v1/plant1/_alarm"
        assert notifier.wait_idle(10)
    finally:
        notifier.stop()
    with db_engine.connect() as conn:
        (row,) = conn.execute(select(NotificationDelivery)).all()
    assert row.status == "sent"
    assert row.attempts >= 2
    assert "not connected to the broker" in row.last_error
    assert time.time() * 1000 - row.sent_ms < 60_000
