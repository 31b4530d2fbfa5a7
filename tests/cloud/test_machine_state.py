"""Machine-state intervals: the pure derivation, and the database path with late data."""

from __future__ import annotations

from sqlalchemy import select

from cloud.assets.models import Machine
from cloud.ingest.writer import IngestWriter
from cloud.machine_state.derive import Interval, Reading, derive_intervals
from cloud.machine_state.models import StateInterval
from protocols.quality import Quality

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
