"""Every built-in device profile validates, maps sensibly, and bad profiles are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles import available, profile_path
from protocols.errors import ProfileError
from protocols.profile import CANONICAL_STATES, load_profile

CONDITION_MONITORS = {"pump_drive_monitor"}  # modules that watch a machine, not production
REQUIRED = {
    "cnc_machining_centre",
    "sole_injection_press",
    "valve_pressure_test_bench",
    "breaker_assembly_station",
}


def test_the_required_models_are_built_in() -> None:
    names = set(available())
    assert names >= REQUIRED
    assert len(names) >= 5


@pytest.mark.parametrize("name", available())
def test_builtin_profile_validates_and_is_complete(name: str) -> None:
    profile = load_profile(profile_path(name))
    assert profile.model == name
    assert profile.vendor == "Generic"
    assert profile.description
    roles = {tag.role for tag in profile.tags}
    if name in CONDITION_MONITORS:  # no parts to count: state, faults and condition only
        assert {"state", "fault_code"} <= roles
    else:
        assert profile.ideal_cycle_time_s is not None
        assert {"state", "fault_code", "cycle_count", "good_count", "scrap_count"} <= roles
    assert "vibration" in roles
    # every canonical state but offline has a machine code, so the simulator can show it
    assert set(profile.states.values()) >= set(CANONICAL_STATES) - {"offline"}
    # the alarm numbers the machine raises have texts, so downtime shows a reason
    assert len(profile.fault_codes) >= 4
    assert all(fault.reason for fault in profile.fault_codes.values())
    for tag in profile.tags:
        if tag.role in ("process_param", "temperature", "vibration"):
            assert tag.unit, f"{name}.{tag.name} has no unit"
            assert tag.deadband is not None, f"{name}.{tag.name} has no deadband"
            assert tag.limits is not None, f"{name}.{tag.name} has no limits"


@pytest.mark.parametrize("name", available())
def test_modbus_register_maps_do_not_overlap(name: str) -> None:
    profile = load_profile(profile_path(name))
    if profile.protocol == "opcua":
        assert profile.opcua_options.namespace_uri == f"urn:forgeline:sim:{profile.model}"
        assert all(tag.node and not tag.node.startswith("ns=") for tag in profile.tags)
        return
    owner: dict[tuple[str, int], str] = {}
    for tag in profile.tags:
        assert tag.table is not None
        assert tag.address is not None
        for address in range(tag.address, tag.address + tag.register_count):
            key = (tag.table, address)
            other = owner.get(key)
            # bools that are bits of one register share it; nothing else may
            assert other is None or tag.bit is not None, f"{tag.name} overlaps {other}"
            owner[key] = tag.name


def test_profiles_exercise_both_addressing_modes_and_word_orders() -> None:
    profiles = [load_profile(profile_path(n)) for n in available()]
    modbus = [p for p in profiles if p.protocol == "modbus_tcp"]
    assert {p.modbus_options.addressing for p in modbus} == {"zero_based", "one_based"}
    orders = {p.word_order(t) for p in modbus for t in p.tags if t.register_count == 2}
    assert {"ABCD", "CDAB"} <= orders
    breaker = load_profile(profile_path("breaker_assembly_station"))
    door = breaker.tag("door_closed")
    assert (door.type, door.table, door.bit) == ("bool", "holding", 0)
    assert load_profile(profile_path("sole_injection_press")).units_per_cycle in (2, 4)


GOOD_HEAD = """\
model: test_machine
vendor: Generic
protocol: modbus_tcp
states: {1: running, 2: idle}
tags:
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(GOOD_HEAD + body, encoding="utf-8")
    return path


def _error(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    return caught.value


def test_a_misspelt_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - name: machine_state\n"  # line 6
        "    role: state\n"
        "    type: uint16\n"
        "    table: holding\n"
        "    adress: 3\n",  # line 10
    )
    text = str(_error(path))
    assert f"{path}:10: tags[0].adress: unknown field" in text


