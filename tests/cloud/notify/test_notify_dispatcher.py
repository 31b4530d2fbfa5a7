"""The dispatcher on a real database (SQLite and PostgreSQL) with real HTTP and SMTP servers:
retries with backoff, dead and slow channels, overflow, shutdown, routing, submit's speed."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, select

from cloud.config import CloudConfig
from cloud.notify.dispatcher import Dispatcher, build_dispatcher
from cloud.notify.models import NotificationDelivery
from forgeline.processes import free_port
from tests.cloud.notify.notify_kit import EXAMPLE, dead_url, wait_until

FAST_RETRY = {"max_attempts": 5, "initial_backoff_s": 0.05, "max_backoff_s": 1.0, "jitter": 0.5}


def deliveries(engine: Engine) -> list[NotificationDelivery]:
    with engine.connect() as conn:
        return list(conn.execute(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def by_channel(engine: Engine) -> dict[str, Any]:
    return {row.channel: row for row in deliveries(engine)}


@pytest.fixture
def dispatcher(db_engine) -> Iterator[Any]:
    """``dispatcher(channels, routes=None, **settings)`` → a started ``Dispatcher``."""
    made: list[Dispatcher] = []

    def make(channels: dict[str, Any], routes: list[Any] | None = None, **settings: Any) -> Any:
        notifications = {
            "channels": channels,
            "routes": routes if routes is not None else [{"channels": list(channels)}],
            "retry": FAST_RETRY,
            "drain_s": 1.0,
            **settings,
        }
        config = CloudConfig(
            mqtt_url=settings.pop("mqtt_url", f"mqtt://127.0.0.1:{free_port()}"),
            notifications=notifications,
        )
        built = build_dispatcher(config, db_engine, rng=random.Random(7))
        built.start()
        made.append(built)
        return built

    yield make
    for built in made:
        built.stop()


def test_a_server_failing_twice_then_accepting_gets_it_on_attempt_3(
    db_engine, dispatcher, http_server
):
    server = http_server(replies=[(500, b"busy"), (500, b"busy")], default=(200, b"ok"))
    notifier = dispatcher({"hook": {"type": "webhook", "url": f"{server.url}/h"}})
    notifier.submit(EXAMPLE)

    first, second, third = server.wait_for(3)
    assert notifier.wait_idle(10)
    (row,) = deliveries(db_engine)
    assert (row.channel, row.status, row.attempts, row.alarm_id) == ("hook", "sent", 3, 42)
    assert "HTTP 500" in row.last_error  # what went wrong before it worked
    assert row.sent_ms is not None
    # backoff: initial 0.05 s doubling, less up to half (jitter 0.5) →
    # after attempt 1 at least 0.05 × 0.5 = 0.025 s, after attempt 2 at least 0.1 × 0.5 = 0.05 s
    assert second.at - first.at >= 0.025
    assert third.at - second.at >= 0.05
    counters = notifier.snapshot()["channels"]["hook"]
    assert (counters["sent"], counters["retries"], counters["failed"]) == (1, 2, 0)


def test_dead_and_slow_channels_fail_visibly_and_never_delay_the_others(
    db_engine, dispatcher, http_server
):
    fast = http_server()
    slow = http_server(delay_s=1.5)
    notifier = dispatcher(
        {
            "dead": {"type": "webhook", "url": dead_url()},
            "slow": {"type": "webhook", "url": f"{slow.url}/h", "timeout_s": 0.3},
            "fast": {"type": "webhook", "url": f"{fast.url}/h"},
        },
        retry={**FAST_RETRY, "max_attempts": 2},
    )
    submitted = time.monotonic()
    notifier.submit(EXAMPLE)
    (arrived,) = fast.wait_for(1)
    assert arrived.at - submitted < 1.0  # not behind the slow one's 1.5 s, nor the retries

    assert notifier.wait_idle(15)
    rows = by_channel(db_engine)
    assert (rows["fast"].status, rows["fast"].attempts) == ("sent", 1)
    assert (rows["dead"].status, rows["dead"].attempts) == ("failed", 2)
    assert "cannot reach the server" in rows["dead"].last_error
    assert (rows["slow"].status, rows["slow"].attempts) == ("failed", 2)
    assert "0.3 s" in rows["slow"].last_error or "timed out" in rows["slow"].last_error


def test_a_full_lane_drops_and_records_and_stop_records_what_is_left(
    db_engine, dispatcher, http_server
):
    server = http_server(delay_s=1.0)
    notifier = dispatcher(
        {"hook": {"type": "webhook", "url": f"{server.url}/h", "timeout_s": 5}},
        queue_max_per_channel=3,
        drain_s=0.2,
    )
    for alarm_id in range(1, 7):
        notifier.submit(replace(EXAMPLE, alarm_id=alarm_id))
    server.wait_for(1)  # alarm 1 is being sent; 2 and 3 wait; 4, 5, 6 find the lane full
    wait_until(  # the router may still be handing the last ones to the lane
        lambda: notifier.snapshot()["channels"]["hook"]["routed"] == 6, what="all six routed"
    )
    assert notifier.snapshot()["channels"]["hook"]["dropped_queue_full"] == 3
    notifier.stop()

    status = {
        row.alarm_id: (row.status, row.attempts, row.last_error) for row in deliveries(db_engine)
    }
    assert status[1] == ("sent", 1, None)
    for alarm_id in (2, 3):
        assert status[alarm_id] == ("failed", 0, "not sent: the dispatcher stopped")
    for alarm_id in (4, 5, 6):
        assert status[alarm_id][:2] == ("failed", 0)
        assert "already had 3 notifications waiting" in status[alarm_id][2]


def every_channel_down() -> dict[str, Any]:
    """One channel of every type, each pointing at a port where nothing listens."""
    return {
        "ui": {"type": "websocket"},
        "bus": {"type": "mqtt"},
        "hook": {"type": "webhook", "url": dead_url()},
        "dingtalk": {"type": "dingtalk", "access_token": "t", "base_url": dead_url()},
        "wecom": {"type": "wecom", "key": "k", "base_url": dead_url()},
        "mail": {"type": "email", "host": "127.0.0.1", "port": free_port(), "security": "none",
                 "sender": "alarms@plant1.example", "to": ["lead@plant1.example"]},
    }  # fmt: skip


def test_submit_never_waits_for_the_channels_even_when_every_one_is_down(db_engine, dispatcher):
    notifier = dispatcher(every_channel_down(), drain_s=0.1)
    durations = []
    for alarm_id in range(1, 201):
        started = time.perf_counter()
        notifier.submit(replace(EXAMPLE, alarm_id=alarm_id))
        durations.append(time.perf_counter() - started)
    # a hand-off, never a delivery: a delivery attempt to a dead channel takes its connect
    # timeout and its retries take seconds; no call comes near that (typically a few µs)
    assert max(durations) < 0.25, sorted(durations)[-5:]
    wait_until(
        lambda: notifier.snapshot()["submitted"] == 200 and notifier.lanes["ui"].depth() == 0,
        what="all 200 routed, and the stream to have taken them",
    )
    notifier.stop()  # the other channels are still retrying: what is left is recorded failed
    assert notifier.snapshot()["submitted"] == 200
    outcome: dict[tuple[str, str], int] = {}
    for row in deliveries(db_engine):
        outcome[row.channel, row.status] = outcome.get((row.channel, row.status), 0) + 1
    # the stream needs no client; every other channel failed visibly, none is left pending
    assert outcome == {("ui", "sent"): 200} | {
        (name, "failed"): 200 for name in ("bus", "hook", "dingtalk", "wecom", "mail")
    }


def test_routes_by_priority_line_and_escalation_level(
    db_engine, dispatcher, http_server, smtp_server
):
    dingtalk = http_server()
    mail = {"type": "email", "host": "127.0.0.1", "port": smtp_server.port, "security": "none",
            "sender": "alarms@plant1.example"}  # fmt: skip
    notifier = dispatcher(
        {
            "ui": {"type": "websocket"},
            "maintenance": {
                "type": "dingtalk",
                "access_token": "t",
                "base_url": f"{dingtalk.url}/robot/send",
            },
            "shift-lead": {**mail, "to": ["shift-lead@plant1.example"]},
            "plant-manager": {**mail, "to": ["manager@plant1.example"]},
        },
        routes=[
            {"channels": ["ui"]},
            {"priorities": ["critical", "high"], "lines": ["Line 1"], "channels": ["maintenance"]},
            {
                "events": ["escalated"],
                "min_escalation": 1,
                "max_escalation": 1,
                "channels": ["shift-lead"],
            },
            {"events": ["escalated"], "min_escalation": 2, "channels": ["plant-manager"]},
        ],
    )
    cases = {
        1: dict(event="raised", priority="critical", escalation_level=0),
        2: dict(event="raised", priority="low", escalation_level=0),
        3: dict(event="raised", priority="high", escalation_level=0, line="Line 2"),
        4: dict(event="escalated", priority="high", escalation_level=1),
        5: dict(event="escalated", priority="high", escalation_level=2),
        6: dict(event="escalated", priority="medium", escalation_level=3, line=None),
    }
    for alarm_id, fields in cases.items():
        notifier.submit(replace(EXAMPLE, alarm_id=alarm_id, **fields))
    assert notifier.wait_idle(10)

    routed: dict[int, set[str]] = {}
    for row in deliveries(db_engine):
        assert row.status == "sent", (row.channel, row.last_error)
        routed.setdefault(row.alarm_id, set()).add(row.channel)
    assert routed == {
        1: {"ui", "maintenance"},
        2: {"ui"},
        3: {"ui"},
        4: {"ui", "maintenance", "shift-lead"},
        5: {"ui", "maintenance", "plant-manager"},
        6: {"ui", "plant-manager"},
    }
    assert len(dingtalk.requests) == 3
    assert sorted(m.rcpt_tos for m in smtp_server.wait_for(3)) == [
        ("manager@plant1.example",), ("manager@plant1.example",), ("shift-lead@plant1.example",),
    ]  # fmt: skip
