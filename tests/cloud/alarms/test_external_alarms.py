"""Alarms raised by other domains (``cloud.alarms.external``) on SQLite and PostgreSQL.

The lifecycle is the engine's (raise → return → acknowledge → cleared), the history rows wait
as ``pending`` until an alarm engine's sweep hands them to the notifier, exactly once, and the
engine leaves a point it does not evaluate alone when it refreshes.
"""

from __future__ import annotations

from sqlalchemy import select

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.alarms.engine import AlarmEngine
from cloud.alarms.external import SignalPoint, raise_signal, return_signal
from cloud.alarms.models import ACTIVE_UNACK, NOTIFY_PENDING, RTN_UNACK, Alarm, AlarmEvent
from cloud.alarms.transitions import acknowledge
from cloud.assets.models import Machine
from cloud.ingest.writer import IngestWriter
from tests.cloud.alarms.conftest import CollectingNotifier, wait_for

T = 1_800_000_000_000
KEY = "spc:1"


def _point(machine_id: int) -> SignalPoint:
    return SignalPoint(
        key=KEY, rule="spc.bore_diameter", kind="spc_rule", priority="medium",
        machine_id=machine_id, metric="temperature", unit="degC",
        action="Check the tool offset", roles=("quality",),
    )  # fmt: skip


def _machine(db_engine, wire) -> int:
    IngestWriter(db_engine).write([wire.birth("press1")])
    with db_engine.connect() as conn:
        return int(conn.scalar(select(Machine.id).where(Machine.device == "press1")))


def _alarm(conn) -> Alarm:
    return conn.execute(select(Alarm.__table__).where(Alarm.point_key == KEY)).one()


def test_a_signal_follows_the_alarm_lifecycle(db_engine, wire):
    machine_id = _machine(db_engine, wire)
    with db_engine.begin() as conn:
        alarm_id = raise_signal(
            conn, _point(machine_id), ts_ms=T, message="nelson1 on bore", value=2.1, limit=2.0,
            now_ms=T + 5,
        )  # fmt: skip
        assert alarm_id is not None
        assert (
            raise_signal(conn, _point(machine_id), ts_ms=T + 1, message="again", now_ms=T + 6)
            is None
        )
        row = _alarm(conn)
        assert (row.state, row.machine_name, row.area, row.line) == (
            ACTIVE_UNACK,
            "press1",
            "Press shop",
            "Line 1",
        )
        assert (row.value, row.limit_value, row.kind, row.roles) == (
            2.1,
            2.0,
            "spc_rule",
            ["quality"],
        )
        return_signal(conn, KEY, ts_ms=T + 10, message="back in control", now_ms=T + 11)
        assert _alarm(conn).state == RTN_UNACK
        assert (
            raise_signal(conn, _point(machine_id), ts_ms=T + 20, message="x", now_ms=T + 21)
            == alarm_id
        )
        assert _alarm(conn).activations == 2
        acknowledge(conn, alarm_id, "qe", "looking", now_ms=T + 30)
        return_signal(conn, KEY, ts_ms=T + 40, message="back in control", now_ms=T + 41)
        row = _alarm(conn)
        assert (row.state, row.open_key, row.cleared_ms) == ("cleared", None, T + 40)
        events = conn.execute(
            select(AlarmEvent.event, AlarmEvent.notify).where(AlarmEvent.alarm_id == alarm_id)
            .order_by(AlarmEvent.id)
        ).all()  # fmt: skip
    assert [e.event for e in events] == [
        "raised", "returned_to_normal", "raised", "acknowledged", "cleared",
    ]  # fmt: skip
    assert events[0].notify == NOTIFY_PENDING


def test_the_engine_hands_pending_signals_over_once_and_leaves_the_point_alone(db_engine, wire):
    machine_id = _machine(db_engine, wire)
    notifier = CollectingNotifier()
    engine = AlarmEngine(db_engine, notifier, builtin=True, tick_s=0.05, refresh_s=0.1)
    engine.start()
    try:
        with db_engine.begin() as conn:
            alarm_id = raise_signal(conn, _point(machine_id), ts_ms=T, message="m", now_ms=T)
        raised = wait_for(lambda: notifier.of("raised"), what="the raised notification")
        assert [(n.alarm_id, n.rule, n.kind, n.machine) for n in raised] == [
            (alarm_id, "spc.bore_diameter", "spc_rule", "press1")
        ]
        engine.refresh()  # the engine does not evaluate this point: it must not return it
        engine.flush()
        with db_engine.connect() as conn:
            assert _alarm(conn).state == ACTIVE_UNACK
        assert len(notifier.of("raised")) == 1
    finally:
        engine.stop()
