"""The OEE routes over a real database (SQLite and PostgreSQL), through FastAPI's TestClient."""

from __future__ import annotations

import time
import warnings

import pytest
from sqlalchemy import text

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.config import CloudConfig
from cloud.oee.runtime import OeeRuntime
from tests.cloud.oee.conftest import HOUR, T0

S = 1000
HOUR_WINDOW = {"from": T0, "to": T0 + HOUR}
LINE1_CALENDAR = {
    "name": "line1-shifts",
    "site": "plant1",
    "area": "Press shop",
    "line": "Line 1",
    "time_zone": "Europe/Berlin",
    "shifts": [
        {"name": "early", "start": "06:00", "end": "14:00", "weekdays": "mon-fri",
         "breaks": [{"start": "09:00", "end": "09:15"}]},
        {"name": "night", "start": "22:00", "end": "06:00", "weekdays": ["sun", "mon"]},
    ],
    "holidays": ["2026-12-24"],
}  # fmt: skip


@pytest.fixture
def client(plant):
    with TestClient(create_app(plant["engine"])) as test_client:
        yield test_client


def test_machine_kpis_carry_their_inputs(client, plant):
    body = client.get(f"/api/oee/machines/{plant['press1']}", params=HOUR_WINDOW).json()
    kpis = body["kpis"]
    elements = kpis["time_elements"]
    assert (elements["pbt_ms"], elements["apt_ms"], elements["unkt_ms"]) == (
        3300 * S, 2000 * S, 400 * S,
    )  # fmt: skip
    assert kpis["quantities"]["produced"] == 320
    assert kpis["availability"] == pytest.approx(2000 / 3300)
    assert kpis["oee"] == pytest.approx(2000 / 3300 * 0.8 * 300 / 320)
    assert kpis["rework_ratio"] is None
    assert "rework" in kpis["reasons"]["rework_ratio"]
    assert (body["pri_s"], body["ideal_cycle_time_source"], body["calendar"]) == (
        5.0, "profile", "24/7",
    )  # fmt: skip
    assert body["window"] == {"from_ms": T0, "to_ms": T0 + HOUR, "live": False, "shift": None}
    assert client.get("/api/oee/machines/999").status_code == 404
    bad = client.get(f"/api/oee/machines/{plant['press1']}", params={"from": "noon"})
    assert bad.status_code == 400
    assert "ISO 8601" in bad.json()["detail"]


def test_losses_add_up(client, plant):
    body = client.get(f"/api/oee/machines/{plant['press1']}/losses", params=HOUR_WINDOW).json()
    lines = {line["name"]: line["seconds"] for line in body["lines"]}
    assert lines["equipment failure"] == 300
    assert lines["reduced yield"] == 20  # 4 start-up scrap x PRI 5 s
    assert body["total_s"] == pytest.approx(body["pbt_s"] - body["valuable_s"])  # 3300 - 1500


