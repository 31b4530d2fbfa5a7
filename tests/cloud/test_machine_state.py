"""Machine-state intervals: the pure derivation, and the database path with late data."""

from __future__ import annotations

from sqlalchemy import select

from cloud.assets.models import Machine
from cloud.ingest.writer import IngestWriter
from cloud.machine_state.derive import Interval, Reading, derive_intervals
from cloud.machine_state.models import StateInterval
from cloud.machine_state.rules import compile_rules, rule_readings, rule_state_map
from protocols.quality import Quality
from protocols.wire import FaultText, MetricDefinition, StateRuleText

STATES = {"1": "idle", "2": "running", "3": "down"}


def test_readings_become_intervals():
    readings = [Reading(0, 1), Reading(10, 1), Reading(20, 2), Reading(30, 2), Reading(45, 3)]
    assert derive_intervals(readings, STATES) == [
        Interval("idle", "1", None, 0, 20),
        Interval("running", "2", None, 20, 45),
        Interval("down", "3", None, 45, None),
    ]


def test_bad_quality_and_unknown_codes_are_offline():
    readings = [Reading(0, 2), Reading(5, None, quality=2), Reading(9, 77), Reading(12, 2.0)]
    assert derive_intervals(readings, STATES) == [
        Interval("running", "2", None, 0, 5),
        Interval("offline", None, None, 5, 9),
        Interval("offline", "77", None, 9, 12),
        Interval("running", "2", None, 12, None),
    ]


def test_text_codes_and_fault_codes():
    faults = [Reading(0, 0), Reading(19, 502)]
    readings = [Reading(0, None, text="RUN"), Reading(20, None, text="STOP")]
    intervals = derive_intervals(readings, {"RUN": "running", "STOP": "down"}, faults)
    assert intervals == [
        Interval("running", "RUN", None, 0, 20),
        Interval("down", "STOP", "502", 20, None),
    ]
    assert derive_intervals([], STATES) == []


def _intervals(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            select(StateInterval.state, StateInterval.start_ms, StateInterval.end_ms).order_by(
                StateInterval.start_ms
            )
        ).all()
    return [tuple(r) for r in rows]


def test_state_samples_make_intervals_and_late_data_is_folded_in(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("press1")])
    writer.write([wire.data("press1", [("state", 1_000, 1), ("state", 2_000, 2)])])
    writer.write([wire.data("press1", [("state", 5_000, 3)])])
    assert _intervals(db_engine) == [
        ("idle", 1_000, 2_000), ("running", 2_000, 5_000), ("down", 5_000, None),
    ]  # fmt: skip

    # a backlog arrives late: the machine was down between 3000 and 4000
    writer.write([
        wire.data("press1", [("state", 3_000, 3), ("state", 4_000, 2)], historical=True)
    ])  # fmt: skip
    assert _intervals(db_engine) == [
        ("idle", 1_000, 2_000), ("running", 2_000, 3_000), ("down", 3_000, 4_000),
        ("running", 4_000, 5_000), ("down", 5_000, None),
    ]  # fmt: skip

    # a bad reading makes it offline; a later heartbeat of the same state extends nothing
    writer.write([
        wire.data("press1", [("state", 6_000, None, Quality.BAD), ("state", 7_000, 3)]),
        wire.data("press1", [("state", 8_000, 3)]),
    ])  # fmt: skip
    assert _intervals(db_engine)[-3:] == [
        ("down", 5_000, 6_000), ("offline", 6_000, 7_000), ("down", 7_000, None),
    ]  # fmt: skip


def test_late_data_before_everything_and_a_late_birth(db_engine, wire):
    writer = IngestWriter(db_engine)
    # data before the birth: no machine yet, so no intervals
    writer.write([wire.data("press1", [("state", 2_000, 2)])])
    assert _intervals(db_engine) == []
    writer.write([wire.birth("press1")])
    assert _intervals(db_engine) == [("running", 2_000, None)]
    writer.write([wire.data("press1", [("state", 500, 1)], historical=True)])
    assert _intervals(db_engine) == [("idle", 500, 2_000), ("running", 2_000, None)]


def test_fault_code_is_recorded_on_the_interval(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("press1")])
    writer.write([wire.data("press1", [("fault", 1_000, 0), ("state", 1_000, 2)])])
    writer.write([wire.data("press1", [("fault", 3_000, 17), ("state", 3_000, 3)])])
    with db_engine.connect() as conn:
        rows = conn.execute(
            select(
                StateInterval.state, StateInterval.fault_code, StateInterval.machine_id
            ).order_by(StateInterval.start_ms)
        ).all()
        machine_id = conn.execute(select(Machine.id)).scalar_one()
    assert [(r.state, r.fault_code) for r in rows] == [("running", None), ("down", "17")]
    assert {r.machine_id for r in rows} == {machine_id}


