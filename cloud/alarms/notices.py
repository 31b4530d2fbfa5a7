"""From an alarm row and one of its history rows to the ``Notification`` handed to the notifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from cloud.notify.message import Notification, NotificationEvent, Priority


def notification_of(alarm: Mapping[str, Any], event: Mapping[str, Any]) -> Notification:
    """The notification of history row ``event`` of ``alarm`` (both as column → value maps)."""
    return Notification(
        alarm_id=int(alarm["id"]),
        event=cast(NotificationEvent, event["event"]),
        priority=cast(Priority, alarm["priority"]),
        rule=alarm["rule"],
        kind=alarm["kind"],
        message=event["message"],
        site=alarm["site"],
        area=alarm["area"],
        line=alarm["line"],
        machine_id=int(alarm["machine_id"]),
        machine=alarm["machine_name"],
        metric=alarm["metric"],
        value=event["value"],
        limit=event["limit_value"],
        unit=alarm["unit"],
        ts_ms=int(event["ts_ms"]),
        raised_ms=int(alarm["active_ms"]),
        cause=alarm["cause"],
        consequence=alarm["consequence"],
        action=alarm["action"],
        roles=tuple(alarm["roles"] or ()),
        escalation_level=int(event["escalation_level"]),
        actor=event["actor"],
        comment=event["comment"],
        shelved_until_ms=event["shelved_until_ms"],
    )
