"""Delivery records written off the caller's thread: one writer thread, batched upserts.

Every state of a delivery (pending when routed, after each attempt, sent or failed) is handed
to ``record``, which only queues it. The writer thread upserts batches into
``notification_delivery`` keyed by ``delivery_key`` (the newest state of a key wins; attempts
never go backwards). While the database is down the batch is kept and retried with backoff; a
full queue drops the record (counted, logged once).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cloud.db import dialect_insert, table_of, writer_engine
from cloud.notify.models import NotificationDelivery

log = logging.getLogger(__name__)

_table = table_of(NotificationDelivery)
_UPDATED = ("status", "attempts", "last_error", "updated_ms", "sent_ms")


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One state of one delivery, as stored."""

    delivery_key: str
    alarm_id: int
    channel: str
    channel_type: str
    event: str
    priority: str
    escalation_level: int
    message: str
    status: str  # pending | sent | failed
    attempts: int
    last_error: str | None
    notification_ms: int
    created_ms: int
    updated_ms: int
    sent_ms: int | None = None


@dataclass
class RecorderCounters:
    written: int = 0
    write_errors: int = 0
    dropped_queue_full: int = 0


class DeliveryRecorder:
    """Queues delivery records and writes them in batches on its own thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        queue_max: int = 100_000,
        batch_max: int = 500,
        retry_max_s: float = 30.0,
    ) -> None:
        self._engine = writer_engine(engine)
        self._queue: queue.Queue[DeliveryRecord] = queue.Queue(queue_max)
        self._batch_max = batch_max
        self._retry_max_s = retry_max_s
        self.counters = RecorderCounters()
        self._lock = threading.Condition()
        self._outstanding = 0  # queued or being written
        self._stopping = threading.Event()
        self._overflowing = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ callers

    def record(self, record: DeliveryRecord) -> None:
        """Queue ``record`` for writing; never blocks, never raises."""
        with self._lock:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self.counters.dropped_queue_full += 1
                if not self._overflowing:
                    self._overflowing = True
                    log.error(
                        "notification deliveries: the record queue is full (%d); records are "
                        "dropped until the database catches up",
                        self._queue.maxsize,
                    )
                return
            self._outstanding += 1

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is written; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {**asdict(self.counters), "queued": self._outstanding}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notify-recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (for up to ``timeout`` seconds), then stop the thread."""
        self.flush(timeout)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self._outstanding:
                log.error(
                    "notification deliveries: %d records were not written (database down?)",
                    self._outstanding,
                )

    # ------------------------------------------------------------------ writer thread

    def _take(self, first_timeout: float) -> list[DeliveryRecord]:
        batch: list[DeliveryRecord] = []
        try:
            batch.append(self._queue.get(timeout=first_timeout))
        except queue.Empty:
            return batch
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        pending: list[DeliveryRecord] = []
        delay = 0.0
        failing = False
        while True:
            if not pending:
                if self._stopping.is_set() and self._queue.empty():
                    return
                pending = self._take(0.2)
                if not pending:
                    continue
            try:
                self.write(pending)
            except SQLAlchemyError as error:
                with self._lock:
                    self.counters.write_errors += 1
                if not failing:
                    log.error("notification deliveries: cannot write records (%s); retrying", error)
                failing = True
                delay = min(self._retry_max_s, max(0.2, delay * 2))
                if self._stopping.wait(delay):
                    return
                continue
            if failing:
                log.info("notification deliveries: writing records again")
            failing, delay = False, 0.0
            with self._lock:
                self.counters.written += len(pending)
                self._outstanding -= len(pending)
                if self._overflowing and self._queue.qsize() < self._queue.maxsize // 2:
                    self._overflowing = False
                self._lock.notify_all()
            pending = []

    def write(self, records: list[DeliveryRecord]) -> None:
        """Upsert ``records`` in one transaction: per key, the last state with the most attempts
        wins (a state with fewer attempts than the stored one never overwrites it)."""
        newest: dict[str, DeliveryRecord] = {}
        for record in records:
            held = newest.get(record.delivery_key)
            if held is None or record.attempts >= held.attempts:
                newest[record.delivery_key] = record
        rows = [asdict(record) for record in newest.values()]
        with self._engine.begin() as conn:
            stmt = dialect_insert(conn, _table).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=["delivery_key"],
                set_={name: stmt.excluded[name] for name in _UPDATED},
                where=_table.c.attempts <= stmt.excluded.attempts,
            )
            conn.execute(stmt)
