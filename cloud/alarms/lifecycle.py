"""The ISA-18.2 alarm lifecycle as a pure state machine.

::

    normal ──activate──▶ active_unack ──acknowledge──▶ active_ack
                           │    ▲                          │
                    return │    │ activate                 │ return
                           ▼    │                          ▼
                         rtn_unack ───acknowledge───▶ cleared (= normal; the alarm row closes)

Shelving is orthogonal (a shelved point records its transitions but notifies nobody), and so
is escalation (an ``active_unack`` alarm escalates one level per escalation delay).
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.alarms.models import ACTIVE_ACK, ACTIVE_UNACK, CLEARED, RTN_UNACK
from cloud.notify.message import NotificationEvent


@dataclass(frozen=True, slots=True)
class Step:
    """A lifecycle transition: the state after it, the event to record and tell, and whether
    it opens a new alarm row or closes the open one."""

    state: str
    event: NotificationEvent
    opens: bool = False
    closes: bool = False


def on_activate(state: str | None) -> Step | None:
    """The condition became abnormal (``state`` None: no open alarm at this point)."""
    if state is None or state == CLEARED:
        return Step(ACTIVE_UNACK, "raised", opens=True)
    if state == RTN_UNACK:
        return Step(ACTIVE_UNACK, "raised")
    return None  # already active: nothing happens


def on_return(state: str | None) -> Step | None:
    """The condition returned to normal."""
    if state == ACTIVE_UNACK:
        return Step(RTN_UNACK, "returned_to_normal")
    if state == ACTIVE_ACK:
        return Step(CLEARED, "cleared", closes=True)
    return None


def on_acknowledge(state: str | None) -> Step | None:
    """Someone acknowledged; None when there is nothing to acknowledge."""
    if state == ACTIVE_UNACK:
        return Step(ACTIVE_ACK, "acknowledged")
    if state == RTN_UNACK:
        return Step(CLEARED, "acknowledged", closes=True)
    return None


def next_escalation_ms(from_ms: int, level: int, delay_ms: int | None, levels: int) -> int | None:
    """When level ``level + 1`` is due: one delay after ``from_ms`` (when the alarm was raised,
    or when the previous level was due); None after the last level or without a delay."""
    if delay_ms is None or level >= levels:
        return None
    return from_ms + delay_ms
