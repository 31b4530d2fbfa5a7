"""Alarm performance figures on a hand-built history: pure, and through the API on both DBs."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from cloud.alarms.models import Alarm, AlarmEvent
from cloud.alarms.performance import (
    Activation,
    OpenAlarm,
    compute,
    most_within,
    period_starts,
    position_of,
)
from cloud.api.app import create_app
from cloud.assets.models import Machine
from cloud.ingest.writer import IngestWriter
from tests.cloud.alarms.conftest import Edge

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

H = 3_600_000
M = 60_000
FROM = int(datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp() * 1000)  # 08:00
TO = FROM + 2 * H  # 10:00: a two-hour window, twelve 10-minute periods
NOW = TO
LINE1, LINE2 = "Press shop / Line 1", "Machining / Line 2"


def _a(ts, key, priority, position, machine="press1"):
    rule, machine_id, metric = key.split("/")
    return Activation(ts, key, rule, int(machine_id), machine, metric, priority, position)


# Point A chatters: every 20 s from 08:10:00 to 08:13:40, 12 activations in one period.
A = [_a(FROM + 10 * M + i * 20_000, "temp_high/1/temp", "high", LINE1) for i in range(12)]
# Point B: three activations at 09:00, 09:30, 09:50.
B = [_a(FROM + m * M, "press_low/1/pressure", "medium", LINE1) for m in (60, 90, 110)]
# Point C (another line): 08:05 and 09:05.
C = [_a(FROM + m * M, "vib_high/2/vib", "low", LINE2, "mill2") for m in (5, 65)]
OUTSIDE = [_a(FROM - 1, "temp_high/1/temp", "high", LINE1), _a(TO, "vib_high/2/vib", "low", LINE2)]
OPEN = [
    OpenAlarm(1, "temp_high/1/temp", "temp_high", "press1", "temp", "high", LINE1, NOW - 30 * H),
    OpenAlarm(2, "vib_high/2/vib", "vib_high", "mill2", "vib", "low", LINE2, NOW - H),
]


def test_helpers():
    assert position_of("line", "plant1", "Press shop", "Line 1") == LINE1
    assert position_of("line", "plant1", None, None) == "plant1 (no line)"
    assert position_of("area", "plant1", "Press shop", "Line 1") == "Press shop"
    assert position_of("site", "plant1", "Press shop", "Line 1") == "plant1"
    assert len(period_starts(FROM, TO)) == 12  # 120 min / 10 min
    assert len(period_starts(FROM + 5 * M, TO)) == 12  # 08:00 (partly) ... 09:50
    assert most_within([0, 20_000, 40_000, 60_000, 80_000], 60_000) == 4  # 0..60 s inclusive


def test_figures_of_a_hand_built_history():
    figures = compute([*A, *B, *C, *OUTSIDE], OPEN, FROM, TO, NOW, "line", suppressed=1)
    # 12 + 3 + 2 = 17 activations in 2 h (the two outside the window are ignored)
    assert figures.total.activations == 17
    assert figures.total.per_hour == pytest.approx(8.5)  # 17 / 2
    positions = {p.position: p for p in figures.positions}
    line1, line2 = positions[LINE1], positions[LINE2]
    assert line1.activations == 15
    assert line1.per_hour == pytest.approx(7.5)  # 15 / 2
    assert line1.per_10_min == pytest.approx(1.25)  # 7.5 / 6
    # 08:10-08:20 has 12 > 10: one flood period of twelve
    assert (line1.flood_periods, line1.periods, line1.peak_10_min) == (1, 12, 12)
    assert line1.flood_share == pytest.approx(1 / 12)
    assert (line2.activations, line2.per_hour, line2.flood_periods) == (2, 1.0, 0)
    assert figures.total.flood_periods == 1  # 12 + 0 (C is at 08:05, another period)
    assert figures.suppressed == 1
    assert [(t.point_key, t.activations) for t in figures.top] == [
        ("temp_high/1/temp", 12), ("press_low/1/pressure", 3), ("vib_high/2/vib", 2),
    ]  # fmt: skip
    # A: 08:10:00, :20, :40, 08:11:00 lie within 60 s of each other: 4; B and C never 3
    assert [(c.point_key, c.most_in_60_s) for c in figures.chattering] == [
        ("temp_high/1/temp", 4),
    ]
    shares = {p.priority: (p.activations, p.share) for p in figures.priorities}
    assert shares == {
        "critical": (0, 0.0),
        "high": (12, pytest.approx(12 / 17)),
        "medium": (3, pytest.approx(3 / 17)),
        "low": (2, pytest.approx(2 / 17)),
    }
    # standing: two active now; the one active for 30 h (> 24 h) is stale
    assert (figures.standing.active, figures.standing.stale) == (2, 1)
    assert figures.standing.stale_alarms[0].alarm_id == 1


def test_performance_through_the_api(db_engine):
    edge = Edge()
    IngestWriter(db_engine).write([edge.birth("press1"), edge.birth("mill2", line="Line 2")])
    with db_engine.begin() as conn:
        ids = dict(conn.execute(select(Machine.device, Machine.id)).all())
        areas = {"press1": ("Press shop", "Line 1"), "mill2": ("Press shop", "Line 2")}

        def alarm(key, priority, device, state, active_ms, open_):
            rule, _machine, metric = key.split("/")
            area, line = areas[device]
            return conn.execute(insert(Alarm).values(
                point_key=key, open_key=key if open_ else None, rule=rule, kind="high",
                priority=priority, machine_id=ids[device], machine_name=device, site="plant1",
                area=area, line=line, metric=metric, unit=None, state=state, value=1.0,
                limit_value=0.0, message=key, raised_ms=active_ms, active_ms=active_ms,
                activations=1, escalation_level=0, late=False, roles=[], version=1,
                updated_ms=active_ms,
            ).returning(Alarm.id)).scalar_one()  # fmt: skip

        a = alarm("temp_high/1/temp", "high", "press1", "active_unack", NOW - 30 * H, True)
        b = alarm("press_low/1/pressure", "medium", "press1", "cleared", FROM, False)
        c = alarm("vib_high/2/vib", "low", "mill2", "active_ack", NOW - H, True)
        rows = [(a, x.ts_ms, False) for x in A] + [(b, x.ts_ms, False) for x in B]
        rows += [(c, x.ts_ms, False) for x in C] + [(c, FROM + 7 * M, True)]  # one suppressed
        conn.execute(insert(AlarmEvent), [
            {"alarm_id": alarm_id, "event": "raised", "state": "active_unack", "ts_ms": ts,
             "message": "m", "escalation_level": 0, "late": False, "suppressed": suppressed,
             "notify": "suppressed" if suppressed else "sent", "recorded_ms": ts}
            for alarm_id, ts, suppressed in rows
        ])  # fmt: skip
    with TestClient(create_app(db_engine)) as client:
        body = client.get("/api/alarms/performance", params={"from": FROM, "to": TO}).json()
    assert body["operator_position"] == "line"
    assert (body["total"]["activations"], body["suppressed"]) == (17, 1)
    positions = {p["position"]: p for p in body["positions"]}
    assert positions["Press shop / Line 1"]["flood_periods"] == 1
    assert positions["Press shop / Line 2"]["activations"] == 2
    assert body["top"][0]["activations"] == 12
    assert [c["point_key"] for c in body["chattering"]] == ["temp_high/1/temp"]
    # standing is measured now (the real clock): a and c are open and active, b is cleared
    assert body["standing"]["active"] == 2
    with TestClient(create_app(db_engine)) as client:
        by_area = client.get("/api/alarms/performance",
                             params={"from": FROM, "to": TO, "position": "area"}).json()  # fmt: skip
        assert [p["position"] for p in by_area["positions"]] == ["Press shop"]
        empty = client.get("/api/alarms/performance", params={"from": TO, "to": FROM})
        assert empty.status_code == 400
