"""The CLI as a user meets it: help on every command, profile validation, mqtt tail."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from forgeline.cli import main
from protocols.wire import DataMessage, JsonCodec, Sample

COMMANDS = [
    ([], ["demo", "sim", "edge", "cloud", "profiles", "mqtt", "broker", "import", "trace", "spc"]),
    (["demo"], ["--duration", "--report", "--mqtt-url", "--db-url", "--api-port", "--data-dir"]),
    (["sim"], ["--scenario", "--endpoints-file"]),
    (["edge"], ["--config"]),
    (["cloud"], ["--config", "--mqtt-url", "--db-url", "--api-port"]),
    (["profiles", "validate"], ["FILES"]),
    (["mqtt", "tail"], ["--mqtt-url", "--topic"]),
    (["broker"], ["--port"]),
    (["import"], ["--kind", "--dry-run", "--tz", "--database-url"]),
    (["trace"], ["SERIAL", "--format", "--output", "--tz", "--database-url"]),
    (["spc", "load"], ["FILE", "--database-url", "--config", "--by"]),
]


@pytest.mark.parametrize(
    ("command", "mentions"), COMMANDS, ids=lambda c: " ".join(c) or "forgeline"
)
def test_every_command_explains_its_options(command: list[str], mentions: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for word in mentions:
        assert word in result.output


def test_profiles_validate_passes_the_built_in_profiles() -> None:
    result = CliRunner().invoke(main, ["profiles", "validate", "cnc_machining_centre",
                                       "sole_injection_press"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ok   cnc_machining_centre" in result.output


def test_profiles_validate_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "press.yaml"
    bad.write_text(
        "model: press\n"
        "protocol: modbus_tcp\n"
        "tags:\n"
        "  - name: temp\n"
        "    type: float32\n"
        "    table: holding\n"
        "    adress: 4\n"
    )
    result = CliRunner().invoke(main, ["profiles", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:7: tags[0].adress: unknown field" in result.output


def test_edge_refuses_a_broken_config_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("site: plant\nedge_id: edge-1\ndevices:\n  - id: cnc-01\n    profile: nope\n"
                      "    port: 99999\n")  # fmt: skip
    result = CliRunner().invoke(main, ["edge", "--config", str(config)])
    assert result.exit_code == 1
    assert f"{config}:6: devices[0].port" in result.output


def test_mqtt_tail_prints_decoded_messages(mosquitto: Any) -> None:
    tail = subprocess.Popen(
        [sys.executable, "-m", "forgeline", "mqtt", "tail", "--mqtt-url", mosquitto.url,
         "--topic", "forgeline/#", "--count", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    payload = JsonCodec().encode(DataMessage("s-1", 7, 1, (Sample("temp", 5, 21.5),)))
    try:
        deadline = time.monotonic() + 20
        while tail.poll() is None and time.monotonic() < deadline:
            client.publish("forgeline/v1/p/e/d/data", payload, qos=1)
            client.publish("forgeline/v1/p/e/d/data", b"{broken", qos=1)
            time.sleep(0.3)
        out, err = tail.communicate(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith('forgeline/v1/p/e/d/data {"v":1,"type":"data","session":"s-1"')
    assert lines[1].startswith("forgeline/v1/p/e/d/data INVALID (payload is not JSON")


def test_edge_refuses_a_device_whose_endpoint_does_not_fit_its_profile(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("site: plant\nedge_id: edge-1\ndevices:\n"
                      "  - {id: press-01, profile: sole_injection_press}\n")  # fmt: skip
    result = CliRunner().invoke(main, ["edge", "--config", str(config)])
    assert result.exit_code == 1
    assert "device press-01 (profile sole_injection_press)" in result.output
    assert "endpoint_url must be opc.tcp://" in result.output
