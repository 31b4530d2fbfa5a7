"""The condition monitor over a real database (SQLite and PostgreSQL), fed through the ingest writer.

pump1 carries a seeded wearing bearing (see ``condition_kit``). The tests step the monitor
through time (``now_ms``) and check it against the model's truth: the zone C alarm opens at
the sample where the zone changes, the remaining life at 85 % of life is close to the true
one and raises its alarm and one suggested work order with its evidence.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from cloud.alarms.models import AlarmEvent
from cloud.db import writer_engine
from cloud.ingest.writer import IngestWriter
from cloud.maintenance.condition_config import (
    ConditionSettings,
    MachineCondition,
    TemperatureWatch,
)
from cloud.maintenance.models import ConditionAssessment
from cloud.maintenance.monitor import ConditionMonitor, assess_all
from cloud.maintenance.service import assess_machine
from cloud.maintenance.zones import load_vibration_classes
from protocols.wire import MetricDefinition
from tests.cloud.conftest import Wire
from tests.cloud.maintenance.condition_kit import (
    CLASS,
    HOUR,
    HOURS,
    MODEL,
    RMS,
    SETTINGS,
    T0,
    alarm,
    assess,
    bearing_windows,
    birth,
    machine_id,
    plain_vibration_machine,
    suggestions,
    ts_of,
    write_pump,
)


@pytest.fixture
def pump(db_engine: Engine) -> int:
    return write_pump(db_engine, Wire())


# --------------------------------------------------------------------------- zone


def test_zone_c_alarm_opens_at_the_sample_where_the_zone_changes(db_engine, pump):
    rms = [f.rms for f in bearing_windows()]
    b_c = load_vibration_classes()[CLASS].b_c
    # the zone is judged on the mean of the newest 3 windows: the first hour where it is >= B/C
    changes = next(h for h in range(2, HOURS) if sum(rms[h - 2 : h + 1]) / 3 >= b_c)
    assert (
        abs(changes - MODEL.crossing_h(b_c)) < 40
    )  # the model's true crossing, give or take noise

    key = f"pdm:{pump}:{RMS}:zone_c"
    for hour in range(changes - 3, changes):
        result = assess(db_engine, pump, ts_of(hour) + 1)[RMS]
        assert result.zone == "B"
        assert alarm(db_engine, key) is None
    result = assess(db_engine, pump, ts_of(changes) + 1)[RMS]
    assert result.zone == "C"
    assert result.rms == pytest.approx(sum(rms[changes - 2 : changes + 1]) / 3)
    assert result.data_to_ms == ts_of(changes)
    raised = alarm(db_engine, key)
    assert raised is not None
    assert (raised.raised_ms, raised.priority, raised.kind, raised.state) == (
        ts_of(changes),
        "medium",
        "vibration_zone",
        "active_unack",
    )
    assert raised.roles == ["maintenance"]
    assert raised.limit_value == b_c
    assert alarm(db_engine, f"pdm:{pump}:{RMS}:zone_d") is None
    with Session(db_engine) as session:  # handed to the notifier by the next alarm-engine sweep
        notify = session.scalars(select(AlarmEvent.notify).where(AlarmEvent.alarm_id == raised.id))
        assert list(notify) == ["pending"]
    assert result.alarm_ids == {key: raised.id}
    # zone C is a suggested work order at once
    (suggestion,) = suggestions(db_engine, pump)
    assert (suggestion.kind, suggestion.status) == ("vibration_zone", "open")
    assert suggestion.evidence["zone"] == "C"
    assert suggestion.evidence["alarm_ids"][key] == raised.id


def test_zone_d_is_a_second_alarm_and_both_return_when_the_zone_is_back(db_engine):
    values = [1.0] * 5 + [3.0] * 2 + [5.0] * 2 + [3.2] * 2 + [1.1] * 2
    cnc = plain_vibration_machine(db_engine, Wire(), values)
    settings = ConditionSettings(
        zone_windows=1,
        baseline_windows=5,
        profiles={"acme-pump": MachineCondition(vibration_class=CLASS)},
    )
    zone_c, zone_d = (f"pdm:{cnc}:spindle_vibration:zone_{z}" for z in "cd")
    seen = []
    for i in range(len(values)):
        result = assess(db_engine, cnc, T0 + i * 60_000, settings)["spindle_vibration"]
        c, d = alarm(db_engine, zone_c), alarm(db_engine, zone_d)
        seen.append((result.zone, c.state if c else None, d.state if d else None))
        assert result.features == {"rms": values[i]}
        assert result.class_id == CLASS
    assert seen == (
        [("A", None, None)] * 5
        + [("C", "active_unack", None)] * 2
        + [("D", "active_unack", "active_unack")] * 2
        + [("C", "active_unack", "rtn_unack")] * 2
        + [("A", "rtn_unack", "rtn_unack")] * 2
    )
    d = alarm(db_engine, zone_d)
    assert d is not None
    assert d.priority == "high"
    assert d.raised_ms == T0 + 7 * 60_000
    (suggestion,) = suggestions(db_engine, cnc)  # one live per machine × kind, however often
    assert suggestion.kind == "vibration_zone"
    assert suggestion.due_by_ms == T0 + 7 * 60_000  # zone D: due at once (never later again)
    # the evidence is the last pass' that found zone C or D (back in A changes nothing)
    assert (suggestion.evidence["zone"], suggestion.evidence["rms"]) == ("C", 3.2)


def test_without_a_class_the_zone_is_unknown_but_health_is_assessed(db_engine):
    values = [1.0, 1.1, 0.9, 1.0, 1.05, 1.0, 6.0]
    cnc = plain_vibration_machine(db_engine, Wire(), values)
    settings = ConditionSettings(zone_windows=1, baseline_windows=5)
    healthy = assess(db_engine, cnc, T0 + 5 * 60_000, settings)["spindle_vibration"]
    worn = assess(db_engine, cnc, T0 + 6 * 60_000, settings)["spindle_vibration"]
    assert (worn.zone, worn.class_id, worn.rul) == (None, None, None)
    assert healthy.health is not None
    assert worn.health is not None
    assert worn.health < healthy.health
    assert alarm(db_engine, f"pdm:{cnc}:spindle_vibration:zone_c") is None
    assert suggestions(db_engine, cnc) == []
    with Session(db_engine) as session:
        row = session.get(ConditionAssessment, worn.id)
        assert row is not None
        assert row.detail["class_source"] == "none"


# --------------------------------------------------------------------------- life and health


def test_remaining_life_at_85_percent_raises_its_alarm_and_one_suggestion(db_engine, pump):
    hour = 850
    truth = MODEL.failure_h - hour  # 150 h: below the 168 h horizon
    result = assess(db_engine, pump, ts_of(hour) + 1)[RMS]
    rul = result.rul
    assert rul is not None
    assert rul.rul_h is not None
    assert rul.low_h is not None
    assert rul.high_h is not None
    # measured on this seed: 150.8 h (146.8 .. 155.4), +0.5 %; the issue aims at ±20 % at 80 %
    assert abs(rul.rul_h - truth) / truth < 0.2, f"RUL {rul.rul_h:.0f} h, true {truth:.0f} h"
    assert rul.low_h <= rul.rul_h <= rul.high_h
    assert rul.rul_h < SETTINGS.rul_horizon_h

    key = f"pdm:{pump}:{RMS}:rul"
    raised = alarm(db_engine, key)
    assert raised is not None
    assert (raised.priority, raised.kind, raised.state) == (
        "high",
        "remaining_life",
        "active_unack",
    )
    assert raised.value == pytest.approx(rul.rul_h)
    assert raised.limit_value == SETTINGS.rul_horizon_h
    assert raised.raised_ms == ts_of(hour)
    by_kind = {s.kind: s for s in suggestions(db_engine, pump)}
    assert set(by_kind) == {"vibration_zone", "remaining_life"}
    assert by_kind["vibration_zone"].evidence["zone"] == result.zone == "C"
    assert by_kind["vibration_zone"].due_by_ms == ts_of(hour) + 1 + round(rul.low_h * HOUR)
    life = by_kind["remaining_life"]
    assert life.status == "open"
    assert life.due_by_ms == ts_of(hour) + 1 + round(rul.low_h * HOUR)
    assert f"in {rul.rul_h:.0f} h" in life.reason
    evidence = life.evidence
    assert evidence["assessment_id"] == result.id
    assert evidence["rul"]["low_h"] == pytest.approx(rul.low_h)
    assert evidence["rul"]["high_h"] == pytest.approx(rul.high_h)
    assert evidence["rul"]["points_used"] == rul.points_used == hour + 1
    assert evidence["trend"]["points_used"] == hour + 1
    assert evidence["alarm_ids"][key] == raised.id
    assert evidence["links"]["series"].startswith(f"/api/series?machine={pump}&metric={RMS}")
    assert "metric=motor_de&" in evidence["links"]["waveforms"]
    assert set(evidence["features"]) == {"rms", "peak", "crest_factor", "kurtosis"}
    assert evidence["class"]["c_d"] == 4.5

    # a later pass updates the one live suggestion (no second one); its due date never moves later
    later = assess(db_engine, pump, ts_of(hour + 10) + 1)[RMS]
    again = {s.kind: s for s in suggestions(db_engine, pump)}
    assert len(suggestions(db_engine, pump)) == 2
    assert again["remaining_life"].id == life.id
    assert again["remaining_life"].evidence["assessment_id"] == later.id
    assert again["remaining_life"].due_by_ms is not None
    assert again["remaining_life"].due_by_ms <= life.due_by_ms


def test_remaining_life_at_half_life_is_close_and_no_alarm(db_engine, pump):
    result = assess(db_engine, pump, ts_of(500) + 1)[RMS]
    assert result.zone == "B"
    rul = result.rul
    assert rul is not None
    assert rul.rul_h is not None
    truth = MODEL.failure_h - 500
    # measured on this seed: 496.3 h (474.2 .. 519.0), -0.7 %
    assert abs(rul.rul_h - truth) / truth < 0.2, f"RUL {rul.rul_h:.0f} h, true {truth:.0f} h"
    assert alarm(db_engine, f"pdm:{pump}:{RMS}:rul") is None
    assert suggestions(db_engine, pump) == []


def test_health_falls_from_the_machine_baseline_as_the_bearing_wears(db_engine, pump):
    early = assess(db_engine, pump, ts_of(100) + 1)[RMS]
    late = assess(db_engine, pump, ts_of(990) + 1)[RMS]
    assert early.health is not None
    assert late.health is not None
    assert early.health > 80
    assert late.health < early.health - 30
    assert late.features["kurtosis"] > early.features["kurtosis"]
    with Session(db_engine) as session:
        trends = session.get(ConditionAssessment, late.id).detail["feature_trends"]
    assert set(trends) == {"rms", "peak", "crest_factor", "kurtosis"}
    for name in ("rms", "peak", "kurtosis"):  # a wearing bearing: each rises over its life
        assert trends[name]["slope_per_h"] > 0, (name, trends[name])
        assert trends[name]["vs_baseline"] > 1.0, (name, trends[name])
    assert trends["rms"]["latest"] == late.features["rms"]
    assert trends["rms"]["vs_baseline"] == pytest.approx(
        late.features["rms"] / trends["rms"]["baseline_median"]
    )


def test_health_waits_for_the_baseline_windows(db_engine, pump):
    settings = SETTINGS.model_copy(update={"baseline_windows": 60})
    result = assess(db_engine, pump, ts_of(40) + 1, settings)[RMS]
    assert result.health is None


# --------------------------------------------------------------------------- temperature


def fan_machine(engine: Engine, wire: Wire, rise_c_per_h: float) -> int:
    """fan1: motor temperature every 10 min for 24 h at 80 % load, except 2 h at 40 % load
    (cooler) which a steady-load trend must leave out."""
    writer = IngestWriter(engine)
    metrics = (
        MetricDefinition("motor_temp", "float64", "temperature", unit="degC"),
        MetricDefinition("fan_load", "float64", "process_param", unit="%"),
    )
    writer.write([birth(wire, "fan1", metrics)])
    noise = random.Random(5)
    samples: list[tuple[str, int, Any]] = []
    for i in range(24 * 6 + 1):
        ts, hours = T0 + i * 600_000, i / 6
        low_load = 10 <= hours < 12
        if i == 0 or low_load != (10 <= (i - 1) / 6 < 12):
            samples.append(("fan_load", ts, 40.0 if low_load else 80.0))  # report by exception
        temperature = 30.0 if low_load else 45.0 + rise_c_per_h * hours
        samples.append(("motor_temp", ts, temperature + noise.gauss(0, 0.1)))
    writer.write([wire.data("fan1", samples)])
    return machine_id(engine, "fan1")


FAN = ConditionSettings(
    trend_bucket_s=0,
    machines={
        "fan1": MachineCondition(
            temperature=TemperatureWatch(load_metric="fan_load", limit_c=70.0, lookback_h=24)
        )
    },
)


def test_a_temperature_rising_at_steady_load_raises_an_alarm_and_a_suggestion(db_engine):
    fan = fan_machine(db_engine, Wire(), rise_c_per_h=0.5)
    now = T0 + 24 * HOUR + 1
    trend = assess(db_engine, fan, now, FAN)["motor_temp"].temperature
    assert trend is not None
    assert trend.slope_c_per_h is not None
    assert trend.slope_c_per_h == pytest.approx(0.5, abs=0.05)  # the 40 % load hours left out
    assert trend.rising
    # 145 samples, the first (at T0) just outside the 24 h look-back, 12 at 40 % load
    assert trend.points_used == 24 * 6 + 1 - 1 - 12
    raised = alarm(db_engine, f"pdm:{fan}:motor_temp:temperature")
    assert raised is not None
    assert raised.priority == "medium"
    assert raised.kind == "temperature_trend"
    (suggestion,) = suggestions(db_engine, fan)
    assert suggestion.kind == "temperature_trend"
    assert trend.hours_to_limit is not None
    assert suggestion.due_by_ms == now - 1 + round(trend.hours_to_limit * HOUR)  # newest point +
    assert suggestion.evidence["trend"]["load_metric"] == "fan_load"


def test_a_steady_temperature_is_no_alarm(db_engine):
    fan = fan_machine(db_engine, Wire(), rise_c_per_h=0.0)
    result = assess(db_engine, fan, T0 + 24 * HOUR + 1, FAN)["motor_temp"]
    assert result.temperature is not None
    assert not result.temperature.rising
    assert alarm(db_engine, f"pdm:{fan}:motor_temp:temperature") is None
    assert suggestions(db_engine, fan) == []


def test_the_bearing_housing_temperature_is_assessed_at_its_load(db_engine, pump):
    result = assess(db_engine, pump, ts_of(900) + 1)["bearing_temp"]
    trend = result.temperature
    assert trend is not None
    assert result.data_to_ms == ts_of(900)
    # the wear term adds 15 degC over 700 h: about 0.02 degC/h, below the 0.2 degC/h that alarms
    assert trend.slope_c_per_h is not None
    assert trend.slope_c_per_h == pytest.approx(MODEL.wear_rise_c / (1000 - MODEL.onset_h),
                                                rel=0.2)  # fmt: skip
    assert not trend.rising


# --------------------------------------------------------------------------- monitor


def test_assess_all_assesses_every_monitored_machine_and_stores_history(db_engine, pump):
    cnc = plain_vibration_machine(db_engine, Wire(edge="edge2"), [1.0, 1.0, 1.0])
    done = assess_all(db_engine, ts_of(300), SETTINGS)
    assert done.errors == {}
    assert set(done.assessments) == {pump, cnc}
    assert {a.metric for a in done.assessments[pump]} == {RMS, "bearing_temp"}
    with Session(db_engine) as session:
        stored = session.scalar(select(func.count()).select_from(ConditionAssessment))
    assert stored == 3


def test_the_monitor_thread_runs_passes_until_stopped(db_engine, pump):
    monitor = ConditionMonitor(db_engine, SETTINGS, interval_s=0.05)
    monitor.start()
    try:
        deadline = datetime.now(UTC).timestamp() + 60
        while monitor.passes < 2 and datetime.now(UTC).timestamp() < deadline:
            time.sleep(0.05)
    finally:
        monitor.stop()
    assert monitor.passes >= 2
    assert monitor.failures == 0
    # every pass saw the same newest vibration sample: one row for it however many passes ran
    assert stored_rows(db_engine, RMS) == {ts_of(HOURS - 1): 1}


def stored_rows(engine: Engine, metric: str) -> dict[int | None, int]:
    """How many assessments of ``metric`` are stored, per newest sample (``data_to_ms``)."""
    with Session(engine) as session:
        rows = session.execute(
            select(ConditionAssessment.data_to_ms, func.count())
            .where(ConditionAssessment.metric == metric)
            .group_by(ConditionAssessment.data_to_ms)
        )  # fmt: skip
        return {data_to_ms: count for data_to_ms, count in rows}


def test_passes_over_the_same_data_store_one_assessment_per_metric(db_engine, pump):
    first = assess_all(db_engine, ts_of(300) + 1, SETTINGS)
    again = assess_all(db_engine, ts_of(300) + 2, SETTINGS)  # no new sample in between
    assert first.errors == again.errors == {}
    ids = {a.metric: a.id for a in first.assessments[pump]}
    assert set(ids) == {RMS, "bearing_temp"}
    assert {a.metric: a.id for a in again.assessments[pump]} == ids  # the row there is
    for metric in ids:
        assert stored_rows(db_engine, metric) == {ts_of(300): 1}
    with Session(db_engine) as session:
        kept = session.get(ConditionAssessment, ids[RMS])
        assert kept is not None
        assert kept.assessed_ms == ts_of(300) + 1  # the first pass' row is kept as it was
    # a new sample is new data: one more row per metric
    assert assess_all(db_engine, ts_of(301) + 1, SETTINGS).errors == {}
    for metric in ids:
        assert stored_rows(db_engine, metric) == {ts_of(300): 1, ts_of(301): 1}


def test_two_workers_assessing_the_same_data_at_once_store_it_once(db_engine, pump):
    """Worker B assesses while worker A's transaction with the same rows is still open: B waits
    (PostgreSQL: on A's row in the unique index; SQLite: on the write lock), then keeps A's rows."""
    now = ts_of(300) + 1  # zone B, long life, steady temperature: the assessment rows are all
    with ThreadPoolExecutor(1) as pool, writer_engine(db_engine).begin() as conn:  # A ends first
        mine = {a.metric: a.id for a in assess_machine(conn, pump, now, SETTINGS)}
        theirs = pool.submit(assess, db_engine, pump, now + 1)
        if db_engine.dialect.name == "postgresql":
            a_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            deadline = time.monotonic() + 30
            while not blocked_by(db_engine, a_pid):
                assert time.monotonic() < deadline, "worker B never waited for worker A"
                time.sleep(0.02)
    assert {metric: a.id for metric, a in theirs.result(timeout=60).items()} == mine
    for metric in mine:
        assert stored_rows(db_engine, metric) == {ts_of(300): 1}


def blocked_by(engine: Engine, pid: int) -> bool:
    """Whether some PostgreSQL backend is waiting for a lock held by backend ``pid``."""
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE :p = ANY(pg_blocking_pids(pid))")
        return bool(conn.execute(query, {"p": pid}).scalar_one())


def test_failures_are_counted_and_logged_once_per_machine_and_streak(db_engine, pump, caplog):
    monitor = ConditionMonitor(db_engine, SETTINGS, interval_s=3600)
    with writer_engine(db_engine).begin() as conn:  # the history table goes missing
        conn.execute(text("ALTER TABLE condition_assessment RENAME TO condition_assessment_away"))
    caplog.set_level(logging.INFO, logger="cloud.maintenance.monitor")
    first = monitor.run_once(ts_of(10))
    second = monitor.run_once(ts_of(11))
    assert set(first.errors) == set(second.errors) == {pump}
    assert "condition_assessment" in first.errors[pump]
    assert monitor.failures == 2
    failed = [r for r in caplog.records if "assessing machine" in r.message]
    assert len(failed) == 1
    assert failed[0].levelno == logging.ERROR
    with writer_engine(db_engine).begin() as conn:
        conn.execute(text("ALTER TABLE condition_assessment_away RENAME TO condition_assessment"))
    third = monitor.run_once(ts_of(12))
    assert third.errors == {}
    assert set(third.assessments) == {pump}
    recovered = [r for r in caplog.records if "works again" in r.message]
    assert len(recovered) == 1
    assert monitor.passes == 3


def test_migration_0011_matches_the_models(db_engine):
    import cloud.models  # noqa: F401  (every other table on Base.metadata)
    from cloud.db import Base

    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = {"machine_vibration_class", "condition_assessment", "maintenance_suggestion"}
    mentioned = set()
    for item in diff:
        for part in item if isinstance(item, list) else [item]:
            for value in part[1:]:
                table = getattr(value, "table", None)
                mentioned.add(getattr(table, "name", None) or getattr(value, "name", None))
                if isinstance(value, str):
                    mentioned.add(value)
    assert not (mentioned & ours), diff
