"""Routing (pure): every matching route's channels, in order, each once; ``stop`` ends the search."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cloud.notify.routing import route_matches, select_channels
from cloud.notify.settings import RouteSettings
from tests.cloud.notify.notify_kit import EXAMPLE

# The plant's example: everything to the UI; critical and high alarms of Line 1 to the
# maintenance DingTalk group; on escalation, e-mail the shift lead at level 1 and the plant
# manager from level 2; quality alarms to the quality engineers' WeCom group.
PLANT = (
    RouteSettings(channels=("ui",)),
    RouteSettings(priorities=("critical", "high"), lines=("Line 1",), channels=("maintenance",)),
    RouteSettings(events=("escalated",), min_escalation=1, max_escalation=1,
                  channels=("shift-lead",)),
    RouteSettings(events=("escalated",), min_escalation=2, channels=("plant-manager",)),
    RouteSettings(roles=("quality",), channels=("quality-wecom",)),
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"event": "raised", "escalation_level": 0}, ("ui", "maintenance")),
        ({"event": "raised", "priority": "critical", "escalation_level": 0}, ("ui", "maintenance")),
        ({"event": "raised", "priority": "medium", "escalation_level": 0}, ("ui",)),
        ({"event": "raised", "line": "Line 2", "escalation_level": 0}, ("ui",)),
        ({"event": "raised", "line": None, "escalation_level": 0}, ("ui",)),
        ({"escalation_level": 1}, ("ui", "maintenance", "shift-lead")),
        ({"escalation_level": 2}, ("ui", "maintenance", "plant-manager")),
        ({"escalation_level": 5, "priority": "low"}, ("ui", "plant-manager")),
        ({"event": "raised", "escalation_level": 0, "roles": ("maintenance", "quality")},
         ("ui", "maintenance", "quality-wecom")),
        ({"event": "cleared", "escalation_level": 0, "roles": ()}, ("ui", "maintenance")),
    ],
)  # fmt: skip
def test_the_plant_example(changes, expected):
    assert select_channels(replace(EXAMPLE, **changes), PLANT) == expected


def test_each_channel_once_in_order_of_first_appearance():
    routes = (
        RouteSettings(channels=("mail", "ui")),
        RouteSettings(priorities=("high",), channels=("ui", "dingtalk", "mail")),
    )
    assert select_channels(EXAMPLE, routes) == ("mail", "ui", "dingtalk")


def test_stop_ends_the_search_when_its_route_matches():
    routes = (
        RouteSettings(priorities=("low",), channels=("ui",), stop=True),
        RouteSettings(sites=("plant1",), channels=("night-shift",), stop=True),
        RouteSettings(channels=("everyone",)),
    )
    assert select_channels(replace(EXAMPLE, priority="low"), routes) == ("ui",)
    assert select_channels(EXAMPLE, routes) == ("night-shift",)
    assert select_channels(replace(EXAMPLE, site="plant2"), routes) == ("everyone",)


def test_no_route_no_channel():
    assert select_channels(EXAMPLE, ()) == ()
    assert select_channels(EXAMPLE, (RouteSettings(areas=("Paint shop",), channels=("x",)),)) == ()


def test_every_condition_must_hold():
    route = RouteSettings(
        priorities=("high",), events=("escalated",), sites=("plant1",), areas=("Press shop",),
        lines=("Line 1",), roles=("maintenance",), min_escalation=1, max_escalation=1,
        channels=("x",),
    )  # fmt: skip
    assert route_matches(route, EXAMPLE)
    for changes in (
        {"priority": "critical"}, {"event": "acknowledged"}, {"site": "plant2"},
        {"area": None}, {"line": "Line 2"}, {"roles": ("quality",)}, {"escalation_level": 0},
        {"escalation_level": 2},
    ):  # fmt: skip
        assert not route_matches(route, replace(EXAMPLE, **changes)), changes
