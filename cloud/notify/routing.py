"""Routing: which configured channels a notification goes to (pure).

Semantics: **all matching routes**, in the order configured; the channels of every route that
matches are joined (each channel once, in order of first appearance). A route with
``stop: true`` that matches ends the evaluation, so "first match" is a route list that ends
every route with ``stop: true``. A route matches when each of its lists is empty or contains
the notification's value (``roles``: the rule addresses at least one of them; a notification
with no line never matches a route that lists lines) and ``min_escalation <= escalation_level
<= max_escalation``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloud.notify.message import Notification
from cloud.notify.settings import RouteSettings


def route_matches(route: RouteSettings, notification: Notification) -> bool:
    """True when ``notification`` passes every condition ``route`` gives."""
    n = notification
    checks = (
        (route.priorities, n.priority),
        (route.events, n.event),
        (route.sites, n.site),
        (route.areas, n.area),
        (route.lines, n.line),
    )
    if any(allowed and value not in allowed for allowed, value in checks):
        return False
    if route.roles and not set(route.roles) & set(n.roles):
        return False
    if n.escalation_level < route.min_escalation:
        return False
    return route.max_escalation is None or n.escalation_level <= route.max_escalation


def select_channels(notification: Notification, routes: Sequence[RouteSettings]) -> tuple[str, ...]:
    """The channel names for ``notification``: every matching route's, each once, in order."""
    chosen: dict[str, None] = {}
    for route in routes:
        if not route_matches(route, notification):
            continue
        chosen.update(dict.fromkeys(route.channels))
        if route.stop:
            break
    return tuple(chosen)
