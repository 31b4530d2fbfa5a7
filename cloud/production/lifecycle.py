"""The ISA-95 lifecycles of a work order and of its operations, as explicit transition tables.

Pure code: ``next_state(kind, name, state, action)`` answers the new state or raises
``IllegalTransition``, whose message names the object, its state, the requested action and
the actions allowed from that state.

CloudError
└── IllegalTransition      an action not allowed from the object's current state (HTTP 409)
"""

from __future__ import annotations

from collections.abc import Mapping

from cloud.errors import CloudError

PLANNED = "planned"
RELEASED = "released"
RUNNING = "running"
HELD = "held"
COMPLETED = "completed"
CLOSED = "closed"
ABORTED = "aborted"
WORK_ORDER_STATES = (PLANNED, RELEASED, RUNNING, HELD, COMPLETED, CLOSED, ABORTED)

PENDING = "pending"
READY = "ready"
PAUSED = "paused"
FINISHED = "finished"
OPERATION_STATES = (PENDING, READY, RUNNING, PAUSED, FINISHED)

# (state) -> {action: new state}; an action missing here is illegal from that state.
WORK_ORDER_TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    PLANNED: {"release": RELEASED, "abort": ABORTED},
    RELEASED: {"start": RUNNING, "hold": HELD, "abort": ABORTED},
    RUNNING: {"hold": HELD, "complete": COMPLETED, "abort": ABORTED},
    HELD: {"resume": RUNNING, "abort": ABORTED},
    COMPLETED: {"close": CLOSED},
    ABORTED: {"close": CLOSED},
    CLOSED: {},
}
WORK_ORDER_ACTIONS = ("release", "start", "hold", "resume", "complete", "close", "abort")

# "ready" is taken by the service (the first operation on release, the next one when its
# predecessor finishes); "report" adds counts and keeps the state.
OPERATION_TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    PENDING: {"ready": READY},
    READY: {"start": RUNNING},
    RUNNING: {"pause": PAUSED, "finish": FINISHED, "report": RUNNING},
    PAUSED: {"resume": RUNNING, "finish": FINISHED, "report": PAUSED},
    FINISHED: {},
}
OPERATION_ACTIONS = ("start", "pause", "resume", "finish", "report")


class IllegalTransition(CloudError):
    """An action that the object's current state does not allow."""

    def __init__(self, subject: str, state: str, action: str, allowed: tuple[str, ...]) -> None:
        self.subject, self.state, self.action, self.allowed = subject, state, action, allowed
        allowed_text = ", ".join(allowed) if allowed else "none (final state)"
        super().__init__(f"{subject} is {state}: cannot {action}; allowed actions: {allowed_text}")


def _next(table: Mapping[str, Mapping[str, str]], subject: str, state: str, action: str) -> str:
    if state not in table:
        raise ValueError(f"{subject} has an unknown state {state!r}")
    moves = table[state]
    if action not in moves:
        raise IllegalTransition(subject, state, action, tuple(moves))
    return moves[action]


def work_order_next(subject: str, state: str, action: str) -> str:
    """The work order's state after ``action``; ``subject`` names it in the error."""
    return _next(WORK_ORDER_TRANSITIONS, subject, state, action)


def operation_next(subject: str, state: str, action: str) -> str:
    """The operation's state after ``action``; ``subject`` names it in the error."""
    return _next(OPERATION_TRANSITIONS, subject, state, action)
