"""The edge's /metrics page, scraped and parsed as Prometheus would, against what the test did.

`forgeline edge` (a subprocess, as deployed) polls a simulated plant run in this process (one
Modbus TCP, one OPC UA machine, so the test can inject faults) and publishes to a real
Mosquitto; no cloud runs, so nothing is ever acknowledged and the log only grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from edge.config import load_edge_config
from forgeline.demo import edge_config
from forgeline.processes import free_port
from simulators.runner import SimulatedPlant

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SCENARIO = """\
site: metrics-plant
step_s: 0.1
lines:
  - name: Lab line
    machines:
      - device_id: cnc-01
        profile: cnc_machining_centre
        seed: 5
        behaviour: {mean_running_s: 100000}
      - device_id: press-01
        profile: sole_injection_press
        seed: 6
        behaviour: {mean_running_s: 100000}
"""
DEVICES = ("cnc-01", "press-01")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Scrape:
    """One scrape of /metrics: sample values by (name, device label)."""

    values: dict[tuple[str, str | None], float]

    def __call__(self, name: str, device: str | None = None) -> float:
        return self.values[(name, device)]

    def get(self, name: str, device: str | None = None) -> float | None:
        return self.values.get((name, device))

    def errors(self, device: str) -> float:
        """A device's read_errors_total (prometheus_client shows a labelled counter only
        after its first increment, so a device that never failed has no sample yet)."""
        return self.values.get(("forgeline_edge_read_errors_total", device), 0.0)


def _scrape_now(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers.get_content_type() == "text/plain"
        text = response.read().decode()
    values: dict[tuple[str, str | None], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, sample.labels.get("device"))] = sample.value
    return Scrape(values)


@dataclass
class RunningEdge:
    process: asyncio.subprocess.Process
    log: Path
    plant: SimulatedPlant
    url: str

    async def stop(self) -> int:
        """SIGTERM, as systemd stops it; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)

    async def scrape(self) -> Scrape:
        return await asyncio.to_thread(_scrape_now, self.url)

    async def until(
        self, check: Callable[[Scrape], bool], what: str, timeout_s: float = 30
    ) -> Scrape:
        """Scrape until ``check`` holds; the scrape that satisfied it."""
        deadline = time.monotonic() + timeout_s
        last: Scrape | None = None
        while time.monotonic() < deadline:
            assert self.process.returncode is None, (
                f"forgeline edge exited:\n{self.log.read_text()}"
            )
            with contextlib.suppress(OSError):  # the HTTP server may not listen yet
                last = await self.scrape()
                if check(last):
                    return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"{what}: not seen within {timeout_s:.0f} s; last scrape {last}")


@pytest.fixture
async def edge(tmp_path: Path, mosquitto: Any) -> AsyncIterator[RunningEdge]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    async with SimulatedPlant(scenario) as plant:
        document = edge_config(
            {"site": plant.site, "devices": plant.endpoints}, mosquitto.url, tmp_path / "edge"
        )
        port = free_port()
        document.update({
            "metrics_port": port, "drain_on_stop_s": 0, "backoff_initial_s": 0.2,
            "backoff_max_s": 1.0, "connect_timeout_s": 1.0,
        })  # fmt: skip
        for device in document["devices"]:
            device.update({"poll_interval_s": 0.2, "timeout_s": 0.5})
        config = tmp_path / "edge.yaml"
        config.write_text(yaml.safe_dump(document))
        load_edge_config(config)  # the config is valid before a process is spent on it
        log = tmp_path / "edge.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "forgeline", "edge", "--config", str(config),
                stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        edge = RunningEdge(process, log, plant, f"http://127.0.0.1:{port}/metrics")
        try:
            yield edge
        finally:
            if process.returncode is None:
                process.kill()
            await asyncio.wait_for(process.wait(), 30)


async def test_metrics_report_links_reads_buffer_and_broker_as_they_are(
    edge: RunningEdge, mosquitto: Any
) -> None:
    def all_up(s: Scrape) -> bool:
        return all(s.get("forgeline_edge_link_up", d) == 1 for d in DEVICES) and (
            s.get("forgeline_edge_mqtt_connected") == 1
        )

    first = await edge.until(all_up, "both devices linked and the broker connected")
    for device in DEVICES:
        assert first("forgeline_edge_samples_read_total", device) > 0
        assert first.errors(device) == 0
        assert first("forgeline_edge_read_round_trip_seconds", device) > 0

    # polling goes on: every device's samples_read grows; no cloud acks, so the log grows too
    def grown(s: Scrape) -> bool:
        return all(
            s("forgeline_edge_samples_read_total", d)
            > first("forgeline_edge_samples_read_total", d)
            for d in DEVICES
        ) and s("forgeline_edge_buffer_messages") > max(first("forgeline_edge_buffer_messages"), 0)

    second = await edge.until(grown, "samples read and buffered messages growing")
    assert second("forgeline_edge_buffer_messages") > 0
    assert second("forgeline_edge_buffer_bytes") > 0
    assert second.get("forgeline_edge_buffer_oldest_age_seconds") is not None
    await edge.until(
        lambda s: s("forgeline_edge_buffer_messages") > second("forgeline_edge_buffer_messages"),
        "the unacknowledged log growing further",
    )

    # the CNC stops answering: its link goes down and its failed reads count up
    await edge.plant.device("cnc-01").set_unresponsive(True)
    down = await edge.until(
        lambda s: s("forgeline_edge_link_up", "cnc-01") == 0 and s.errors("cnc-01") > 0,
        "cnc-01 link down with read errors",
    )
    assert down("forgeline_edge_link_up", "press-01") == 1
    assert down.errors("press-01") == 0
    frozen = down("forgeline_edge_samples_read_total", "cnc-01")
    more_errors = await edge.until(
        lambda s: (
            s("forgeline_edge_read_errors_total", "cnc-01")
            > down("forgeline_edge_read_errors_total", "cnc-01")
        ),
        "cnc-01 read errors counting up while it stays silent",
    )
    assert more_errors("forgeline_edge_samples_read_total", "cnc-01") == frozen
    await edge.plant.device("cnc-01").set_unresponsive(False)
    await edge.until(
        lambda s: (
            s("forgeline_edge_link_up", "cnc-01") == 1
            and s("forgeline_edge_samples_read_total", "cnc-01") > frozen
        ),
        "cnc-01 link up again",
    )

    # the broker goes away: mqtt_connected drops to 0, and the log keeps growing
    mosquitto.stop()
    offline = await edge.until(
        lambda s: s("forgeline_edge_mqtt_connected") == 0, "mqtt_connected 0 without a broker"
    )
    await edge.until(
        lambda s: s("forgeline_edge_buffer_messages") > offline("forgeline_edge_buffer_messages"),
        "the log growing while the broker is down",
    )

    assert await edge.stop() == 0, edge.log.read_text()
