"""The local clock in integer epoch milliseconds (UTC), the unit of every wire timestamp."""

from __future__ import annotations

import time


def now_ms() -> int:
    """The local clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000
