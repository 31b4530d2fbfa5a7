"""Counters of a long-running part (ingest, alarms, binder, SPC): bumped from any thread, read
as one consistent snapshot (``GET /api/ingest/stats`` and the logs show them)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Counters:
    """Thread-safe counters; a subclass declares its own ``int`` / ``float`` fields."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + by)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