def test_a_bad_value_names_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - {name: machine_state, role: state, type: uint16, table: holding, address: 0}\n"
        "  - name: spindle_speed\n"  # line 7
        "    type: float33\n",  # line 8
    )
    err = _error(path)
    assert any(line == 8 and field == "tags[1].type" for line, field, _ in err.problems)
    assert f"{path}:8: tags[1].type" in str(err)


def test_a_cross_field_problem_points_at_the_tag(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - {name: machine_state, role: state, type: uint16, table: holding, address: 0}\n"
        "  - name: spindle_speed\n"  # line 7
        "    role: process_param\n"
        "    type: float32\n",
    )
    text = str(_error(path))
    assert f"{path}:7: tags[1]" in text
    assert "needs 'table' and 'address'" in text


def test_inverted_limits_name_the_limits_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - {name: machine_state, role: state, type: uint16, table: holding, address: 0}\n"
        "  - name: coolant_temperature\n"
        "    type: int16\n"
        "    table: input\n"
        "    address: 5\n"
        "    limits: {low: 30.0, high: 18.0}\n",  # line 11
    )
    err = _error(path)
    assert f"{path}:11: tags[1].limits" in str(err)
    assert "must not exceed" in str(err)


def test_an_unknown_state_name_points_at_states(tmp_path: Path) -> None:
    path = tmp_path / "states.yaml"
    path.write_text(
        "model: test_machine\n"
        "protocol: modbus_tcp\n"
        "states:\n"
        "  1: running\n"
        "  2: broken_down\n"  # line 5
        "tags:\n"
        "  - {name: machine_state, role: state, type: uint16, table: holding, address: 0}\n",
        encoding="utf-8",
    )
    err = _error(path)
    assert any(line == 5 and field.startswith("states") for line, field, _ in err.problems)
    assert str(path) in str(err)


RULES_HEAD = """\
model: retrofit_sewing_unit
protocol: modbus_tcp
tags:
  - {name: motor_running, type: bool, table: coil, address: 0}
  - {name: presser_foot_down, type: bool, table: coil, address: 1}
  - {name: fault_word, role: fault_code, type: uint16, table: holding, address: 0}
"""


def test_state_rules_and_fault_codes_load(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        RULES_HEAD + "fault_codes:\n"
        "  7: Thread break\n"
        "  9: {reason: Bobbin empty, category: material}\n"
        "state_rules:\n"
        "  - {state: down, when: fault_word != 0}\n"
        "  - {state: running, when: motor_running and presser_foot_down}\n"
        "  - {state: idle}\n",
        encoding="utf-8",
    )
    profile = load_profile(path)
    assert profile.fault_codes[7].reason == "Thread break"
    assert profile.fault_codes[7].category == "breakdown"
    assert profile.fault_codes[9].category == "material"
    assert [r.state for r in profile.state_rules] == ["down", "running", "idle"]
    assert profile.state_rules[-1].when is None


def test_a_state_rule_naming_an_unknown_tag_points_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        RULES_HEAD + "state_rules:\n"
        "  - {state: down, when: fault_word != 0}\n"
        "  - {state: running, when: motor_on and presser_foot_down}\n",  # line 9
        encoding="utf-8",
    )
    text = str(_error(path))
    assert f"{path}:9: state_rules[1].when" in text
    assert "['motor_on']" in text
    assert "not tags of this profile" in text


def test_only_the_last_state_rule_may_be_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        RULES_HEAD + "state_rules:\n"
        "  - {state: idle}\n"  # line 8
        "  - {state: running, when: motor_running}\n",
        encoding="utf-8",
    )
    assert f"{path}:8: state_rules[0].when: only the last rule" in str(_error(path))


def test_a_state_rule_that_is_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        RULES_HEAD + "state_rules:\n"
        "  - {state: running, when: \"__import__('os').getcwd()\"}\n",  # line 8
        encoding="utf-8",
    )
    text = str(_error(path))
    assert f"{path}:8: state_rules[0].when" in text
    assert "is not allowed" in text


def test_a_bad_fault_category_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(
        RULES_HEAD + "fault_codes:\n  7: {reason: Thread break, category: gremlins}\n",  # line 8
        encoding="utf-8",
    )
    err = _error(path)
    assert any(line == 8 and field == "fault_codes[7].category" for line, field, _ in err.problems)


