"""A whole simulated plant: the demo starts, its endpoints file, raw clients on both buses, faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient

from protocols.modbus.codec import decode_tag
from simulators.opcua_server import node_id
from simulators.runner import SimulatedPlant, run_scenario, write_endpoints_file

pytestmark = pytest.mark.anyio

MODBUS_KEYS = {
    "device_id",
    "protocol",
    "host",
    "port",
    "unit_id",
    "endpoint_url",
    "profile",
    "line",
    "area",
}
OPCUA_KEYS = {
    "device_id",
    "protocol",
    "host",
    "port",
    "namespace",
    "endpoint_url",
    "profile",
    "line",
    "area",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def plant() -> AsyncIterator[SimulatedPlant]:
    """The demo plant, started once for the module (four OPC UA servers: a few seconds)."""
    async with SimulatedPlant("demo") as running:
        yield running


async def test_endpoints_file_has_the_documented_shape(
    plant: SimulatedPlant, tmp_path: Path
) -> None:
    path = tmp_path / "run" / "endpoints.json"
    write_endpoints_file(path, plant.endpoints, plant.site)
    document = json.loads(path.read_text())
    assert set(document) == {"site", "devices"}
    assert document["site"] == "demo-plant"
    devices = document["devices"]
    assert len(devices) == 8
    assert [d["device_id"] for d in devices][:3] == ["cnc-01", "cnc-02", "valve-test-01"]
    for entry in devices:
        if entry["protocol"] == "modbus_tcp":
            assert set(entry) == MODBUS_KEYS
            assert entry["endpoint_url"] is None
            assert isinstance(entry["unit_id"], int)
        else:
            assert entry["protocol"] == "opcua"
            assert set(entry) == OPCUA_KEYS
            assert entry["endpoint_url"] == f"opc.tcp://127.0.0.1:{entry['port']}/forgeline/"
            assert entry["namespace"] == f"urn:forgeline:sim:{entry['profile']}"
        assert entry["host"] == "127.0.0.1"
        assert entry["port"] > 0
    assert len({d["port"] for d in devices}) == len(devices)
    cnc2 = next(d for d in devices if d["device_id"] == "cnc-02")
    assert (cnc2["unit_id"], cnc2["line"], cnc2["area"]) == (2, "Valve line", "Valve plant")
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was renamed, not left behind


async def _snapshot(
    client: AsyncModbusTcpClient, plant: SimulatedPlant, device_id: str
) -> dict[str, Any]:
    """Every tag of a Modbus device decoded from one consistent moment (retry across a step)."""
    device = plant.device(device_id)
    profile = device.profile
    unit = device.endpoint()["unit_id"]
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        before = plant.values(device_id)
        holding = (await client.read_holding_registers(0, count=16, device_id=unit)).registers
        inputs = (await client.read_input_registers(0, count=8, device_id=unit)).registers
        coils = (await client.read_coils(0, count=1, device_id=unit)).bits
        discrete = (await client.read_discrete_inputs(0, count=1, device_id=unit)).bits
        if plant.values(device_id) != before:
            continue  # a step landed between our reads: read again
        decoded: dict[str, Any] = {}
        for tag in profile.tags:
            assert tag.address is not None
            if tag.table == "coil":
                decoded[tag.name] = coils[tag.address]
            elif tag.table == "discrete":
                decoded[tag.name] = discrete[tag.address]
            else:
                words = holding if tag.table == "holding" else inputs
                span = words[tag.address : tag.address + tag.register_count]
                decoded[tag.name] = decode_tag(tag, span, profile.word_order(tag))
        return {"read": decoded, "values": before}
    raise AssertionError("could not read a consistent snapshot within 5 s")


async def test_raw_modbus_client_decodes_the_cnc_like_the_simulator(plant: SimulatedPlant) -> None:
    entry = plant.device("cnc-02").endpoint()
    client = AsyncModbusTcpClient(entry["host"], port=entry["port"], timeout=2, retries=0)
    assert await client.connect()
    try:
        snapshot = await _snapshot(client, plant, "cnc-02")
        for name, value in snapshot["values"].items():
            assert snapshot["read"][name] == pytest.approx(value), name
        assert snapshot["read"]["program_number"] == 4712
        first = snapshot["read"]["machine_state"]
        assert plant.device("cnc-02").profile.state_of(first) in (
            "running",
            "idle",
            "down",
            "setup",
            "planned_stop",
        )
    finally:
        client.close()


async def test_raw_opcua_client_reads_the_press_with_good_status_and_source_time(
    plant: SimulatedPlant,
) -> None:
    press = plant.device("press-01")
    entry = press.endpoint()
    async with Client(entry["endpoint_url"], timeout=3) as client:
        idx = await client.get_namespace_index(entry["namespace"])
        started = datetime.fromtimestamp(plant.epoch_s, UTC)
        for tag in press.profile.tags:
            data = await client.get_node(node_id(tag, idx)).read_data_value()
            assert data.StatusCode is not None
            assert data.StatusCode.is_good(), tag.name
            assert data.SourceTimestamp is not None
            assert started - timedelta(seconds=1) <= data.SourceTimestamp
            assert data.SourceTimestamp <= datetime.now(UTC) + timedelta(seconds=1)
        mould = await client.get_node(node_id(press.profile.tag("mould_id"), idx)).read_value()
        assert mould == "TPR-4102-42"


async def test_the_plant_steps_in_real_time(plant: SimulatedPlant) -> None:
    device = plant.device("breaker-01")
    first = device.behaviour.now_s
    for _ in range(100):  # up to 5 s
        if device.behaviour.now_s >= first + 0.5:
            break
        await asyncio.sleep(0.05)
    assert device.behaviour.now_s >= first + 0.5
    assert abs(device.behaviour.now_s - plant.now_s) < 1.0


FAULT_SCENARIO = """\
site: fault-plant
step_s: 0.2
lines:
  - name: Test line
    area: Lab
    machines:
      - device_id: cnc-lab
        profile: cnc_machining_centre
        seed: 1
        faults:
          - {kind: bad_quality, at_s: 0, duration_s: 600, metrics: [spindle_vibration]}
          - {kind: excursion, at_s: 0, duration_s: 600, metric: coolant_temperature, value: 41.5}
