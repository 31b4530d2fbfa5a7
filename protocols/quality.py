"""Quality codes: each sample says on its own whether its value can be trusted, and why not."""

from __future__ import annotations

from enum import StrEnum


class Quality(StrEnum):
    """OPC UA's three severities, which every field bus can be mapped onto."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


# Reasons are short, namespaced strings: where the verdict came from, then what it was.
REASON_NOT_CONNECTED = "comm:not_connected"
REASON_TIMEOUT = "comm:timeout"
REASON_STALE = "comm:stale"
REASON_NOT_FINITE = "value:not_finite"
REASON_DECODE = "value:decode_error"
REASON_UNKNOWN_NODE = "opcua:BadNodeIdUnknown"


def modbus_exception_reason(code: int) -> str:
    """The reason for a Modbus exception response, e.g. ``modbus:exception:2``."""
    return f"modbus:exception:{code}"


def opcua_status_reason(status_name: str) -> str:
    """The reason for an OPC UA StatusCode, e.g. ``opcua:BadSensorFailure``."""
    return f"opcua:{status_name}"
