"""Rendering (pure): subjects, event phrases, numbers, times, the JSON body."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from cloud.notify.render import (
    RenderContext,
    headline,
    markdown,
    notification_body,
    number,
    plain_text,
    subject,
)
from tests.cloud.notify.notify_kit import EXAMPLE

UTC = RenderContext()
SHANGHAI = RenderContext("Asia/Shanghai", "https://mom.plant.local/alarms/{alarm_id}?site={site}")


def test_the_subject_reads_like_the_brief():
    raised = replace(EXAMPLE, event="raised", escalation_level=0)
    assert subject(raised, UTC) == "[HIGH] Press 1: nozzle_temperature above high limit"


@pytest.mark.parametrize(
    ("changes", "suffix"),
    [
        ({"event": "acknowledged", "actor": "李伟"}, " (acknowledged by 李伟)"),
        ({"event": "acknowledged"}, " (acknowledged)"),
        ({"event": "cleared"}, " (cleared)"),
        ({"event": "returned_to_normal"}, " (back to normal, not yet acknowledged)"),
        ({"event": "escalated", "escalation_level": 2},
         " (escalated to level 2, still not acknowledged)"),
        # 1764432000000 ms = 2025-11-29 16:00:00 UTC = 2025-11-30 00:00:00 in Shanghai (UTC+8)
        ({"event": "shelved", "actor": "Wang", "shelved_until_ms": 1_764_432_000_000},
         " (shelved by Wang until 2025-11-30 00:00:00 CST)"),
        ({"event": "unshelved"}, " (unshelved)"),
    ],
)  # fmt: skip
def test_what_happened_follows_the_headline(changes, suffix):
    base = "[HIGH] Press 1: nozzle_temperature above high limit"
    assert subject(replace(EXAMPLE, **changes), SHANGHAI) == base + suffix


def test_headlines_of_other_kinds():
    assert headline(replace(EXAMPLE, kind="stale", metric=None)) == "Press 1: no fresh data"
    assert (
        headline(replace(EXAMPLE, kind="low_low"))
        == "Press 1: nozzle_temperature below low-low limit"
    )
    assert (
        headline(replace(EXAMPLE, kind="vibration_rms"))
        == "Press 1: nozzle_temperature vibration rms"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(192.4, "192.4"), (1500.0, "1500"), (0.000123, "0.000123"), (-2.5, "-2.5"),
     (-0.0000001, "0"), (1e-9, "0"), (math.inf, "inf")],
)  # fmt: skip
def test_numbers_read_as_people_write_them(value, text):
    assert number(value) == text


def test_times_are_in_the_plants_zone():
    # 1764424500000 ms = 2025-11-29 13:55:00 UTC; Shanghai is UTC+8 all year
    assert UTC.time(1_764_424_500_000) == "2025-11-29 13:55:00 UTC"
    assert SHANGHAI.time(1_764_424_500_000) == "2025-11-29 21:55:00 CST"


def test_the_link_template_takes_alarm_and_site():
    assert SHANGHAI.link(EXAMPLE) == "https://mom.plant.local/alarms/42?site=plant1"
    assert UTC.link(EXAMPLE) is None
    assert "Open the alarm" not in plain_text(EXAMPLE, UTC)
    assert "[Open the alarm](https://mom.plant.local/alarms/42?site=plant1)" in markdown(
        EXAMPLE, SHANGHAI
    )


def test_text_without_the_optional_parts():
    bare = replace(
        EXAMPLE, event="raised", value=None, limit=None, unit=None, cause=None,
        consequence=None, action=None, roles=(), escalation_level=0, ts_ms=EXAMPLE.raised_ms,
        area=None, line=None,
    )  # fmt: skip
    assert plain_text(bare, UTC) == (
        "Press 1 nozzle_temperature 192.4 °C above its high limit 190 °C\n"
        "\n"
        "Event:    raised\n"
        "Priority: high\n"
        "Machine:  Press 1 (plant1)\n"
        "Rule:     nozzle_temperature_high (high)\n"
        "Raised:   2025-11-29 13:55:00 UTC\n"
    )


def test_the_body_is_plain_json_even_for_nan():
    body = notification_body(replace(EXAMPLE, value=math.nan, limit=math.inf), UTC)
    assert (body["value"], body["limit"]) == (None, None)
    json.dumps(body, allow_nan=False)  # raises if anything is not plain JSON
    assert body["roles"] == ["maintenance"]
