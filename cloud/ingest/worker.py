"""The ingest worker: MQTT in (paho, QoS 1, persistent session), batches to the writer, acks out.

Threads: paho's network loop only hands each message to a bounded queue (``on_message`` does
no work); one writer thread drains the queue in batches (what is waiting, up to
``batch_max_messages``; with ``batch_max_ms`` > 0 it also waits that long for more: a group
commit that sizes itself, since messages queue while a batch is written), stores each batch
with ``IngestWriter`` and then publishes, per edge, an
``AckMessage`` of the sequence ranges stored (duplicates and enveloped dead letters included).

Subscriptions: data and events through ``$share/<group>/...`` when ``shared_subscription`` is
on, so that workers split the load; births and statuses always directly, because a broker
does not deliver retained messages to shared subscriptions and every worker may need them
(they are idempotent upserts). Subscriptions are renewed in every ``on_connect``.

Failure handling: when the database is down the batch is kept and retried with exponential
backoff; nothing is acknowledged, so the edges keep their buffers and re-send. A full queue
drops the newest message (counted): it is not acknowledged either, so it comes again. The
broker connection is re-established by paho; loss and recovery are logged once each.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from cloud.config import CloudConfig
from cloud.ingest.writer import BatchResult, DecodedBatch, IngestWriter, ReceivedMessage
from protocols.clock import now_ms
from protocols.wire import JsonCodec, PresenceMessage, Topic, TopicKind
from protocols.wire.topics import edge_subscription, subscription

log = logging.getLogger(__name__)

SHARED_KINDS = (TopicKind.DATA, TopicKind.EVENT)

BatchObserver = Callable[[BatchResult], None]
"""Called in the writer thread after each stored batch (e.g. the alarm engine); it must be quick
and must not raise: an exception is logged and counted, never allowed to stop ingest."""


def subscriptions(config: CloudConfig) -> list[str]:
    """The topic filters the worker subscribes to (QoS 1)."""
    prefix = f"$share/{config.share_group}/" if config.shared_subscription else ""
    return [
        *(prefix + subscription(kind=kind) for kind in SHARED_KINDS),
        subscription(kind=TopicKind.BIRTH),
        edge_subscription(kind=TopicKind.STATUS),
    ]


@dataclass
class IngestCounters:
    """What the worker has done since it started (read with ``snapshot()``)."""

    received: int = 0
    stored_messages: int = 0
    stored_samples: int = 0
    stored_events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    births: int = 0
    statuses: int = 0
    batches: int = 0
    acks_published: int = 0
    dropped_queue_full: int = 0
    db_errors: int = 0
    observer_errors: int = 0
    last_batch_lag_ms: int | None = None
    last_batch_size: int = 0
    queued: int = 0
    connected: bool = False
    db_available: bool = True
    duplicate_samples_by_device: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_batch(self, result: BatchResult, lag_ms: int) -> None:
        with self._lock:
            self.stored_messages += result.stored_messages
            self.stored_samples += result.stored_samples
            self.stored_events += result.stored_events
            self.duplicates += result.duplicates
            self.dead_letters += result.dead_letters
            self.births += result.births
            self.statuses += result.statuses
            self.batches += 1
            for device, count in result.duplicate_samples_by_device.items():
                held = self.duplicate_samples_by_device.get(device, 0)
                self.duplicate_samples_by_device[device] = held + count
            self.last_batch_lag_ms = lag_ms
            self.last_batch_size = result.received

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
            data["duplicate_samples_by_device"] = dict(self.duplicate_samples_by_device)
            return data


class IngestWorker:
    """One ingest worker. ``start()`` returns at once; ``stop()`` drains and disconnects."""

    def __init__(
        self,
        config: CloudConfig,
        engine: Engine,
        writer: IngestWriter | None = None,
        observers: Sequence[BatchObserver] = (),
    ) -> None:
        self.config = config
        self.writer = writer or IngestWriter(engine)
        self.observers: list[BatchObserver] = list(observers)
        self.codec = JsonCodec()
        self.counters = IngestCounters()
        self._url = config.mqtt
        self._queue: queue.Queue[ReceivedMessage] = queue.Queue(config.queue_max_messages)
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._lost = False
        self._connect_failures = 0
        self._presence_topic = str(Topic.presence(config.worker_id))
        self._thread: threading.Thread | None = None
        self._client = self._make_client()

    # ------------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if self._url.username is not None:
            client.username_pw_set(self._url.username, self._url.password)
        if self._url.tls:
            client.tls_set(ca_certs=self.config.mqtt_ca_file)
        will = PresenceMessage(self.config.worker_id, False, now_ms())
        client.will_set(self._presence_topic, self.codec.encode(will), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error(
                "ingest %s: broker %s refused the connection (%s); check the user name, "
                "password and ACL for client id %r",
                self.config.worker_id, self._url.redacted(), reason, self.config.client_id,
            )  # fmt: skip
            return
        client.subscribe([(topic, 1) for topic in subscriptions(self.config)])
        presence = PresenceMessage(self.config.worker_id, True, now_ms())
        client.publish(self._presence_topic, self.codec.encode(presence), qos=1, retain=True)
        if self._lost or self._connect_failures:
            log.info(
                "ingest %s: connected to broker %s again (session present: %s)",
                self.config.worker_id, self._url.redacted(), flags.session_present,
            )  # fmt: skip
        else:
            log.info(
                "ingest %s: connected to broker %s, subscribed to %s",
                self.config.worker_id, self._url.redacted(), ", ".join(subscriptions(self.config)),
            )  # fmt: skip
        self._lost = False
        self._connect_failures = 0
        self.counters.connected = True
        self._connected.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        if self._connect_failures == 0 and not self._lost:
            log.warning(
                "ingest %s: cannot reach broker %s; retrying in the background (is it running?)",
                self.config.worker_id, self._url.redacted(),
            )  # fmt: skip
        self._connect_failures += 1

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        self.counters.connected = False
        if self._stopping.is_set():
            return
        if not self._lost:
            log.warning(
                "ingest %s: lost the broker %s (%s); reconnecting, edges keep buffering",
                self.config.worker_id, self._url.redacted(), reason,
            )  # fmt: skip
        self._lost = True

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = ReceivedMessage(message.topic, bytes(message.payload), now_ms())
        try:
            self._queue.put_nowait(received)
        except queue.Full:
            self.counters.bump("dropped_queue_full")
            return
        self.counters.bump("received")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect (in the background, retrying) and start the writer thread."""
        self._thread = threading.Thread(
            target=self._drain_loop, name=f"ingest-writer-{self.config.worker_id}", daemon=True
        )
        self._thread.start()
        self._client.connect_async(self._url.host, self._url.port, self.config.mqtt_keepalive_s)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """True once subscribed to the broker (within ``timeout`` seconds)."""
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Say offline, disconnect, store what is still queued, and stop the threads."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._connected.is_set():
            offline = PresenceMessage(self.config.worker_id, False, now_ms())
            info = self._client.publish(
                self._presence_topic, self.codec.encode(offline), qos=1, retain=True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=min(timeout, 2.0))
        self._client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout)
        self._client.loop_stop()
        log.info("ingest %s: stopped (%s)", self.config.worker_id, self.counters.snapshot())

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ writer thread

    def _collect(self) -> list[ReceivedMessage]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        limit = self.config.batch_max_messages
        while len(batch) < limit:  # what is already waiting, without waiting
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if self.config.batch_max_ms == 0:
            return batch
        deadline = time.monotonic() + self.config.batch_max_ms / 1000
        while len(batch) < limit:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _drain_loop(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty()):
            batch = self._collect()
            self.counters.queued = self._queue.qsize()
            if batch:
                self._store(self.writer.decode(batch))

    def _store(self, batch: DecodedBatch) -> None:
        attempt = 0
        while True:
            try:
                result = self.writer.write_decoded(batch)  # decoded once, however many tries
                break
            except Exception as error:  # noqa: BLE001 - the worker must outlive any failure
                self.counters.bump("db_errors")
                if attempt == 0:
                    log.error(
                        "ingest %s: cannot store a batch of %d messages (%s); keeping it and "
                        "retrying with backoff, nothing is acknowledged meanwhile. Check that "
                        "the database is up and migrated.",
                        self.config.worker_id, len(batch), error,
                    )  # fmt: skip
                self.counters.db_available = False
                delay = min(0.25 * 2**attempt, self.config.retry_max_s)
                attempt += 1
                if self._stopping.wait(delay):
                    log.error(
                        "ingest %s: stopping with %d unstored messages; the edges re-send them",
                        self.config.worker_id, len(batch) + self._queue.qsize(),
                    )  # fmt: skip
                    self._discard_queue()
                    return
        if attempt:
            log.info(
                "ingest %s: the database is back; stored the batch after %d attempts",
                self.config.worker_id, attempt + 1,
            )  # fmt: skip
        self.counters.db_available = True
        self.counters.add_batch(result, now_ms() - batch.oldest_received_ms)
        self._publish_acks(result)
        self._notify_observers(result)

    def _notify_observers(self, result: BatchResult) -> None:
        for observer in self.observers:
            try:
                observer(result)
            except Exception:  # a consumer's bug must never stop ingest
                self.counters.bump("observer_errors")
                log.exception(
                    "ingest %s: the stream consumer %r failed on a stored batch; ingest goes "
                    "on, the consumer missed this batch",
                    self.config.worker_id, observer,
                )  # fmt: skip

    def _discard_queue(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _publish_acks(self, result: BatchResult) -> None:
        if not self._connected.is_set():
            return  # never queue in paho while disconnected; a re-send is acked as duplicate
        for topic, ack in result.ack_messages():
            self._client.publish(str(topic), self.codec.encode(ack), qos=1)
            self.counters.bump("acks_published")
