"""Min/max-per-bucket and LTTB downsampling on plain arrays: spikes survive, sizes hold."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.charts.downsample import lttb, min_max

DOWNSAMPLERS = pytest.mark.parametrize("downsample", [min_max, lttb], ids=["minmax", "lttb"])


def _wave_with_spike(count: int, spike_at: int, spike: float) -> tuple[np.ndarray, np.ndarray]:
    ts = np.arange(count, dtype=np.int64) * 1_000 + 1_800_000_000_000
    values = 50.0 + np.sin(np.arange(count) / 300.0)
    values[spike_at] = spike
    return ts, values


@DOWNSAMPLERS
@pytest.mark.parametrize("spike", [500.0, -400.0])
def test_single_sample_spike_survives(downsample, spike):
    ts, values = _wave_with_spike(100_000, 43_210, spike)
    kept_ts, kept_values = downsample(ts, values, 1_000)
    assert len(kept_ts) <= 1_000
    assert spike in kept_values.tolist()
    assert int(kept_ts[kept_values.tolist().index(spike)]) == int(ts[43_210])


@DOWNSAMPLERS
def test_points_are_samples_in_time_order(downsample):
    ts, values = _wave_with_spike(10_001, 5, 99.0)
    kept_ts, kept_values = downsample(ts, values, 300)
    assert 2 < len(kept_ts) <= 300
    assert np.all(np.diff(kept_ts) > 0)
    index = (kept_ts - ts[0]) // 1_000
    assert np.array_equal(values[index], kept_values)


def test_min_max_keeps_each_buckets_extremes():
    ts = np.arange(8, dtype=np.int64)
    values = np.array([3.0, 1.0, 2.0, 9.0, 5.0, 4.0, 7.0, 6.0])
    kept_ts, kept_values = min_max(ts, values, 4)  # 2 buckets: samples 0-3 and 4-7
    assert kept_ts.tolist() == [1, 3, 5, 6]
    assert kept_values.tolist() == [1.0, 9.0, 4.0, 7.0]


def test_lttb_gives_exactly_n_with_both_ends():
    ts, values = _wave_with_spike(5_000, 10, 70.0)
    kept_ts, _ = lttb(ts, values, 100)
    assert len(kept_ts) == 100
    assert (kept_ts[0], kept_ts[-1]) == (ts[0], ts[-1])


@DOWNSAMPLERS
def test_short_series_come_back_whole(downsample):
    ts = np.array([1, 2, 3], dtype=np.int64)
    values = np.array([1.0, 5.0, 2.0])
    kept_ts, kept_values = downsample(ts, values, 10)
    assert kept_ts.tolist() == [1, 2, 3]
    assert kept_values.tolist() == [1.0, 5.0, 2.0]


@DOWNSAMPLERS
def test_bad_arguments_are_refused(downsample):
    ts = np.arange(10, dtype=np.int64)
    with pytest.raises(ValueError, match="points=1"):
        downsample(ts, ts.astype(np.float64), 1)
    with pytest.raises(ValueError, match="equal length"):
        downsample(ts, np.zeros(9), 4)
