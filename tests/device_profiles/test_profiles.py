"""Every built-in device profile validates, maps sensibly, and bad profiles are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles import available, profile_path
from protocols.errors import ProfileError
from protocols.profile import CANONICAL_STATES, load_profile

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
    assert profile.ideal_cycle_time_s is not None
    roles = {tag.role for tag in profile.tags}
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
