"""`forgeline sim fault` against a running `forgeline sim`, seen by raw Modbus and OPC UA clients.

The simulator and every `sim fault` run as subprocesses, as an engineer would use them; the
effect of each fault (and the recovery after --for) is observed with pymodbus and asyncua.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from click.testing import CliRunner
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from forgeline.cli import main
from simulators.opcua_server import node_id

pytestmark = pytest.mark.anyio

SCENARIO = """\
site: fault-plant
step_s: 0.1
lines:
  - name: Lab line
    machines:
      - device_id: cnc-01
        profile: cnc_machining_centre
        seed: 3
        behaviour: {mean_running_s: 100000, excursions_per_hour: 0}
      - device_id: press-01
        profile: sole_injection_press
        seed: 4
        behaviour: {mean_running_s: 100000, excursions_per_hour: 0}
"""
MODBUS_ONLY = """\
site: small-plant
lines:
  - name: L1
    machines:
      - {device_id: breaker-01, profile: breaker_assembly_station}
"""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class RunningSim:
    process: subprocess.Popen[bytes]
    endpoints_file: Path
    env: dict[str, str]
    log: Path

    @property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.endpoints_file.read_text()))

    def device(self, device_id: str) -> dict[str, Any]:
        return next(d for d in self.document["devices"] if d["device_id"] == device_id)


def _start_sim(workdir: Path, scenario_text: str) -> RunningSim:
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = workdir / "scenario.yaml"
    scenario.write_text(scenario_text)
    runtime = workdir / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PYTHONUNBUFFERED": "1"}
    endpoints = workdir / "endpoints.json"
    log = workdir / "sim.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "forgeline", "sim", "--scenario", str(scenario),
             "--endpoints-file", str(endpoints)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    sim = RunningSim(process, endpoints, env, log)
    deadline = time.monotonic() + 60
    while not endpoints.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_sim(sim)
            pytest.fail(f"forgeline sim did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return sim


def _stop_sim(sim: RunningSim) -> None:
    if sim.process.poll() is None:
        sim.process.send_signal(signal.SIGTERM)
        try:
            sim.process.wait(15)
        except subprocess.TimeoutExpired:
            sim.process.kill()
            sim.process.wait()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    """One `forgeline sim` subprocess (a Modbus CNC and an OPC UA press) for the module."""
    running = _start_sim(tmp_path_factory.mktemp("sim"), SCENARIO)
    yield running
    _stop_sim(running)


async def _forgeline(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run `forgeline ARGS` as a subprocess; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "forgeline", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _fault(sim: RunningSim, *args: str) -> str:
    code, out, err = await _forgeline(sim.env, "sim", "fault", *args)
    assert code == 0, f"sim fault {args} failed: {err}\nsim log:\n{sim.log.read_text()[-3000:]}"
    return out


async def _eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not seen within {timeout_s:.0f} s")


async def _modbus(entry: dict[str, Any], timeout_s: float = 1.0) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient(entry["host"], port=entry["port"], timeout=timeout_s, retries=0)
    assert await client.connect()
    return client


async def _modbus_input(entry: dict[str, Any], address: int) -> int | str:
    """One input register from a fresh connection: its value, 'exception N' or 'no answer'."""
    client = AsyncModbusTcpClient(entry["host"], port=entry["port"], timeout=0.5, retries=0)
    try:
        if not await client.connect():
            return "no connection"
        response = await client.read_input_registers(address, count=1, device_id=entry["unit_id"])
    except ModbusException:
        return "no answer"
    finally:
        client.close()
    if response.isError():
        return f"exception {response.exception_code}"
    return int(response.registers[0])


async def _opcua_read(entry: dict[str, Any], tag: str) -> ua.DataValue:
    from device_profiles import profile_path
    from protocols.profile import load_profile

    profile = load_profile(profile_path(entry["profile"]))
    async with Client(entry["endpoint_url"], timeout=2) as client:
        idx = await client.get_namespace_index(entry["namespace"])
        node = client.get_node(node_id(profile.tag(tag), idx))
        return await node.read_data_value(raise_on_bad_status=False)


# -- the command line -----------------------------------------------------------------------------


def test_sim_and_sim_fault_explain_themselves() -> None:
    runner = CliRunner()
    group = runner.invoke(main, ["sim", "--help"])
    assert group.exit_code == 0, group.output
    for word in ("--scenario", "--endpoints-file", "--duration", "fault"):
        assert word in group.output
    fault = runner.invoke(main, ["sim", "fault", "--help"])
    assert fault.exit_code == 0, fault.output
    for word in ("DEVICE", "stop|drop|bad|excursion", "--for", "default 30 s", "--metric",
                 "--value", "--endpoints-file"):  # fmt: skip
        assert word in fault.output
    missing = runner.invoke(main, ["sim"])
    assert missing.exit_code == 2
    assert "--scenario" in missing.output


def test_the_endpoints_file_and_the_state_file_name_the_control_endpoint(sim: RunningSim) -> None:
    document = sim.document
    assert set(document) == {"site", "devices", "control"}
    assert [d["device_id"] for d in document["devices"]] == ["cnc-01", "press-01"]
    control = document["control"]
    assert control["host"] == "127.0.0.1"
    assert control["pid"] == sim.process.pid
    assert isinstance(control["port"], int)
    assert control["token"]
    state = Path(sim.env["XDG_RUNTIME_DIR"]) / "forgeline" / "sim.json"
    assert json.loads(state.read_text())["control"] == control
    assert stat.S_IMODE(state.stat().st_mode) == 0o600  # the token is the user's alone


# -- the four faults, as clients see them ---------------------------------------------------------


async def test_stop_makes_modbus_time_out_until_the_duration_is_over(sim: RunningSim) -> None:
    entry = sim.device("cnc-01")
    client = await _modbus(entry, timeout_s=0.5)
    try:
        assert not (await client.read_holding_registers(0, count=1, device_id=1)).isError()
        out = await _fault(sim, "cnc-01", "stop", "--for", "2")  # found via the state file
        assert "unresponsive for 2 s" in out
        with pytest.raises(ModbusException):
            await client.read_holding_registers(0, count=1, device_id=1)
    finally:
        client.close()

    async def answers() -> bool:
        return isinstance(await _modbus_input(entry, 5), int)

    await _eventually(answers, "cnc-01 answering again after stop --for 2")


async def test_stop_takes_the_opcua_listener_down_until_the_duration_is_over(
    sim: RunningSim,
) -> None:
    entry = sim.device("press-01")
    assert (await _opcua_read(entry, "machine_state")).StatusCode.is_good()
    await _fault(sim, "press-01", "stop", "--for", "2")
    with pytest.raises((OSError, TimeoutError)):
        await _opcua_read(entry, "machine_state")

    async def answers() -> bool:
        with contextlib.suppress(OSError, TimeoutError, ua.UaError):
            return bool((await _opcua_read(entry, "machine_state")).StatusCode.is_good())
        return False

    await _eventually(answers, "press-01 listening again after stop --for 2")


async def test_drop_closes_open_connections_once(sim: RunningSim) -> None:
    cnc, press = sim.device("cnc-01"), sim.device("press-01")
    reader, writer = await asyncio.open_connection(cnc["host"], cnc["port"])
    try:
        await asyncio.sleep(0.1)  # let the server register the connection
        out = await _fault(sim, "cnc-01", "drop", "--endpoints-file", str(sim.endpoints_file))
        assert "closed 1 open connection" in out
        assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF: closed by the simulator
    finally:
        writer.close()
    assert isinstance(await _modbus_input(cnc, 5), int)  # reconnecting works

    client = Client(press["endpoint_url"], timeout=1)
    await client.connect()
    try:
        await _fault(sim, "press-01", "drop")
        with pytest.raises((ConnectionError, TimeoutError, ua.UaError)):
            await client.nodes.server_state.read_value()
    finally:
        with contextlib.suppress(ConnectionError, TimeoutError, ua.UaError, OSError):
            await client.disconnect()
    assert (await _opcua_read(press, "machine_state")).StatusCode.is_good()


async def test_bad_answers_modbus_exception_4_for_the_tag_until_the_duration_is_over(
    sim: RunningSim,
) -> None:
    entry = sim.device("cnc-01")
    # spindle_vibration is input register 6, coolant_temperature input register 5
    await _fault(sim, "cnc-01", "bad", "--metric", "spindle_vibration", "--for", "2")
    assert await _modbus_input(entry, 6) == "exception 4"
    assert isinstance(await _modbus_input(entry, 5), int)  # the other tags still read

    async def recovered() -> bool:
        return isinstance(await _modbus_input(entry, 6), int)

    await _eventually(recovered, "spindle_vibration readable again after bad --for 2")


async def test_bad_marks_opcua_values_bad_sensor_failure_until_the_duration_is_over(
    sim: RunningSim,
) -> None:
    entry = sim.device("press-01")
    out = await _fault(sim, "press-01", "bad", "--for", "2")
    assert "every tag" in out
    bad = await _opcua_read(entry, "injection_pressure")
    assert bad.StatusCode == ua.StatusCode(ua.StatusCodes.BadSensorFailure)

    async def recovered() -> bool:
        return bool((await _opcua_read(entry, "injection_pressure")).StatusCode.is_good())

    await _eventually(recovered, "injection_pressure good again after bad --for 2")


async def test_excursion_holds_the_value_on_both_buses_until_the_duration_is_over(
    sim: RunningSim,
) -> None:
    cnc, press = sim.device("cnc-01"), sim.device("press-01")
    await _fault(sim, "cnc-01", "excursion", "--metric", "coolant_temperature", "--value", "61.5",
                 "--for", "3")  # fmt: skip
    await _fault(sim, "press-01", "excursion", "--metric", "nozzle_temperature", "--value", "231",
                 "--for", "3")  # fmt: skip

    async def coolant_is(raw: int) -> bool:
        return await _modbus_input(cnc, 5) == raw  # scale 0.1: 61.5 °C is raw 615

    async def nozzle_at_231() -> bool:
        value = (await _opcua_read(press, "nozzle_temperature")).Value
        return value is not None and value.Value == pytest.approx(231.0)

    await _eventually(lambda: coolant_is(615), "coolant_temperature held at 61.5")
    await _eventually(nozzle_at_231, "nozzle_temperature held at 231")

    async def coolant_back() -> bool:
        value = await _modbus_input(cnc, 5)
        return isinstance(value, int) and value < 400  # limits 18–30 °C: raw 180–300

    async def nozzle_back() -> bool:
        return not await nozzle_at_231()

    await _eventually(coolant_back, "coolant_temperature back in its range")
    await _eventually(nozzle_back, "nozzle_temperature released")


# -- errors ---------------------------------------------------------------------------------------


async def test_unknown_device_and_tag_are_refused_naming_what_exists(sim: RunningSim) -> None:
    code, _, err = await _forgeline(sim.env, "sim", "fault", "cnc-99", "stop")
    assert code == 1
    assert "no simulated device 'cnc-99'" in err
    assert "cnc-01, press-01" in err
    code, _, err = await _forgeline(sim.env, "sim", "fault", "press-01", "bad", "--metric", "nope")
    assert code == 1
    assert "has no tag nope" in err
    assert "nozzle_temperature" in err
    code, _, err = await _forgeline(sim.env, "sim", "fault", "cnc-01", "excursion", "--metric",
                                    "coolant_temperature")  # fmt: skip
    assert code == 1
    assert "needs one --metric and a --value" in err
    code, _, err = await _forgeline(sim.env, "sim", "fault", "cnc-01", "drop", "--for", "5")
    assert code == 1
    assert "--for does not apply" in err


async def test_without_a_running_sim_the_error_says_how_to_start_one(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    code, _, err = await _forgeline(env, "sim", "fault", "cnc-01", "stop")
    assert code == 1
    assert "no forgeline sim is running" in err
    assert "forgeline sim --scenario" in err
    # a state file left by a simulator that was killed
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    (tmp_path / "forgeline").mkdir()
    (tmp_path / "forgeline" / "sim.json").write_text(json.dumps(
        {"control": {"host": "127.0.0.1", "port": 9, "token": "x", "pid": dead.pid}}
    ))  # fmt: skip
    code, _, err = await _forgeline(env, "sim", "fault", "cnc-01", "stop")
    assert code == 1
    assert f"(pid {dead.pid}) is no longer running" in err
    assert "forgeline sim --scenario" in err
    code, _, err = await _forgeline(env, "sim", "fault", "cnc-01", "stop", "--endpoints-file",
                                    str(tmp_path / "missing.json"))  # fmt: skip
    assert code == 1
    assert "no endpoints file" in err


def test_a_stopped_sim_withdraws_its_address(tmp_path: Path) -> None:
    small = _start_sim(tmp_path, MODBUS_ONLY)
    state = Path(small.env["XDG_RUNTIME_DIR"]) / "forgeline" / "sim.json"

    def fault(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "forgeline", "sim", "fault", *args],
                              env=small.env, capture_output=True, text=True, timeout=60)  # fmt: skip

    try:
        assert state.exists()
        started = fault("breaker-01", "stop", "--for", "60")  # a recovery pending at exit
        assert started.returncode == 0, started.stderr
    finally:
        _stop_sim(small)
    assert small.process.returncode == 0, small.log.read_text()
    assert not state.exists()
    after = fault("breaker-01", "stop")
    assert after.returncode == 1
    assert "forgeline sim --scenario" in after.stderr
