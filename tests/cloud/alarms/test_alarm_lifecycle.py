"""The ISA-18.2 lifecycle end to end: a real Mosquitto, a real ingest worker, a real database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cloud.alarms.models import Alarm, AlarmEvent
from cloud.alarms.rules import AlarmRule, HelpText
from tests.cloud.alarms.conftest import now_ms, wait_for

pytestmark = pytest.mark.integration

TEMP_HIGH = AlarmRule(
    name="temp_high", kind="high", metric="temperature", limit="profile", deadband=2,
    priority="high", roles=("maintenance", "quality"),
    help=HelpText(cause="Cooling water valve closed", consequence="Scrap", action="Open valve"),
)  # fmt: skip


def _history(db_engine, alarm_id):
    with db_engine.connect() as conn:
        rows = conn.execute(
            select(AlarmEvent.event, AlarmEvent.state, AlarmEvent.value, AlarmEvent.actor)
            .where(AlarmEvent.alarm_id == alarm_id)
            .order_by(AlarmEvent.id)
        )
        return [tuple(r) for r in rows]


def test_raise_acknowledge_then_return_clears(plant_factory, db_engine):
    plant = plant_factory([TEMP_HIGH])
    plant.birth()
    t0 = now_ms() - 60_000  # source times in the past, as they are
    plant.send(plant.edge.data("press1", [("temperature", t0, 85.0)]))
    plant.send(plant.edge.data("press1", [("temperature", t0 + 100, 95.5)]))  # above 90
    raised = wait_for(lambda: plant.notifier.of("raised"), what="raised")[0]
    assert (raised.priority, raised.rule, raised.kind, raised.machine, raised.metric) == (
        "high", "temp_high", "high", "press1", "temperature",
    )  # fmt: skip
    assert (raised.value, raised.limit, raised.unit, raised.ts_ms) == (95.5, 90.0, "degC", t0 + 100)
    assert raised.message == "press1 temperature 95.5 degC above its high limit 90 degC"
    assert (raised.cause, raised.action, raised.roles) == (
        "Cooling water valve closed", "Open valve", ("maintenance", "quality"),
    )  # fmt: skip
    assert (raised.line, raised.area, raised.site) == ("Line 1", "Press shop", "plant1")
    # acknowledged through the transitions the API uses
    from cloud.alarms.transitions import acknowledge
    from cloud.db import writer_engine

    with writer_engine(db_engine).begin() as conn:
        acknowledge(conn, raised.alarm_id, "ann", "valve opened", now_ms())
    plant.alarms.wake()
    acked = wait_for(lambda: plant.notifier.of("acknowledged"), what="acknowledged")[0]
    assert (acked.actor, acked.comment, acked.alarm_id) == ("ann", "valve opened", raised.alarm_id)
    # 89 is inside the deadband (90 - 2): still active; 87.5 returns
    plant.send(plant.edge.data("press1", [("temperature", t0 + 200, 89.0)]))
    plant.send(plant.edge.data("press1", [("temperature", t0 + 300, 87.5)]))
    cleared = wait_for(lambda: plant.notifier.of("cleared"), what="cleared")[0]
    assert (cleared.value, cleared.ts_ms) == (87.5, t0 + 300)
    assert plant.notifier.events() == ["raised", "acknowledged", "cleared"]
    assert _history(db_engine, raised.alarm_id) == [
        ("raised", "active_unack", 95.5, None),
        ("acknowledged", "active_ack", 95.5, "ann"),
        ("cleared", "cleared", 87.5, None),
    ]
    with db_engine.connect() as conn:
        alarm = conn.execute(select(Alarm).where(Alarm.id == raised.alarm_id)).one()._mapping
    assert (alarm["open_key"], alarm["cleared_ms"], alarm["acked_by"]) == (None, t0 + 300, "ann")


@pytest.fixture
def api(db_engine):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    from cloud.api.app import create_app

    clients = []

    def make(plant):
        client = TestClient(create_app(db_engine, alarms=plant.alarms))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_return_before_acknowledge_then_acknowledge_clears_and_realarm(
    plant_factory, db_engine, api
):
    plant = plant_factory([TEMP_HIGH])
    plant.birth()
    client = api(plant)
    t0 = now_ms() - 60_000  # source times in the past, as they are
    plant.send(plant.edge.data("press1", [("temperature", t0, 91.0)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="raised")[0]
    plant.send(plant.edge.data("press1", [("temperature", t0 + 100, 80.0)]))
    rtn = wait_for(lambda: plant.notifier.of("returned_to_normal"), what="rtn")[0]
    assert (rtn.alarm_id, rtn.value) == (raised.alarm_id, 80.0)
    assert client.get(f"/api/alarms/{raised.alarm_id}").json()["state"] == "rtn_unack"
    # the condition comes back before anyone acknowledged: the same alarm is active again
    plant.send(plant.edge.data("press1", [("temperature", t0 + 200, 93.0)]))
    wait_for(lambda: len(plant.notifier.of("raised")) == 2, what="re-alarm")
    again = plant.notifier.of("raised")[1]
    assert again.alarm_id == raised.alarm_id
    body = client.get(f"/api/alarms/{raised.alarm_id}").json()
    assert (body["state"], body["activations"], body["value"]) == ("active_unack", 2, 93.0)
    plant.send(plant.edge.data("press1", [("temperature", t0 + 300, 70.0)]))
    wait_for(lambda: len(plant.notifier.of("returned_to_normal")) == 2, what="second rtn")
    answer = client.post(f"/api/alarms/{raised.alarm_id}/acknowledge",
                         json={"user": "bob", "comment": "seen"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "cleared"
    wait_for(lambda: plant.notifier.of("acknowledged"), what="acknowledged")
    assert plant.notifier.events(raised.alarm_id) == [
        "raised", "returned_to_normal", "raised", "returned_to_normal", "acknowledged",
    ]  # fmt: skip
    history = answer.json()["history"]
    assert [(h["event"], h["state"]) for h in history] == [
        ("raised", "active_unack"), ("returned_to_normal", "rtn_unack"),
        ("raised", "active_unack"), ("returned_to_normal", "rtn_unack"),
        ("acknowledged", "cleared"),
    ]  # fmt: skip
    assert history[-1]["actor"] == "bob"
    assert history[-1]["comment"] == "seen"
    again = client.post(f"/api/alarms/{raised.alarm_id}/acknowledge", json={"user": "bob"})
    assert again.status_code == 400
    assert "nothing to acknowledge" in again.json()["detail"]
    # a new excursion after the clear is a new alarm
    plant.send(plant.edge.data("press1", [("temperature", t0 + 400, 99.0)]))
    wait_for(lambda: len(plant.notifier.of("raised")) == 3, what="new alarm")
    assert plant.notifier.of("raised")[2].alarm_id != raised.alarm_id


def test_shelved_point_is_recorded_but_not_told_until_the_shelf_expires(plant_factory, api):
    plant = plant_factory([TEMP_HIGH])
    plant.birth()
    client = api(plant)
    t0 = now_ms() - 60_000  # source times in the past, as they are
    plant.send(plant.edge.data("press1", [("temperature", t0, 95.0)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="raised")[0]
    shelved = client.post(f"/api/alarms/{raised.alarm_id}/shelve",
                          json={"user": "cy", "comment": "sensor swap", "for_s": 1.5})  # fmt: skip
    assert shelved.status_code == 200, shelved.text
    until = shelved.json()["shelved_until_ms"]
    assert shelved.json()["shelved_by"] == "cy"
    told = wait_for(lambda: plant.notifier.of("shelved"), what="shelved")[0]
    assert (told.actor, told.comment, told.shelved_until_ms) == ("cy", "sensor swap", until)
    # while shelved: the return and a new activation are recorded, nobody is told
    plant.send(plant.edge.data("press1", [("temperature", t0 + 100, 50.0)]))
    plant.send(plant.edge.data("press1", [("temperature", t0 + 200, 96.0)]))

    def history():
        found = client.get(f"/api/alarms/{raised.alarm_id}").json()["history"]
        return found if len(found) == 4 else None

    history = wait_for(history, what="two more transitions")
    assert plant.notifier.events() == ["raised", "shelved"]
    assert [(h["event"], h["suppressed"]) for h in history] == [
        ("raised", False), ("shelved", False), ("returned_to_normal", True), ("raised", True),
    ]  # fmt: skip
    # the shelf runs out by itself: told once, then transitions are told again
    wait_for(lambda: plant.notifier.of("unshelved"), timeout=10, what="shelf expiry")
    unshelved = plant.notifier.of("unshelved")[0]
    assert (unshelved.actor, unshelved.comment, unshelved.ts_ms) == (None, "shelf expired", until)
    plant.send(plant.edge.data("press1", [("temperature", t0 + 300, 40.0)]))
    wait_for(lambda: plant.notifier.of("returned_to_normal"), what="told again")
    # shelve and lift it by hand
    assert client.post(f"/api/alarms/{raised.alarm_id}/shelve",
                       json={"user": "cy", "until": str(now_ms() + 3_600_000)}).status_code == 200  # fmt: skip
    lifted = client.post(f"/api/alarms/{raised.alarm_id}/unshelve", json={"user": "dee"})
    assert lifted.status_code == 200
    assert lifted.json()["shelved_until_ms"] is None
    wait_for(lambda: len(plant.notifier.of("unshelved")) == 2, what="unshelved by hand")
    assert plant.notifier.of("unshelved")[1].actor == "dee"
    not_shelved = client.post(f"/api/alarms/{raised.alarm_id}/unshelve", json={"user": "dee"})
    assert not_shelved.status_code == 400


def test_unacknowledged_alarm_escalates_level_by_level_until_acknowledged(plant_factory, api):
    rule = TEMP_HIGH.model_copy(update={"escalation_delay_s": 0.4, "escalation_levels": 2})
    plant = plant_factory([rule])
    plant.birth()
    plant.send(plant.edge.data("press1", [("temperature", now_ms(), 95.0)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="raised")[0]
    wait_for(lambda: len(plant.notifier.of("escalated")) == 2, timeout=10, what="2 levels")
    levels = [n.escalation_level for n in plant.notifier.of("escalated")]
    assert levels == [1, 2]
    assert plant.notifier.of("raised")[0].escalation_level == 0
    # levels: 2 → no third escalation, however long nobody acknowledges
    import time

    time.sleep(1.0)
    assert len(plant.notifier.of("escalated")) == 2
    assert api(plant).post(f"/api/alarms/{raised.alarm_id}/acknowledge",
                           json={"user": "ann"}).status_code == 200  # fmt: skip


def test_acknowledging_stops_escalation(plant_factory, api):
    rule = TEMP_HIGH.model_copy(update={"escalation_delay_s": 0.5, "escalation_levels": 3})
    plant = plant_factory([rule])
    plant.birth()
    client = api(plant)
    plant.send(plant.edge.data("press1", [("temperature", now_ms(), 95.0)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="raised")[0]
    assert client.post(f"/api/alarms/{raised.alarm_id}/acknowledge",
                       json={"user": "ann"}).status_code == 200  # fmt: skip
    import time

    time.sleep(1.2)  # past two escalation delays
    assert plant.notifier.of("escalated") == []


def test_replayed_backlog_is_evaluated_and_told_late(plant_factory):
    plant = plant_factory([TEMP_HIGH])
    plant.birth()
    t0 = now_ms() - 3_600_000  # an hour ago, replayed from the edge's buffer
    plant.send(plant.edge.data("press1", [("temperature", t0, 96.0), ("temperature", t0 + 1_000, 50.0)],
                               historical=True))  # fmt: skip
    wait_for(lambda: plant.notifier.of("returned_to_normal"), what="late rtn")
    raised = plant.notifier.of("raised")[0]
    assert raised.ts_ms == t0
    assert raised.message.startswith("late: press1 temperature 96 degC above")
    assert plant.notifier.of("returned_to_normal")[0].message.startswith("late: ")


def test_a_restart_neither_loses_nor_duplicates_an_active_alarm(plant_factory, db_engine):
    plant = plant_factory([TEMP_HIGH])
    plant.birth()
    t0 = now_ms() - 60_000  # source times in the past, as they are
    plant.send(plant.edge.data("press1", [("temperature", t0, 97.0)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="raised")[0]
    plant.stop()
    again = plant_factory([TEMP_HIGH])  # a new engine and worker on the same database
    again.alarms.flush()
    assert again.notifier.received == []  # the active alarm was loaded, not raised again
    again.send(again.edge.data("press1", [("temperature", t0 + 1_000, 98.0)]))
    wait_for(lambda: again.alarms.counters.snapshot()["samples_evaluated"] >= 1, what="evaluated")
    assert again.notifier.received == []
    again.send(again.edge.data("press1", [("temperature", t0 + 2_000, 60.0)]))
    rtn = wait_for(lambda: again.notifier.of("returned_to_normal"), what="rtn")[0]
    assert rtn.alarm_id == raised.alarm_id
    with db_engine.connect() as conn:
        assert conn.execute(select(Alarm.id)).scalars().all() == [raised.alarm_id]
