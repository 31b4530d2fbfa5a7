"""The kind evaluators as pure functions: hysteresis, on/off delays, time passing, every kind."""

from __future__ import annotations

import pytest

from cloud.alarms.condition import BAD, Condition, Reading
from cloud.alarms.kinds import EVALUATORS, PointContext
from cloud.alarms.kinds.rate import rate_at
from cloud.alarms.rules import KINDS, AlarmRule


def run(rule: AlarmRule, steps, context: PointContext | None = None, condition=None):
    """Feed steps to the rule's evaluator; return every change as (kind, ts_ms, value).

    Steps: ("r", ts, value[, quality]) a reading of the metric; ("s", ts, state) the machine's
    canonical state; ("t", now) time passing.
    """
    evaluator = EVALUATORS[rule.kind]
    context = context or PointContext()
    condition = condition or Condition()
    changes = []
    for step in steps:
        if step[0] == "r":
            quality = step[3] if len(step) > 3 else 0
            outcome = evaluator.on_reading(
                rule, condition, Reading(step[1], step[2], quality), context
            )
        elif step[0] == "s":
            assert evaluator.on_state is not None
            outcome = evaluator.on_state(
                rule, condition, Reading(step[1], None, 0, step[2]), context
            )
        else:
            outcome = evaluator.on_time(rule, condition, step[1], context)
        condition = outcome.condition
        changes += [(c.kind, c.ts_ms, c.value) for c in outcome.changes]
    return changes, condition


def test_every_kind_has_an_evaluator():
    assert set(EVALUATORS) == set(KINDS)


# --------------------------------------------------------------------------- limits

HIGH = AlarmRule(name="t_high", kind="high", metric="temp", limit=90, deadband=2)
CTX_90 = PointContext(limit=90.0, deadband=2.0, unit="degC")


def test_high_activates_above_the_limit_and_returns_only_below_limit_minus_deadband():
    changes, condition = run(HIGH, [
        ("r", 1_000, 89.0),   # below 90: normal
        ("r", 2_000, 90.0),   # at the limit is not above it
        ("r", 3_000, 90.5),   # above: active (no on-delay)
        ("r", 4_000, 89.0),   # inside the deadband (90 - 2 = 88): still active
        ("r", 5_000, 88.0),   # at 88, not above 88: normal
    ], CTX_90)  # fmt: skip
    assert changes == [("activate", 3_000, 90.5), ("return", 5_000, 88.0)]
    assert not condition.active


def test_deadband_stops_chattering_around_the_limit():
    # a value wobbling 89.5 / 90.5 around the limit 90: one activation, never a return
    steps = [("r", 1_000 * i, 90.5 if i % 2 else 89.5) for i in range(1, 21)]
    changes, condition = run(HIGH, steps, CTX_90)
    assert changes == [("activate", 1_000, 90.5)]
    assert condition.active


def test_low_and_low_low_mirror_high():
    low = AlarmRule(name="p_low", kind="low", metric="p", limit=10, deadband=1)
    ctx = PointContext(limit=10.0, deadband=1.0)
    changes, _ = run(low, [("r", 1, 10.0), ("r", 2, 9.9), ("r", 3, 10.9), ("r", 4, 11.0)], ctx)
    # 9.9 < 10 activates; 10.9 < 10 + 1 stays active; 11.0 returns
    assert changes == [("activate", 2, 9.9), ("return", 4, 11.0)]
    low_low = AlarmRule(name="p_ll", kind="low_low", metric="p", limit=5)
    changes, _ = run(low_low, [("r", 1, 4.0), ("r", 2, 5.0)], PointContext(limit=5.0))
    assert changes == [("activate", 1, 4.0), ("return", 2, 5.0)]


def test_on_delay_needs_the_condition_for_the_whole_delay():
    rule = AlarmRule(name="t", kind="high", metric="temp", limit=90, on_delay_s=5)
    ctx = PointContext(limit=90.0)
    changes, _ = run(rule, [
        ("r", 10_000, 95.0),  # abnormal from 10 s: due at 15 s
        ("r", 13_000, 85.0),  # back before the delay ran out: nothing
        ("r", 20_000, 96.0),  # abnormal again from 20 s: due at 25 s
        ("t", 24_999),        # not yet
        ("t", 25_000),        # 5 s later: active, timestamped when the delay ran out
    ], ctx)  # fmt: skip
    assert changes == [("activate", 25_000, 96.0)]


