"""How a notification reads: headline and subject, plain text, markdown, and the JSON body.

Pure functions of a ``Notification`` and a ``RenderContext`` (time zone, alarm link template).
The JSON body (``notification_body``) is the one the webhook, MQTT and WebSocket channels
send; it is versioned (``"v": 1``) and carries every field of the notification::

    {"v": 1, "type": "alarm_notification", "alarm_id": 42, "event": "raised",
     "priority": "high", "rule": "nozzle_temperature_high", ..., "shelved_until_ms": null,
     "title": "[HIGH] Press 1: nozzle_temperature above high limit",
     "link": "https://mom.plant.local/alarms/42"}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cloud.notify.message import Notification

BODY_VERSION = 1
BODY_TYPE = "alarm_notification"

# What a rule kind says after the metric, e.g. "nozzle_temperature above high limit".
KIND_PHRASES = {
    "high": "above high limit",
    "high_high": "above high-high limit",
    "low": "below low limit",
    "low_low": "below low-low limit",
    "rate_of_change": "changing faster than allowed",
    "stale": "no fresh data",
    "bad_quality": "bad quality",
    "state_duration": "in one state too long",
    "counter_stalled": "counter stopped counting",
}


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What rendering needs besides the notification: the plant's time zone and link."""

    timezone: str = "UTC"
    alarm_link: str | None = None  # e.g. "https://mom.plant.local/alarms/{alarm_id}"

    def link(self, notification: Notification) -> str | None:
        if self.alarm_link is None:
            return None
        return self.alarm_link.format(
            alarm_id=notification.alarm_id,
            machine_id=notification.machine_id,
            site=notification.site,
        )

    def time(self, ts_ms: int) -> str:
        """``2026-11-29 14:03:07 CST``: local time of the plant, to the second."""
        moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).astimezone(ZoneInfo(self.timezone))
        return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def number(value: float) -> str:
    """A measured value as people read it: ``192.4``, ``1500``, ``0.000123``."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def quantity(value: float | None, unit: str | None) -> str | None:
    if value is None:
        return None
    return f"{number(value)} {unit}" if unit else number(value)


def headline(notification: Notification) -> str:
    """``Press 1: nozzle_temperature above high limit``."""
    phrase = KIND_PHRASES.get(notification.kind, notification.kind.replace("_", " "))
    if notification.metric:
        return f"{notification.machine}: {notification.metric} {phrase}"
    return f"{notification.machine}: {phrase}"


def event_phrase(notification: Notification, context: RenderContext) -> str | None:
    """What happened to the alarm, for every event but ``raised`` (which the headline says)."""
    n = notification
    by = f" by {n.actor}" if n.actor else ""
    match n.event:
        case "raised":
            return None
        case "acknowledged":
            return f"acknowledged{by}"
        case "cleared":
            return "cleared"
        case "returned_to_normal":
            return "back to normal, not yet acknowledged"
        case "escalated":
            return f"escalated to level {n.escalation_level}, still not acknowledged"
        case "shelved":
            until = f" until {context.time(n.shelved_until_ms)}" if n.shelved_until_ms else ""
            return f"shelved{by}{until}"
        case "unshelved":
            return "unshelved"
    return str(n.event).replace("_", " ")


def subject(notification: Notification, context: RenderContext) -> str:
    """``[HIGH] Press 1: nozzle_temperature above high limit`` (plus what happened, if not raised)."""
    text = f"[{notification.priority.upper()}] {headline(notification)}"
    phrase = event_phrase(notification, context)
    return f"{text} ({phrase})" if phrase else text


def _where(n: Notification) -> str:
    return " / ".join(part for part in (n.site, n.area, n.line) if part)


def facts(notification: Notification, context: RenderContext) -> list[tuple[str, str]]:
    """The labelled facts every text rendering lists, in order; absent ones are left out."""
    n = notification
    rows: list[tuple[str, str]] = [("Event", event_phrase(n, context) or "raised")]
    rows.append(("Priority", n.priority))
    rows.append(("Machine", f"{n.machine} ({_where(n)})"))
    value = quantity(n.value, n.unit)
    if n.metric and value is not None:
        limit = quantity(n.limit, n.unit)
        rows.append(("Value", f"{n.metric} = {value}" + (f" (limit {limit})" if limit else "")))
    rows.append(("Rule", f"{n.rule} ({n.kind})"))
    rows.append(("Raised", context.time(n.raised_ms)))
    if n.ts_ms != n.raised_ms:
        rows.append(("At", context.time(n.ts_ms)))
    if n.escalation_level:
        rows.append(("Escalation", f"level {n.escalation_level}"))
    if n.comment:
        rows.append(("Comment", n.comment))
    if n.roles:
        rows.append(("For", ", ".join(n.roles)))
    return rows


def help_texts(notification: Notification) -> list[tuple[str, str]]:
    n = notification
    pairs = (("Likely cause", n.cause), ("If nobody acts", n.consequence), ("Action", n.action))
    return [(label, text) for label, text in pairs if text]


def plain_text(notification: Notification, context: RenderContext) -> str:
    """The e-mail body: the message, the facts, the help text and the link."""
    lines = [notification.message, ""]
    width = max(len(label) for label, _ in facts(notification, context)) + 1
    lines += [f"{label + ':':<{width}} {text}" for label, text in facts(notification, context)]
    helps = help_texts(notification)
    if helps:
        lines.append("")
        lines += [f"{label}: {text}" for label, text in helps]
    link = context.link(notification)
    if link:
        lines += ["", f"Open the alarm: {link}"]
    return "\n".join(lines) + "\n"


def markdown(notification: Notification, context: RenderContext) -> str:
    """The robot message (DingTalk, WeCom): a heading, the message in bold, facts, help, link."""
    parts = [f"### {subject(notification, context)}", f"**{notification.message}**"]
    parts.append("\n".join(f"- {label}: {text}" for label, text in facts(notification, context)))
    parts += [f"> {label}: {text}" for label, text in help_texts(notification)]
    link = context.link(notification)
    if link:
        parts.append(f"[Open the alarm]({link})")
    return "\n\n".join(parts)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # plain JSON has no NaN or infinity
    if isinstance(value, tuple):
        return list(value)
    return value


def notification_body(notification: Notification, context: RenderContext) -> dict[str, Any]:
    """The versioned JSON body: ``v``, ``type``, every notification field, ``title``, ``link``."""
    body: dict[str, Any] = {"v": BODY_VERSION, "type": BODY_TYPE}
    for field in fields(notification):
        body[field.name] = _json_safe(getattr(notification, field.name))
    body["title"] = subject(notification, context)
    body["link"] = context.link(notification)
    return body
