"""The store-and-forward log: every outgoing message is on disk before it is published.

A message stays in the log until the cloud acknowledges that it stored it (a broker PUBACK is
not enough). The log is SQLite in WAL mode with ``synchronous=FULL``: an industrial PC that loses
power keeps every message it had accepted. The same transaction that appends a message adds its
samples to the per-device counters, so "published" is exact across crashes.

Send times are kept in memory only: after a restart every message in the log counts as unsent
and is drained again through the backlog lane (the cloud drops what it already has).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from protocols import clock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    device TEXT,
    samples INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    UNIQUE (session, seq)
);
CREATE TABLE IF NOT EXISTS counters (
    device TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (device, name)
);
"""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message ready for the log: its bytes are final (a re-send is byte-identical)."""

    session: str
    seq: int
    topic: str
    payload: bytes
    device: str | None
    samples: int
    created_ms: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message read back from the log for (re-)sending."""

    rowid: int
    session: str
    seq: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Depth:
    messages: int
    bytes: int
    oldest_created_ms: int | None


class Outbox:
    """The durable log of one edge agent. Use from one thread (the agent's event loop)."""

    def __init__(self, path: Path, max_bytes: int, max_age_s: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_ms = int(max_age_s * 1000)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox")
        self._messages, self._bytes = row.fetchone()

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ writing

    def append(
        self, messages: Sequence[OutgoingMessage], counts: Iterable[tuple[str, str, int]] = ()
    ) -> None:
        """Append messages and add ``(device, counter, n)`` increments in ONE durable commit."""
        rows = [
            (m.session, m.seq, m.topic, m.payload, m.device, m.samples, m.created_ms)
            for m in messages
        ]
        increments = list(counts)
        increments += [(m.device, "published", m.samples) for m in messages if m.device]
        with self._transaction():
            self._db.executemany(
                "INSERT INTO outbox (session, seq, topic, payload, device, samples, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._add_counts(increments)
        self._messages += len(rows)
        self._bytes += sum(len(m.payload) for m in messages)

    def acknowledge(self, session: str, ranges: Iterable[tuple[int, int]]) -> int:
        """Delete what the cloud stored; returns how many messages that removed."""
        removed = 0
        with self._transaction():
            for first, last in ranges:
                cur = self._db.execute(
                    "DELETE FROM outbox WHERE session = ? AND seq BETWEEN ? AND ?"
                    " RETURNING LENGTH(payload)",
                    (session, first, last),
                )
                sizes = [r[0] for r in cur.fetchall()]
                removed += len(sizes)
                self._bytes -= sum(sizes)
        self._messages -= removed
        return removed

    def enforce_limits(self, now_ms: int | None = None) -> int:
        """Drop messages past the age limit, then the oldest past the size limit; count them."""
        now_ms = clock.now_ms() if now_ms is None else now_ms
        dropped = self._drop("created_ms < ?", (now_ms - self.max_age_ms,), "dropped_age")
        while self._bytes > self.max_bytes and self._messages > 0:
            excess = self._bytes - self.max_bytes
            cutoff = self._db.execute(
                "SELECT id FROM (SELECT id, SUM(LENGTH(payload)) OVER (ORDER BY id) AS running"
                " FROM outbox) WHERE running >= ? ORDER BY id LIMIT 1",
                (excess,),
            ).fetchone()
            if cutoff is None:
                break
            dropped += self._drop("id <= ?", (cutoff[0],), "dropped_size")
        return dropped

    def _drop(self, where: str, params: tuple[int, ...], reason: str) -> int:
        with self._transaction():
            rows = self._db.execute(
                f"DELETE FROM outbox WHERE {where} RETURNING device, samples, LENGTH(payload)",  # noqa: S608
                params,
            ).fetchall()
            per_device: dict[str, int] = {}
            for device, samples, _size in rows:
                if device:
                    per_device[device] = per_device.get(device, 0) + samples
            self._add_counts(
                [(d, f"{reason}_samples", n) for d, n in per_device.items()]
                + [("*", f"{reason}_messages", len(rows))]
            )
        self._messages -= len(rows)
        self._bytes -= sum(r[2] for r in rows)
        return len(rows)

    def add_counts(self, counts: Iterable[tuple[str, str, int]]) -> None:
        with self._transaction():
            self._add_counts(list(counts))

    def _add_counts(self, increments: Sequence[tuple[str | None, str, int]]) -> None:
        self._db.executemany(
            "INSERT INTO counters (device, name, value) VALUES (?, ?, ?)"
            " ON CONFLICT (device, name) DO UPDATE SET value = value + excluded.value",
            [(d, name, n) for d, name, n in increments if d and n],
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # ------------------------------------------------------------------ reading

    def after(self, rowid: int, limit: int) -> list[StoredMessage]:
        """Messages after ``rowid`` in log order (the backlog lane walks the log with this)."""
        rows = self._db.execute(
            "SELECT id, session, seq, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (rowid, limit),
        ).fetchall()
        return [StoredMessage(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    def depth(self) -> Depth:
        oldest = self._db.execute("SELECT MIN(created_ms) FROM outbox").fetchone()[0]
        return Depth(self._messages, self._bytes, oldest)

    def pending_samples(self) -> dict[str, int]:
        """Samples per device still waiting for the cloud's acknowledgement."""
        rows = self._db.execute(
            "SELECT device, SUM(samples) FROM outbox WHERE device IS NOT NULL GROUP BY device"
        ).fetchall()
        return {device: int(n) for device, n in rows}

    def counters(self) -> dict[str, dict[str, int]]:
        """``{device: {counter: value}}``: read, published, dropped_* ..."""
        out: dict[str, dict[str, int]] = {}
        for device, name, value in self._db.execute("SELECT device, name, value FROM counters"):
            out.setdefault(device, {})[name] = value
        return out


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def read_outbox_summary(path: Path) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Pending samples and counters of an agent's log, read by another process (the demo report)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pending = {
            d: int(n)
            for d, n in db.execute(
                "SELECT device, SUM(samples) FROM outbox WHERE device IS NOT NULL GROUP BY device"
            )
        }
        counters: dict[str, dict[str, int]] = {}
        for device, name, value in db.execute("SELECT device, name, value FROM counters"):
            counters.setdefault(device, {})[name] = value
        return pending, counters
    finally:
        db.close()
