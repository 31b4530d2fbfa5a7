"""The ISO 22400 time model on hand-computed intervals: every element, micro-stops, gaps."""

from __future__ import annotations

from cloud.oee.timemodel import StateSpan, find_stops, setup_ends, time_elements

S = 1000
THRESHOLD = 120 * S

# One planned hour [0, 3600 s) with every kind of time in it (seconds):
#   running 0-1200, down 1200-1260 (60 s: micro-stop), running 1260-1800,
#   idle 1800-2100 (300 s: long), setup 2100-2400, down 2400-2700 (300 s: failure),
#   planned_stop 2700-3000, no interval 3000-3300 (gap), offline 3300-3400, running 3400-3600
HOUR_SPANS = [
    StateSpan("running", 0, 1200 * S),
    StateSpan("down", 1200 * S, 1260 * S, "7"),
    StateSpan("running", 1260 * S, 1800 * S),
    StateSpan("idle", 1800 * S, 2100 * S),
    StateSpan("setup", 2100 * S, 2400 * S),
    StateSpan("down", 2400 * S, 2700 * S, "12"),
    StateSpan("planned_stop", 2700 * S, 3000 * S),
    StateSpan("offline", 3300 * S, 3400 * S),
    StateSpan("running", 3400 * S, 3600 * S),
]


def test_every_state_lands_in_its_element():
    e = time_elements(HOUR_SPANS, [(0, 3600 * S)], THRESHOLD)
    assert e.pot_ms == 3600 * S
    assert e.pdot_ms == 300 * S
    assert e.pbt_ms == 3300 * S  # 3600 - 300
    assert e.apt_ms == 2000 * S  # 1200 + 60 (micro-stop) + 540 + 200
    assert e.micro_stop_ms == 60 * S
    assert (e.aust_ms, e.adet_ms, e.adot_ms) == (300 * S, 300 * S, 300 * S)
    assert e.unkt_ms == 400 * S  # 300 s without any interval + 100 s offline
    assert (e.micro_stops, e.failure_events) == (1, 1)
    assert e.accounted_ms == e.pbt_ms  # APT + AUST + ADET + ADOT + UNKT == PBT
    assert e.aupt_ms == 2300 * S


def test_time_outside_planned_segments_is_not_looked_at():
    # planned: 0-1000 s and 2200-2500 s (a break in between)
    e = time_elements(HOUR_SPANS, [(0, 1000 * S), (2200 * S, 2500 * S)], THRESHOLD)
    assert e.pot_ms == 1300 * S
    assert e.apt_ms == 1000 * S
    assert e.aust_ms == 200 * S  # setup 2200-2400
    assert e.adet_ms == 100 * S  # down 2400-2500 (the stop is 300 s long: availability loss)
    assert e.failure_events == 1  # it started at 2400 s, inside planned time
    assert e.accounted_ms == e.pbt_ms


def test_a_stop_is_measured_whole_not_per_window():
    # down 3500-3700 s (200 s) seen through a window ending at 3600 s: still an availability loss
    spans = [StateSpan("running", 0, 3500 * S), StateSpan("down", 3500 * S, 3700 * S)]
    e = time_elements(spans, [(0, 3600 * S)], THRESHOLD)
    assert (e.adet_ms, e.micro_stop_ms, e.failure_events) == (100 * S, 0, 1)
    # two adjacent down intervals (fault code changed) are one stop: 50 + 50 = 100 s < 120 s
    split = [
        StateSpan("running", 0, 3550 * S),
        StateSpan("down", 3550 * S, 3600 * S, "1"),
        StateSpan("down", 3600 * S, 3650 * S, "2"),
        StateSpan("running", 3650 * S, 4000 * S),
    ]
    e = time_elements(split, [(3000 * S, 4000 * S)], THRESHOLD)
    assert (e.apt_ms, e.micro_stop_ms, e.micro_stops, e.adet_ms) == (1000 * S, 100 * S, 1, 0)
    assert [s.duration_ms for s in find_stops(split, THRESHOLD)] == [100 * S]


def test_a_data_gap_is_unknown_never_running():
    spans = [StateSpan("running", 0, 600 * S), StateSpan("running", 1800 * S, 3600 * S)]
    e = time_elements(spans, [(0, 3600 * S)], THRESHOLD)
    assert (e.apt_ms, e.unkt_ms) == (2400 * S, 1200 * S)  # 600 + 1800 running, 1200 unknown


def test_a_per_machine_threshold():
    # the same hour with a 10-minute threshold: every stop of 300 s becomes a micro-stop
    e = time_elements(HOUR_SPANS, [(0, 3600 * S)], 600 * S)
    assert e.apt_ms == (2000 + 300 + 300) * S  # idle 300 and down 300 move into APT
    assert (e.adet_ms, e.adot_ms, e.micro_stop_ms, e.micro_stops) == (0, 0, 660 * S, 3)
    assert e.accounted_ms == e.pbt_ms


def test_setup_ends():
    assert setup_ends(HOUR_SPANS) == [2400 * S]
