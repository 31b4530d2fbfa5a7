"""Handing stored batches from the ingest writer thread to a consumer's own thread.

``BatchHandoff.offer`` runs in the writer thread and never blocks: a full queue drops the
batch, counts it in ``dropped_batches`` and logs once per streak (what is lost, and the likely
cause); the consumer calls ``caught_up`` when it takes a batch, which ends the streak. The
alarm engine and the unit binder use it, each with its own queue and wording.
"""

from __future__ import annotations

import logging
import queue
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
