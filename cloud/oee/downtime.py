"""Downtime events: a machine's down, idle and setup intervals with their reasons (pure).

The reason of an interval is the operator's, if one was entered for the interval's start (state
intervals are re-derived when late data arrives and their row ids change, their starts do
not), else the PLC's: the text of its fault code from the machine's ``fault_codes``
(``{"<code>": {"reason": ..., "category": ...}}``), else none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cloud.oee.store import OperatorReason
from cloud.oee.timemodel import ClassifiedSpans

DOWNTIME_STATES = ("down", "idle", "setup")
REASON_OPERATOR = "operator"
REASON_PLC = "plc"


@dataclass(frozen=True, slots=True)
class DowntimeEvent:
    state: str
    start_ms: int
    end_ms: int | None
    """None while the machine is still in this state."""
    duration_ms: int
    """Whole length of the interval (up to now while open), not clipped to the window."""
    in_window_ms: int
    micro_stop: bool
    fault_code: str | None
    reason: str | None
    category: str | None
    reason_source: str | None
    """``operator``, ``plc`` or None (no reason known)."""
    entered_by: str | None = None
    entered_ms: int | None = None
    comment: str | None = None


def downtime_events(
    classified: ClassifiedSpans,
    from_ms: int,
    to_ms: int,
    fault_codes: Mapping[str, Mapping[str, str]],
    operator_reasons: Mapping[int, OperatorReason],
) -> list[DowntimeEvent]:
    """Down/idle/setup intervals overlapping ``[from_ms, to_ms)``, oldest first."""
    out = []
    for span, micro in zip(classified.spans, classified.micro, strict=True):
        if span.state not in DOWNTIME_STATES:
            continue
        in_window = min(span.end_ms, to_ms) - max(span.start_ms, from_ms)
        if in_window <= 0:
            continue
        operator = operator_reasons.get(span.start_ms)
        plc = fault_codes.get(span.fault_code) if span.fault_code is not None else None
        reason: str | None
        category: str | None
        source: str | None
        if operator is not None:
            reason, category, source = operator.reason, operator.category, REASON_OPERATOR
        elif plc is not None:
            reason, category, source = plc.get("reason"), plc.get("category"), REASON_PLC
        else:
            reason, category, source = None, None, None
        out.append(
            DowntimeEvent(
                state=span.state,
                start_ms=span.start_ms,
                end_ms=None if span.is_open else span.end_ms,
                duration_ms=span.end_ms - span.start_ms,
                in_window_ms=in_window,
                micro_stop=micro,
                fault_code=span.fault_code,
                reason=reason,
                category=category,
                reason_source=source,
                entered_by=operator.entered_by if operator else None,
                entered_ms=operator.entered_ms if operator else None,
                comment=operator.comment if operator else None,
            )
        )
    return out
