"""Waveform tags in the OPC UA simulator: a real asyncua client reads the window array, sees it
refresh with a new source timestamp, and finds its RMS on the bearing model's trend."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest
from asyncua import ua
from asyncua.client.client import Client

from device_profiles import profile_path
from protocols.errors import ProfileError
from protocols.profile import load_profile
from protocols.yaml_lines import validate_yaml
from simulators.bearing import BearingModel
from simulators.behaviour import BearingWear, BehaviourConfig, MachineBehaviour
from simulators.opcua_server import OpcUaDeviceServer, node_id
from simulators.scenario import Scenario

pytestmark = pytest.mark.anyio

PROFILE = load_profile(profile_path("pump_drive_monitor"))
MODEL = BearingModel(seed=5, life_h=1000.0, baseline_rms=1.0, failure_rms=4.5)
WEAR_SCALE = 3600.0 * 50  # fifty running hours per simulated second
INITIAL_H = 300.0  # onset of the defect stage is 0.3 × 1000 h


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def _behaviour(window_refresh_s: float | None = None) -> MachineBehaviour:
    wear = BearingWear(
        MODEL, initial_h=INITIAL_H, wear_time_scale=WEAR_SCALE, window_refresh_s=window_refresh_s
    )
    config = BehaviourConfig(mean_running_s=1e9, bearing=wear)
    return MachineBehaviour(PROFILE, seed=3, config=config)


@pytest.fixture(scope="module")
async def pump() -> AsyncIterator[OpcUaDeviceServer]:
    """One pump monitor for the module (asyncua's init costs about a second)."""
    server = OpcUaDeviceServer("pump-07", PROFILE, _behaviour(), epoch_s=time.time())
    await server.start()
    yield server
    await server.stop()


async def test_the_waveform_is_a_float_array_of_one_window_with_the_window_time(
    pump: OpcUaDeviceServer,
) -> None:
    await pump.step(2.0)  # window 5 (0.4 s windows) at 2.0 s
    tag = PROFILE.tag("motor_de_velocity")
    window = pump.behaviour.window(tag.name)
    assert window.index == 5
    async with Client(pump.endpoint_url, timeout=3) as client:
        idx = await client.get_namespace_index(pump.namespace_uri)
        node = client.get_node(node_id(tag, idx))
        data = await node.read_data_value()
        assert await node.read_value_rank() == 1
        assert await node.read_array_dimensions() == [1024]
    assert data.StatusCode is not None
    assert data.StatusCode.is_good()
    assert data.Value is not None
    assert data.Value.VariantType == ua.VariantType.Float
    values = np.asarray(data.Value.Value)
    assert values.shape == (1024,)
    assert data.SourceTimestamp == datetime.fromtimestamp(pump.epoch_s + 2.0, UTC)
    np.testing.assert_allclose(values, window.values, rtol=1e-6, atol=1e-7)


async def test_a_new_window_every_period_and_none_between(pump: OpcUaDeviceServer) -> None:
    tag = PROFILE.tag("motor_de_velocity")
    async with Client(pump.endpoint_url, timeout=3) as client:
        idx = await client.get_namespace_index(pump.namespace_uri)
        node = client.get_node(node_id(tag, idx))
        await pump.step(4.0)
        first = await node.read_data_value()
        await pump.step(4.3)  # still window 10
        same = await node.read_data_value()
        await pump.step(4.45)  # window 11 (4.4 s)
        second = await node.read_data_value()
    assert first.SourceTimestamp == same.SourceTimestamp
    assert same.Value is not None
    assert first.Value is not None
    assert same.Value.Value == first.Value.Value
    assert second.SourceTimestamp == datetime.fromtimestamp(pump.epoch_s + 4.4, UTC)
    assert second.Value is not None
    assert second.Value.Value != first.Value.Value


async def test_the_window_rms_follows_the_bearing_model_as_it_wears() -> None:
    behaviour = _behaviour()
    checked = 0
    for now_s in np.arange(0.4, 14.0, 0.4):  # 300 h → 980 h of running
        behaviour.step(float(now_s))
        window = behaviour.window("motor_de_velocity")
        trend = MODEL.overall_rms(behaviour.running_h)
        assert behaviour.running_h == pytest.approx(INITIAL_H + now_s * 50, rel=1e-9)
        # the seeded scatter is exp(0.04 ε): five sigma is ±22 %
        assert window.rms == pytest.approx(trend, rel=0.22), now_s
        assert behaviour.values()["motor_de_velocity"] == pytest.approx(window.rms)
        checked += 1
    assert checked >= 30
    early, late = _behaviour(), _behaviour()
    early.step(0.4)
    late.step(13.6)
    assert late.window("motor_de_velocity").rms > 3 * early.window("motor_de_velocity").rms


async def test_the_window_is_the_model_window_at_the_running_hours_then() -> None:
    behaviour = _behaviour()
    behaviour.step(2.0)
    window = behaviour.window("motor_de_velocity")
    model = MODEL  # same rate and window length as the profile's waveform block
    expected = model.window(behaviour.running_h, window.index).astype(np.float32)
    np.testing.assert_array_equal(window.values, expected.astype(np.float64))


async def test_scalar_vibration_and_bearing_temperature_follow_the_model() -> None:
    behaviour = _behaviour()
    ratios = []
    for now_s in np.arange(1.0, 14.0, 1.0):
        behaviour.step(float(now_s))
        values = behaviour.values()
        trend = MODEL.overall_rms(behaviour.running_h)
        ratios.append(math.log(_number(values["motor_de_overall_velocity"]) / trend))
        expected_c = MODEL.temperature(behaviour.running_h, _number(values["motor_load"]))
        # the load of the previous step drives the temperature, plus 0.1 °C of noise
        temperature = _number(values["motor_de_bearing_temperature"])
        assert temperature == pytest.approx(expected_c, abs=3.0)
    assert abs(float(np.mean(ratios))) < 0.05  # scatter about the trend, not a bias
    assert float(np.std(ratios)) == pytest.approx(MODEL.noise, abs=0.03)


def _number(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


async def test_a_standing_machine_serves_a_quiet_window() -> None:
    behaviour = _behaviour()
    behaviour.force_state("idle", 100.0)
    behaviour.step(1.0)
    assert behaviour.window("motor_de_velocity").rms < 0.05


async def test_window_refresh_can_be_slowed_for_tests() -> None:
    behaviour = _behaviour(window_refresh_s=2.0)
    behaviour.step(3.9)
    assert behaviour.window("motor_de_velocity").index == 1
    assert behaviour.window("motor_de_velocity").at_s == 2.0
    assert behaviour.window_refresh_s("motor_de_velocity") == 2.0


def test_machines_without_a_bearing_draw_exactly_the_same_values_as_before() -> None:
    press = load_profile(profile_path("sole_injection_press"))
    plain = MachineBehaviour(press, seed=8, config=BehaviourConfig())
    again = MachineBehaviour(press, seed=8, config=BehaviourConfig(bearing=None))
    for now_s in (10.0, 200.0, 3000.0):
        plain.step(now_s)
        again.step(now_s)
        assert plain.values() == again.values()
    assert plain.running_h == plain.config.initial_wear_h + plain.running_s / 3600.0


SCENARIO = """
site: pump-house
lines:
  - name: Cooling water
    machines:
      - device_id: pump-07
        profile: pump_drive_monitor
        seed: 7
        bearing:
          life_h: 1200
          initial_h: 600
          wear_time_scale: 3600
          window_refresh_s: 1.0
"""


def test_a_zero_wear_time_scale_is_refused_at_its_line() -> None:
    text = SCENARIO.replace("wear_time_scale: 3600", "wear_time_scale: 0")
    with pytest.raises(ProfileError, match=r"pump\.yaml:12: .*bearing\.wear_time_scale: .*greater"):
        validate_yaml(Scenario, text, "pump.yaml")


def test_the_scenario_bearing_block_builds_the_behaviour_bearing() -> None:
    scenario = validate_yaml(Scenario, SCENARIO, "pump.yaml")
    machine = scenario.lines[0].machines[0]
    assert machine.bearing is not None
    wear = machine.bearing.wear(machine.seed)
    assert wear.model.seed == 7
    assert wear.model.failure_h == 1200.0
    assert (wear.initial_h, wear.wear_time_scale, wear.window_refresh_s) == (600.0, 3600.0, 1.0)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("failure_rms: 0.8", r"pump\.yaml:10: .*bearing\.failure_rms: .*must be above baseline"),
        ("ambient_c: warm", r"pump\.yaml:10: .*bearing\.ambient_c: .*valid number"),
        ("life: 900", r"pump\.yaml:10: .*bearing\.life: unknown field"),
    ],
)
def test_a_wrong_bearing_block_names_file_line_and_field(block: str, message: str) -> None:
    text = SCENARIO.replace("life_h: 1200", block)
    with pytest.raises(ProfileError, match=message):
        validate_yaml(Scenario, text, "pump.yaml")