def test_downtime_with_plc_and_operator_reasons(client, plant):
    machine = plant["press1"]
    events = client.get(f"/api/machines/{machine}/downtime", params=HOUR_WINDOW).json()["events"]
    assert [(e["state"], e["start_ms"] - T0, e["micro_stop"]) for e in events] == [
        ("down", 1200 * S, True), ("idle", 1800 * S, False), ("setup", 2100 * S, False),
        ("down", 2400 * S, False),
    ]  # fmt: skip
    failure = events[-1]
    assert (failure["fault_code"], failure["reason"], failure["reason_source"]) == (
        "12", "Spindle overload", "plc",
    )  # fmt: skip
    put = client.put(
        f"/api/machines/{machine}/downtime/{T0 + 2400 * S}/reason",
        json={"reason": "Tool broke", "category": "tooling", "entered_by": "anna",
              "comment": "insert changed"},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    assert (put.json()["reason"], put.json()["reason_source"]) == ("Tool broke", "operator")
    again = client.get(f"/api/machines/{machine}/downtime", params=HOUR_WINDOW).json()["events"]
    assert (again[-1]["reason"], again[-1]["entered_by"]) == ("Tool broke", "anna")
    running = client.put(
        f"/api/machines/{machine}/downtime/{T0}/reason", json={"reason": "x", "entered_by": "a"}
    )
    assert running.status_code == 400
    assert "running" in running.json()["detail"]
    missing = client.put(
        f"/api/machines/{machine}/downtime/{T0 + 1}/reason", json={"reason": "x", "entered_by": "a"}
    )
    assert missing.status_code == 404


def test_settings_override_the_profile(client, plant):
    url = f"/api/oee/machines/{plant['press1']}/settings"
    assert client.get(url).json()["ideal_cycle_time_s"] is None
    put = client.put(url, json={"ideal_cycle_time_s": 8.0, "micro_stop_s": 30})
    assert put.status_code == 200, put.text
    assert client.get(url).json()["micro_stop_s"] == 30
    body = client.get(f"/api/oee/machines/{plant['press1']}", params=HOUR_WINDOW).json()
    assert (body["pri_s"], body["ideal_cycle_time_source"], body["micro_stop_s"]) == (
        4.0, "override", 30.0,
    )  # fmt: skip
    assert client.put(url, json={"ideal_cycle_time_s": -1}).status_code == 422
    assert client.put("/api/oee/machines/999/settings", json={}).status_code == 404


def test_calendar_crud_and_windows(client, plant):
    created = client.post("/api/calendars", json=LINE1_CALENDAR)
    assert created.status_code == 201, created.text
    assert created.json()["scope"].startswith("line:")
    assert client.post("/api/calendars", json=LINE1_CALENDAR).status_code == 400
    site = {**LINE1_CALENDAR, "name": "plant1", "area": None, "line": None}
    assert client.post("/api/calendars", json=site).status_code == 201
    assert [c["calendar"]["name"] for c in client.get("/api/calendars").json()] == [
        "line1-shifts", "plant1",
    ]  # fmt: skip
    # Monday 2026-03-02, Berlin UTC+1: early 05:00-13:00 UTC, break 08:00-08:15 UTC
    windows = client.get(
        "/api/calendars/line1-shifts/windows",
        params={"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"},
    ).json()
    assert [w["key"] for w in windows] == [
        "2026-03-01/night", "2026-03-02/early", "2026-03-02/night",
    ]  # fmt: skip
    assert windows[1]["breaks"] == [[T0 + 8 * HOUR, T0 + 8 * HOUR + 15 * 60 * S]]
    # the line's calendar wins over the site's for press1 (Line 1)
    body = client.get(f"/api/oee/machines/{plant['press1']}", params=HOUR_WINDOW).json()
    assert body["calendar"] == "line1-shifts"
    # 00:00-01:00 UTC is 01:00-02:00 local, inside Sunday's night shift: planned all hour
    assert body["kpis"]["time_elements"]["pot_ms"] == HOUR
    changed = {**LINE1_CALENDAR, "time_zone": "UTC"}
    assert (
        client.put("/api/calendars/line1-shifts", json=changed).json()["calendar"]["time_zone"]
        == "UTC"
    )
    wrong = client.put("/api/calendars/other", json=changed)
    assert wrong.status_code == 400
    bad = client.post(
        "/api/calendars", json={**LINE1_CALENDAR, "name": "x", "time_zone": "Mars/Base"}
    )
    assert bad.status_code == 422
    assert "IANA" in bad.text
    assert client.delete("/api/calendars/line1-shifts").status_code == 204
    assert client.get("/api/calendars/line1-shifts").status_code == 404


def test_lines_sites_roll_ups_and_current(client, plant):
    window = {"from": T0, "to": T0 + 6 * HOUR}
    run = client.post("/api/oee/rollups/run", params=window)
    assert run.json() == {"rows": 12}  # 6 hours x 2 machines
    rows = client.get(
        "/api/oee/rollups", params={"machine_id": plant["press1"], "kind": "hour", **window}
    ).json()
    assert [r["period_start_ms"] - T0 for r in rows] == [h * HOUR for h in range(6)]
    assert rows[0]["kpis"]["time_elements"]["apt_ms"] == 2000 * S
    assert (
        client.get("/api/oee/rollups", params={"machine_id": 1, "kind": "week"}).status_code == 400
    )

    site = client.get("/api/oee/sites/plant1", params=window).json()
    live = client.get("/api/oee/sites/plant1", params={**window, "rollups": False}).json()
    assert site["rollup_hours"] == 6
    assert site["kpis"] == live["kpis"]
    assert site["kpis"]["machines"] == 2
    assert sorted(m["name"] for m in site["machines"]) == ["press1", "press2"]
    with plant["engine"].connect() as conn:
        line_id = conn.execute(
            text("SELECT line_id FROM machine WHERE id = :id"), {"id": plant["press2"]}
        ).scalar_one()
    line = client.get(f"/api/oee/lines/{line_id}", params=window).json()
    assert (line["kind"], line["name"]) == ("line", "Line 2")
    assert [m["name"] for m in line["machines"]] == ["press2"]
    # press2 alone: 6 h running, 2160 units x PRI 5 s = 3 h of ideal time, no scrap
    assert line["kpis"]["oee"] == pytest.approx(1.0 * 0.5 * 1.0)
    assert client.get("/api/oee/lines/999").status_code == 404
    assert client.get("/api/oee/sites/nowhere").status_code == 404

    current = client.get("/api/oee/current").json()
    assert sorted(c["name"] for c in current) == ["press1", "press2"]
    for view in current:
        elements = view["kpis"]["time_elements"]
        assert view["window"]["shift"]["name"] == "day"  # no calendar: the 24/7 day
        assert (
            elements["apt_ms"]
            + elements["aust_ms"]
            + elements["adet_ms"]
            + elements["adot_ms"]
            + elements["unkt_ms"]
            == elements["pbt_ms"]
        )


def test_runtime_writes_the_calendars_file_and_rolls_up(plant, tmp_path):
    calendars = tmp_path / "calendars.yaml"
    calendars.write_text(
        "calendars:\n"
        "  - name: plant1\n"
        "    site: plant1\n"
        "    time_zone: UTC\n"
        "    shifts:\n"
        '      - {name: day, start: "06:00", end: "18:00"}\n'
    )
    config = CloudConfig(calendars_file=calendars, rollup_interval_s=3600)
    runtime = OeeRuntime(config, plant["engine"])
    runtime.start()
    try:
        deadline = time.monotonic() + 30
        while runtime.scheduler.runs + runtime.scheduler.failures == 0:
            assert time.monotonic() < deadline, "the roll-up job did not run within 30 s"
            time.sleep(0.05)
    finally:
        runtime.stop()
    assert runtime.scheduler.failures == 0
    with TestClient(create_app(plant["engine"])) as client:
        names = [c["calendar"]["name"] for c in client.get("/api/calendars").json()]
        assert names == ["plant1"]
        assert client.get("/api/calendars/plant1").json()["source"] == "file"