# --------------------------------------------------------------------------- state rules

SEWING_METRICS = (
    MetricDefinition("motor_running", "bool", "info"),
    MetricDefinition("presser_foot_down", "bool", "info"),
    MetricDefinition("fault_word", "uint16", "fault_code"),
    MetricDefinition("stitches", "uint32", "cycle_count"),
)
SEWING_RULES = (
    StateRuleText("down", "fault_word != 0"),
    StateRuleText("running", "motor_running and presser_foot_down"),
    StateRuleText("idle"),
)


def test_rules_over_tags_give_the_state_of_a_machine_without_a_state_tag():
    rules = compile_rules([{"state": r.state, "when": r.when} for r in SEWING_RULES])
    readings = {
        "motor_running": [Reading(1_000, 0.0), Reading(2_000, 1.0), Reading(6_000, 0.0)],
        "presser_foot_down": [Reading(1_000, 1.0), Reading(4_000, 0.0, 2)],  # bad from 4000
        "fault_word": [Reading(1_000, 0.0), Reading(3_000, 12.0), Reading(3_500, 0.0)],
    }
    synthetic = rule_readings(readings, rules)
    intervals = derive_intervals(synthetic, rule_state_map(rules))
    # 1000 idle (motor off) · 2000 running · 3000 down (fault 12) · 3500 running again ·
    # 4000 presser foot unreadable: running cannot be decided, so unknown (offline) ·
    # 6000 motor off, but the running rule still needs the unreadable presser foot? No:
    # "motor_running and ..." is false at once when the motor is off, so the fallback: idle.
    assert [(i.state, i.start_ms, i.end_ms) for i in intervals] == [
        ("idle", 1_000, 2_000), ("running", 2_000, 3_000), ("down", 3_000, 3_500),
        ("running", 3_500, 4_000), ("offline", 4_000, 6_000), ("idle", 6_000, None),
    ]  # fmt: skip


def test_a_rule_machine_gets_intervals_through_ingest_and_late_data_is_folded_in(db_engine, wire):
    writer = IngestWriter(db_engine)
    faults = {"12": FaultText("Thread break"), "14": FaultText("Bobbin empty", "material")}
    writer.write([
        wire.birth("sew1", metrics=SEWING_METRICS, fault_codes=faults, state_rules=SEWING_RULES)
    ])  # fmt: skip
    writer.write([
        wire.data("sew1", [("motor_running", 1_000, False), ("presser_foot_down", 1_000, True),
                           ("fault_word", 1_000, 0)]),
        wire.data("sew1", [("motor_running", 2_000, True)]),
        wire.data("sew1", [("fault_word", 5_000, 12)]),
    ])  # fmt: skip
    assert _intervals(db_engine) == [
        ("idle", 1_000, 2_000), ("running", 2_000, 5_000), ("down", 5_000, None),
    ]  # fmt: skip
    # the backlog of a stop between 3000 and 4000 arrives late
    writer.write([
        wire.data("sew1", [("motor_running", 3_000, False), ("motor_running", 4_000, True)],
                  historical=True),
    ])  # fmt: skip
    assert _intervals(db_engine) == [
        ("idle", 1_000, 2_000), ("running", 2_000, 3_000), ("idle", 3_000, 4_000),
        ("running", 4_000, 5_000), ("down", 5_000, None),
    ]  # fmt: skip
    with db_engine.connect() as conn:
        machine = conn.execute(select(Machine.fault_codes, Machine.state_rules)).one()
        down = conn.execute(
            select(StateInterval.fault_code).where(StateInterval.state == "down")
        ).scalar_one()
    assert down == "12"
    assert machine.fault_codes["14"] == {"reason": "Bobbin empty", "category": "material"}
    assert machine.state_rules[1] == {
        "state": "running", "when": "motor_running and presser_foot_down",
    }  # fmt: skip


def test_new_state_rules_in_a_birth_derive_the_states_again(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("sew1", metrics=SEWING_METRICS, state_rules=SEWING_RULES)])
    writer.write([
        wire.data("sew1", [("motor_running", 1_000, True), ("presser_foot_down", 1_000, False),
                           ("fault_word", 1_000, 0)]),
    ])  # fmt: skip
    assert _intervals(db_engine) == [("idle", 1_000, None)]
    # the engineer decides that a running motor alone means running
    looser = (SEWING_RULES[0], StateRuleText("running", "motor_running"), SEWING_RULES[2])
    writer.write([wire.birth("sew1", metrics=SEWING_METRICS, state_rules=looser)])
    assert _intervals(db_engine) == [("running", 1_000, None)]
