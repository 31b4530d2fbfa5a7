"""The ingest writer on SQLite and PostgreSQL: dedup, batches, dead letters, births, statuses."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from cloud.assets.models import Area, Line, Machine
from cloud.ingest.models import DeadLetter, DeviceEvent, EdgeNode, IngestMessage
from cloud.ingest.writer import IngestWriter, ReceivedMessage, compact_ranges
from cloud.timeseries.models import TsLatest, TsMinute, TsSeries
from cloud.timeseries.queries import count_samples, find_series
from cloud.timeseries.sql import SqlTimeSeriesStore
from protocols.quality import Quality
from protocols.wire import TopicKind


def _rows(engine, model):
    with engine.connect() as conn:
        return conn.execute(select(model)).all()


def test_compact_ranges():
    assert compact_ranges([]) == ()
    assert compact_ranges([5, 1, 2, 3, 7, 8, 3]) == ((1, 3), (5, 5), (7, 8))


def test_a_message_sent_twice_is_stored_once(db_engine, wire):
    writer = IngestWriter(db_engine)
    message = wire.data("press1", [("temperature", 1_000, 21.5), ("cycles", 1_000, 7)])

    first = writer.write([message])
    again = writer.write([message])

    assert (first.stored_messages, first.stored_samples, first.duplicates) == (1, 2, 0)
    assert (again.stored_messages, again.stored_samples, again.duplicates) == (0, 0, 1)
    assert count_samples(db_engine, device="press1") == 2
    # the duplicate is acknowledged again: its first ack may have been lost
    assert again.ack_ranges() == {("plant1", "edge1"): {wire.session: ((1, 1),)}}


def test_a_repeat_inside_one_batch_is_stored_once(db_engine, wire):
    message = wire.data("press1", [("temperature", 1_000, 21.5)])
    result = IngestWriter(db_engine).write([message, message, message])
    assert (result.stored_messages, result.duplicates) == (1, 2)
    assert count_samples(db_engine) == 1


def test_two_writers_racing_on_the_same_resend_store_it_once(db_engine, wire):
    batch = [wire.data("press1", [("temperature", i, float(i))]) for i in range(1, 201)]
    writers = [IngestWriter(db_engine), IngestWriter(db_engine)]
    results = [None, None]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(i):
        try:
            start.wait()
            results[i] = writers[i].write(batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert results[0].stored_messages + results[1].stored_messages == 200
    assert results[0].duplicates + results[1].duplicates == 200
    assert count_samples(db_engine, device="press1") == 200
    assert len(_rows(db_engine, IngestMessage)) == 200
    # both acknowledge everything: whichever stored it, it is stored
    for result in results:
        assert result.ack_ranges()[("plant1", "edge1")] == {wire.session: ((1, 200),)}


def test_a_large_batch_is_written_whole(db_engine, wire):
    batch = [
        wire.data(f"press{i % 5}", [(f"m{j}", 1_000 + i, i * 10 + j) for j in range(20)])
        for i in range(300)
    ]
    result = IngestWriter(db_engine).write(batch)
    assert (result.stored_messages, result.stored_samples) == (300, 6000)
    assert count_samples(db_engine) == 6000
    assert count_samples(db_engine, device="press0", metric="m3") == 60
    assert len(_rows(db_engine, TsSeries)) == 100
    assert result.ack_ranges() == {("plant1", "edge1"): {wire.session: ((1, 300),)}}


def test_values_of_every_type_and_quality_are_kept(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([
        wire.data("press1", [
            ("running", 1_000, True),
            ("count", 1_000, 42),
            ("recipe", 1_000, "PX-200"),
            ("pressure", 1_000, None, Quality.BAD),
            ("temperature", 1_000, 80.5, Quality.UNCERTAIN),
        ])
    ])  # fmt: skip
    store = SqlTimeSeriesStore(db_engine)
    ids = {m: find_series(db_engine, "edge1", "press1", m) for m in
           ("running", "count", "recipe", "pressure", "temperature")}  # fmt: skip
    latest = store.latest(ids.values())
    assert latest[ids["running"]].value == 1.0
    assert latest[ids["count"]].value == 42.0
    assert (latest[ids["recipe"]].value, latest[ids["recipe"]].text_value) == (None, "PX-200")
    assert (latest[ids["pressure"]].value, latest[ids["pressure"]].quality) == (None, 2)
    assert latest[ids["temperature"]].quality == 1
    types = {r.metric: r.data_type for r in _rows(db_engine, TsSeries)}
    assert types == {
        "running": "bool", "count": "int64", "recipe": "string", "pressure": "float64",
        "temperature": "float64",
    }  # fmt: skip


def test_latest_is_not_overwritten_by_older_history(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.data("press1", [("temperature", 5_000, 50.0)])])
    writer.write([wire.data("press1", [("temperature", 2_000, 20.0)], historical=True)])
    writer.write([wire.data("press1", [("temperature", 3_000, 30.0), ("temperature", 1_000, 1.0)])])

    sid = find_series(db_engine, "edge1", "press1", "temperature")
    latest = SqlTimeSeriesStore(db_engine).latest([sid])[sid]
    assert (latest.ts_ms, latest.value) == (5_000, 50.0)
    assert count_samples(db_engine) == 4

    writer.write(
        [wire.data("press1", [("temperature", 5_000, 55.0), ("temperature", 6_000, 60.0)])]
    )
    latest = SqlTimeSeriesStore(db_engine).latest([sid])[sid]
    assert (latest.ts_ms, latest.value) == (6_000, 60.0)


@pytest.mark.parametrize(
    ("topic", "payload", "error", "acked"),
    [
        ("forgeline/v1/plant1/edge1/press1/data", b"{not json", "not JSON", False),
        (
            "forgeline/v1/plant1/edge1/press1/data",
            b'{"v":1,"type":"data","session":"s1","seq":9,"created":1,"historical":false}',
            "samples: required field is missing",
            True,
        ),
        (
            "forgeline/v1/plant1/edge1/press1/data",
            b'{"v":99,"type":"data","session":"s1","seq":9,"created":1,"historical":false,'
            b'"samples":[]}',
            "version 99",
            True,
        ),
        (
            "forgeline/v1/plant1/edge1/press1/bogus",
            b'{"v":1,"type":"data","session":"s1","seq":9}',
            "unknown message kind",
            True,
        ),
        ("somewhere/else", b"{}", "not a forgeline topic", False),
        (
            "forgeline/v1/plant1/edge1/press1/data",
            b'{"v":1,"type":"data","session":"s1","seq":9,"created":1,"historical":false,'
            b'"samples":[{"m":"x","t":1,"v":1,"q":"excellent"}]}',
            "samples[0].q",
            True,
        ),
    ],
    ids=["bad-json", "missing-field", "unknown-version", "unknown-kind", "foreign-topic", "bad-q"],
)
def test_malformed_messages_are_dead_lettered_and_the_batch_goes_on(
    db_engine, wire, topic, payload, error, acked
):
    good = wire.data("press1", [("temperature", 1_000, 20.0)])
    bad = ReceivedMessage(topic, payload, 123)
    result = IngestWriter(db_engine).write([bad, good])

    assert (result.dead_letters, result.stored_messages) == (1, 1)
    [letter] = [r for r in _rows(db_engine, DeadLetter)]
    assert (letter.topic, bytes(letter.payload), letter.received_ms) == (topic, payload, 123)
    assert error in letter.error
    acks = result.ack_ranges()[("plant1", "edge1")]
    assert acks[wire.session] == ((1, 1),)
    assert acks.get("s1") == (((9, 9),) if acked else None)
    assert count_samples(db_engine) == 1


def test_a_resent_dead_letter_is_kept_once_and_acked_again(db_engine):
    bad = ReceivedMessage(
        "forgeline/v1/plant1/edge1/press1/data", b'{"v":99,"session":"s1","seq":4}', 1
    )
    writer = IngestWriter(db_engine)
    first, again = writer.write([bad]), writer.write([bad])
    assert (first.dead_letters, again.dead_letters, again.duplicates) == (1, 0, 1)
    assert again.ack_ranges() == {("plant1", "edge1"): {"s1": ((4, 4),)}}
    assert len(_rows(db_engine, DeadLetter)) == 1


def test_a_value_the_database_cannot_hold_is_dead_lettered_alone(db_engine, wire):
    # a sequence number beyond BIGINT passes JSON but not the database (or our limit check)
    huge = ReceivedMessage(
        wire.topic(TopicKind.DATA, "press1"),
        b'{"v":1,"type":"data","session":"s2","seq":99999999999999999999,"created":1,'
        b'"historical":false,"samples":[]}',
        5,
    )
    good = wire.data("press1", [("temperature", 1_000, 20.0)])
    result = IngestWriter(db_engine).write([good, huge])
    assert (result.stored_messages, result.dead_letters) == (1, 1)
    assert count_samples(db_engine) == 1


def test_events_are_stored(db_engine, wire):
    result = IngestWriter(db_engine).write([wire.event("press1", "counter_reset", 4_000)])
    assert result.stored_events == 1
    [event] = _rows(db_engine, DeviceEvent)
    assert (event.device, event.kind, event.ts_ms) == ("press1", "counter_reset", 4_000)


def test_a_birth_creates_the_machine_and_its_series(db_engine, wire):
    result = IngestWriter(db_engine).write([wire.birth("press1")])
    assert result.births == 1
    [machine] = _rows(db_engine, Machine)
    assert (machine.name, machine.site_id, machine.edge, machine.device) == (
        "press1",
        "plant1",
        "edge1",
        "press1",
    )
    assert (machine.profile, machine.ideal_cycle_time_s, machine.units_per_cycle) == (
        "acme-press",
        2.5,
        2,
    )
    assert machine.state_map["2"] == "running"
    [area] = _rows(db_engine, Area)
    [line] = _rows(db_engine, Line)
    assert (machine.area_id, machine.line_id) == (area.id, line.id)
    assert (area.name, line.name) == ("Press shop", "Line 1")
    roles = {r.metric: (r.role, r.unit) for r in _rows(db_engine, TsSeries)}
    assert roles["state"] == ("state", None)
    assert roles["temperature"] == ("temperature", "degC")

    # a second birth (retained, re-delivered) changes nothing but what it says
    IngestWriter(db_engine).write([wire.birth("press1", area="Hall B", line=None)])
    [machine] = _rows(db_engine, Machine)
    assert machine.line_id is None
    assert len(_rows(db_engine, Machine)) == 1


def test_data_before_birth_is_kept_and_the_birth_completes_the_series(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.data("press1", [("temperature", 1_000, 20.0)])])
    writer.write([wire.birth("press1")])
    [series] = [r for r in _rows(db_engine, TsSeries) if r.metric == "temperature"]
    assert (series.role, series.unit, series.data_type) == ("temperature", "degC", "float32")
    assert count_samples(db_engine, device="press1", metric="temperature") == 1


def test_status_records_the_edge_and_its_clock_skew(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.status(True, created_ms=10_000, received_ms=10_250)])
    # a stale retained status delivered later does not win
    writer.write([wire.status(False, created_ms=9_000, received_ms=11_000)])
    [edge] = _rows(db_engine, EdgeNode)
    assert (edge.online, edge.session, edge.clock_skew_ms) == (True, wire.session, 250)
    assert edge.health == {"buffer_depth": 3}
    writer.write([wire.status(False, created_ms=12_000, received_ms=12_000)])
    [edge] = _rows(db_engine, EdgeNode)
    assert edge.online is False


def test_latest_table_matches_newest_samples(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.data("press1", [("a", 10, 1.0), ("b", 20, 2.0)])])
    rows = {r.series_id: (r.ts, r.value) for r in _rows(db_engine, TsLatest)}
    assert sorted(rows.values()) == [(10, 1.0), (20, 2.0)]


class _RefusingStore(SqlTimeSeriesStore):
    """A real SQL store that refuses one poisoned value, as a database refuses bad data."""

    def write_batch(self, points, conn=None):
        if any(p.value == 666.0 for p in points):
            raise ValueError("value 666 refused")
        return super().write_batch(points, conn)


def test_a_message_the_store_refuses_is_isolated_and_dead_lettered(db_engine, wire):
    writer = IngestWriter(db_engine, store=_RefusingStore(db_engine))
    batch = [
        wire.data("press1", [("temperature", 1_000, 20.0)]),
        wire.data("press1", [("temperature", 2_000, 666.0)]),
        wire.data("press1", [("temperature", 3_000, 22.0)]),
    ]
    result = writer.write(batch)
    assert (result.stored_messages, result.dead_letters) == (2, 1)
    assert count_samples(db_engine) == 2
    [letter] = _rows(db_engine, DeadLetter)
    assert "value 666 refused" in letter.error
    # all three are acknowledged: two stored, one kept as a dead letter
    assert result.ack_ranges()[("plant1", "edge1")] == {wire.session: ((1, 3),)}


def test_duplicate_samples_are_counted_per_device(db_engine, wire):
    writer = IngestWriter(db_engine)
    first = wire.data("press1", [("a", 1, 1.0), ("b", 1, 2.0)])
    other = wire.data("press2", [("a", 1, 1.0)])
    writer.write([first, other])
    result = writer.write([first, other, first])
    assert result.duplicates == 3
    assert result.duplicate_samples_by_device == {"press1": 4, "press2": 1}


# ------------------------------------------------------------------ per-minute roll-up

M = 1_800_000_000_000  # a whole minute


def _minutes(engine):
    """``ts_minute`` as {minute_ms: (n, vmin, vmin_ts, vmax, vmax_ts)} (one series here)."""
    with engine.connect() as conn:
        return {
            r.minute_ms: (r.n, r.vmin, r.vmin_ts, r.vmax, r.vmax_ts)
            for r in conn.execute(select(TsMinute).order_by(TsMinute.minute_ms))
        }


def test_the_rollup_counts_good_numeric_samples_per_minute(db_engine, wire):
    IngestWriter(db_engine).write([
        wire.data("press1", [
            ("temperature", M + 1_000, 21.0), ("temperature", M + 2_000, 25.0),
            ("temperature", M + 3_000, 21.0),  # the same min again: the earlier one is kept
            ("temperature", M + 4_000, 99.0, Quality.UNCERTAIN),  # not charted: not counted
            ("temperature", M + 5_000, None, Quality.BAD),
            ("temperature", M + 60_000, 30.0),  # the next minute's first millisecond
            ("temperature", M + 59_999, 19.5),
        ]),
    ])  # fmt: skip
    assert _minutes(db_engine) == {
        M: (4, 19.5, M + 59_999, 25.0, M + 2_000),
        M + 60_000: (1, 30.0, M + 60_000, 30.0, M + 60_000),
    }


def test_text_and_uncertain_only_minutes_have_no_rollup_row(db_engine, wire):
    IngestWriter(db_engine).write(
        [
            wire.data("press1", [("recipe", M, "PX-200"), ("temperature", M, 1.0, Quality.BAD)]),
        ]
    )
    assert _rows(db_engine, TsMinute) == []


def test_a_resent_message_does_not_change_the_rollup(db_engine, wire):
    writer = IngestWriter(db_engine)
    message = wire.data("press1", [("temperature", M + i * 1_000, 20.0 + i) for i in range(90)])
    writer.write([message])
    once = _minutes(db_engine)
    assert once == {
        M: (60, 20.0, M, 79.0, M + 59_000),
        M + 60_000: (30, 80.0, M + 60_000, 109.0, M + 89_000),
    }
    again = writer.write([message, message])  # re-sent twice, in one batch
    assert again.duplicates == 2
    writer.write([message])
    assert _minutes(db_engine) == once


def test_late_data_merges_into_its_own_minute(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.data("press1", [("temperature", M + 10_000, 50.0),
                                       ("temperature", M + 20_000, 60.0)])])  # fmt: skip
    # backlog from the edge, minutes later: an earlier equal max, a new min, an older minute
    late = [("temperature", M + 5_000, 60.0), ("temperature", M + 30_000, 40.0),
            ("temperature", M + 40_000, 55.0), ("temperature", M - 60_000, 12.0)]  # fmt: skip
    writer.write([wire.data("press1", late, historical=True)])
    assert _minutes(db_engine) == {
        M - 60_000: (1, 12.0, M - 60_000, 12.0, M - 60_000),
        M: (5, 40.0, M + 30_000, 60.0, M + 5_000),
    }
    # a later equal min does not move the min's time; a later batch adds to the count
    writer.write([wire.data("press1", [("temperature", M + 50_000, 40.0)])])
    assert _minutes(db_engine)[M] == (6, 40.0, M + 30_000, 60.0, M + 5_000)


def test_writers_racing_on_one_minute_add_up(db_engine, wire):
    """Two workers storing different messages of the same minutes: every sample counted once."""
    batches = [
        [wire.data("press1", [("temperature", M + (k * 50 + j) * 100, float(k * 50 + j))])
         for j in range(50)]
        for k in range(2)
    ]  # fmt: skip
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(i):
        try:
            start.wait()
            IngestWriter(db_engine).write(batches[i])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _minutes(db_engine) == {M: (100, 0.0, M, 99.0, M + 9_900)}
