"""The delivery recorder: writes off the caller's thread, keeps records while the database
cannot take them, and writes them once it can (a real SQLite file migrated late)."""

from __future__ import annotations

import time

from sqlalchemy import select

from cloud.db import create_engine_for, migrate
from cloud.notify.models import NotificationDelivery
from cloud.notify.recorder import DeliveryRecord, DeliveryRecorder
from tests.cloud.notify.notify_kit import wait_until


def record(key: str, status: str, attempts: int, error: str | None = None) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_key=key, alarm_id=42, channel="hook", channel_type="webhook",
        event="raised", priority="high", escalation_level=0, message="Press 1 too hot",
        status=status, attempts=attempts, last_error=error, notification_ms=1_000,
        created_ms=2_000, updated_ms=2_000 + attempts,
    )  # fmt: skip


def test_records_wait_for_the_database_and_the_newest_state_wins(tmp_path):
    url = f"sqlite:///{tmp_path / 'late.db'}"
    engine = create_engine_for(url)  # no tables yet: every write fails
    recorder = DeliveryRecorder(engine, retry_max_s=0.2)
    recorder.start()
    try:
        started = time.perf_counter()
        recorder.record(record("a" * 32, "pending", 0))
        recorder.record(record("a" * 32, "pending", 1, "HTTP 500"))
        recorder.record(record("b" * 32, "failed", 0, "not sent: the dispatcher stopped"))
        # queued, not written, by the caller: a write would wait out its retries (0.2 s each)
        assert time.perf_counter() - started < 0.15
        wait_until(lambda: recorder.snapshot()["write_errors"] >= 1, what="a failed write")
        assert recorder.snapshot()["queued"] == 3

        migrate(url)
        recorder.record(record("a" * 32, "sent", 2, "HTTP 500"))
        recorder.record(record("a" * 32, "pending", 1, "HTTP 500"))  # late and older: ignored
        assert recorder.flush(10)
    finally:
        recorder.stop()
    with engine.connect() as conn:
        rows = {r.delivery_key[0]: r for r in conn.execute(select(NotificationDelivery))}
    engine.dispose()
    assert (rows["a"].status, rows["a"].attempts, rows["a"].last_error) == ("sent", 2, "HTTP 500")
    assert (rows["b"].status, rows["b"].attempts) == ("failed", 0)
    assert recorder.snapshot()["written"] == 5
