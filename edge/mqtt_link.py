"""The edge's MQTT connection (paho-mqtt 2.x): publishes what the agent hands it, only while up.

paho queues messages in memory without limit while disconnected, so this link refuses to
publish then: the durable log is the queue. It resubscribes in ``on_connect`` (a broker restarted
without persistence forgets sessions), re-announces births on every connect, and hands incoming
acknowledgements and commands to the agent's event loop without doing work on paho's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from protocols.mqtt_url import MqttUrl

log = logging.getLogger("forgeline.edge.mqtt")


class MqttLink:
    """One paho client with its own network thread; every callback hops to the asyncio loop."""

    def __init__(
        self,
        url: MqttUrl,
        client_id: str,
        *,
        loop: asyncio.AbstractEventLoop,
        subscriptions: list[str],
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], None],
        will: tuple[str, bytes] | None = None,
        keepalive_s: int = 30,
        tls: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self._loop = loop
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._on_connected = on_connected
        self._connected = threading.Event()
        self._ever_connected = False
        self._lost_logged = False
        self._stopping = False
        self._keepalive = keepalive_s
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(2000)  # a bound for the instant between check and send
        client.reconnect_delay_set(min_delay=1, max_delay=8)
        if url.username:
            client.username_pw_set(url.username, url.password)
        if url.tls:
            tls = tls or {}
            client.tls_set(
                ca_certs=tls.get("ca_file"),
                certfile=tls.get("cert_file"),
                keyfile=tls.get("key_file"),
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(bool(tls.get("insecure")))
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._client.connect_async(self.url.host, self.url.port, keepalive=self._keepalive)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Hand a message to paho if connected; False means "not sent, keep it in the log"."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == paho.MQTT_ERR_SUCCESS

    def stop(self, final: tuple[str, bytes] | None = None, timeout_s: float = 2.0) -> None:
        """Publish ``final`` (the retained offline status) if connected, then disconnect."""
        self._stopping = True
        if final is not None and self.connected:
            info = self._client.publish(final[0], final[1], qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()

    # paho thread ------------------------------------------------------------

    def _handle_connect(
        self, client: paho.Client, userdata: object, flags: object, reason: Any, props: object
    ) -> None:
        if reason.is_failure:
            log.warning(
                "broker refused the connection: broker=%s:%s reason=%s (check credentials/ACL)",
                self.url.host, self.url.port, reason,
            )  # fmt: skip
            return
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self._connected.set()
        if self._lost_logged or not self._ever_connected:
            log.info("connected to broker: broker=%s:%s", self.url.host, self.url.port)
        self._ever_connected, self._lost_logged = True, False
        self._loop.call_soon_threadsafe(self._on_connected)

    def _handle_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: Any, props: object
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._lost_logged and not self._stopping:
            self._lost_logged = True
            log.warning(
                "lost the broker: broker=%s:%s reason=%s; buffering to disk and reconnecting",
                self.url.host, self.url.port, reason,
            )  # fmt: skip

    def _handle_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self._loop.call_soon_threadsafe(self._on_message, msg.topic, bytes(msg.payload))