def test_on_delay_expiring_between_two_readings_fires_at_its_due_time():
    # report by exception: 95 at 10 s, next reading 60 s later; the held value was abnormal
    rule = AlarmRule(name="t", kind="high", metric="temp", limit=90, on_delay_s=5)
    changes, _ = run(rule, [("r", 10_000, 95.0), ("r", 70_000, 80.0)], PointContext(limit=90.0))
    assert changes == [("activate", 15_000, 95.0), ("return", 70_000, 80.0)]


def test_off_delay_holds_the_alarm_until_normal_for_the_whole_delay():
    rule = AlarmRule(name="t", kind="high", metric="temp", limit=90, off_delay_s=10)
    changes, condition = run(rule, [
        ("r", 0, 95.0),       # active at once
        ("r", 5_000, 80.0),   # normal from 5 s: due at 15 s
        ("r", 8_000, 91.0),   # abnormal again: the off-delay starts over
        ("r", 9_000, 80.0),   # normal from 9 s: due at 19 s
        ("t", 18_999),
        ("t", 19_000),
    ], PointContext(limit=90.0))  # fmt: skip
    assert changes == [("activate", 0, 95.0), ("return", 19_000, 80.0)]
    assert not condition.active


def test_bad_quality_readings_neither_raise_nor_clear_a_limit_alarm():
    rule = AlarmRule(name="t", kind="high", metric="temp", limit=90, on_delay_s=5)
    changes, condition = run(rule, [
        ("r", 0, 95.0),             # on-delay starts
        ("r", 1_000, None, BAD),    # unknown: the on-delay stops
        ("t", 10_000),
    ], PointContext(limit=90.0))  # fmt: skip
    assert changes == []
    assert condition.pending_since_ms is None


def test_no_limit_no_alarm():
    changes, _ = run(HIGH, [("r", 1, 1e9)], PointContext(limit=None))
    assert changes == []


# --------------------------------------------------------------------------- rate of change


def test_rate_at_uses_the_value_held_one_window_earlier():
    window = ((0, 10.0), (30_000, 20.0))
    # at 60 s the value one window (60 s) earlier is the one of 0 s: (40 - 10) / 60 = 0.5 /s
    assert rate_at(window, 60_000, 40.0, 60_000) == pytest.approx(0.5)
    # at 90 s the reference is the reading of 30 s (held at 90 - 60 = 30 s): (50 - 20) / 60
    assert rate_at(window, 90_000, 50.0, 60_000) == pytest.approx(0.5)
    # until a reading that old exists, the oldest and the time since it: (13 - 10) / 2 s
    assert rate_at(((0, 10.0),), 2_000, 13.0, 60_000) == pytest.approx(1.5)


def test_rate_of_change_rising_with_hysteresis_and_the_ticker_bringing_it_back():
    rule = AlarmRule(name="ramp", kind="rate_of_change", metric="temp", rate_per_s=1.0,
                     window_s=10, direction="rising", deadband=0.2)  # fmt: skip
    changes, condition = run(rule, [
        ("r", 0, 100.0),
        ("r", 5_000, 104.0),   # (104 - 100) / 5 s = 0.8 /s: normal
        ("r", 10_000, 112.0),  # (112 - 100) / 10 s = 1.2 /s: too fast
        ("r", 15_000, 113.0),  # ref 104 (held at 5 s): (113 - 104) / 10 = 0.9 > 1 - 0.2: active
        ("t", 20_000),         # held 113, ref 112 (held at 10 s): 0.1 /s, not > 0.8: back
    ], PointContext(deadband=0.2, unit="degC"))  # fmt: skip
    assert changes == [
        ("activate", 10_000, pytest.approx(1.2)),
        ("return", 20_000, pytest.approx(0.1)),
    ]
    assert not condition.active


def test_rate_of_change_direction():
    falling = AlarmRule(name="drop", kind="rate_of_change", metric="p", rate_per_s=1.0,
                        window_s=10, direction="falling")  # fmt: skip
    rising_steps = [("r", 0, 0.0), ("r", 10_000, 20.0)]  # +2 /s
    assert run(falling, rising_steps)[0] == []
    changes, _ = run(falling, [("r", 0, 20.0), ("r", 10_000, 0.0)])  # -2 /s
    assert changes == [("activate", 10_000, pytest.approx(-2.0))]


