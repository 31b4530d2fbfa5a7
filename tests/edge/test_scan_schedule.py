"""Scan classes: which tags a poll reads, and when the next poll is due (plain values)."""

from __future__ import annotations

from edge.coordinator import ScanSchedule
from protocols.profile import parse_profile

PROFILE = parse_profile("""
model: press
protocol: modbus_tcp
poll_interval_s: 1.0
scan_classes: {fast: 0.2, slow: 5.0}
tags:
  - {name: state, type: uint16, table: holding, address: 0, scan_class: fast}
  - {name: temp, type: int16, table: holding, address: 1, scan_class: slow}
  - {name: pressure, type: int16, table: holding, address: 2}
""")


def test_tags_are_grouped_by_their_interval_and_the_device_override_applies() -> None:
    schedule = ScanSchedule.for_profile(PROFILE, default_interval_s=0.5, start=0.0)
    assert schedule.groups == {
        0.2: frozenset({"state"}),
        5.0: frozenset({"temp"}),
        0.5: frozenset({"pressure"}),
    }


def test_each_class_is_read_at_its_own_rate() -> None:
    schedule = ScanSchedule.for_profile(PROFILE, default_interval_s=1.0, start=0.0)
    reads: dict[str, int] = {"state": 0, "temp": 0, "pressure": 0}
    now = 0.0
    while now < 10.0 - 1e-9:
        intervals = schedule.due(now)
        due = schedule.tags(intervals)
        for name in due if due is not None else reads:
            reads[name] += 1
        schedule.done(intervals, now)
        now = schedule.next_at()
    assert reads == {"state": 50, "temp": 2, "pressure": 10}


def test_first_poll_reads_everything_and_an_overrun_skips_missed_ticks() -> None:
    schedule = ScanSchedule.for_profile(PROFILE, default_interval_s=1.0, start=0.0)
    assert schedule.tags(schedule.due(0.0)) is None  # every group at once: read all
    schedule.done(schedule.due(0.0), 0.0)
    late = schedule.due(3.05)  # a poll that blocked for 3 s
    assert sorted(late) == [0.2, 1.0]
    schedule.done(late, 3.05)
    assert abs(schedule.next_at() - 3.2) < 1e-9  # back on the 0.2 s grid, no burst


def test_after_a_failure_everything_is_due_at_the_retry() -> None:
    schedule = ScanSchedule.for_profile(PROFILE, default_interval_s=1.0, start=0.0)
    schedule.done(schedule.due(0.0), 0.0)
    schedule.all_due_at(2.5)
    assert schedule.next_at() == 2.5
    assert schedule.tags(schedule.due(2.5)) is None
