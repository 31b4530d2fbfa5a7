"""Query-parameter parsing: times (ISO 8601 or epoch milliseconds) and durations (``1m``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cloud.errors import InvalidRequest

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {None: 1, "ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_time_ms(value: str, name: str) -> int:
    """``2026-01-05T08:00:00Z``, ``2026-01-05T08:00:00+08:00`` or ``1767600000000`` → epoch ms.

    A time without an offset is taken as UTC.
    """
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{name}={value!r} is neither an ISO 8601 time (2026-01-05T08:00:00Z) nor epoch "
            "milliseconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def parse_duration_ms(value: str, name: str) -> int:
    """``500ms``, ``10s``, ``1m``, ``1h``, ``1d`` or plain milliseconds → milliseconds (> 0)."""
    match = _DURATION.match(value)
    if match is None or int(match[1]) <= 0:
        raise InvalidRequest(
            f"{name}={value!r}: give a positive duration such as 1s, 1m, 1h or milliseconds"
        )
    return int(match[1]) * _UNIT_MS[match[2]]
