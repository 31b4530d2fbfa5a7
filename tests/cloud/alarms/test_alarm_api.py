"""The alarm API through FastAPI's TestClient on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import warnings

import pytest

from cloud.alarms.engine import AlarmEngine
from cloud.alarms.rules import AlarmRule, HelpText
from cloud.api.app import create_app
from cloud.ingest.writer import IngestWriter
from tests.cloud.alarms.conftest import CollectingNotifier, Edge, now_ms, wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

FILE_RULES = (
    AlarmRule(name="temp_high", kind="high", metric="temperature", limit="profile",
              priority="high", help=HelpText(cause="c", consequence="q", action="a")),
    AlarmRule(name="pressure_low", kind="low", metric="pressure", limit=2.0, priority="low",
              machines={"lines": ["Line 2"]}),
    # the file replaces a built-in rule by name; here it takes it out of service (its 2 s
    # on-delay on the same temperature would otherwise race the test's clock)
    AlarmRule(name="builtin_limit_high", kind="high", metric_role="temperature",
              limit="profile", enabled=False),
)  # fmt: skip


@pytest.fixture
def setup(db_engine):
    """press1 on Line 1 too hot (high), mill2 on Line 2 with low pressure (low)."""
    notifier = CollectingNotifier()
    alarms = AlarmEngine(db_engine, notifier, file_rules=FILE_RULES, builtin=True, tick_s=0.05,
                         refresh_s=60)  # fmt: skip
    alarms.start()
    edge, writer = Edge(), IngestWriter(db_engine)
    t0 = now_ms() - 60_000
    for batch in (
        [edge.birth("press1"), edge.birth("mill2", line="Line 2")],
        [edge.data("press1", [("temperature", t0, 95.0)]),
         edge.data("mill2", [("pressure", t0, 1.5)])],
        [edge.data("press1", [("temperature", t0 + 1_000, 50.0)])],  # press1 back to normal
    ):  # fmt: skip
        alarms.observe(writer.write(batch))
    alarms.flush()
    with TestClient(create_app(db_engine, alarms=alarms)) as client:
        yield client, alarms, notifier, t0
    alarms.stop()


def test_list_filters(setup):
    client, _alarms, _notifier, _t0 = setup
    listed = client.get("/api/alarms").json()  # open: active or unacknowledged
    assert sorted((a["rule"], a["state"]) for a in listed) == [
        ("pressure_low", "active_unack"), ("temp_high", "rtn_unack"),
    ]  # fmt: skip
    by_line = client.get("/api/alarms", params={"line": "Line 2"}).json()
    assert [a["machine"] for a in by_line] == ["mill2"]
    assert [a["rule"] for a in client.get("/api/alarms", params={"priority": "high"}).json()] == [
        "temp_high"
    ]
    active = client.get("/api/alarms", params={"state": "active"}).json()
    assert [a["rule"] for a in active] == ["pressure_low"]
    machine = active[0]["machine_id"]
    assert len(client.get("/api/alarms", params={"machine": machine}).json()) == 1
    assert client.get("/api/alarms", params={"state": "cleared"}).json() == []
    wrong = client.get("/api/alarms", params={"state": "sleepy"})
    assert wrong.status_code == 400
    assert "use one of open, active" in wrong.json()["detail"]


def test_detail_carries_help_text_and_history(setup):
    client, _alarms, _notifier, t0 = setup
    alarm_id = client.get("/api/alarms", params={"priority": "high"}).json()[0]["id"]
    body = client.get(f"/api/alarms/{alarm_id}").json()
    assert body["help"] == {"cause": "c", "consequence": "q", "action": "a"}
    assert (body["value"], body["limit"], body["unit"]) == (95.0, 90.0, "degC")
    assert [(h["event"], h["ts_ms"], h["value"]) for h in body["history"]] == [
        ("raised", t0, 95.0), ("returned_to_normal", t0 + 1_000, 50.0),
    ]  # fmt: skip
    missing = client.get("/api/alarms/999999")
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["detail"]


def test_history_window(setup):
    client, _alarms, _notifier, t0 = setup
    every = client.get("/api/alarms/history", params={"from": t0, "to": t0 + 2_000}).json()
    assert [h["event"] for h in every] == ["raised", "raised", "returned_to_normal"]
    later = client.get("/api/alarms/history", params={"from": t0 + 1, "to": t0 + 2_000}).json()
    assert [h["event"] for h in later] == ["returned_to_normal"]
    iso = client.get("/api/alarms/history", params={"from": "2026-01-01T00:00:00Z",
                                                    "to": "2026-01-02T00:00:00Z"})  # fmt: skip
    assert iso.status_code == 200
    assert client.get("/api/alarms/history", params={"from": "yesterday"}).status_code == 400


def test_acknowledge_and_shelve_validation(setup):
    client, _alarms, notifier, _t0 = setup
    alarm_id = client.get("/api/alarms", params={"state": "active"}).json()[0]["id"]
    assert client.post(f"/api/alarms/{alarm_id}/acknowledge", json={}).status_code == 422
    assert client.post(f"/api/alarms/{alarm_id}/shelve",
                       json={"user": "x"}).status_code == 422  # fmt: skip
    both = client.post(f"/api/alarms/{alarm_id}/shelve",
                       json={"user": "x", "for_s": 5, "until": "2030-01-01T00:00:00Z"})  # fmt: skip
    assert both.status_code == 422
    past = client.post(f"/api/alarms/{alarm_id}/shelve",
                       json={"user": "x", "until": "2020-01-01T00:00:00Z"})  # fmt: skip
    assert past.status_code == 400
    assert "not in the future" in past.json()["detail"]
    assert client.post("/api/alarms/999999/acknowledge", json={"user": "x"}).status_code == 404
    acked = client.post(f"/api/alarms/{alarm_id}/acknowledge", json={"user": "gil"})
    assert (acked.json()["state"], acked.json()["acked_by"]) == ("active_ack", "gil")
    told = wait_for(lambda: notifier.of("acknowledged"), what="acknowledged told")[0]
    assert told.actor == "gil"


def test_rule_crud(setup):
    client, alarms, _notifier, _t0 = setup
    rules = {r["name"]: r for r in client.get("/api/alarm-rules").json()}
    assert rules["temp_high"]["source"] == "file"
    assert rules["builtin_machine_down"]["source"] == "builtin"
    assert rules["builtin_limit_high"]["source"] == "file"
    assert rules["builtin_limit_high"]["rule"]["enabled"] is False
    new = {"name": "vib_fast", "kind": "rate_of_change", "metric_role": "vibration",
           "rate_per_s": 0.5, "priority": "critical", "roles": ["maintenance"]}  # fmt: skip
    created = client.post("/api/alarm-rules", json=new, params={"user": "hal"})
    assert created.status_code == 201, created.text
    assert (created.json()["source"], created.json()["rule"]["rate_per_s"]) == ("api", 0.5)
    again = client.post("/api/alarm-rules", json=new)
    assert again.status_code == 400
    assert "already stored" in again.json()["detail"]
    broken = client.post("/api/alarm-rules", json={"name": "x", "kind": "high", "metric": "t"})
    assert broken.status_code == 422
    assert "limit: a high rule needs it" in broken.text
    assert client.get("/api/alarm-rules/vib_fast").json()["rule"]["priority"] == "critical"
    renamed = client.put("/api/alarm-rules/other", json=new)
    assert renamed.status_code == 400
    changed = client.put("/api/alarm-rules/vib_fast", json=new | {"priority": "low"})
    assert changed.json()["rule"]["priority"] == "low"
    assert client.delete("/api/alarm-rules/vib_fast").status_code == 204
    assert client.get("/api/alarm-rules/vib_fast").status_code == 404
    builtin = client.delete("/api/alarm-rules/builtin_machine_down")
    assert builtin.status_code == 404
    assert "enabled: false" in builtin.json()["detail"]
    wait_for(lambda: alarms.counters.snapshot()["refreshes"] >= 4, what="engine reloads")


def test_openapi_lists_the_alarm_routes(setup):
    client = setup[0]
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/alarms", "/api/alarms/{alarm_id}", "/api/alarms/history",
        "/api/alarms/performance", "/api/alarms/{alarm_id}/acknowledge",
        "/api/alarms/{alarm_id}/shelve", "/api/alarms/{alarm_id}/unshelve", "/api/alarm-rules",
        "/api/alarm-rules/{name}", "/api/machines/{machine_id}/alarm-limits/{metric}",
    ):  # fmt: skip
        assert path in paths, path
    assert paths["/api/alarms"]["get"]["tags"] == ["alarms"]
