"""MQTT: the JSON body on ``forgeline/v1/{site}/_alarm`` (QoS 1) through the cloud's broker.

Its own paho client (``<client_id>-notify``, clean session) connects in the background on
``start()`` and reconnects by itself. A publish while disconnected is a failed attempt (the
dispatcher retries it later): paho would otherwise queue it in memory without limit. A publish
counts as sent when the broker acknowledges it (PUBACK) within ``timeout_s``.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.errors import DeliveryError, NotifyConfigError
from cloud.notify.message import Notification
from cloud.notify.render import notification_body
from cloud.notify.settings import MqttChannelSettings
from protocols.errors import WireError
from protocols.wire.topics import alarm_topic

log = logging.getLogger(__name__)

PAHO_QUEUE_LIMIT = 100  # a message whose ack is late stays in paho; never let that grow


@dataclass(frozen=True, slots=True)
class MqttAlarmMessage:
    topic: str
    payload: bytes


class MqttChannel(Channel[MqttAlarmMessage]):
    type: ClassVar[str] = "mqtt"

    def __init__(self, name: str, settings: MqttChannelSettings, context: ChannelContext):
        super().__init__(name, settings, context)
        if context.mqtt is None:
            raise NotifyConfigError(f"mqtt channel {name!r}: the cloud has no broker URL")
        self.config = settings
        self.url = context.mqtt
        self._connected = threading.Event()
        self._lost = False
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{context.mqtt_client_id}-notify-{name}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if self.url.username is not None:
            client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            client.tls_set(ca_certs=context.mqtt_ca_file)
        client.max_queued_messages_set(PAHO_QUEUE_LIMIT)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    @property
    def where(self) -> str:
        return f"mqtt channel {self.name!r} ({self.url.redacted()})"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("%s: the broker refused the connection (%s)", self.where, reason)
            return
        if self._lost:
            log.info("%s: connected again", self.where)
        self._lost = False
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._connected.is_set():
            log.warning("%s: lost the broker (%s); reconnecting", self.where, reason)
            self._lost = True
        self._connected.clear()

    def start(self) -> None:
        self._client.connect_async(self.url.host, self.url.port)
        self._client.loop_start()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def render(self, notification: Notification) -> MqttAlarmMessage:
        try:
            topic = alarm_topic(notification.site)
        except WireError as error:
            raise DeliveryError(f"{self.where}: {error}", retryable=False) from None
        body = notification_body(notification, self.context.render)
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return MqttAlarmMessage(topic, payload)

    def send(self, rendered: MqttAlarmMessage) -> None:
        if not self._connected.is_set():
            raise DeliveryError(
                f"{self.where}: not connected to the broker; not published", retryable=True
            )
        info = self._client.publish(
            rendered.topic, rendered.payload, qos=self.config.qos, retain=self.config.retain
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DeliveryError(
                f"{self.where}: publish on {rendered.topic} failed ({mqtt.error_string(info.rc)})",
                retryable=True,
            )
        try:
            info.wait_for_publish(self.config.timeout_s)
        except (RuntimeError, ValueError) as error:
            raise DeliveryError(f"{self.where}: {error}", retryable=True) from None
        if not info.is_published():
            raise DeliveryError(
                f"{self.where}: no acknowledgement from the broker within "
                f"{self.config.timeout_s} s",
                retryable=True,
            )