# --------------------------------------------------------------------------- waveform tags

WAVE_HEAD = """\
model: test_monitor
vendor: Generic
protocol: opcua
states: {1: running, 2: idle}
tags:
  - {name: machine_state, role: state, type: int16, node: s=M.State}
"""


def _write_wave(tmp_path: Path, body: str, head: str = WAVE_HEAD) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(head + body, encoding="utf-8")
    return path


def test_a_waveform_tag_is_born_as_its_feature_metrics(tmp_path: Path) -> None:
    path = _write_wave(
        tmp_path,
        "  - name: fan_velocity\n"
        "    role: vibration\n"
        "    type: float64\n"
        "    node: s=M.Fan.Velocity\n"
        "    unit: mm/s\n"
        "    limits: {high: 7.1}\n"
        "    waveform: {sample_rate_hz: 5120, samples: 2048, features: [rms, kurtosis]}\n",
    )
    profile = load_profile(path)
    waveform = profile.tag("fan_velocity").waveform
    assert waveform is not None
    assert (waveform.sample_rate_hz, waveform.samples, waveform.forward_raw) == (5120, 2048, False)
    assert waveform.period_s == pytest.approx(0.4)
    definitions = {d.name: d for d in profile.metric_definitions()}
    assert "fan_velocity" not in definitions
    assert profile.metric_names == ("machine_state", "fan_velocity_rms", "fan_velocity_kurtosis")
    rms, kurtosis = definitions["fan_velocity_rms"], definitions["fan_velocity_kurtosis"]
    assert (rms.role, rms.unit, rms.data_type, rms.high_limit) == (
        "vibration",
        "mm/s",
        "float64",
        7.1,
    )
    assert (kurtosis.role, kurtosis.unit, kurtosis.high_limit) == ("vibration", None, None)


def test_a_waveform_publishes_all_four_features_by_default(tmp_path: Path) -> None:
    path = _write_wave(
        tmp_path,
        "  - name: fan_velocity\n"
        "    role: vibration\n"
        "    type: float32\n"
        "    node: s=M.Fan.Velocity\n"
        "    unit: mm/s\n"
        "    waveform: {sample_rate_hz: 2560, samples: 1024, forward_raw: true}\n",
    )
    profile = load_profile(path)
    assert profile.metric_names[1:] == (
        "fan_velocity_rms", "fan_velocity_peak", "fan_velocity_crest_factor", "fan_velocity_kurtosis",
    )  # fmt: skip
    definitions = {d.name: d for d in profile.metric_definitions()}
    assert definitions["fan_velocity_peak"].unit == "mm/s"
    assert definitions["fan_velocity_crest_factor"].unit is None
    waveform = profile.tag("fan_velocity").waveform
    assert waveform is not None
    assert waveform.forward_raw


@pytest.mark.parametrize(
    ("tag_lines", "line", "field", "message"),
    [
        (["role: process_param", "type: float32"], 7, "tags[1]", "needs role 'vibration'"),
        (["role: vibration", "type: int16"], 7, "tags[1]", "array of float32 or float64"),
        (
            ["role: vibration", "type: float32", "writable: true"],
            7,
            "tags[1]",
            "cannot be writable",
        ),
    ],
)
def test_a_waveform_on_the_wrong_kind_of_tag_points_at_the_tag(
    tmp_path: Path, tag_lines: list[str], line: int, field: str, message: str
) -> None:
    body = "  - name: fan_velocity\n" + "".join(f"    {t}\n" for t in tag_lines)
    body += "    node: s=M.Fan.Velocity\n    waveform: {sample_rate_hz: 2560, samples: 1024}\n"
    path = _write_wave(tmp_path, body)
    text = str(_error(path))
    assert f"{path}:{line}: {field}" in text
    assert message in text


