"""Suggested maintenance work orders: created or updated by the condition monitor, moved by people.

One suggestion is live (``open`` or ``accepted``) per machine × kind, whichever worker writes
it: ``suggest`` creates it or updates its reason and evidence (its due date only moves
earlier). ``move_suggestion`` walks the lifecycle in ``SUGGESTION_MOVES``; a move it does not
allow, or one that lost a race with another writer, raises ``IllegalSuggestionMove``
(an ``InvalidRequest``; the API answers 409). A dismissed or done suggestion frees its
machine × kind for a new one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, select, update

from cloud.db import dialect_insert, table_of
from cloud.errors import InvalidRequest, NotFound
from cloud.maintenance.models import LIVE_STATES, MaintenanceSuggestion, suggestion_open_key

HOUR_MS = 3_600_000
_suggestion = table_of(MaintenanceSuggestion)

SUGGESTION_MOVES: dict[str, tuple[str, ...]] = {
    "open": ("accepted", "dismissed", "done"),
    "accepted": ("done", "dismissed"),
    "dismissed": (),
    "done": (),
}


def due_after(from_ms: int, hours: float | None) -> int | None:
    """A due date ``hours`` after ``from_ms`` (a negative estimate is due at once; None: none)."""
    return None if hours is None else from_ms + round(max(hours, 0.0) * HOUR_MS)


class IllegalSuggestionMove(InvalidRequest):
    """A status change the suggestion's lifecycle does not allow (the message says which)."""


def suggest(
    conn: Connection, machine_id: int, kind: str, *, reason: str, evidence: dict[str, Any],
    due_by_ms: int | None, now_ms: int,
) -> int:  # fmt: skip
    """Create the machine's live suggestion of ``kind``, or update the evidence of the one there
    is (its due date only moves earlier). Answers its id."""
    key = suggestion_open_key(machine_id, kind)
    for _attempt in range(5):
        row = conn.execute(
            select(_suggestion.c.id, _suggestion.c.due_by_ms).where(_suggestion.c.open_key == key)
        ).first()
        if row is not None:
            due = due_by_ms
            if row.due_by_ms is not None:
                due = row.due_by_ms if due is None else min(int(row.due_by_ms), due)
            done = conn.execute(
                update(_suggestion)
                .where(and_(_suggestion.c.id == row.id, _suggestion.c.open_key == key))
                .values(reason=reason, evidence=evidence, due_by_ms=due, updated_ms=now_ms)
            )
            if done.rowcount:
                return int(row.id)
            continue
        stmt = dialect_insert(conn, _suggestion).values(
            machine_id=machine_id, kind=kind, reason=reason, evidence=evidence,
            due_by_ms=due_by_ms, status="open", open_key=key, created_ms=now_ms,
            updated_ms=now_ms, updated_by=None, comment=None,
        )  # fmt: skip
        new_id = conn.execute(
            stmt.on_conflict_do_nothing(index_elements=["open_key"]).returning(_suggestion.c.id)
        ).scalar()
        if new_id is not None:
            return int(new_id)
    raise RuntimeError(f"maintenance suggestion {key}: gave up after conflicting writers")


def move_suggestion(
    conn: Connection, suggestion_id: int, status: str, *, by: str, comment: str | None,
    now_ms: int,
) -> None:  # fmt: skip
    """Change a suggestion's status (open → accepted | dismissed | done, accepted → done |
    dismissed); a dismissed or done suggestion frees its machine × kind for a new one."""
    row = conn.execute(
        select(_suggestion.c.status).where(_suggestion.c.id == suggestion_id)
    ).first()
    if row is None:
        raise NotFound(f"maintenance suggestion {suggestion_id} does not exist")
    allowed = SUGGESTION_MOVES.get(row.status, ())
    if status not in allowed:
        choices = ", ".join(allowed) or "nothing (it is closed)"
        raise IllegalSuggestionMove(
            f"status: suggestion {suggestion_id} is {row.status}; it can move to {choices}"
        )
    values: dict[str, Any] = {"status": status, "updated_ms": now_ms, "updated_by": by,
                              "comment": comment}  # fmt: skip
    if status not in LIVE_STATES:
        values["open_key"] = None
    done = conn.execute(
        update(_suggestion)
        .where(and_(_suggestion.c.id == suggestion_id, _suggestion.c.status == row.status))
        .values(**values)
    )
    if not done.rowcount:
        raise IllegalSuggestionMove(
            f"status: suggestion {suggestion_id} was changed by someone else meanwhile; "
            "read it again"
        )
