"""Report by exception and event detection, on plain values."""

from __future__ import annotations

from edge.processors import EventDetector, ReportByException
from protocols.profile import parse_profile
from protocols.quality import Quality
from protocols.wire import Sample

PROFILE = parse_profile("""
model: test-machine
protocol: modbus_tcp
heartbeat_s: 10
states: {0: offline, 1: idle, 2: running, 3: down}
workarounds: {counter_rollover: 65535}
tags:
  - {name: state, role: state, type: uint16, table: holding, address: 0}
  - {name: fault_code, role: fault_code, type: uint16, table: holding, address: 1}
  - {name: parts, role: cycle_count, type: uint16, table: holding, address: 2}
  - {name: temp, role: process_param, type: float32, table: holding, address: 3, deadband: 0.5}
  - {name: program, type: string, table: holding, address: 5, length: 4}
""")


def _s(metric: str, ts: int, value: object, quality: Quality = Quality.GOOD) -> Sample:
    return Sample(metric, ts, value, quality)  # type: ignore[arg-type]


def test_deadband_is_measured_from_the_last_published_value() -> None:
    rbe = ReportByException.for_profile(PROFILE)
    published = []
    # a slow drift of 0.2 per read: each step is inside the deadband, the sum is not
    for i, value in enumerate([20.0, 20.2, 20.4, 20.6, 20.8, 21.0, 21.2]):
        published += rbe.filter([_s("temp", 1000 + i * 100, value)])
    assert [s.value for s in published] == [20.0, 20.6, 21.2]


def test_without_a_deadband_every_change_is_published_and_a_repeat_is_not() -> None:
    rbe = ReportByException.for_profile(PROFILE)
    published = []
    for i, value in enumerate([10, 10, 11, 11, 12, 11]):
        published += rbe.filter([_s("parts", 1000 + i * 100, value)])
    expected = [(1000, 10), (1200, 11), (1400, 12), (1500, 11)]
    assert [(s.ts_ms, s.value) for s in published] == expected


def test_heartbeat_republishes_an_unchanged_value_with_its_own_timestamp() -> None:
    rbe = ReportByException.for_profile(PROFILE)
    assert rbe.filter([_s("temp", 0, 20.0)])
    assert rbe.filter([_s("temp", 9_999, 20.0)]) == []
    again = rbe.filter([_s("temp", 10_000, 20.0)])
    assert [(s.ts_ms, s.value) for s in again] == [(10_000, 20.0)]


def test_quality_change_is_always_published_and_non_numeric_on_any_change() -> None:
    rbe = ReportByException.for_profile(PROFILE)
    rbe.filter([_s("temp", 0, 20.0), _s("program", 0, "O1000")])
    bad = rbe.filter([_s("temp", 100, None, Quality.BAD), _s("program", 100, "O1000")])
    assert [(s.metric, s.quality) for s in bad] == [("temp", Quality.BAD)]
    changed = rbe.filter([_s("temp", 200, 20.0), _s("program", 200, "O1001")])
    assert [s.metric for s in changed] == ["temp", "program"]


def test_events_for_state_fault_and_counter_reset_but_not_rollover() -> None:
    detector = EventDetector(PROFILE)
    assert detector.detect([_s("state", 0, 2), _s("fault_code", 0, 0), _s("parts", 0, 10)]) == []
    events = detector.detect([_s("state", 1, 3), _s("fault_code", 1, 17), _s("parts", 1, 11)])
    assert [(e.kind, e.previous, e.current, e.detail) for e in events] == [
        ("state_change", 2, 3, "down"),
        ("fault", 0, 17, None),
    ]
    reset = detector.detect([_s("parts", 2, 0)])
    assert [(e.kind, e.previous, e.current) for e in reset] == [("counter_reset", 11, 0)]
    detector.detect([_s("parts", 3, 65_530)])
    wrapped = detector.detect([_s("parts", 4, 2)])
    assert [e.kind for e in wrapped] == ["counter_rollover"]


def test_bad_quality_readings_make_no_events() -> None:
    detector = EventDetector(PROFILE)
    detector.detect([_s("state", 0, 2)])
    assert detector.detect([_s("state", 1, None, Quality.BAD)]) == []
    assert [e.kind for e in detector.detect([_s("state", 2, 1)])] == ["state_change"]
