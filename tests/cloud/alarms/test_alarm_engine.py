"""The engine on a real database (SQLite and PostgreSQL), fed by the real ingest writer."""

from __future__ import annotations

import threading
import time
import warnings

import pytest
from sqlalchemy import insert, select

from cloud.alarms.engine import AlarmEngine
from cloud.alarms.evaluation import OUT_OF_SERVICE
from cloud.alarms.models import Alarm
from cloud.alarms.rules import AlarmRule
from cloud.api.app import create_app
from cloud.ingest.writer import BatchResult, IngestWriter
from cloud.machine_state.models import StateInterval
from protocols.wire import BirthMessage, MetricDefinition, Topic, TopicKind
from tests.cloud.alarms.conftest import CODEC, CollectingNotifier, Edge, now_ms, wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

TEMP_HIGH = AlarmRule(name="temp_high", kind="high", metric="temperature", limit="profile")


@pytest.fixture
def engines(db_engine):
    started: list[AlarmEngine] = []

    def start(rules=(TEMP_HIGH,), notifier=None, **options) -> AlarmEngine:
        options = {"builtin": False, "tick_s": 0.05, "refresh_s": 60.0} | options
        engine = AlarmEngine(db_engine, notifier or CollectingNotifier(), file_rules=rules,
                             **options)  # fmt: skip
        engine.start()
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()


def _write(db_engine, *messages) -> BatchResult:
    return IngestWriter(db_engine).write(list(messages))


def test_two_workers_on_one_stream_raise_one_alarm_and_tell_once(db_engine, engines):
    edge = Edge()
    birth = _write(db_engine, edge.birth("press1"))
    first, second = engines(), engines()
    for engine in (first, second):
        engine.observe(birth)
    t0 = now_ms() - 10_000
    for value in (95.0, 50.0, 97.0):  # raise, return, raise again (re-alarm of the same alarm)
        batch = _write(db_engine, edge.data("press1", [("temperature", t0, value)]))
        t0 += 1_000
        for engine in (first, second):  # both see the batch, as two workers could
            engine.observe(batch)
        first.flush()
        second.flush()
    told = first.notifier.received + second.notifier.received
    assert sorted(n.event for n in told) == ["raised", "raised", "returned_to_normal"]
    with db_engine.connect() as conn:
        alarms = conn.execute(select(Alarm.id, Alarm.state, Alarm.activations)).all()
    assert [(a.state, a.activations) for a in alarms] == [("active_unack", 2)]


def test_a_disabled_rule_takes_its_alarms_out_of_service(db_engine, engines):
    edge = Edge()
    alarms = engines()
    alarms.observe(_write(db_engine, edge.birth("press1")))
    alarms.observe(_write(db_engine, edge.data("press1", [("temperature", now_ms(), 99.0)])))
    alarms.flush()
    assert alarms.notifier.events() == ["raised"]
    with TestClient(create_app(db_engine, alarms=alarms)) as client:
        off = TEMP_HIGH.model_dump(mode="json") | {"enabled": False}
        answer = client.put("/api/alarm-rules/temp_high", json=off, params={"user": "eve"})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["source"], answer.json()["updated_by"]) == ("api", "eve")
        rtn = wait_for(lambda: alarms.notifier.of("returned_to_normal"), what="out of service")
        assert rtn[0].message == f"press1 temp_high: {OUT_OF_SERVICE}"
        assert alarms.points == 0
        # deleting the stored rule brings back the file's rule: the held 99 degC raises again
        assert client.delete("/api/alarm-rules/temp_high").status_code == 204
        wait_for(lambda: len(alarms.notifier.of("raised")) == 2, what="back in service")


def test_a_machine_limit_override_applies_to_the_held_value_at_once(db_engine, engines):
    edge = Edge()
    alarms = engines()
    alarms.observe(_write(db_engine, edge.birth("press1")))
    alarms.observe(_write(db_engine, edge.data("press1", [("temperature", now_ms(), 85.0)])))
    alarms.flush()
    assert alarms.notifier.received == []  # 85 is below the profile's 90
    with TestClient(create_app(db_engine, alarms=alarms)) as client:
        machine_id = client.get("/api/machines").json()[0]["id"]
        put = client.put(f"/api/machines/{machine_id}/alarm-limits/temperature",
                         json={"high": 80.0, "user": "fay"})  # fmt: skip
        assert put.status_code == 200, put.text
        raised = wait_for(lambda: alarms.notifier.of("raised"), what="raised by the override")[0]
        assert (raised.value, raised.limit) == (85.0, 80.0)
        listed = client.get(f"/api/machines/{machine_id}/alarm-limits").json()
        assert [(x["metric"], x["high"], x["updated_by"]) for x in listed] == [
            ("temperature", 80.0, "fay"),
        ]
        bad = client.put(f"/api/machines/{machine_id}/alarm-limits/temperature",
                         json={"low": 90.0, "high": 80.0})  # fmt: skip
        assert bad.status_code == 422
        assert "low (90.0) must be below high (80.0)" in bad.text
        assert client.put("/api/machines/999/alarm-limits/x", json={}).status_code == 404


