"""Time-weighted window aggregation: pure numpy core and the SQL store, hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.ingest.writer import IngestWriter
from cloud.timeseries.aggregate import aggregate_windows, window_bounds
from cloud.timeseries.queries import find_series
from cloud.timeseries.sql import SqlTimeSeriesStore
from protocols.quality import Quality

NAN = float("nan")


def _agg(ts, values, quality, windows, hold_until):
    return aggregate_windows(
        np.array(ts, dtype=np.int64),
        np.array(values, dtype=np.float64),
        np.array(quality, dtype=np.int64),
        windows,
        hold_until,
    )


def test_windows_are_epoch_aligned_and_clipped():
    assert window_bounds(1_500, 4_200, 1_000) == [
        (1_500, 2_000), (2_000, 3_000), (3_000, 4_000), (4_000, 4_200),
    ]  # fmt: skip
    assert window_bounds(5, 5, 1_000) == []
    with pytest.raises(ValueError, match="positive"):
        window_bounds(0, 10, 0)
    with pytest.raises(ValueError, match="at most"):
        window_bounds(0, 10**9, 1)


def test_mean_is_time_weighted_with_the_carried_in_sample():
    # 10 holds from t=0 (before the window) to 4000, 20 from 4000 to 5000, 40 from 5000 on.
    [w] = _agg([0, 4_000, 5_000], [10, 20, 40], [0, 0, 0], [(2_000, 12_000)], 12_000)
    # (10*2000 + 20*1000 + 40*7000) / 10000 = 32.0 ; sample-weighted would give 23.3
    assert w.mean == pytest.approx(32.0)
    assert (w.min, w.max, w.last, w.count) == (10.0, 40.0, 40.0, 2)
    assert (w.valued_ms, w.bad_ms) == (10_000, 0)


def test_bad_samples_are_left_out_of_values_and_counted_as_bad_time():
    ts = [0, 1_000, 3_000, 6_000]
    values = [10, NAN, 30, 50]
    quality = [0, 2, 1, 0]  # good, bad, uncertain, good
    [w] = _agg(ts, values, quality, [(0, 10_000)], 10_000)
    # usable: 10 for 1 s, 30 for 3 s, 50 for 4 s -> (10 + 90 + 200) / 8 = 37.5
    assert w.mean == pytest.approx(37.5)
    assert (w.valued_ms, w.bad_ms) == (8_000, 2_000)
    assert (w.min, w.max, w.count) == (10.0, 50.0, 4)


def test_windows_split_a_held_value():
    # 1 s windows over a value that changes at 1500: [1000,2000) is half 1, half 3.
    windows = window_bounds(1_000, 3_000, 1_000)
    first, second = _agg([500, 1_500], [1, 3], [0, 0], windows, 3_000)
    assert first.mean == pytest.approx(2.0)
    assert (first.min, first.max, first.last, first.count) == (1.0, 3.0, 3.0, 1)
    assert second.mean == pytest.approx(3.0)
    assert (second.min, second.max, second.count) == (3.0, 3.0, 0)


def test_a_carried_in_sample_replaced_at_the_window_start_does_not_count():
    [w] = _agg([0, 1_000], [99, 5], [0, 0], [(1_000, 2_000)], 2_000)
    assert (w.mean, w.min, w.max) == (5.0, 5.0, 5.0)


def test_no_data_and_last_bad():
    [empty] = _agg([], [], [], [(0, 1_000)], 1_000)
    assert (empty.mean, empty.min, empty.last, empty.count, empty.valued_ms) == (
        None, None, None, 0, 0
    )  # fmt: skip
    [w] = _agg([0, 500], [1, NAN], [0, 2], [(0, 1_000)], 1_000)
    assert w.last is None
    assert w.mean == pytest.approx(1.0)
    assert w.bad_ms == 500


def test_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="median"):
        aggregate_windows(np.array([0]), np.array([1.0]), np.array([0]), [(0, 1)], 1, ["median"])


def test_sql_store_range_query(db_engine, wire):
    IngestWriter(db_engine).write([
        wire.data("press1", [("temperature", 0, 10.0)]),
        wire.data("press1", [("temperature", 60_000, 20.0), ("temperature", 90_000, 40.0)]),
        wire.data("press1", [("temperature", 120_000, None, Quality.BAD)]),
        wire.data("press1", [("temperature", 150_000, 0.0)]),
    ])  # fmt: skip
    store = SqlTimeSeriesStore(db_engine)
    sid = find_series(db_engine, "edge1", "press1", "temperature")

    raw = store.range_query(sid, 60_000, 150_000, None)
    assert [(s.ts_ms, s.value, s.quality) for s in raw.samples] == [
        (60_000, 20.0, 0), (90_000, 40.0, 0), (120_000, None, 2),
    ]  # fmt: skip

    minutes = store.range_query(sid, 30_000, 180_000, 60_000).windows
    assert [(w.start_ms, w.end_ms) for w in minutes] == [
        (30_000, 60_000), (60_000, 120_000), (120_000, 180_000),
    ]  # fmt: skip
    assert minutes[0].mean == pytest.approx(10.0)  # carried in from t=0
    assert minutes[1].mean == pytest.approx(30.0)  # 20 for 30 s, 40 for 30 s
    assert minutes[2].mean == pytest.approx(0.0)  # bad for 30 s, 0 for 30 s
    assert (minutes[2].bad_ms, minutes[2].valued_ms) == (30_000, 30_000)
    assert [w.count for w in minutes] == [0, 2, 2]

    only_max = store.range_query(sid, 0, 180_000, 180_000, ["max"]).windows[0]
    assert (only_max.max, only_max.mean, only_max.count) == (40.0, None, None)
