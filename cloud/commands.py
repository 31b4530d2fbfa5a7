"""Commands down to edges: a small MQTT publisher of ``cmd`` messages, apart from ingest.

It has its own client (``<client_id>-cmd``, clean session) so that sending a command never waits
behind ingest's queue. ``send`` waits for the broker's PUBACK; the edge reports the outcome of a
write as a ``write_result`` event, which ingest stores like any other event.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import CloudConfig
from protocols.wire import CommandMessage, JsonCodec, Topic, TopicKind, Value

log = logging.getLogger(__name__)


class CommandUnavailable(Exception):
    """The broker did not take the command (not connected, or no PUBACK in time)."""


class CommandPublisher:
    def __init__(self, config: CloudConfig) -> None:
        self._url = config.mqtt
        self._codec = JsonCodec()
        self._connected = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{config.client_id}-cmd",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if self._url.username is not None:
            client.username_pw_set(self._url.username, self._url.password)
        if self._url.tls:
            client.tls_set(ca_certs=config.mqtt_ca_file)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = lambda c, u, f, reason, p: (
            None if reason.is_failure else self._connected.set()
        )
        client.on_disconnect = lambda c, u, f, reason, p: self._connected.clear()
        self._client = client

    def start(self) -> None:
        self._client.connect_async(self._url.host, self._url.port)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def send(
        self, site: str, edge: str, command: str, args: dict[str, Value], timeout_s: float = 5.0
    ) -> CommandMessage:
        """Publish a command to one edge (QoS 1) and return it once the broker has it."""
        if not self._connected.wait(timeout_s):
            raise CommandUnavailable(
                f"not connected to the broker {self._url.redacted()}; the command was not sent"
            )
        message = CommandMessage(command, str(uuid.uuid4()), time.time_ns() // 1_000_000, args)
        topic = str(Topic.edge_topic(TopicKind.CMD, site, edge))
        info = self._client.publish(topic, self._codec.encode(message), qos=1)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise CommandUnavailable(f"the broker did not take the command: {exc}") from exc
        if not info.is_published():
            raise CommandUnavailable(f"no acknowledgement from the broker within {timeout_s} s")
        log.info("command sent: topic=%s command=%s id=%s", topic, command, message.command_id)
        return message
