"""The store-and-forward log: durable append, ack deletes, limits with counters, reopen."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

from edge.buffer import Outbox, OutgoingMessage, read_outbox_summary


def _msg(seq: int, device: str = "cnc-01", samples: int = 3, size: int = 100,
         created: int = 1_000, session: str = "s1") -> OutgoingMessage:  # fmt: skip
    return OutgoingMessage(session, seq, f"t/{device}", bytes([seq % 256]) * size, device, samples,
                           created + seq)  # fmt: skip


def test_append_counts_published_samples_in_the_same_commit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "log.sqlite", max_bytes=10**6, max_age_s=3600)
    box.append([_msg(1), _msg(2, device="press-01", samples=5)], [("cnc-01", "read", 10)])
    assert box.counters() == {
        "cnc-01": {"read": 10, "published": 3},
        "press-01": {"published": 5},
    }
    assert box.pending_samples() == {"cnc-01": 3, "press-01": 5}
    depth = box.depth()
    assert (depth.messages, depth.bytes, depth.oldest_created_ms) == (2, 200, 1_001)


def test_acknowledged_ranges_are_deleted_and_nothing_else(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "log.sqlite", max_bytes=10**6, max_age_s=3600)
    box.append([_msg(i) for i in range(1, 11)])
    assert box.acknowledge("s1", [(1, 3), (7, 8)]) == 5
    assert box.acknowledge("other-session", [(1, 10)]) == 0
    assert [m.seq for m in box.after(0, 100)] == [4, 5, 6, 9, 10]
    assert box.depth().messages == 5
    assert box.depth().bytes == 500


def test_log_survives_reopen_with_payloads_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    originals = [_msg(i) for i in range(1, 4)]
    box.append(originals)
    box.close()
    reopened = Outbox(path, max_bytes=10**6, max_age_s=3600)
    again = reopened.after(0, 10)
    assert [(m.session, m.seq, m.topic, m.payload) for m in again] == [
        (m.session, m.seq, m.topic, m.payload) for m in originals
    ]
    assert reopened.depth().bytes == 300


def test_age_and_size_limits_drop_oldest_and_count_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "log.sqlite", max_bytes=450, max_age_s=10)
    box.append([_msg(i, created=0) for i in range(1, 6)])  # 500 bytes, created 1..5 ms
    # nothing is old yet; the size limit drops the oldest message
    assert box.enforce_limits(now_ms=6) == 1
    assert [m.seq for m in box.after(0, 10)] == [2, 3, 4, 5]
    # 10 s later everything is past the age limit
    assert box.enforce_limits(now_ms=20_000) == 4
    counters = box.counters()
    assert counters["cnc-01"]["dropped_size_samples"] == 3
    assert counters["cnc-01"]["dropped_age_samples"] == 12
    assert counters["*"] == {"dropped_size_messages": 1, "dropped_age_messages": 4}
    assert box.depth().messages == 0


def _append_forever(path: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    box = Outbox(Path(path), max_bytes=10**9, max_age_s=3600)
    seq = 0
    while True:
        seq += 1
        box.append([_msg(seq)])
        if seq == 50:
            ready.set()


def test_a_killed_writer_loses_no_committed_message(tmp_path: Path) -> None:
    """SIGKILL in the middle of appends: every committed message is there, counters agree."""
    path = tmp_path / "log.sqlite"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    writer = ctx.Process(target=_append_forever, args=(str(path), ready))
    writer.start()
    assert ready.wait(30)
    os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
    writer.join()
    pending, counters = read_outbox_summary(path)
    box = Outbox(path, max_bytes=10**9, max_age_s=3600)
    seqs = [m.seq for m in box.after(0, 10**6)]
    assert len(seqs) >= 50
    assert seqs == list(range(1, len(seqs) + 1))  # no hole
    assert counters["cnc-01"]["published"] == 3 * len(seqs) == pending["cnc-01"]
