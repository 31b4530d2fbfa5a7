"""Helpers of the notification tests: the golden example, a recording HTTP server, golden files.

``RecordingHTTPServer``  a real ``ThreadingHTTPServer`` on a free port that records every request
                         and answers from a script (``replies``), then with a default reply
``golden(name, text)``   compares with ``golden/<name>``; with FORGELINE_UPDATE_GOLDEN=1 it
                         writes the file instead (review the diff before committing it)
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cloud.notify.message import Notification
from forgeline.processes import free_port

GOLDEN = Path(__file__).parent / "golden"
OK_ROBOT = (200, b'{"errcode":0,"errmsg":"ok"}')

# The golden example: Press 1's nozzle temperature above its high limit, raised at
# 2025-11-29 13:55:00 UTC (1764424500000 ms) and escalated to level 1 at 14:05:00 UTC.
EXAMPLE = Notification(
    alarm_id=42,
    event="escalated",
    priority="high",
    rule="nozzle_temperature_high",
    kind="high",
    message="Press 1 nozzle_temperature 192.4 °C above its high limit 190 °C",
    site="plant1",
    area="Press shop",
    line="Line 1",
    machine_id=7,
    machine="Press 1",
    metric="nozzle_temperature",
    value=192.4,
    limit=190.0,
    unit="°C",
    ts_ms=1_764_425_100_000,
    raised_ms=1_764_424_500_000,
    cause="Heater band relay K3 stuck closed",
    consequence="Short shots and burnt material (烧焦)",
    action="Check relay K3 in cabinet 2; lower zone 2 setpoint by 5 °C",
    roles=("maintenance",),
    escalation_level=1,
)


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingHTTPServer:
    """A real HTTP server in a thread. ``replies`` are (status, body) answered in turn, then
    ``default``; ``delay_s`` holds every answer back (a slow server)."""

    replies: list[tuple[int, bytes]] = field(default_factory=list)
    default: tuple[int, bytes] = OK_ROBOT
    delay_s: float = 0.0
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                request = ReceivedRequest(
                    "POST", parts.path, parts.query, parse_qs(parts.query),
                    dict(self.headers.items()), body,
                    time.monotonic(),
                )  # fmt: skip
                with recorder._lock:
                    recorder.requests.append(request)
                    status, reply = (
                        recorder.replies.pop(0) if recorder.replies else recorder.default
                    )
                    recorder._lock.notify_all()
                if recorder.delay_s:
                    time.sleep(recorder.delay_s)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """The requests, once at least ``count`` have arrived (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{len(self.requests)} requests arrived, expected {count}")
                self._lock.wait(left)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def dead_url() -> str:
    """An http URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/hook"


# --------------------------------------------------------------------------- golden files


def golden(name: str, received: str) -> None:
    """Compare ``received`` with ``golden/<name>``, or write it with FORGELINE_UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if os.environ.get("FORGELINE_UPDATE_GOLDEN") == "1":
        path.write_text(received, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with FORGELINE_UPDATE_GOLDEN=1 and review it"
    assert received == path.read_text(encoding="utf-8")


def pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)
