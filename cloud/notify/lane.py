"""One channel's delivery lane: its own bounded queue, thread, retries and counters.

A lane owns one channel, so a slow or dead channel only ever delays itself. New jobs and due
retries are taken in order of due time; a retryable failure is tried again after
``min(max_backoff_s, initial_backoff_s * 2**(attempt-1))`` seconds, shortened by up to
``jitter`` of that at random, until ``max_attempts``. Every outcome is handed to the recorder.
The first failure after a success is logged once, and so is the recovery.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from typing import Any

from cloud.notify.channels.base import Channel
from cloud.notify.errors import DeliveryError
from cloud.notify.message import Notification
from cloud.notify.recorder import DeliveryRecord, DeliveryRecorder
from cloud.notify.settings import RetrySettings

log = logging.getLogger(__name__)


def backoff_s(retry: RetrySettings, attempt: int, draw: float) -> float:
    """The wait after failed attempt number ``attempt`` (1-based), with ``draw`` in [0, 1)."""
    nominal = min(retry.max_backoff_s, retry.initial_backoff_s * 2.0 ** (attempt - 1))
    return nominal * (1.0 - retry.jitter * draw)


@dataclass
class Job:
    """One notification on its way through one channel."""

    notification: Notification
    record: DeliveryRecord  # its latest state
    max_attempts: int
    result: Future[DeliveryRecord] | None = None  # completed with the final record (API tests)
    rendered: Any = None


@dataclass
class LaneCounters:
    routed: int = 0
    sent: int = 0
    failed: int = 0
    retries: int = 0
    dropped_queue_full: int = 0
    last_error: str | None = None
    last_error_ms: int | None = None
    last_sent_ms: int | None = None


class ChannelLane:
    """The thread that delivers one channel's jobs."""

    def __init__(
        self,
        channel: Channel[Any],
        retry: RetrySettings,
        recorder: DeliveryRecorder,
        *,
        queue_max: int,
        clock_ms: Callable[[], int],
        rng: random.Random,
    ) -> None:
        self.channel = channel
        self.retry = retry
        self.recorder = recorder
        self.counters = LaneCounters()
        self._clock_ms = clock_ms
        self._rng = rng
        self._queue: queue.Queue[Job | None] = queue.Queue()  # bounded by ``_waiting``
        self._queue_max = queue_max
        self._waiting = 0  # jobs taken and not finished: queued, due for retry, or in flight
        self._due: list[tuple[float, int, Job]] = []  # (monotonic due time, order, job)
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._draining_until: float | None = None
        self._stopped = threading.Event()
        self._overflowing = False
        self._failing = False
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.channel.name

    # ------------------------------------------------------------------ any thread

    def enqueue(self, job: Job) -> bool:
        """Hand ``job`` to the lane; never blocks. A full lane fails the job (recorded)."""
        with self._lock:
            self.counters.routed += 1
            full = self._waiting >= self._queue_max
            if full:
                self.counters.dropped_queue_full += 1
                first = not self._overflowing
                self._overflowing = True
            else:
                self._waiting += 1
        self.recorder.record(job.record)
        if full:
            if first:
                log.error(
                    "%s: its queue is full (%d notifications waiting); further notifications "
                    "are dropped and recorded as failed until it drains",
                    self.channel.where, self._queue_max,
                )  # fmt: skip
            error = (
                f"not sent: {self.channel.where} already had {self._queue_max} notifications "
                "waiting (the channel is down or too slow)"
            )
            self._fail(job, error, taken=False)
            return False
        self._queue.put_nowait(job)
        return True

    def reject(self, job: Job, error: str) -> None:
        """Record ``job`` as failed without trying it (the dispatcher could not take it)."""
        with self._lock:
            self.counters.routed += 1
            self.counters.dropped_queue_full += 1
        self._fail(job, error, taken=False)

    def depth(self) -> int:
        """Jobs taken and not finished (queued, waiting for a retry, or being sent)."""
        with self._lock:
            return self._waiting

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**asdict(self.counters), "waiting": self._waiting}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"notify-{self.channel.name}", daemon=True
        )
        self._thread.start()

    def begin_drain(self, deadline: float) -> None:
        """Deliver what is due until ``deadline`` (monotonic), retry nothing, then stop."""
        self._draining_until = deadline
        self._queue.put_nowait(None)  # wake the thread

    def join(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    # ------------------------------------------------------------------ lane thread

    def _take_new(self, wait: float) -> None:
        try:
            job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        while True:
            if job is not None:
                with self._lock:
                    heapq.heappush(self._due, (time.monotonic(), next(self._order), job))
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break

    def _next_due(self) -> Job | None:
        with self._lock:
            if self._due and self._due[0][0] <= time.monotonic():
                return heapq.heappop(self._due)[2]
        return None

    def _run(self) -> None:
        while True:
            draining = self._draining_until is not None
            if draining and time.monotonic() >= (self._draining_until or 0):
                break
            with self._lock:
                first_due = self._due[0][0] if self._due else None
            wait = 0.2 if first_due is None else max(0.0, min(0.2, first_due - time.monotonic()))
            self._take_new(wait)
            while (job := self._next_due()) is not None:
                self._attempt(job, draining=draining)
                if self._draining_until is not None and time.monotonic() >= self._draining_until:
                    break
            if draining:
                with self._lock:
                    idle = not self._due or self._due[0][0] > time.monotonic()
                if idle and self._queue.empty():
                    break
        self._abandon_rest()
        self._stopped.set()

    def _abandon_rest(self) -> None:
        """Record every job still waiting as failed: the dispatcher stopped before it was sent."""
        self._take_new(0)
        with self._lock:
            left = [job for _, _, job in self._due]
            self._due.clear()
        for job in left:
            last = f" (last error: {job.record.last_error})" if job.record.last_error else ""
            self._fail(job, f"not sent: the dispatcher stopped{last}")

    def _attempt(self, job: Job, *, draining: bool) -> None:
        attempts = job.record.attempts + 1
        job.record = replace(job.record, attempts=attempts)
        try:
            if job.rendered is None:
                job.rendered = self.channel.render(job.notification)
            self.channel.send(job.rendered)
        except DeliveryError as error:
            message, retryable = str(error), error.retryable
        except Exception as error:  # a channel bug must not kill the lane
            log.exception("%s: unexpected error", self.channel.where)
            message = f"{self.channel.where}: unexpected {type(error).__name__}: {error}"
            retryable = False
        else:
            self._sent(job)
            return
        self._note_failure(message)
        if retryable and attempts < job.max_attempts and not draining:
            delay = backoff_s(self.retry, attempts, self._rng.random())
            with self._lock:
                self.counters.retries += 1
                heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), job))
            now = self._clock_ms()
            job.record = replace(job.record, status="pending", last_error=message, updated_ms=now)
            self.recorder.record(job.record)
            return
        if retryable and attempts < job.max_attempts:
            message += "; not retried: the dispatcher was stopping"
        self._fail(job, message)

    def _sent(self, job: Job) -> None:
        now = self._clock_ms()
        job.record = replace(job.record, status="sent", updated_ms=now, sent_ms=now)
        with self._lock:
            self.counters.sent += 1
            self.counters.last_sent_ms = now
            recovered, self._failing = self._failing, False
            self._done_locked()
        if recovered:
            log.info("%s: delivering again", self.channel.where)
        self.recorder.record(job.record)
        if job.result is not None:
            job.result.set_result(job.record)

    def _note_failure(self, message: str) -> None:
        with self._lock:
            self.counters.last_error = message
            self.counters.last_error_ms = self._clock_ms()
            first, self._failing = not self._failing, True
        if first:
            log.warning(
                "%s: delivery failed: %s (will say when it works again)", self.name, message
            )

    def _done_locked(self) -> None:
        self._waiting -= 1
        if self._overflowing and self._waiting < self._queue_max // 2:
            self._overflowing = False
            log.info("%s: its queue has room again", self.channel.where)

    def _fail(self, job: Job, error: str, *, taken: bool = True) -> None:
        """Record ``job`` as failed for good (``taken``: it was counted in ``_waiting``)."""
        job.record = replace(
            job.record, status="failed", last_error=error, updated_ms=self._clock_ms()
        )
        with self._lock:
            self.counters.failed += 1
            if taken:
                self._done_locked()
        self.recorder.record(job.record)
        if job.result is not None and not job.result.done():
            job.result.set_result(job.record)