"""


async def test_run_scenario_writes_endpoints_and_applies_the_fault_timeline(tmp_path: Path) -> None:
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(FAULT_SCENARIO, encoding="utf-8")
    endpoints = tmp_path / "endpoints.json"
    task = asyncio.create_task(run_scenario(str(scenario), endpoints, duration_s=60))
    try:
        deadline = time.monotonic() + 10.0
        while not endpoints.exists():
            assert time.monotonic() < deadline, "the endpoints file never appeared"
            assert not task.done(), task
            await asyncio.sleep(0.05)
        entry = json.loads(endpoints.read_text())["devices"][0]
        assert entry["device_id"] == "cnc-lab"
        client = AsyncModbusTcpClient(entry["host"], port=entry["port"], timeout=2, retries=0)
        assert await client.connect()
        try:
            observed: dict[str, Any] = {}
            while time.monotonic() < deadline and len(observed) < 2:
                vibration = await client.read_input_registers(6, count=1, device_id=1)
                if vibration.isError():
                    observed["vibration_exception"] = vibration.exception_code
                coolant = await client.read_input_registers(5, count=1, device_id=1)
                if not coolant.isError() and coolant.registers[0] == 415:
                    observed["coolant_raw"] = coolant.registers[0]
                await asyncio.sleep(0.05)
            assert observed == {"vibration_exception": 4, "coolant_raw": 415}
        finally:
            client.close()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_sigterm_stops_run_scenario_cleanly(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    scenario = tmp_path / "one.yaml"
    scenario.write_text(
        "site: one-plant\nlines:\n  - name: L1\n    machines:\n"
        "      - {device_id: breaker-01, profile: breaker_assembly_station}\n",
        encoding="utf-8",
    )
    endpoints = tmp_path / "endpoints.json"
    root = Path(__file__).resolve().parents[2]
    code = (
        "import asyncio, logging, sys\n"
        "from pathlib import Path\n"
        "from simulators.runner import run_scenario\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "asyncio.run(run_scenario(sys.argv[1], Path(sys.argv[2])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(scenario), str(endpoints)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20.0
        while not endpoints.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the endpoints file never appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    log = stderr.decode()
    assert process.returncode == 0, log
    assert (
        "sim device started device=breaker-01 protocol=modbus_tcp endpoint=modbus://127.0.0.1:"
        in log
    )
    assert "reason=sigterm" in log
