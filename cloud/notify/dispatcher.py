"""The dispatcher: ``Notifier.submit`` for the alarm engine, routing to channel lanes.

``submit`` appends the notification to a bounded intake (a ``deque``: no lock, no system call,
so the caller never waits for the GIL behind a busy delivery thread) and returns; it never
raises. The router thread takes the intake every few milliseconds, routes each notification
(``cloud.notify.routing``), queues one job per chosen channel on that channel's lane and a
``pending`` record. Each lane (``cloud.notify.lane``) delivers on its own thread with retries;
the recorder (``cloud.notify.recorder``) writes every outcome to ``notification_delivery`` on
another. A full intake drops the notification: counted, logged once, and recorded as failed on
each channel it would have gone to. ``stop()`` routes what was submitted, keeps delivering for
``drain_s`` seconds, then records whatever is left as failed ("not sent: the dispatcher
stopped").

Build one with ``build_dispatcher(config, engine)``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.channels.registry import build_channel
from cloud.notify.errors import NotifyConfigError
from cloud.notify.lane import ChannelLane, Job
from cloud.notify.message import Notification
from cloud.notify.recorder import DeliveryRecord, DeliveryRecorder
from cloud.notify.render import RenderContext
from cloud.notify.routing import select_channels
from cloud.notify.settings import NotificationSettings
from cloud.notify.stream import AlarmBroadcaster
from protocols.clock import now_ms

if TYPE_CHECKING:
    from cloud.config import CloudConfig

log = logging.getLogger(__name__)

ROUTER_POLL_S = 0.005  # how often the router looks at the intake when it was empty


class Dispatcher:
    """Routes notifications to channel lanes and records every delivery. Implements ``Notifier``."""

    def __init__(
        self,
        settings: NotificationSettings,
        channels: Mapping[str, Channel[Any]],
        recorder: DeliveryRecorder,
        broadcaster: AlarmBroadcaster,
        *,
        clock_ms: Callable[[], int] = now_ms,
        rng: random.Random | None = None,
    ) -> None:
        missing = sorted(set(settings.channels) - set(channels))
        if missing:
            raise NotifyConfigError(f"channels {missing} are configured but were not built")
        self.settings = settings
        self.channels = dict(channels)
        self.recorder = recorder
        self.broadcaster = broadcaster
        self._clock_ms = clock_ms
        rng = rng or random.Random()  # jitter, not cryptography
        self.lanes = {
            name: ChannelLane(
                channel,
                settings.retry_for(name),
                recorder,
                queue_max=settings.queue_max_per_channel,
                clock_ms=clock_ms,
                rng=rng,
            )
            for name, channel in self.channels.items()
        }
        self._lock = threading.Lock()
        self._counters = {
            "submitted": 0, "unrouted": 0, "dropped_intake_full": 0, "submit_errors": 0,
            "after_stop": 0,
        }  # fmt: skip
        self._intake: deque[Notification] = deque()
        self._intake_max = settings.intake_max
        self._overflowed: deque[Notification] = deque(maxlen=1000)  # recorded by the router
        self._router: threading.Thread | None = None
        self._routing = False  # the router is between taking from the intake and queueing
        self._running = False
        self._stopped = False

    # ------------------------------------------------------------------ Notifier

    def submit(self, notification: Notification) -> None:
        """Queue ``notification`` for routing; returns at once and never raises."""
        try:
            if self._running and len(self._intake) < self._intake_max:
                self._intake.append(notification)  # atomic; takes no lock
                return
            self._refuse(notification)
        except Exception:  # submit must never raise into the alarm engine
            if self._count("submit_errors") == 1:
                log.exception("notifications: submit failed (logged once)")

    def _refuse(self, notification: Notification) -> None:
        if not self._running:
            self._count("after_stop", "submit() while the dispatcher is not running")
            return
        self._count(
            "dropped_intake_full",
            f"the intake is full ({self._intake_max} notifications waiting to be routed); "
            "notifications are dropped and recorded as failed",
        )
        self._overflowed.append(notification)

    def _count(self, name: str, first_log: str | None = None) -> int:
        with self._lock:
            self._counters[name] += 1
            value = self._counters[name]
        if first_log and value == 1:
            log.warning("notifications: %s (logged once)", first_log)
        return value

    def _job(
        self,
        notification: Notification,
        lane: ChannelLane,
        now: int,
        *,
        max_attempts: int | None = None,
        result: Future[DeliveryRecord] | None = None,
    ) -> Job:
        record = DeliveryRecord(
            delivery_key=uuid.uuid4().hex,
            alarm_id=notification.alarm_id,
            channel=lane.name,
            channel_type=lane.channel.type,
            event=notification.event,
            priority=notification.priority,
            escalation_level=notification.escalation_level,
            message=notification.message,
            status="pending",
            attempts=0,
            last_error=None,
            notification_ms=notification.ts_ms,
            created_ms=now,
            updated_ms=now,
        )
        return Job(notification, record, max_attempts or lane.retry.max_attempts, result)

    # ------------------------------------------------------------------ router thread

    def _route_loop(self) -> None:
        while True:
            taken = 0
            self._routing = True
            while self._intake:
                self._route(self._intake.popleft())
                taken += 1
            while self._overflowed:
                self._route(self._overflowed.popleft(), dropped=True)
            self._routing = False
            if not self._running and not self._intake:
                return
            if not taken:
                time.sleep(ROUTER_POLL_S)

    def _route(self, notification: Notification, *, dropped: bool = False) -> None:
        try:
            names = select_channels(notification, self.settings.routes)
            self._count("submitted")
            if not names:
                self._count("unrouted")
                return
            now = self._clock_ms()
            for name in names:
                lane = self.lanes[name]
                job = self._job(notification, lane, now)
                if dropped:
                    lane.reject(
                        job, f"not sent: the dispatcher's intake was full ({self._intake_max})"
                    )
                else:
                    lane.enqueue(job)
        except Exception:  # one bad notification must not stop the router
            if self._count("submit_errors") == 1:
                log.exception("notifications: routing failed (logged once)")

    # ------------------------------------------------------------------ API helpers

    def send_test(
        self, channel: str, notification: Notification, timeout: float
    ) -> DeliveryRecord | None:
        """Send ``notification`` once through ``channel`` (via its lane, recorded like any
        delivery) and wait for the outcome; None if it did not finish within ``timeout``."""
        if channel not in self.lanes:
            raise NotifyConfigError(
                f"no channel named {channel!r}; configured: {', '.join(sorted(self.lanes))}"
            )
        if not self._running:
            raise NotifyConfigError("the notification dispatcher is not running")
        result: Future[DeliveryRecord] = Future()
        lane = self.lanes[channel]
        lane.enqueue(self._job(notification, lane, self._clock_ms(), max_attempts=1, result=result))
        try:
            outcome = result.result(timeout)
        except FutureTimeout:
            return None
        self.recorder.flush(min(timeout, 5.0))  # so that the deliveries API shows it
        return outcome

    def channel_views(self) -> list[dict[str, Any]]:
        """Every configured channel: name, type, settings (secrets masked), counters."""
        return [
            {
                "name": name,
                "type": lane.channel.type,
                "settings": lane.channel.describe(),
                "counters": lane.snapshot(),
            }
            for name, lane in self.lanes.items()
        ]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counters: dict[str, Any] = dict(self._counters)
        counters["running"] = self._running
        counters["recorder"] = self.recorder.snapshot()
        counters["stream"] = self.broadcaster.snapshot()
        counters["channels"] = {name: lane.snapshot() for name, lane in self.lanes.items()}
        return counters

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every lane is empty and every record written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._intake or self._routing or any(lane.depth() for lane in self.lanes.values()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return self.recorder.flush(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the recorder, the channels (connections open in the background) and lanes."""
        if self._running or self._stopped:
            return
        self.recorder.start()
        for channel in self.channels.values():
            channel.start()
        for lane in self.lanes.values():
            lane.start()
        self._running = True
        self._router = threading.Thread(target=self._route_loop, name="notify-router", daemon=True)
        self._router.start()
        log.info(
            "notifications: %d channels (%s), %d routes",
            len(self.channels), ", ".join(self.channels), len(self.settings.routes),
        )  # fmt: skip

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver for up to ``drain_s``, record what is left as failed, close channels."""
        if not self._running:
            return
        self._running = False
        self._stopped = True
        deadline = time.monotonic() + min(self.settings.drain_s, timeout)
        if self._router is not None:
            self._router.join(timeout)  # routes everything submitted before stop()
        for lane in self.lanes.values():
            lane.begin_drain(deadline)
        for lane in self.lanes.values():
            if not lane.join(max(0.1, deadline - time.monotonic() + 2.0)):
                log.warning("%s: still sending after the drain time", lane.channel.where)
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception:  # closing must not stop the shutdown
                log.exception("%s: error while closing", channel.where)
        self.recorder.stop(timeout)


def build_dispatcher(
    config: CloudConfig,
    engine: Engine,
    *,
    clock_ms: Callable[[], int] = now_ms,
    rng: random.Random | None = None,
) -> Dispatcher:
    """The dispatcher for ``config.notifications`` writing deliveries through ``engine``.

    Nothing starts until ``start()``; ``stop()`` drains and closes.
    """
    settings = config.notifications
    broadcaster = AlarmBroadcaster(settings.stream.max_pending, settings.stream.send_timeout_s)
    context = ChannelContext(
        render=RenderContext(settings.timezone, settings.alarm_link),
        mqtt=config.mqtt,
        mqtt_client_id=config.client_id,
        mqtt_ca_file=config.mqtt_ca_file,
        broadcaster=broadcaster,
        clock_ms=clock_ms,
    )
    channels = {
        name: build_channel(name, item, context) for name, item in settings.channels.items()
    }
    recorder = DeliveryRecorder(engine, retry_max_s=config.retry_max_s)
    return Dispatcher(settings, channels, recorder, broadcaster, clock_ms=clock_ms, rng=rng)
