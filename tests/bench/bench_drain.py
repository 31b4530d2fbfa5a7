"""Benchmark: draining the edge's backlog after a broker outage at the demo's rate.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_drain.py [--outage-s 600] [--after-s 60]
        [--db-url sqlite:///...|postgresql+psycopg://...]

Every part runs as an operator runs it, each in its own process:

1. ``forgeline sim --scenario demo``: the demo plant's simulated machines (8 since issue 6:
   4 Modbus TCP, 4 OPC UA; the figures in docs/benchmarks.md were taken with 7), each polled at its profile's interval (0.5 s or 1 s) with its profile's deadbands.
2. ``forgeline edge`` with the config ``forgeline.demo.edge_config`` makes for them, but with the
   default buffer settings (``backlog_rate`` 200 messages/s, ``resend_after_s`` 10 s), pointed at
   a broker port where nothing listens yet: the outage. For ``--outage-s`` seconds the agent
   polls and commits everything to its log, as messages marked ``historical``.
3. Then Mosquitto starts on that port, and right after it ``forgeline cloud`` (ingest + API,
   on a fresh SQLite file unless ``--db-url`` says otherwise). The agent reconnects by itself.

From the broker's return the script watches the agent's log (read-only, every 0.25 s): the
**backlog** is the messages created before the broker returned. It is drained when none of
them is left, i.e. when the cloud has acknowledged every one. The script then watches for
``--after-s`` more seconds. Its own MQTT subscriber records every data message (session, seq,
``historical``, the newest sample's source time); the cloud's database gives the time the cloud
received each one (``ingest_message.received_ms``). The **live latency** of a message that is
not historical is the cloud's receive time minus the source time of its newest sample,
reported during the drain and after it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from edge_kit import REPO, MosquittoBroker, free_port, machine_lines, progress, temp_dir, write_yaml
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, text

from edge.agent import outbox_path
from forgeline.demo import edge_config


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Child:
    """``python -m forgeline ...`` in its own process, output to a log file."""

    def __init__(self, name: str, args: list[str], work: Path) -> None:
        self.name = name
        self.log_path = work / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forgeline", *args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work,
            env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        )  # fmt: skip

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Seen:
    """One data message as our subscriber saw it."""

    received_ms: int
    session: str
    seq: int
    device: str
    historical: bool
    created_ms: int
    newest_ts_ms: int
    samples: int


class Watcher:
    """An MQTT subscriber of its own: data messages and the edge's status."""

    def __init__(self, port: int) -> None:
        self.data: list[Seen] = []
        self.edge_online_ms: int | None = None
        self.cloud_online_ms: int | None = None
        self._lock = threading.Lock()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="forgeline-bench-drain-watcher",
            clean_session=True,
        )
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        self.client = client

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(
            [
                ("forgeline/v1/+/+/+/data", 1),
                ("forgeline/v1/+/+/status", 1),
                ("forgeline/v1/_cloud/+/presence", 1),
            ]
        )

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        now = _now_ms()
        parts = msg.topic.split("/")
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if parts[-1] == "data":
            samples = body.get("samples") or []
            seen = Seen(
                now, body["session"], int(body["seq"]), parts[4], bool(body["historical"]),
                int(body["created"]), max((int(s["t"]) for s in samples), default=0), len(samples),
            )  # fmt: skip
            with self._lock:
                self.data.append(seen)
        elif parts[-1] == "status" and body.get("online") and self.edge_online_ms is None:
            self.edge_online_ms = now
        elif parts[-1] == "presence" and body.get("online") and self.cloud_online_ms is None:
            self.cloud_online_ms = now

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def backlog(log: Path, before_ms: int) -> tuple[int, int, int]:
    """(messages created before ``before_ms`` still in the log, their samples, all messages)."""
    db = sqlite3.connect(f"file:{log}?mode=ro", uri=True, timeout=5)
    try:
        old, samples = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(samples), 0) FROM outbox WHERE created_ms < ?",
            (before_ms,),
        ).fetchone()
        total = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        return int(old), int(samples), int(total)
    finally:
        db.close()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-s", type=float, default=600.0)
    parser.add_argument("--after-s", type=float, default=60.0, help="watch after the drain")
    parser.add_argument("--db-url", default=None, help="cloud database (default: SQLite file)")
    parser.add_argument("--max-drain-s", type=float, default=1800.0, help="give up after this")
    args = parser.parse_args()
    work = temp_dir("forgeline-bench-drain-")
    progress(f"work dir {work}")
    endpoints_file = work / "endpoints.json"
    sim = Child("sim", ["sim", "--scenario", "demo", "--endpoints-file", str(endpoints_file)], work)
    edge = cloud = None
    broker: MosquittoBroker | None = None
    watcher: Watcher | None = None
    try:
        deadline = time.monotonic() + 120
        while not endpoints_file.exists():
            sim.check()
            if time.monotonic() > deadline:
                raise RuntimeError("the simulators did not write their endpoints file in 120 s")
            time.sleep(0.2)
        endpoints = json.loads(endpoints_file.read_text())
        port = free_port()
        data_dir = work / "edge"
        config = edge_config(endpoints, f"mqtt://127.0.0.1:{port}", data_dir)
        config["buffer"] = {}  # every buffer setting at its default
        edge_file = write_yaml(work / "edge.yaml", config)
        edge = Child("edge", ["edge", "--config", str(edge_file)], work)
        log = outbox_path(data_dir)
        outage_started = time.monotonic()
        progress(
            f"outage: {len(endpoints['devices'])} devices polled, broker port {port} closed "
            f"for {args.outage_s:g} s"
        )
        next_report = outage_started + 30
        while time.monotonic() - outage_started < args.outage_s:
            edge.check()
            sim.check()
            if time.monotonic() >= next_report and log.exists():
                next_report += 30
                old, samples, _ = backlog(log, _now_ms())
                progress(
                    f"  t={time.monotonic() - outage_started:.0f} s: {old:,} messages "
                    f"({samples:,} samples) in the log"
                )
            time.sleep(0.5)
        return_ms = _now_ms()
        backlog_messages, backlog_samples, _ = backlog(log, return_ms)
        progress(f"broker back: {backlog_messages:,} messages ({backlog_samples:,} samples) held")
        (work / "mosquitto").mkdir()
        broker = MosquittoBroker(port=port, workdir=work / "mosquitto").start()
        returned = time.monotonic()
        watcher = Watcher(port)
        db_url = args.db_url or f"sqlite:///{work / 'cloud.db'}"
        cloud = Child(
            "cloud",
            ["cloud", "--mqtt-url", broker.url, "--db-url", db_url,
             "--api-port", str(free_port())],
            work,
        )  # fmt: skip
        trace: list[tuple[float, int, int]] = []
        drained_at: float | None = None
        next_report = returned + 10
        while True:
            edge.check()
            cloud.check()
            now = time.monotonic()
            old, _, total = backlog(log, return_ms)
            trace.append((now - returned, old, total))
            if old == 0 and drained_at is None:
                drained_at = now
                progress(f"backlog drained {drained_at - returned:.1f} s after the broker returned")
            if now >= next_report:
                next_report += 10
                progress(f"  +{now - returned:.0f} s: backlog {old:,} messages, log {total:,}")
            if drained_at is not None and now - drained_at >= args.after_s:
                break
            if drained_at is None and now - returned > args.max_drain_s:
                progress(f"gave up: the backlog was not drained in {args.max_drain_s:g} s")
                break
            time.sleep(0.25)
        edge.stop()
        watcher.stop()
        cloud.stop()
        received = {
            (session, int(seq)): int(ms)
            for session, seq, ms in create_engine(db_url)
            .connect()
            .execute(
                text("SELECT session, seq, received_ms FROM ingest_message WHERE kind = 'data'")
            )
        }
        print(
            render(
                args,
                endpoints,
                return_ms,
                returned,
                drained_at,
                backlog_messages,
                backlog_samples,
                trace,
                watcher,
                received,
            )
        )
    finally:
        for child in (edge, cloud, sim):
            if child is not None:
                child.stop()
        if watcher is not None:
            watcher.stop()
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def render(
    args: argparse.Namespace,
    endpoints: dict[str, Any],
    return_ms: int,
    returned: float,
    drained_at: float | None,
    backlog_messages: int,
    backlog_samples: int,
    trace: list[tuple[float, int, int]],
    watcher: Watcher,
    received: dict[tuple[str, int], int],
) -> str:
    drained_ms = None if drained_at is None else return_ms + round((drained_at - returned) * 1000)
    protocols = {d["device_id"]: d["protocol"] for d in endpoints["devices"]}
    live = [m for m in watcher.data if not m.historical and (m.session, m.seq) in received]
    historical = [m for m in watcher.data if m.historical]

    def latencies(during: bool, protocol: str | None = None) -> list[float]:
        out = []
        for m in live:
            at = received[(m.session, m.seq)]
            in_drain = drained_ms is None or at <= drained_ms
            if in_drain == during and (protocol is None or protocols[m.device] == protocol):
                out.append(float(at - m.newest_ts_ms))
        return out

    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name} | {len(values):,} | {percentile(values, 50):,.0f} | "
            f"{percentile(values, 95):,.0f} | {max(values, default=float('nan')):,.0f} |"
        )

    drain_s = None if drained_at is None else drained_at - returned
    edge_back = (
        "never" if watcher.edge_online_ms is None
        else f"{(watcher.edge_online_ms - return_ms) / 1000:.1f} s"
    )  # fmt: skip
    cloud_back = (
        "never" if watcher.cloud_online_ms is None
        else f"{(watcher.cloud_online_ms - return_ms) / 1000:.1f} s"
    )  # fmt: skip
    drain_rate = "—"
    if drain_s is not None and watcher.edge_online_ms is not None:
        draining_s = drain_s - (watcher.edge_online_ms - return_ms) / 1000
        drain_rate = f"{backlog_messages / max(draining_s, 0.001):,.0f} messages/s"
    lines = ["## Drain after a broker outage (`bench_drain.py`)", "", "### Machine", ""]
    lines += machine_lines(["paho-mqtt", "pymodbus", "asyncua", "SQLAlchemy"])
    lines += [
        "",
        f"Command: `.venv/bin/python {' '.join(sys.argv)}`. Demo scenario: "
        f"{len(protocols)} machines ({sum(p == 'opcua' for p in protocols.values())} OPC UA, "
        f"{sum(p != 'opcua' for p in protocols.values())} Modbus TCP); edge buffer settings at "
        f"their defaults (backlog_rate 200 messages/s, resend_after_s 10 s); cloud database "
        f"{'SQLite' if args.db_url is None else args.db_url.split(':')[0]}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| outage | {args.outage_s:g} s |",
        f"| backlog when the broker returned | {backlog_messages:,} messages, "
        f"{backlog_samples:,} samples ({backlog_messages / args.outage_s:.1f} messages/s) |",
        f"| cloud subscribed (presence online) after the broker returned | {cloud_back} |",
        f"| edge reconnected (status online) after the broker returned | {edge_back} |",
        "| **backlog drained** (none of it left in the edge's log) after | "
        + ("**not drained**" if drain_s is None else f"**{drain_s:.1f} s**")
        + " |",
        "| average drain rate from the edge's reconnection | " + drain_rate + " |",
        "| historical data messages seen on the broker (the backlog's data, what was logged"
        f" before the edge reconnected, re-sends) | {len(historical):,} |",
        f"| data messages the cloud stored | {len(received):,} |",
        "",
        "Live (not historical) data messages: cloud receive time minus the newest sample's source"
        " time, in ms.",
        "",
        "| when | messages | p50 | p95 | max |",
        "|---|---:|---:|---:|---:|",
        row("during the drain", latencies(True)),
        row("during the drain, Modbus TCP", latencies(True, "modbus_tcp")),
        row("during the drain, OPC UA", latencies(True, "opcua")),
        row(f"after the drain ({args.after_s:g} s)", latencies(False)),
        row("after the drain, Modbus TCP", latencies(False, "modbus_tcp")),
        row("after the drain, OPC UA", latencies(False, "opcua")),
        "",
        "Backlog left in the edge's log, every 10 s from the broker's return: "
        + ", ".join(f"{old:,}" for t, old, _ in trace if abs(t - round(t / 10) * 10) < 0.13)
        + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