def test_machine_state_from_state_intervals_when_there_is_no_state_tag(db_engine, engines):
    edge = Edge()
    birth = BirthMessage(session=edge.session, created_ms=1, profile="oven", protocol="opcua",
                         metrics=(MetricDefinition("zone1", "float32", "temperature"),))  # fmt: skip
    topic = Topic.device_topic(TopicKind.BIRTH, "plant1", "edge1", "oven1")
    from cloud.ingest.writer import ReceivedMessage

    _write(db_engine, ReceivedMessage(str(topic), CODEC.encode(birth), 0))
    with db_engine.begin() as conn:
        from cloud.assets.models import Machine

        machine_id = conn.execute(select(Machine.id).where(Machine.device == "oven1")).scalar()
        start = now_ms() - 2_000  # state rules derived "down" two seconds ago
        conn.execute(insert(StateInterval).values(machine_id=machine_id, state="down",
                                                  start_ms=start, end_ms=None))  # fmt: skip
    rule = AlarmRule(name="down_long", kind="state_duration", state="down", duration_s=1)
    alarms = engines(rules=(rule,))
    raised = wait_for(lambda: alarms.notifier.of("raised"), what="down from intervals")[0]
    assert (raised.machine, raised.ts_ms, raised.metric) == ("oven1", start + 1_000, None)


class BlockingNotifier(CollectingNotifier):
    """A notifier that breaks the seam's promise and blocks, to prove ingest does not wait."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def submit(self, notification) -> None:
        self.release.wait(10)
        super().submit(notification)


def test_observe_never_blocks_ingest_even_when_the_engine_is_stuck(db_engine, engines):
    edge = Edge()
    notifier = BlockingNotifier()
    alarms = engines(notifier=notifier, queue_max=5)
    alarms.observe(_write(db_engine, edge.birth("press1")))
    batches = [
        _write(db_engine, edge.data("press1", [("temperature", now_ms() - 1_000 + i, v)]))
        for i, v in enumerate([95.0, 50.0] * 10)
    ]
    took = []
    for batch in batches:  # the first raise blocks the engine thread in submit
        started = time.perf_counter()
        alarms.observe(batch)
        took.append(time.perf_counter() - started)
    assert max(took) < 1.0  # a hand-off (µs), never a wait for the engine (blocked for 10 s)
    assert alarms.counters.snapshot()["dropped_batches"] > 0  # counted, not waited for
    notifier.release.set()
    alarms.flush()


def test_transitions_are_kept_while_the_alarm_tables_fail_and_stored_after(db_engine, engines):
    from sqlalchemy import text

    edge = Edge()
    alarms = engines(refresh_s=3600.0)
    alarms.observe(_write(db_engine, edge.birth("press1")))
    alarms.flush()
    with db_engine.begin() as conn:  # break the alarm tables: every alarm write fails
        conn.execute(text("ALTER TABLE alarm RENAME TO alarm_away"))
    alarms.observe(_write(db_engine, edge.data("press1", [("temperature", now_ms(), 96.0)])))
    wait_for(lambda: alarms.counters.snapshot()["db_errors"] >= 2, what="failed attempts")
    assert alarms.counters.snapshot()["unsaved"] == 1
    assert alarms.notifier.received == []
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE alarm_away RENAME TO alarm"))
    raised = wait_for(lambda: alarms.notifier.of("raised"), what="stored after recovery")[0]
    assert raised.value == 96.0
    assert alarms.counters.snapshot()["unsaved"] == 0


def test_an_on_delay_fires_when_it_runs_out_not_at_the_next_tick(db_engine, engines):
    # a 1 s on-delay and a 30 s tick: waiting for the tick would take 30 s
    delayed = TEMP_HIGH.model_copy(update={"on_delay_s": 1.0})
    edge = Edge()
    alarms = engines(rules=(delayed,), tick_s=30.0)
    alarms.observe(_write(db_engine, edge.birth("press1")))
    crossed = now_ms()
    alarms.observe(_write(db_engine, edge.data("press1", [("temperature", crossed, 99.0)])))
    alarms.flush()
    assert alarms.notifier.events() == []  # the on-delay is running
    wait_for(lambda: alarms.notifier.of("raised"), timeout=5.0, what="the raise after 1 s")
    (raised,) = alarms.notifier.of("raised")
    assert raised.ts_ms == crossed + 1_000  # at the time the delay ran out
