"""Counter increases: resets, rollover, a start at 0, bad quality, gaps, the baseline."""

from __future__ import annotations

from cloud.oee.counters import CounterSample, counter_increase, increase_after, increase_within

S = 1000
BAD = 2


def samples(*pairs):
    return [CounterSample(ts * S, value, q) for ts, value, q in pairs]


def test_a_reset_counts_from_zero_again():
    got = counter_increase(samples((0, 100, 0), (60, 110, 0), (120, 5, 0), (180, 8, 0)), 0, 240 * S)
    assert got.total == 18  # 110-100 = 10, reset -> 5, 8-5 = 3
    assert (got.resets, got.rollovers) == (1, 0)
    assert got.deltas == ((60 * S, 10), (120 * S, 5), (180 * S, 3))


def test_a_rollover_wraps_through_zero():
    got = counter_increase(
        samples((0, 65530, 0), (60, 65535, 0), (120, 3, 0)), 0, 180 * S, rollover=65535
    )
    assert got.total == 9  # 65535-65530 = 5, then 65535 -> 0,1,2,3 = 4
    assert (got.resets, got.rollovers) == (0, 1)
    # without the rollover known the drop is a reset: 5 + 3
    assert (
        counter_increase(samples((0, 65530, 0), (60, 65535, 0), (120, 3, 0)), 0, 180 * S).total == 8
    )


def test_a_counter_that_starts_at_zero_and_bad_samples():
    got = counter_increase(
        samples((0, 0, 0), (60, 4, 0), (90, None, BAD), (100, 0, BAD), (120, 9, 0)), 0, 180 * S
    )
    assert got.total == 9  # 4 - 0 = 4, the bad 0 skipped, 9 - 4 = 5
    assert got.resets == 0


def test_a_gap_is_counted_where_it_is_observed_and_reported():
    got = counter_increase(
        samples((0, 10, 0), (60, 12, 0), (1000, 40, 0)), 0, 1200 * S, gap_after_ms=300 * S
    )
    assert got.deltas == ((60 * S, 2), (1000 * S, 28))
    assert got.gaps == ((60 * S, 1000 * S),)  # 940 s without a sample
    assert got.gap_ms == 940 * S


def test_the_sample_before_the_window_is_the_baseline():
    got = counter_increase(samples((-60, 100, 0), (30, 104, 0), (90, 107, 0)), 0, 60 * S)
    assert got.total == 4  # 104 - 100; the sample at 90 s is after the window
    assert counter_increase(samples((30, 104, 0)), 0, 60 * S).total == 0  # first seen: nothing


def test_increase_within_segments_and_after_setups():
    deltas = [(10 * S, 1.0), (20 * S, 2.0), (700 * S, 4.0), (1300 * S, 8.0)]
    assert increase_within(deltas, [(0, 15 * S), (600 * S, 1300 * S)]) == 5.0  # 1 + 4
    # scrap within 600 s after setups ending at 0 and 650 s: windows 0-600, 650-1250 -> 1+2+4
    assert increase_after(deltas, [0, 650 * S], 600 * S) == 7.0