@pytest.mark.parametrize(
    ("waveform", "field", "message"),
    [
        ("{sample_rate_hz: 0, samples: 1024}", "tags[1].waveform.sample_rate_hz", "greater than 0"),
        ("{sample_rate_hz: 2560, samples: 8}", "tags[1].waveform.samples", "greater than or equal to 16"),
        ("{sample_rate_hz: 2560, samples: 70000}", "tags[1].waveform.samples", "less than or equal"),
        ("{sample_rate_hz: 2560, samples: 1024, features: [rms, skew]}",
         "tags[1].waveform.features[1]", "'rms', 'peak', 'crest_factor' or 'kurtosis'"),
        ("{sample_rate_hz: 2560, samples: 1024, features: []}", "tags[1].waveform.features",
         "at least 1 item"),
        ("{sample_rate_hz: 2560, samples: 1024, features: [rms, rms]}", "tags[1].waveform",
         "['rms'] more than once"),
        ("{sample_rate_hz: 2560, samples: 1024, windows: 3}", "tags[1].waveform.windows",
         "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_waveform_block_names_line_and_field(
    tmp_path: Path, waveform: str, field: str, message: str
) -> None:
    body = (
        "  - name: fan_velocity\n"
        "    role: vibration\n"
        "    type: float32\n"
        "    node: s=M.Fan.Velocity\n"
        f"    waveform: {waveform}\n"  # line 11
    )
    path = _write_wave(tmp_path, body)
    text = str(_error(path))
    assert f"{path}:11: {field}" in text
    assert message in text


def test_a_waveform_on_a_modbus_profile_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - {name: machine_state, role: state, type: uint16, table: holding, address: 0}\n"
        "  - name: fan_velocity\n"  # line 7
        "    role: vibration\n"
        "    type: float32\n"
        "    table: holding\n"
        "    address: 2\n"
        "    waveform: {sample_rate_hz: 2560, samples: 1024}\n",
    )
    text = str(_error(path))
    assert f"{path}:7: tags[1]" in text
    assert "OPC UA array node, not Modbus registers" in text


def test_feature_metrics_may_not_clash_with_other_tags(tmp_path: Path) -> None:
    path = _write_wave(
        tmp_path,
        "  - {name: fan_velocity_rms, role: vibration, type: float32, node: s=M.Fan.Rms}\n"
        "  - name: fan_velocity\n"  # line 8
        "    role: vibration\n"
        "    type: float32\n"
        "    node: s=M.Fan.Velocity\n"
        "    waveform: {sample_rate_hz: 2560, samples: 1024}\n",  # line 12
    )
    text = str(_error(path))
    assert f"{path}:12: tags[2].waveform" in text
    assert "['fan_velocity_rms'] clash" in text


def test_a_long_waveform_tag_name_is_refused_so_feature_names_fit(tmp_path: Path) -> None:
    name = "a" * 51
    path = _write_wave(
        tmp_path,
        f"  - name: {name}\n"
        "    role: vibration\n"
        "    type: float32\n"
        "    node: s=M.Fan.Velocity\n"
        "    waveform: {sample_rate_hz: 2560, samples: 1024}\n",
    )
    assert "at most 50 characters" in str(_error(path))


def test_profiles_without_waveforms_define_one_metric_per_tag() -> None:
    for name in available():
        profile = load_profile(profile_path(name))
        plain = [t for t in profile.tags if t.waveform is None]
        assert [d for t in plain for d in t.definitions()] == [t.definition() for t in plain]
    press = load_profile(profile_path("sole_injection_press"))
    assert press.metric_names == tuple(t.name for t in press.tags)


def test_the_pump_drive_monitor_has_a_featured_waveform_and_an_overall_velocity() -> None:
    pump = load_profile(profile_path("pump_drive_monitor"))
    wave = pump.tag("motor_de_velocity")
    assert wave.waveform is not None
    assert (wave.type, wave.unit, wave.waveform.sample_rate_hz, wave.waveform.samples) == (
        "float32", "mm/s", 2560, 1024,
    )  # fmt: skip
    roles = {d.name: d.role for d in pump.metric_definitions()}
    assert roles["motor_de_overall_velocity"] == "vibration"
    assert roles["motor_de_bearing_temperature"] == "temperature"
    assert roles["motor_load"] == "process_param"
    assert {f"motor_de_velocity_{s}" for s in ("rms", "peak", "crest_factor", "kurtosis")} <= set(
        roles
    )