# --------------------------------------------------------------------------- stale


def test_stale_raises_after_silence_while_the_edge_is_online_and_returns_on_a_sample():
    rule = AlarmRule(name="quiet", kind="stale", metric="temp", after_s=30)
    changes, condition = run(rule, [("r", 1_000, 50.0), ("t", 30_999), ("t", 31_000)])
    assert changes == [("activate", 31_000, 30_000)]  # silent since 1 s + 30 s
    changes, _ = run(rule, [("r", 45_000, 51.0, BAD)], condition=condition)
    assert changes == [("return", 45_000, 44_000)]  # any sample is news, even a bad one


def test_stale_is_not_raised_while_the_edge_is_offline():
    rule = AlarmRule(name="quiet", kind="stale", after_s=30)
    offline = PointContext(edge_online=False)
    changes, condition = run(rule, [("r", 0, 1.0), ("t", 100_000)], offline)
    assert changes == []
    changes, _ = run(rule, [("t", 100_000)], PointContext(), condition)
    assert changes == [("activate", 30_000, 30_000)]


# --------------------------------------------------------------------------- bad quality


def test_bad_quality_longer_than_the_on_delay():
    rule = AlarmRule(name="sensor", kind="bad_quality", metric="temp", on_delay_s=10)
    changes, _ = run(rule, [
        ("r", 0, None, BAD),       # bad from 0 s: due at 10 s
        ("r", 5_000, 20.0, 0),     # good again: nothing
        ("r", 6_000, None, BAD),   # bad from 6 s: due at 16 s
        ("r", 12_000, None, BAD),  # still bad
        ("t", 16_000),
        ("r", 20_000, 21.0, 1),    # uncertain is not bad: returns (no off-delay)
    ])  # fmt: skip
    assert changes == [("activate", 16_000, None), ("return", 20_000, 21.0)]


# --------------------------------------------------------------------------- state duration


def test_state_duration_activates_duration_after_entering_the_state():
    rule = AlarmRule(name="down_long", kind="state_duration", state="down", duration_s=600)
    changes, condition = run(rule, [
        ("s", 0, "running"),
        ("s", 100_000, "down"),    # down from 100 s: due at 700 s
        ("t", 699_999),
        ("t", 700_000),
        ("s", 900_000, "idle"),
    ])  # fmt: skip
    assert changes == [("activate", 700_000, None), ("return", 900_000, None)]
    assert condition.text == "idle"


def test_state_duration_is_not_raised_by_a_short_stop():
    rule = AlarmRule(name="down_long", kind="state_duration", state="down", duration_s=600)
    changes, _ = run(rule, [("s", 0, "down"), ("s", 300_000, "running"), ("t", 2_000_000)])
    assert changes == []


# --------------------------------------------------------------------------- counter stalled


def test_counter_stalled_while_running():
    rule = AlarmRule(name="stuck", kind="counter_stalled", duration_s=60)
    changes, _ = run(rule, [
        ("s", 0, "running"),        # running from 0 s
        ("r", 10_000, 100.0),       # counter 100 at 10 s
        ("r", 40_000, 101.0),       # moved at 40 s: due at 100 s
        ("t", 99_999),
        ("t", 100_000),             # stalled
        ("r", 130_000, 102.0),      # moving again
        ("t", 180_000),             # 50 s after the last move: fine
    ])  # fmt: skip
    assert changes == [("activate", 100_000, 101.0), ("return", 130_000, 102.0)]


def test_counter_stalled_is_not_raised_while_the_machine_does_not_run():
    rule = AlarmRule(name="stuck", kind="counter_stalled", duration_s=60)
    changes, _ = run(rule, [
        ("s", 0, "running"), ("r", 0, 5.0),
        ("s", 30_000, "idle"),      # stops before the minute is over
        ("t", 500_000),
        ("s", 500_000, "running"),  # runs again: the timer starts at 500 s
        ("t", 559_999),
    ])  # fmt: skip
    assert changes == []
    changes, _ = run(rule, [
        ("s", 0, "running"), ("r", 0, 5.0), ("t", 60_000), ("s", 70_000, "down"),
    ])  # fmt: skip
    assert changes == [("activate", 60_000, 5.0), ("return", 70_000, 5.0)]
