"""What the alarm engine hands to notification: one alarm transition, and the seam it goes through.

The alarm engine (``cloud.alarms``) builds a ``Notification`` for every transition worth telling
people about and calls ``Notifier.submit``; the dispatcher (``cloud.notify``) routes it by
priority, line, role and escalation level to channels (WebSocket, MQTT, webhook, DingTalk,
WeCom, email) and delivers it with retries. ``submit`` never blocks and never raises, so a slow
or failing channel can never hold up ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Priority = Literal["critical", "high", "medium", "low"]
PRIORITIES: tuple[Priority, ...] = ("critical", "high", "medium", "low")

NotificationEvent = Literal[
    "raised",  # became active (unacknowledged)
    "acknowledged",  # someone acknowledged it (``actor``, ``comment``)
    "cleared",  # returned to normal after it was acknowledged: the alarm is over
    "returned_to_normal",  # returned to normal while still unacknowledged (ISA-18.2 "RTN unack")
    "escalated",  # still unacknowledged after the rule's escalation delay; ``escalation_level`` > 0
    "shelved",  # shelved by someone until ``shelved_until_ms``
    "unshelved",  # the shelf expired or was lifted
]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = (
    "raised", "acknowledged", "cleared", "returned_to_normal", "escalated", "shelved", "unshelved",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Notification:
    """One alarm transition, with everything a person needs to act on it."""

    alarm_id: int
    event: NotificationEvent
    priority: Priority
    rule: str  # the rule's name, e.g. "nozzle_temperature_high"
    kind: str  # the rule kind: high, low, high_high, low_low, rate_of_change, stale, ...
    message: str  # one line: "Press 1 nozzle_temperature 192.4 °C above its high limit 190 °C"
    site: str
    area: str | None
    line: str | None
    machine_id: int
    machine: str  # the machine's name
    metric: str | None
    value: float | None  # the value that caused the transition, where there is one
    limit: float | None
    unit: str | None
    ts_ms: int  # when the transition happened (source time of the deciding sample)
    raised_ms: int  # when the alarm became active
    cause: str | None = None  # help text: the likely cause
    consequence: str | None = None  # help text: what happens if nobody acts
    action: str | None = None  # help text: the corrective action
    roles: tuple[str, ...] = ()  # who the rule addresses, e.g. ("maintenance", "quality")
    escalation_level: int = 0  # 0 for the first notice, 1.. for each escalation step
    actor: str | None = None  # who acknowledged or shelved
    comment: str | None = None
    shelved_until_ms: int | None = None


class Notifier(Protocol):
    """Where the alarm engine sends notifications; ``submit`` returns at once and never raises."""

    def submit(self, notification: Notification) -> None: ...
