"""The behaviour model: seeded determinism, counter consistency, state durations, wear, excursions."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter

import pytest

from device_profiles import available, profile_path
from protocols.profile import Profile, load_profile
from simulators.behaviour import BehaviourConfig, MachineBehaviour


def _profile(name: str) -> Profile:
    return load_profile(profile_path(name))


def _drive(behaviour: MachineBehaviour, until_s: float, step_s: float = 1.0) -> list[dict]:
    history = []
    t = behaviour.now_s
    while t < until_s:
        t = min(until_s, t + step_s)
        behaviour.step(t)
        history.append({"t": t, "state": behaviour.state, **behaviour.values()})
    return history


def test_same_seed_same_steps_same_values() -> None:
    profile = _profile("cnc_machining_centre")
    a = _drive(MachineBehaviour(profile, seed=7), 3 * 3600, step_s=5.0)
    b = _drive(MachineBehaviour(profile, seed=7), 3 * 3600, step_s=5.0)
    c = _drive(MachineBehaviour(profile, seed=8), 3 * 3600, step_s=5.0)
    assert a == b
    assert a != c


def test_values_do_not_consume_randomness() -> None:
    profile = _profile("sole_injection_press")
    quiet, chatty = MachineBehaviour(profile, seed=3), MachineBehaviour(profile, seed=3)
    for t in range(1, 600):
        quiet.step(float(t))
        chatty.step(float(t))
        chatty.values()
        chatty.values()
    assert quiet.values() == chatty.values()


@pytest.mark.parametrize(
    "name", [n for n in available() if _profile(n).tag_with_role("cycle_count") is not None]
)  # condition monitors (pump_drive_monitor) count no parts
def test_counters_are_consistent_and_monotonic(name: str) -> None:
    profile = _profile(name)
    behaviour = MachineBehaviour(profile, seed=11, config=BehaviourConfig(scrap_rate=0.1))
    roles = {t.role: t.name for t in profile.tags}
    previous = behaviour.values()
    for row in _drive(behaviour, 6 * 3600, step_s=7.0):
        cycles, good, scrap = (
            row[roles["cycle_count"]],
            row[roles["good_count"]],
            row[roles["scrap_count"]],
        )
        assert good + scrap == cycles * profile.units_per_cycle
        for role in ("cycle_count", "good_count", "scrap_count"):
            assert row[roles[role]] >= previous[roles[role]]
        previous = row
    assert previous[roles["cycle_count"]] > 10
    assert previous[roles["scrap_count"]] > 0


def test_counters_freeze_and_state_code_follows_when_not_running() -> None:
    profile = _profile("cnc_machining_centre")
    behaviour = MachineBehaviour(profile, seed=5)
    codes = {state: code for code, state in sorted(profile.states.items(), reverse=True)}
    history = _drive(behaviour, 8 * 3600, step_s=2.0)
    seen = Counter(row["state"] for row in history)
    assert {"running", "idle", "down"} <= set(seen)
    for before, after in itertools.pairwise(history):
        if before["state"] != "running" and after["state"] == before["state"]:
            assert after["part_counter"] == before["part_counter"]
        assert after["machine_state"] == codes[after["state"]]
        assert profile.state_of(after["machine_state"]) == after["state"]
        if after["state"] == "down":
            assert after["alarm_number"] in BehaviourConfig().fault_codes
        else:
            assert after["alarm_number"] == 0
        if after["state"] != "running":
            assert after["spindle_speed"] == 0.0


def test_state_durations_follow_the_configured_means() -> None:
    profile = _profile("breaker_assembly_station")
    config = BehaviourConfig(mean_running_s=300, mean_idle_s=60, mean_down_s=120, p_down=0.4)
    behaviour = MachineBehaviour(profile, seed=21, config=config)
    spells: dict[str, list[float]] = {}
    state, since = behaviour.state, behaviour.state_since_s
    t = 0.0
    while t < 100 * 3600:
        t += 10.0
        behaviour.step(t)
        if behaviour.state_since_s != since:  # a new spell began within this step
            spells.setdefault(state, []).append(behaviour.state_since_s - since)
            state, since = behaviour.state, behaviour.state_since_s
    assert 240 < statistics.mean(spells["running"]) < 360
    assert 45 < statistics.mean(spells["idle"]) < 75
    assert 90 < statistics.mean(spells["down"]) < 150
    assert min(min(v) for v in spells.values()) >= 1.0


def test_cycle_rate_matches_the_ideal_cycle_time_while_running() -> None:
    profile = _profile("sole_injection_press")
    config = BehaviourConfig(mean_running_s=1e9, speed_loss=0.0)  # never leaves running
    behaviour = MachineBehaviour(profile, seed=4, config=config)
    behaviour.step(3600.0)
    expected = 3600.0 / (profile.ideal_cycle_time_s or 1.0)
    assert behaviour.state == "running"
    assert abs(behaviour.cycles - expected) <= 0.05 * expected


def test_vibration_rises_as_the_bearing_wears() -> None:
    profile = _profile("pump_performance_test_bench")
    config = BehaviourConfig(mean_running_s=1e9, wear_per_hour=0.1, excursions_per_hour=0)
    behaviour = MachineBehaviour(profile, seed=9, config=config)
    hourly = []
    for hour in range(12):
        samples = []
        for row in _drive(behaviour, (hour + 1) * 3600.0, step_s=30.0):
            samples.append(row["bearing_vibration"])
        hourly.append(statistics.mean(samples))
    assert hourly[-1] > 2.5 * hourly[0]
    rising = sum(b > a for a, b in itertools.pairwise(hourly))
    assert rising >= 9  # noisy, but the trend is up nearly every hour


def test_process_parameters_stay_near_limits_and_sometimes_leave_them() -> None:
    profile = _profile("breaker_assembly_station")
    config = BehaviourConfig(mean_running_s=1e9, excursions_per_hour=4.0)
    behaviour = MachineBehaviour(profile, seed=13, config=config)
    torque = profile.tag("screw_torque").limits
    assert torque is not None
    assert torque.low is not None
    assert torque.high is not None
    values = [row["screw_torque"] for row in _drive(behaviour, 10 * 3600, step_s=5.0)]
    inside = [v for v in values if torque.low <= v <= torque.high]
    assert len(inside) > 0.8 * len(values)
    assert len(inside) < len(values)  # excursions happen


def test_forced_excursion_holds_then_releases() -> None:
    profile = _profile("cnc_machining_centre")
    behaviour = MachineBehaviour(profile, seed=1, config=BehaviourConfig(mean_running_s=1e9))
    behaviour.step(10.0)
    behaviour.excursion("spindle_load", 95.0, duration_s=20.0)
    behaviour.step(20.0)
    assert behaviour.values()["spindle_load"] == pytest.approx(95.0)
    behaviour.step(31.0)
    assert behaviour.values()["spindle_load"] < 90.0
    with pytest.raises(ValueError, match="not an analogue signal"):
        behaviour.excursion("part_counter", 1.0, 5.0)


def test_integer_tags_hold_whole_raw_steps() -> None:
    profile = _profile("cnc_machining_centre")
    behaviour = MachineBehaviour(profile, seed=2)
    behaviour.step(100.0)
    values = behaviour.values()
    assert round(values["coolant_temperature"] * 10) == pytest.approx(
        values["coolant_temperature"] * 10
    )
    assert isinstance(values["part_counter"], int)
    assert values["feed_override"] == 100


def test_bad_configuration_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="scrap_rate"):
        BehaviourConfig(scrap_rate=1.5)
    with pytest.raises(ValueError, match="p_down"):
        BehaviourConfig(p_down=0.7, p_setup=0.5)
    with pytest.raises(ValueError, match="no tag"):
        MachineBehaviour(
            _profile("cnc_machining_centre"), config=BehaviourConfig(constants={"x": 1})
        )
    behaviour = MachineBehaviour(_profile("cnc_machining_centre"))
    behaviour.step(5.0)
    with pytest.raises(ValueError, match="backwards"):
        behaviour.step(4.0)
