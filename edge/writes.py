"""Southbound writes: commands from the cloud checked against the profile and audited on disk.

A write is carried out only for a tag the profile marks ``writable``, with a value of the
tag's type inside its engineering limits, from a command that is not older than
``command_max_age_s`` (a command queued by the broker during an outage must not move a machine
minutes later) and not seen before (QoS 1 may deliver a command twice). Every request, carried
out or not, is recorded in ``<data_dir>/audit.sqlite``: when, who, what, and the result.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from protocols.profile import Profile
from protocols.wire import CommandMessage, Value

Result = Literal["ok", "rejected", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS write_audit (
    command_id TEXT PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    user TEXT,
    device TEXT,
    metric TEXT,
    value TEXT,
    result TEXT NOT NULL,
    detail TEXT,
    done_ms INTEGER
);
"""


@dataclass(frozen=True, slots=True)
class WriteRequest:
    command_id: str
    created_ms: int
    user: str | None
    device: str | None
    metric: str | None
    value: Value

    @classmethod
    def from_command(cls, command: CommandMessage) -> WriteRequest:
        args = command.args

        def text(key: str) -> str | None:
            value = args.get(key)
            return value if isinstance(value, str) else None

        return cls(command.command_id, command.created_ms, text("user"), text("device"),
                   text("metric"), args.get("value"))  # fmt: skip


def check_write(profile: Profile, metric: str, value: Value) -> str | None:
    """Why this write must not be carried out, or None if it may."""
    try:
        tag = profile.tag(metric)
    except KeyError:
        return f"{profile.model} has no tag {metric!r}"
    if not tag.writable:
        return f"tag {metric!r} is not writable (the profile does not mark it writable)"
    if tag.type == "bool" or (tag.type == "bitfield" and tag.bit is not None):
        if not isinstance(value, bool):
            return f"tag {metric!r} takes true or false, got {value!r}"
        return None
    if tag.type == "string":
        if not isinstance(value, str):
            return f"tag {metric!r} takes a string, got {value!r}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"tag {metric!r} takes a number, got {value!r}"
    limits = tag.limits
    if limits is not None and limits.low is not None and value < limits.low:
        return f"{value} is below the low limit {limits.low:g} of {metric!r}"
    if limits is not None and limits.high is not None and value > limits.high:
        return f"{value} is above the high limit {limits.high:g} of {metric!r}"
    return None


class WriteAudit:
    """The durable record of every write request an edge received."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def begin(self, request: WriteRequest, received_ms: int) -> bool:
        """Record a request before acting on it; False if its command id was seen before."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO write_audit (command_id, received_ms, created_ms, user,"
            " device, metric, value, result) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
            (request.command_id, received_ms, request.created_ms, request.user, request.device,
             request.metric, json.dumps(request.value)),
        )  # fmt: skip
        return cursor.rowcount == 1

    def finish(self, command_id: str, result: Result, detail: str) -> None:
        self._db.execute(
            "UPDATE write_audit SET result = ?, detail = ?, done_ms = ? WHERE command_id = ?",
            (result, detail, time.time_ns() // 1_000_000, command_id),
        )

    def records(self) -> list[dict[str, object]]:
        cursor = self._db.execute("SELECT * FROM write_audit ORDER BY received_ms")
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self._db.close()
