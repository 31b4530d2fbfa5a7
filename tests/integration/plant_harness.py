"""The plant harness of the integration tests: simulators, edge and cloud as real processes.

``plant`` gives a ``PlantRun`` bound to the test's Mosquitto and database; each part is started
and stopped by the test (``start_sim``, ``start_cloud``, ``start_edge``, ``kill_edge`` ...), so
that outages can be staged exactly. Everything runs as ``python -m forgeline ...``, the same
commands a plant runs.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, text

from edge.agent import outbox_path
from forgeline.accounting import account
from forgeline.processes import Child, free_port, wait_for
from protocols.wire import DataMessage, JsonCodec, StatusMessage, parse_topic

EDGE_ID = "edge-1"

SCENARIO = """
site: test-plant
step_s: 0.2
lines:
  - name: Line A
    area: Assembly
    machines:
      - {device_id: cnc-01, profile: cnc_machining_centre, seed: 1%(cnc_faults)s}
      - {device_id: breaker-01, profile: breaker_assembly_station, seed: 2}
      - {device_id: press-01, profile: sole_injection_press, seed: 3}
"""


class WireRecorder:
    """A plain paho subscriber that records what crosses the broker (reconnects on its own)."""

    def __init__(self, mqtt_url: str, topics: list[str]) -> None:
        port = int(mqtt_url.rsplit(":", 1)[1])
        self.data: list[tuple[float, DataMessage]] = []
        self.status: list[tuple[float, StatusMessage]] = []
        self._lock = threading.Lock()
        codec = JsonCodec()
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)

        def on_connect(c: Any, u: Any, f: Any, r: Any, p: Any) -> None:
            for topic in topics:
                c.subscribe(topic, qos=1)

        def on_message(c: Any, u: Any, msg: Any) -> None:
            kind = parse_topic(msg.topic).kind
            decoded = codec.decode(kind, msg.payload)
            with self._lock:
                if isinstance(decoded, DataMessage):
                    self.data.append((time.monotonic(), decoded))
                elif isinstance(decoded, StatusMessage):
                    self.status.append((time.monotonic(), decoded))

        client.on_connect = on_connect
        client.on_message = on_message
        client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho takes seconds as float too
        client.connect_async("127.0.0.1", port)
        client.loop_start()
        self._client = client

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class PlantRun:
    def __init__(self, workdir: Path, mqtt_url: str, db_url: str) -> None:
        self.workdir = workdir
        self.mqtt_url = mqtt_url
        self.db_url = db_url
        self.logs = workdir / "logs"
        self.edge_data = workdir / "edge"
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.sim: Child | None = None
        self.cloud: Child | None = None
        self.edge: Child | None = None
        self.endpoints: dict[str, Any] = {}
        self.recorders: list[WireRecorder] = []
        self._edge_starts = 0

    # -- parts ------------------------------------------------------------------------------

    def start_sim(self, cnc_faults: str = "", scenario_text: str | None = None) -> None:
        scenario = self.workdir / "scenario.yaml"
        scenario.write_text(scenario_text or SCENARIO % {"cnc_faults": cnc_faults})
        endpoints = self.workdir / "endpoints.json"
        self.sim = Child("sim", ["sim", "--scenario", str(scenario),
                                 "--endpoints-file", str(endpoints)], self.logs)  # fmt: skip
        sim = self.sim

        def ready() -> bool:
            sim.check()
            return endpoints.exists()

        wait_for(ready, 60, "simulators listening")
        self.endpoints = json.loads(endpoints.read_text())

    def start_cloud(self, **overrides: Any) -> None:
        """Start the cloud; ``overrides`` are merged into its config (e.g. ``condition_file``)."""
        config = self.workdir / "cloud.yaml"
        settings: dict[str, Any] = {
            "mqtt_url": self.mqtt_url, "db_url": self.db_url, "api_port": self.api_port,
            "worker_id": "test-cloud", "shared_subscription": True,
        }  # fmt: skip
        settings.update({key: str(value) if isinstance(value, Path) else value
                         for key, value in overrides.items()})  # fmt: skip
        config.write_text(yaml.safe_dump(settings))
        self.cloud = Child("cloud", ["cloud", "--config", str(config)], self.logs)
        cloud = self.cloud

        def ready() -> bool:
            cloud.check()
            with contextlib.suppress(OSError, ValueError):
                self.get("/healthz")
                return True
            return False

        wait_for(ready, 60, "cloud API answering")

    def sim_fault(self, device: str, kind: str, *options: str) -> str:
        """``forgeline sim fault DEVICE KIND OPTIONS`` against this run's simulator; its answer."""
        import subprocess
        import sys

        args = [sys.executable, "-m", "forgeline", "sim", "fault", device, kind, *options,
                "--endpoints-file", str(self.workdir / "endpoints.json")]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout.strip()

    def stop_cloud(self) -> None:
        assert self.cloud is not None
        self.cloud.stop()

    def start_edge(self, profiles: dict[str, Path] | None = None, **overrides: Any) -> None:
        """Start an edge for the simulator's devices; ``profiles`` gives a device a profile file
        of its own (by device id), ``overrides`` replace top-level keys of the edge config."""
        from forgeline.demo import edge_config

        config = edge_config(self.endpoints, self.mqtt_url, self.edge_data)
        for device in config["devices"]:
            if profiles and device["id"] in profiles:
                device["profile"] = str(profiles[device["id"]])
        config.update({
            "buffer": {"resend_after_s": 3.0, "backlog_rate": 500.0},
            "backoff_initial_s": 0.3, "backoff_max_s": 2.0, "status_interval_s": 0.5,
            "drain_on_stop_s": 30.0, "connect_timeout_s": 1.0,
        })  # fmt: skip
        for device in config["devices"]:
            device["poll_interval_s"] = 0.2
        config.update(overrides)
        path = self.workdir / "edge.yaml"
        path.write_text(yaml.safe_dump(config))
        self._edge_starts += 1
        self.edge = Child(f"edge-{self._edge_starts}", ["edge", "--config", str(path)], self.logs)

    def stop_edge(self) -> int | None:
        """SIGTERM: the edge stops polling and waits for the cloud to acknowledge its log."""
        assert self.edge is not None
        return self.edge.stop(timeout_s=45)

    def kill_edge(self) -> None:
        assert self.edge is not None
        self.edge.kill()

    def record(self, topics: list[str]) -> WireRecorder:
        recorder = WireRecorder(self.mqtt_url, topics)
        self.recorders.append(recorder)
        return recorder

    # -- observations -----------------------------------------------------------------------

    def get(self, path: str) -> Any:
        import urllib.request

        with urllib.request.urlopen(self.api + path, timeout=3) as response:
            return json.loads(response.read())

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        """POST ``body`` as JSON; the status and the decoded answer (errors too, not raised)."""
        return self._send("POST", path, body)

    def put(self, path: str, body: Any) -> tuple[int, Any]:
        """PUT ``body`` as JSON; the status and the decoded answer (errors too, not raised)."""
        return self._send("PUT", path, body)

    def _send(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.api + path, data=json.dumps(body).encode(), method=method,
            headers={"content-type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query), params).all())
        finally:
            engine.dispose()

    def stored_samples(self) -> int:
        return int(self.sql("SELECT COUNT(*) FROM ts_sample")[0][0])

    def wait_stored(self, at_least: int, timeout_s: float = 30) -> None:
        wait_for(lambda: self.stored_samples() >= at_least, timeout_s,
                 f"{at_least} samples stored")  # fmt: skip

    def report(self) -> dict[str, Any]:
        protocols = {d["device_id"]: d["protocol"] for d in self.endpoints["devices"]}
        return account(self.db_url, EDGE_ID, outbox_path(self.edge_data), protocols)

    def logs_tail(self) -> str:
        parts = []
        for child in (self.sim, self.cloud, self.edge):
            if child is not None:
                parts.append(f"--- {child.name} ---\n{child.tail(40)}")
        return "\n".join(parts)

    def close(self) -> None:
        for recorder in self.recorders:
            recorder.close()
        for child in (self.edge, self.cloud, self.sim):
            if child is not None:
                child.stop(timeout_s=10)


def assert_no_loss(report: dict[str, Any], run: PlantRun) -> None:
    totals = report["totals"]
    detail = json.dumps(report, indent=1) + "\n" + run.logs_tail()
    assert totals["published"] > 0, detail
    assert totals["lost"] == 0, detail
    assert totals["pending"] == 0, detail
    assert totals["stored"] == totals["published"], detail
    for machine in report["machines"]:
        assert machine["published"] > 0, detail
