"""Scenario files: the built-in demo, precise errors, and profile resolution."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from device_profiles import profile_path
from protocols.errors import ProfileError
from simulators.runner import SimulatedPlant
from simulators.scenario import available, load_scenario, resolve_profile


def test_demo_is_built_in_and_covers_both_protocols() -> None:
    assert "demo" in available()
    demo = load_scenario("demo")
    assert demo.site == "demo-plant"
    assert len(demo.lines) >= 2
    machines = demo.machines()
    assert len(machines) >= 6
    protocols = {resolve_profile(m.profile).protocol for _, m in machines}
    assert protocols == {"modbus_tcp", "opcua"}
    # one scheduled fault, so that the demo shows an alarm in its first minute
    faults = [(m.device_id, f) for _, m in machines for f in m.faults]
    assert [(device, f.kind, f.metric) for device, f in faults] == [
        ("press-01", "excursion", "nozzle_temperature")
    ]
    assert faults[0][1].value is not None
    assert faults[0][1].value > 190.0  # the profile's high limit
    assert 0.2 <= demo.step_s <= 0.5


def test_behaviour_overrides_reach_the_behaviour_config() -> None:
    demo = load_scenario("demo")
    cnc = next(m for _, m in demo.machines() if m.device_id == "cnc-01")
    config = cnc.behaviour.config()
    assert config.wear_per_hour == pytest.approx(0.3)
    assert config.fault_codes == (1001, 1010, 2040, 3012)
    assert config.constants == {"program_number": 4711}
    assert config.mean_idle_s == 90.0  # not overridden: the default


def _scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_an_unknown_fault_kind_names_file_line_and_field(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "site: test-plant\n"
        "lines:\n"
        "  - name: L1\n"
        "    machines:\n"
        "      - device_id: cnc-01\n"
        "        profile: cnc_machining_centre\n"
        "        faults:\n"
        "          - kind: power_cut\n"  # line 8
        "            at_s: 5\n",
    )
    with pytest.raises(ProfileError) as caught:
        load_scenario(path)
    assert f"{path}:8: lines[0].machines[0].faults[0].kind" in str(caught.value)


def test_a_misspelt_behaviour_field_is_refused(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "site: test-plant\n"
        "lines:\n"
        "  - name: L1\n"
        "    machines:\n"
        "      - device_id: cnc-01\n"
        "        profile: cnc_machining_centre\n"
        "        behaviour:\n"
        "          scrap_rat: 0.1\n",  # line 8
    )
    with pytest.raises(ProfileError) as caught:
        load_scenario(path)
    assert f"{path}:8: lines[0].machines[0].behaviour.scrap_rat: unknown field" in str(caught.value)


def test_an_excursion_without_metric_is_refused(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "site: test-plant\n"
        "lines:\n"
        "  - name: L1\n"
        "    machines:\n"
        "      - device_id: cnc-01\n"
        "        profile: cnc_machining_centre\n"
        "        faults:\n"
        "          - {kind: excursion, at_s: 5, duration_s: 10}\n",  # line 8
    )
    with pytest.raises(ProfileError) as caught:
        load_scenario(path)
    text = str(caught.value)
    assert f"{path}:8: lines[0].machines[0].faults[0]" in text
    assert "needs 'metric' and 'value'" in text


def test_a_device_id_used_twice_in_the_plant_is_refused(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "site: test-plant\n"
        "lines:\n"
        "  - name: L1\n"
        "    machines:\n"
        "      - {device_id: cnc-01, profile: cnc_machining_centre}\n"
        "  - name: L2\n"  # line 6
        "    machines:\n"
        "      - {device_id: cnc-01, profile: cnc_machining_centre}\n",
    )
    with pytest.raises(ProfileError) as caught:
        load_scenario(path)
    assert f"{path}:6: lines[1]: machines[0]: device id 'cnc-01' appears twice" in str(caught.value)


def test_a_fault_on_an_unknown_metric_is_refused_before_anything_starts(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        "site: test-plant\n"
        "lines:\n"
        "  - name: L1\n"
        "    machines:\n"
        "      - device_id: cnc-01\n"
        "        profile: cnc_machining_centre\n"
        "        faults:\n"
        "          - {kind: excursion, at_s: 5, duration_s: 10, metric: spindel_load, value: 95}\n",
    )
    with pytest.raises(ValueError, match="spindel_load"):
        SimulatedPlant(path)


def test_a_profile_path_is_resolved_beside_the_scenario(tmp_path: Path) -> None:
    shutil.copy(profile_path("cnc_machining_centre"), tmp_path / "my_cnc.yaml")
    path = _scenario(
        tmp_path,
        "site: test-plant\n"
        "lines:\n"
        "  - name: L1\n"
        "    machines:\n"
        "      - {device_id: cnc-01, profile: my_cnc.yaml}\n",
    )
    plant = SimulatedPlant(path)
    assert plant.device("cnc-01").profile.model == "cnc_machining_centre"
    with pytest.raises(KeyError, match="cnc-02"):
        plant.device("cnc-02")


def test_an_unknown_builtin_name_lists_the_built_in_scenarios() -> None:
    with pytest.raises(FileNotFoundError, match="demo"):
        load_scenario("no_such_plant")
