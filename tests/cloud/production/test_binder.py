"""The unit binder over a real database (SQLite and PostgreSQL), fed by the real IngestWriter.

Births and data messages go through ``IngestWriter.write``; each stored batch is handed to the
binder as the ingest worker would (``observe``), and ``flush`` waits for its thread. Times are
fixed offsets from ``T`` so cycle windows, test windows and parameter summaries are exact.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.assets.models import Machine
from cloud.ingest.writer import IngestWriter
from cloud.production import service
from cloud.production.binder import UnitBinder
from cloud.production.serial_track import (
    MachineTags,
    Parameter,
    SerialShown,
    SerialTrack,
)
from cloud.production.trace import backward_trace
from cloud.production.trace_models import Unit, UnitCycle, UnitTest, UnitTestValue
from protocols.quality import Quality
from protocols.wire import MetricDefinition

T = 1_800_000_000_000
BENCH_METRICS = (
    MetricDefinition("bench_state", "uint16", "state"),
    MetricDefinition("last_serial", "string", "unit_serial"),
    MetricDefinition("tests_completed", "uint32", "cycle_count"),
    MetricDefinition("tests_passed", "uint32", "good_count"),
    MetricDefinition("tests_failed", "uint32", "scrap_count"),
    MetricDefinition("test_pressure", "float32", "process_param", "bar", 23.5, 24.5),
    MetricDefinition("leak_rate", "float32", "process_param", "mm3/s", 0.0, 1.0),
)
STATION_METRICS = (
    MetricDefinition("station_state", "uint16", "state"),
    MetricDefinition("breaker_serial", "string", "unit_serial"),
    MetricDefinition("breakers_assembled", "uint32", "cycle_count"),
    MetricDefinition("breakers_passed", "uint32", "good_count"),
    MetricDefinition("screw_torque", "float32", "process_param", "N·m", 1.8, 2.4),
)
# The bench tests V-1 in [T+1 s, T+10 s) (passed), V-2 in [T+10 s, T+20 s) (failed), then V-3.
BENCH_MESSAGES = [
    [("last_serial", T + 1_000, "V-1"), ("tests_completed", T + 1_000, 10),
     ("tests_passed", T + 1_000, 9), ("tests_failed", T + 1_000, 1),
     ("test_pressure", T + 1_000, 24.0), ("leak_rate", T + 1_000, 0.2)],
    [("test_pressure", T + 3_000, 24.1), ("leak_rate", T + 5_000, 0.3)],
    [("tests_completed", T + 10_000, 11), ("tests_passed", T + 10_000, 10),
     ("last_serial", T + 10_000, "V-2"), ("test_pressure", T + 12_000, 23.0)],
    [("tests_completed", T + 20_000, 12), ("tests_failed", T + 20_000, 2),
     ("last_serial", T + 20_000, "V-3")],
]  # fmt: skip


@pytest.fixture
def writer(db_engine):
    return IngestWriter(db_engine)


@pytest.fixture
def binder(db_engine):
    started: list[UnitBinder] = []

    def make(**options) -> UnitBinder:
        unit_binder = UnitBinder(db_engine, **options)
        unit_binder.start()
        started.append(unit_binder)
        return unit_binder

    yield make
    for unit_binder in started:
        unit_binder.stop()


def _machine_id(engine, device: str) -> int:
    with Session(engine) as session:
        return session.scalars(select(Machine.id).where(Machine.device == device)).one()


def _run_order(engine, product, machine_id, step_name, *, serialises=True, at=0):
    """A one-step routing on the machine and its work order, its operation started at T+at."""
    with Session(engine) as session:
        service.upsert_product(session, product, service.ProductSpec(product, serialised=True), T)
        step = service.OperationSpec(10, step_name, machine_id=machine_id, serialises=serialises)
        service.upsert_routing(
            session, f"R-{product}", service.RoutingSpec(product, "r", (step,)), T
        )
        order_id = service.upsert_work_order(
            session, f"WO-{product}", service.WorkOrderSpec(product, 10), T
        ).id
        service.work_order_action(session, order_id, "release", T)
        service.operation_action(session, order_id, 10, "start", T + at)
        session.commit()
        return order_id


def _feed(writer, unit_binder, messages) -> None:
    for message in messages:
        unit_binder.observe(writer.write([message]))
    assert unit_binder.flush()


def _cycles(engine, machine_id):
    with Session(engine) as session:
        rows = session.execute(
            select(Unit.serial, UnitCycle.start_ms, UnitCycle.end_ms, UnitCycle.source)
            .join(Unit, Unit.id == UnitCycle.unit_id)
            .where(UnitCycle.machine_id == machine_id)
            .order_by(UnitCycle.start_ms, UnitCycle.id)
        )
        return [tuple(r) for r in rows]


def _tests(engine):
    with Session(engine) as session:
        tests = session.execute(
            select(UnitTest, Unit.serial)
            .join(Unit, Unit.id == UnitTest.unit_id)
            .order_by(UnitTest.finished_ms, UnitTest.id)
        ).all()
        out = []
        for test, serial in tests:
            values = session.scalars(
                select(UnitTestValue)
                .where(UnitTestValue.test_id == test.id)
                .order_by(UnitTestValue.characteristic)
            )
            out.append(
                (serial, test.name, test.started_ms, test.finished_ms, test.passed, test.source,
                 [(v.characteristic, pytest.approx(v.value), v.low_limit, v.high_limit, v.passed)
                  for v in values])
            )  # fmt: skip
        return out


@pytest.fixture
def bench(db_engine, writer, wire):
    """The bench machine (from a birth), running the 'Pressure test' step of WO-VALVE."""
    writer.write([wire.birth("bench1", metrics=BENCH_METRICS)])
    machine_id = _machine_id(db_engine, "bench1")
    _run_order(db_engine, "VALVE", machine_id, "Pressure test")
    return machine_id


def test_serial_changes_bind_units_to_their_cycles_and_record_bench_tests(
    db_engine, writer, wire, binder, bench
):
    unit_binder = binder()
    _feed(writer, unit_binder, [wire.data("bench1", m) for m in BENCH_MESSAGES])

    assert _cycles(db_engine, bench) == [
        ("V-1", T + 1_000, T + 10_000, "plc"),
        ("V-2", T + 10_000, T + 20_000, "plc"),
        ("V-3", T + 20_000, None, "plc"),
    ]
    name = "acme-press test"  # the birth's profile name
    assert _tests(db_engine) == [
        # V-1: good_count went up with the cycle counter: passed; the values as they stood
        ("V-1", name, T + 1_000, T + 10_000, True, "plc",
         [("leak_rate", 0.3, 0.0, 1.0, True), ("test_pressure", 24.1, 23.5, 24.5, True)]),
        # V-2: scrap_count went up: failed; 23.0 bar is below the 23.5 limit
        ("V-2", name, T + 10_000, T + 20_000, False, "plc",
         [("leak_rate", 0.3, 0.0, 1.0, True), ("test_pressure", 23.0, 23.5, 24.5, False)]),
    ]  # fmt: skip
    counters = unit_binder.counters.snapshot()
    assert (counters["units_created"], counters["tests_recorded"], counters["errors"]) == (3, 2, 0)

    with Session(db_engine) as session:
        v1 = backward_trace(session, "V-1", T + 60_000)
        v2 = backward_trace(session, "V-2", T + 60_000)
    [v1_operation] = v1.operations
    assert (v1_operation.window, v1_operation.window_start_ms, v1_operation.window_end_ms) == (
        "unit_cycle", T + 1_000, T + 10_000,
    )  # fmt: skip
    pressure = {p.metric: p for p in v1_operation.parameters}["test_pressure"]
    # only V-1's own samples (24.0 at +1 s, 24.1 at +3 s), not V-2's 23.0 at +12 s
    assert (pressure.count, pressure.min, pressure.max, pressure.out_of_limits) == (
        2, pytest.approx(24.0), pytest.approx(24.1), 0,
    )  # fmt: skip
    [v2_operation] = v2.operations
    pressure = {p.metric: p for p in v2_operation.parameters}["test_pressure"]
    assert (v2_operation.window_start_ms, v2_operation.window_end_ms) == (T + 10_000, T + 20_000)
    assert (pressure.count, pressure.out_of_limits, pressure.min) == (1, 1, pytest.approx(23.0))
    assert [(t.name, t.passed) for t in v1.tests] == [(name, True)]
    assert [(t.name, t.passed) for t in v2.tests] == [(name, False)]


def test_a_restart_or_a_second_binder_binds_nothing_twice(db_engine, writer, wire, binder, bench):
    late = binder()  # started before any data: primed with nothing, so V-1 and V-2 look new
    first = binder()
    messages = [wire.data("bench1", m) for m in BENCH_MESSAGES]
    results = []
    for message in messages[:3]:
        results.append(writer.write([message]))
        first.observe(results[-1])
    assert first.flush()
    first.stop()

    # the same batches observed again by a binder that never saw them
    for result in results:
        late.observe(result)
    assert late.flush()
    counters = late.counters.snapshot()
    # V-1's and V-2's bindings and V-1's test were stored already
    assert (counters["duplicates"], counters["units_created"], counters["errors"]) == (3, 0, 0)

    # a restart: primed from ts_latest (V-2 is in the machine), it sees the third batch again
    restarted = binder()
    restarted.observe(results[2])
    _feed(writer, restarted, messages[3:])

    assert [c[:2] for c in _cycles(db_engine, bench)] == [
        ("V-1", T + 1_000), ("V-2", T + 10_000), ("V-3", T + 20_000),
    ]  # fmt: skip
    assert [(t[0], t[3]) for t in _tests(db_engine)] == [("V-1", T + 10_000), ("V-2", T + 20_000)]
    counters = restarted.counters.snapshot()
    assert (counters["units_created"], counters["duplicates"]) == (1, 0)  # V-3 only


def test_serials_that_cannot_be_bound_are_counted_not_raised(
    db_engine, writer, wire, binder, caplog
):
    writer.write([wire.birth("bench1", metrics=BENCH_METRICS)])
    machine_id = _machine_id(db_engine, "bench1")
    unit_binder = binder()
    # nothing runs on the machine yet
    _feed(writer, unit_binder, [wire.data("bench1", [("last_serial", T + 1_000, "X-1")])])
    assert unit_binder.counters.snapshot()["unbound_serials"] == 1
    assert "no operation runs on it" in caplog.text

    # X-2 is made by WO-A; WO-B then runs on the machine and the PLC shows X-2 again
    order_a = _run_order(db_engine, "PART-A", machine_id, "Pressure test", at=1_500)
    _feed(writer, unit_binder, [wire.data("bench1", [("last_serial", T + 2_000, "X-2")])])
    with Session(db_engine) as session:
        service.operation_action(session, order_a, 10, "finish", T + 3_000)
        session.commit()
    _run_order(db_engine, "PART-B", machine_id, "Pressure test", at=3_500)
    _feed(
        writer, unit_binder,
        [wire.data("bench1", [("last_serial", T + 4_000, "X-3")]),
         wire.data("bench1", [("last_serial", T + 5_000, "X-2")]),  # made by WO-A
         wire.data("bench1", [("last_serial", T + 6_000, ""),  # empty: no unit
                              ("last_serial", T + 6_500, None, Quality.BAD)]),
         wire.data("bench1", [("last_serial", T + 7_000, "X-4")])],
    )  # fmt: skip

    counters = unit_binder.counters.snapshot()
    assert (counters["bind_errors"], counters["errors"], counters["units_created"]) == (1, 0, 3)
    assert "was made by another work order" in caplog.text
    assert [c[:2] for c in _cycles(db_engine, machine_id)] == [
        ("X-2", T + 2_000), ("X-3", T + 4_000), ("X-4", T + 7_000),
    ]  # fmt: skip


def test_a_station_binds_cycles_but_records_no_tests(db_engine, writer, wire, binder):
    unit_binder = binder()  # started before the machine exists: learns it from the birth
    writer.write([wire.birth("station1", metrics=(STATION_METRICS[0],))])
    machine_id = _machine_id(db_engine, "station1")
    _run_order(db_engine, "MCB", machine_id, "Assembly")
    birth = wire.birth("station1", metrics=STATION_METRICS)
    first = wire.data(
        "station1",
        [("breaker_serial", T + 1_000, "B-1"), ("breakers_assembled", T + 1_000, 5),
         ("breakers_passed", T + 1_000, 5), ("screw_torque", T + 1_000, 2.1)],
    )  # fmt: skip
    # the new birth and the first data in one batch: ts_latest already holds B-1 when the binder
    # learns the serial tag, and it must still bind B-1
    unit_binder.observe(writer.write([birth, first]))
    _feed(
        writer, unit_binder,
        [wire.data("station1", [("breakers_assembled", T + 13_000, 6),
                                ("breakers_passed", T + 13_000, 6),
                                ("breaker_serial", T + 13_000, "B-2")])],
    )  # fmt: skip
    assert _cycles(db_engine, machine_id) == [
        ("B-1", T + 1_000, T + 13_000, "plc"),
        ("B-2", T + 13_000, None, "plc"),
    ]
    assert _tests(db_engine) == []  # neither "test" in its profile nor in its step name

    # told by name that the station is a test bench, a binder records its tests
    named = binder(test_benches={"station1"})
    _feed(
        writer, named,
        [wire.data("station1", [("breakers_assembled", T + 25_000, 7),
                                ("breaker_serial", T + 25_000, "B-3")])],
    )  # fmt: skip
    # neither good nor scrap counted with it: the verdict is the values' (2.1 N·m is inside)
    assert _tests(db_engine) == [
        ("B-2", "acme-press test", T + 13_000, T + 25_000, True, "plc",
         [("screw_torque", 2.1, 1.8, 2.4, True)]),
    ]  # fmt: skip


TAGS = MachineTags(
    1, "bench", "valve_pressure_test_bench", "edge1", "bench1", "serial",
    {"cycle_count": "cycles", "good_count": "good"}, {"p": Parameter("p", "bar", 1.0, 2.0)},
)  # fmt: skip


def _row(metric, ts, value, quality="good"):
    return (metric, ts, value, quality, None)


def test_track_takes_the_serial_shown_before_a_change_at_the_same_moment():
    track = SerialTrack(TAGS)
    track.prime("serial", T, "A", True)
    track.prime("cycles", T, 1, True)
    track.prime("good", T, 1, True)
    # the serial change arrives in an earlier message than the counter, same timestamp
    assert track.feed([_row("serial", T + 5, "B")]) == [SerialShown("B", T + 5)]
    [done] = track.feed([_row("cycles", T + 5, 2), _row("good", T + 5, 2), _row("p", T + 5, 1.5)])
    assert (done.serial, done.ts, done.passed) == ("A", T + 5, True)
    assert [(v.characteristic, v.value) for v in done.values] == [("p", 1.5)]
    # late samples (older than the last of their metric) are ignored; a counter drop is a reset
    assert track.feed([_row("serial", T + 1, "Z"), _row("cycles", T + 6, 0)]) == []
    assert track.feed([_row("cycles", T + 7, 1)])[0].serial == "B"  # counting again after reset
    # a bad or empty serial is no unit
    assert track.feed([_row("serial", T + 8, None, "bad"), _row("serial", T + 9, "  ")]) == []
