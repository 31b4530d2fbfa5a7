"""Handing stored batches from the ingest writer thread to a consumer's own thread.

``BatchHandoff.offer`` runs in the writer thread and never blocks: a full queue drops the
batch, counts it in ``dropped_batches`` and logs once per streak (what is lost, and the likely
cause); the consumer calls ``caught_up`` when it takes a batch, which ends the streak.

``BatchConsumer`` is the part every consumer with its own thread shares (the alarm engine, the
unit binder, the SPC evaluator): its bounded queue and hand-off, ``observe``, ``flush`` and
``stop``. The subclass starts its thread with ``_start_thread`` and takes items off
``self._queue`` in its ``_run``: a ``BatchResult``, ``None`` (stop), a ``threading.Event`` (set
it: ``flush``) or a marker of its own.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Protocol

from cloud.ingest.writer import BatchResult

log = logging.getLogger(__name__)


class _Counters(Protocol):
    def bump(self, name: str, by: int = 1) -> None: ...


class BatchHandoff:
    """Offer stored batches to ``target``; ``lost`` says what a dropped batch costs."""

    def __init__(
        self, target: queue.Queue[object], counters: _Counters, who: str, lost: str
    ) -> None:
        self._queue = target
        self._counters = counters
        self._who = who
        self._lost = lost
        self._dropping = False

    def offer(self, result: BatchResult) -> None:
        if not result.stored_data and not result.births:
            return
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            self._counters.bump("dropped_batches")
            if not self._dropping:
                log.error(
                    "%s is %d batches behind; dropping stored batches (%s) until it catches "
                    "up. Is the database slow?", self._who, self._queue.qsize(), self._lost,
                )  # fmt: skip
            self._dropping = True

    def caught_up(self) -> None:
        """The consumer took a batch: a later drop is a new streak, logged again."""
        self._dropping = False


class BatchConsumer:
    """A consumer of stored batches with its own thread (see the module docstring)."""

    def __init__(
        self, counters: _Counters, who: str, lost: str, *, thread_name: str, queue_max: int
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(queue_max)
        self._handoff = BatchHandoff(self._queue, counters, who, lost)
        self._thread: threading.Thread | None = None
        self._thread_name = thread_name

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def observe(self, result: BatchResult) -> None:
        """Ingest's batch observer: hand the stored batch to the thread; never blocks."""
        self._handoff.offer(result)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued before this call is carried out (for tests)."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        return done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Carry out what is queued, then stop the thread."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
