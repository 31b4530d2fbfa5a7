"""The OPC UA simulator's lock-down options: scenario fields, units and ranges, operation limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import Client, ua

from device_profiles import profile_path
from protocols.errors import ProfileError
from protocols.profile import load_profile
from simulators.behaviour import MachineBehaviour
from simulators.opcua_server import OpcUaDeviceServer, unit_id
from simulators.runner import build_device
from simulators.scenario import load_scenario, resolve_profile

SCENARIO = """\
site: locked-plant
lines:
  - name: Sole line
    machines:
      - device_id: press-01
        profile: sole_injection_press
        opcua:
          security: [Basic256Sha256/Sign, Basic256Sha256/SignAndEncrypt]
          users: [{{username: operator, password: change-me}}]
          certificate_dir: {certificate_dir}
          max_nodes_per_read: 50
      - device_id: cnc-01
        profile: cnc_machining_centre
"""


def test_scenario_options_reach_the_server(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(SCENARIO.format(certificate_dir=tmp_path / "pki"))
    scenario = load_scenario(path)
    (_, machine), _ = scenario.machines()
    device = build_device(machine, resolve_profile(machine.profile))
    assert isinstance(device, OpcUaDeviceServer)
    assert device.security == ("Basic256Sha256/Sign", "Basic256Sha256/SignAndEncrypt")
    assert device.users == {"operator": "change-me"}
    assert device.max_nodes_per_read == 50
    assert device.certificate_path == tmp_path / "pki" / "own" / "cert.der"
    entry = device.endpoint()
    assert entry["server_certificate"] == str(tmp_path / "pki" / "own" / "cert.der")
    assert entry["login"] == "username"

    # opcua options on a Modbus machine are a mistake worth saying so
    modbus = scenario.lines[0].machines[1].model_copy(update={"opcua": machine.opcua})
    with pytest.raises(ValueError, match="'opcua' options on a modbus_tcp machine"):
        build_device(modbus, resolve_profile(modbus.profile))


def test_an_unknown_security_option_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(
        SCENARIO.format(certificate_dir=tmp_path).replace("Basic256Sha256/Sign,", "Basic128/Sign,")
    )
    with pytest.raises(ProfileError) as caught:
        load_scenario(path)
    assert "plant.yaml:8" in str(caught.value)  # the security line
    assert "security" in str(caught.value)


def test_constructor_checks() -> None:
    profile = load_profile(profile_path("sole_injection_press"))
    behaviour = MachineBehaviour(profile)
    with pytest.raises(ValueError, match="security"):
        OpcUaDeviceServer("p", profile, behaviour, security=["Basic256Sha256"])
    with pytest.raises(ValueError, match="users is empty"):
        OpcUaDeviceServer("p", profile, behaviour, users={})
    assert unit_id("°C") == 4408652  # "CEL", UN/CEFACT as OPC UA Part 8 encodes it
    assert unit_id("furlongs") == -1


@pytest.mark.anyio
@pytest.mark.integration
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_units_ranges_and_the_read_limit_as_a_client_sees_them(anyio_backend: str) -> None:
    profile = load_profile(profile_path("sole_injection_press"))
    sim = OpcUaDeviceServer("press-01", profile, MachineBehaviour(profile), max_nodes_per_read=4)
    await sim.start()
    try:
        async with Client(sim.endpoint_url, timeout=3) as client:
            limit = client.get_node(
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead
            )
            assert await limit.read_value() == 4
            idx = await client.get_namespace_index(sim.namespace_uri)
            nozzle = client.get_node(ua.NodeId("Press.NozzleTemp", idx))
            units = await (await nozzle.get_child("0:EngineeringUnits")).read_value()
            assert units.DisplayName.Text == "°C"
            assert units.UnitId == unit_id("°C")
            eu_range = await (await nozzle.get_child("0:EURange")).read_value()
            assert (eu_range.Low, eu_range.High) == (180.0, 190.0)
            # pump_vibration has a high limit only: no EURange, but its unit
            vibration = client.get_node(ua.NodeId("Press.Hydraulic.PumpVibration", idx))
            names = {(await p.read_browse_name()).Name for p in await vibration.get_properties()}
            assert names == {"EngineeringUnits"}

            before = sim.read_requests
            nodes = [client.get_node(ua.NodeId(f"Press.{n}", idx)) for n in ("State", "MouldId")]
            await client.read_values(nodes)
            assert sim.read_requests == before + 1
            five = [*nodes, nozzle, vibration, nozzle]
            with pytest.raises(ua.UaStatusCodeError, match="BadTooManyOperations"):
                await client.read_values(five)
            assert sim.read_sizes[-1] == 5
    finally:
        await sim.stop()
