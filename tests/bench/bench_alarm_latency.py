"""Benchmark: alarm latency from a simulated parameter crossing its limit to the webhook (issue 4).

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_alarm_latency.py [--repeats 30] [--db sqlite|postgresql]
        [--batch-max-ms MS] [--opcua-publishing-ms MS] [--hold-s 4] [--step-s 0.05]

Every part is real and runs in its own process, as a plant runs it: Mosquitto, ``forgeline sim``
(an OPC UA press, ``sole_injection_press``, and a Modbus TCP machining centre,
``cnc_machining_centre``, both polled every 1 s as their profiles say), ``forgeline edge`` and
``forgeline cloud`` (SQLite file, or a scratch PostgreSQL database from
``FORGELINE_TEST_PG_URL``, created and dropped here). The cloud's only notification channel is a
webhook pointing at an HTTP server in this process, which notes ``time.time()`` when each request
arrives (every process runs on this machine and shares its clock).

The rules file adds ``bench_limit_high``: ``high`` against the profile limit, ``on_delay_s: 0``,
on the press's ``nozzle_temperature`` (high 190 °C) and the machining centre's
``coolant_temperature`` (high 30 °C), so that its latency is the pipeline's alone. The built-in
``builtin_limit_high`` (2 s on-delay, checked on the 1 s alarm tick) watches the same metrics
and is reported beside it.

Each device has its own thread doing ``--repeats`` rounds, after one warm-up round that is not
counted: wait a random part of the poll interval (so crossings fall anywhere in the edge's poll
cycle), hold the metric above its limit for ``--hold-s`` through the simulator's control
endpoint (``simulators.control.inject_fault``, what ``forgeline sim fault DEVICE excursion``
calls) and note ``time.time()`` when the simulator answers that the value is set; wait for both
rules' ``raised`` webhooks, for both ``returned_to_normal`` after the hold, acknowledge both
alarms through the API (they are cleared) and wait for the ``acknowledged`` webhooks. A plain
paho subscriber notes when the edge's data message carrying the crossing value crosses the
broker. After the run, the cloud's own records give the stage times in milliseconds:
``ingest_message.received_ms``, ``alarm_event.recorded_ms`` and
``notification_delivery.created_ms`` (routed). Progress goes to stderr, the result (machine,
command, tables) to stdout as Markdown. Nothing here asserts a speed.

Configuration to try, each reported with the figures: ``--batch-max-ms`` sets the cloud's ingest
batch window (default 200 ms); ``--opcua-publishing-ms`` has the edge read the press through a
copy of its profile whose subscription samples and publishes at that interval (default 500 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from edge_kit import MosquittoBroker, machine_lines, progress, temp_dir, write_yaml
from paho.mqtt.enums import CallbackAPIVersion
from scratch_db import PostgresScratch, ScratchServer, SqliteScratch
from sqlalchemy import create_engine, text

from cloud.config import CloudConfig
from device_profiles import profile_path
from forgeline.demo import edge_config
from forgeline.processes import Child, free_port, wait_for
from protocols.profile import load_profile
from protocols.wire import DataMessage, JsonCodec, TopicKind, parse_topic
from simulators.control import FaultRequest, inject_fault

PG_DEFAULT = "postgresql+psycopg://forgeline:forgeline@127.0.0.1:5432/postgres"
POLL_S = 1.0  # both profiles' poll_interval_s, as in production
AIM_EXTRA_MS = 200.0
BENCH_RULE = "bench_limit_high"
BUILTIN_RULE = "builtin_limit_high"
WAIT_S = 20.0  # longest wait for one notification before the round counts as missed

SCENARIO = """\
site: bench-plant
step_s: {step_s}
lines:
  - name: Line 1
    area: Bench
    machines:
      - {{device_id: press-01, profile: sole_injection_press, seed: 3,
         behaviour: {{excursions_per_hour: 0, mean_running_s: 86400}}}}
      - {{device_id: cnc-01, profile: cnc_machining_centre, seed: 1,
         behaviour: {{excursions_per_hour: 0, mean_running_s: 86400}}}}
"""


@dataclass(frozen=True)
class Target:
    """One device and the metric an excursion pushes above its profile's high limit."""

    device: str
    protocol: str
    profile: str
    metric: str
    excursion_value: float

    @property
    def high_limit(self) -> float:
        tag = load_profile(profile_path(self.profile)).tag(self.metric)
        assert tag.limits is not None
        assert tag.limits.high is not None
        return tag.limits.high


TARGETS = (
    Target("press-01", "OPC UA", "sole_injection_press", "nozzle_temperature", 200.0),
    Target("cnc-01", "Modbus TCP", "cnc_machining_centre", "coolant_temperature", 40.0),
)


# -- what arrives: webhooks and data messages -------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # time.time() when it arrived
    body: dict[str, Any]


class Inbox:
    """Arrivals in order, and a way to wait for the first one after a time that matches."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._changed = threading.Condition()

    def add(self, item: Any) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    def first(self, match: Callable[[Any], bool], timeout_s: float) -> Any | None:
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._changed:
            while True:
                for item in self._items[seen:]:
                    if match(item):
                        return item
                seen = len(self._items)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)


class WebhookReceiver:
    """An HTTP server on a free port of 127.0.0.1 noting when each POST arrives."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        inbox = self.inbox

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(204)
                self.end_headers()
                inbox.add(Arrival(arrived, json.loads(body)))

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alarms"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class WireMessage:
    at: float  # time.time() when the subscriber got it
    device: str
    message: DataMessage


class WireWatch:
    """A plain paho subscriber to every data topic of the broker: the raw baseline."""

    def __init__(self, port: int) -> None:
        self.inbox = Inbox()
        codec = JsonCodec()
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)

        def on_connect(c: Any, u: Any, f: Any, r: Any, p: Any) -> None:
            c.subscribe("forgeline/v1/+/+/+/data", qos=1)

        def on_message(c: Any, u: Any, msg: Any) -> None:
            at = time.time()
            topic = parse_topic(msg.topic)
            decoded = codec.decode(TopicKind.DATA, msg.payload)
            if isinstance(decoded, DataMessage) and topic.device:
                self.inbox.add(WireMessage(at, topic.device, decoded))

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self._client = client

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# -- one excursion ----------------------------------------------------------------------------


@dataclass
class Round:
    """The times of one excursion (seconds since the epoch; None when it never came)."""

    crossing: float
    wire: WireMessage | None = None
    bench: Arrival | None = None
    builtin: Arrival | None = None

    def sample_ts_ms(self, metric: str) -> int | None:
        if self.wire is None:
            return None
        return next(s.ts_ms for s in self.wire.message.samples if s.metric == metric)


@dataclass
class DeviceRun:
    target: Target
    rounds: list[Round] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    error: BaseException | None = None


class Bench:
    def __init__(
        self, api: str, endpoints_file: Path, hook: WebhookReceiver, wire: WireWatch, hold_s: float
    ) -> None:
        self.api = api
        self.endpoints_file = endpoints_file
        self.hook = hook
        self.wire = wire
        self.hold_s = hold_s

    def _hook(
        self, target: Target, rule: str, event: str, after: float, alarm_id: int | None = None
    ) -> Arrival | None:
        def match(a: Arrival) -> bool:
            b = a.body
            return (
                a.at >= after and b.get("metric") == target.metric and b.get("rule") == rule
                and b.get("event") == event and alarm_id in (None, b.get("alarm_id"))
            )  # fmt: skip

        return self.hook.inbox.first(match, WAIT_S)  # type: ignore[no-any-return]

    def _acknowledge(self, alarm_id: int) -> None:
        request = urllib.request.Request(
            f"{self.api}/api/alarms/{alarm_id}/acknowledge",
            data=json.dumps({"user": "bench", "comment": "latency benchmark"}).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def excursion(self, target: Target, run: DeviceRun) -> Round | None:
        """One excursion, its notifications, its return and the acknowledgements."""
        time.sleep(random.uniform(0.0, POLL_S))
        request = FaultRequest(
            target.device, "excursion", self.hold_s, (target.metric,), target.excursion_value
        )
        inject_fault(request, self.endpoints_file)
        measured = Round(crossing=time.time())  # the simulator said: the value is set
        limit = target.high_limit

        def carries_crossing(w: WireMessage) -> bool:
            return w.at >= measured.crossing and w.device == target.device and any(
                s.metric == target.metric and isinstance(s.value, (int, float)) and s.value > limit
                for s in w.message.samples
            )  # fmt: skip

        measured.wire = self.wire.inbox.first(carries_crossing, WAIT_S)
        measured.bench = self._hook(target, BENCH_RULE, "raised", measured.crossing)
        measured.builtin = self._hook(target, BUILTIN_RULE, "raised", measured.crossing)
        for name, got in (("wire", measured.wire), ("bench", measured.bench),
                          ("builtin", measured.builtin)):  # fmt: skip
            if got is None:
                run.missed.append(f"{target.device}: no {name} arrival within {WAIT_S:g} s")
        for arrival in (measured.bench, measured.builtin):
            if arrival is None:
                continue
            alarm_id, rule = arrival.body["alarm_id"], arrival.body["rule"]
            if self._hook(target, rule, "returned_to_normal", arrival.at, alarm_id) is None:
                run.missed.append(f"{target.device}: {rule} alarm {alarm_id} did not return")
            self._acknowledge(alarm_id)
            if self._hook(target, rule, "acknowledged", arrival.at, alarm_id) is None:
                run.missed.append(f"{target.device}: {rule} alarm {alarm_id} ack not told")
        complete = None not in (measured.wire, measured.bench, measured.builtin)
        return measured if complete else None

    def run_device(self, run: DeviceRun, repeats: int) -> None:
        try:
            self.excursion(run.target, run)  # warm-up: births bound, connections open
            run.missed.clear()
            for i in range(repeats):
                measured = self.excursion(run.target, run)
                if measured is not None:
                    run.rounds.append(measured)
                if (i + 1) % 10 == 0:
                    progress(f"  {run.target.device}: {i + 1}/{repeats} excursions")
        except BaseException as error:
            run.error = error


# -- figures ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class CloudRecords:
    """Stage times (epoch ms) from the cloud's own tables."""

    received: dict[tuple[str, int], int]  # (session, seq) → ingest_message.received_ms
    recorded: dict[int, int]  # alarm id → alarm_event.recorded_ms of 'raised'
    routed: dict[int, int]  # alarm id → notification_delivery.created_ms on the webhook


def read_cloud_records(db_url: str) -> CloudRecords:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            received = {
                (str(r[0]), int(r[1])): int(r[2])
                for r in conn.execute(
                    text("SELECT session, seq, received_ms FROM ingest_message WHERE kind = 'data'")
                )
            }
            recorded = {
                int(r[0]): int(r[1])
                for r in conn.execute(
                    text("SELECT alarm_id, recorded_ms FROM alarm_event WHERE event = 'raised'")
                )
            }
            routed = {
                int(r[0]): int(r[1])
                for r in conn.execute(
                    text(
                        "SELECT alarm_id, created_ms FROM notification_delivery "
                        "WHERE event = 'raised' AND channel = 'hook'"
                    )
                )
            }
    finally:
        engine.dispose()
    return CloudRecords(received, recorded, routed)


def stages(run: DeviceRun, records: CloudRecords) -> dict[str, list[float]]:
    """Milliseconds per stage for each complete round of one device."""
    out: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            out.setdefault(name, []).append(value)

    metric = run.target.metric
    for r in run.rounds:
        assert r.wire is not None
        assert r.bench is not None
        assert r.builtin is not None
        cross_ms = r.crossing * 1000
        sample_ms = r.sample_ts_ms(metric)
        message = r.wire.message
        bench_id = int(r.bench.body["alarm_id"])
        received = records.received.get((message.session, message.seq))
        recorded = records.recorded.get(bench_id)
        routed = records.routed.get(bench_id)
        add("total", r.bench.at * 1000 - cross_ms)
        add("edge", r.wire.at * 1000 - cross_ms)
        add("cloud", (r.bench.at - r.wire.at) * 1000)
        add("builtin", r.builtin.at * 1000 - cross_ms)
        if sample_ms is not None:
            add("to_sample_ts", sample_ms - cross_ms)
            add("sample_to_created", message.created_ms - sample_ms)
        add("created_to_wire", r.wire.at * 1000 - message.created_ms)
        if received is not None:
            add("wire_to_received", received - r.wire.at * 1000)
        if received is not None and recorded is not None:
            add("received_to_recorded", recorded - received)
        if recorded is not None and routed is not None:
            add("recorded_to_routed", routed - recorded)
        if routed is not None:
            add("routed_to_hook", r.bench.at * 1000 - routed)
    return out


PATHS = (
    ("total", f"crossing → webhook, `{BENCH_RULE}` (on-delay 0)"),
    ("edge", "crossing → data message at the broker (edge: raw baseline)"),
    ("cloud", "data message at the broker → webhook (cloud)"),
    ("builtin", f"crossing → webhook, `{BUILTIN_RULE}` (on-delay 2 s, 1 s tick)"),
)

STAGES = {
    "OPC UA": (
        ("to_sample_ts", "sim: crossing → value on the server (the sample's source time)"),
        ("sample_to_created", "edge: on the server → message made (subscription, poll, flush)"),
    ),
    "Modbus TCP": (
        ("to_sample_ts", "sim + edge: crossing → edge reads it (the sample's time)"),
        ("sample_to_created", "edge: read → message made (group-commit flush)"),
    ),
    "both": (
        ("created_to_wire", "edge: message made → at the broker subscriber"),
        ("wire_to_received", "cloud: at the broker → ingest received (`received_ms`)"),
        ("received_to_recorded",
         "cloud: received → raise recorded (batch window, write, hand-off, evaluation)"),
        ("recorded_to_routed", "cloud: raise recorded → routed (commit, submit, router)"),
        ("routed_to_hook", "cloud: routed → webhook arrival (lane, render, HTTP)"),
    ),
}  # fmt: skip


def row(label: str, what: str, values: Sequence[float], aim_ms: float | None) -> str:
    if not values:
        return f"| {label} | {what} | 0 | — | — | — | — | — |"
    p50, p90, p99 = (percentile(values, q) for q in (50, 90, 99))
    ratio = f"{p99 / aim_ms:.2f}" if aim_ms else "—"
    figures = " | ".join(f"{round(v):,}" for v in (p50, p90, p99, max(values)))  # no "-0"
    return f"| {label} | {what} | {len(values)} | {figures} | {ratio} |"


def report(runs: list[DeviceRun], records: CloudRecords, args: argparse.Namespace,
           db_name: str, db_version: str, batch_max_ms: int) -> str:  # fmt: skip
    aim_ms = POLL_S * 1000 + AIM_EXTRA_MS
    press = load_profile(profile_path(TARGETS[0].profile)).opcua
    opcua_ms = args.opcua_publishing_ms or (press.publishing_interval_ms if press else None)
    per_device = {run.target.protocol: stages(run, records) for run in runs}
    pooled: dict[str, list[float]] = {}
    for figures in per_device.values():
        for name, values in figures.items():
            pooled.setdefault(name, []).extend(values)
    lines = [
        "Command: `.venv/bin/python tests/bench/bench_alarm_latency.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)
        + "`",
        "",
        *machine_lines(["paho-mqtt", "SQLAlchemy", "asyncua", "pymodbus"]),
        f"- database: {db_name} {db_version}; ingest `batch_max_ms` {batch_max_ms}; OPC UA "
        f"subscription sampling and publishing every {opcua_ms} ms",
        f"- poll interval {POLL_S:g} s; aim p99 ≤ poll + {AIM_EXTRA_MS:.0f} ms = {aim_ms:,.0f} ms; "
        f"simulator step {args.step_s:g} s; excursions held {args.hold_s:g} s",
        "",
        "| protocol | path | n | p50 ms | p90 ms | p99 ms | max ms | p99 ÷ aim |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, what in PATHS:
        aim = aim_ms if key in ("total", "edge") else None
        for protocol, figures in per_device.items():
            lines.append(row(protocol, what, figures.get(key, []), aim))
        lines.append(row("**all**", what, pooled.get(key, []), aim))
    lines += [
        "",
        "Where the time goes (ms; the cloud's stage times are its own millisecond records):",
        "",
        "| protocol | stage | n | p50 ms | p90 ms | p99 ms | max ms | — |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for protocol, figures in per_device.items():
        for key, what in STAGES[protocol]:
            lines.append(row(protocol, what, figures.get(key, []), None))
    for key, what in STAGES["both"]:
        for protocol, figures in per_device.items():
            lines.append(row(protocol, what, figures.get(key, []), None))
    missed = [m for run in runs for m in run.missed]
    if missed:
        lines += ["", f"Missed ({len(missed)}):", *(f"- {m}" for m in missed)]
    return "\n".join(lines)


# -- the plant --------------------------------------------------------------------------------


def cloud_config(work: Path, broker: MosquittoBroker, db_url: str, api_port: int, hook_url: str,
                 batch_max_ms: int | None) -> Path:  # fmt: skip
    metrics = [t.metric for t in TARGETS]
    rules = write_yaml(work / "alarm-rules.yaml", {"rules": [{
        "name": BENCH_RULE, "kind": "high", "metric": metrics, "limit": "profile",
        "deadband": 1.0, "on_delay_s": 0, "priority": "high",
        "description": "bench_alarm_latency.py: the pipeline without an on-delay",
    }]})  # fmt: skip
    config: dict[str, Any] = {
        "mqtt_url": broker.url, "db_url": db_url, "api_port": api_port,
        "data_dir": str(work / "cloud-data"), "worker_id": "bench-cloud",
        "alarm_rules_file": str(rules),
        "notifications": {
            "channels": {"hook": {"type": "webhook", "url": hook_url, "timeout_s": 5}},
            "routes": [{"channels": ["hook"]}],
        },
    }  # fmt: skip
    if batch_max_ms is not None:
        config["batch_max_ms"] = batch_max_ms
    return write_yaml(work / "cloud.yaml", config)


def faster_subscription(work: Path, profile: str, interval_ms: int) -> Path:
    """A copy of an OPC UA profile whose subscription samples and publishes every
    ``interval_ms`` (the edge's side only: the model, tags and limits are unchanged)."""
    document = yaml.safe_load(profile_path(profile).read_text(encoding="utf-8"))
    document["opcua"].update(sampling_interval_ms=interval_ms, publishing_interval_ms=interval_ms)
    return write_yaml(work / f"{profile}-{interval_ms}ms.yaml", document)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="excursions per protocol")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--batch-max-ms", type=int, default=None,
                        help="the cloud's ingest batch window (default: the cloud's, 200)")  # fmt: skip
    parser.add_argument("--hold-s", type=float, default=4.0, help="how long an excursion lasts")
    parser.add_argument("--step-s", type=float, default=0.05, help="the simulator's step")
    parser.add_argument("--opcua-publishing-ms", type=int, default=None,
                        help="the edge subscribes to OPC UA machines with this sampling and "
                             "publishing interval (default: the profile's, 500)")  # fmt: skip
    args = parser.parse_args()
    work = temp_dir("forgeline-bench-alarm-latency-")
    progress(f"work dir {work}")
    # The simulator names itself in $XDG_RUNTIME_DIR/forgeline/sim.json: keep that in our folder
    # so that `forgeline sim fault` of anyone else on this machine never reaches our simulator.
    os.environ["XDG_RUNTIME_DIR"] = str(work)
    scratch: ScratchServer = (
        PostgresScratch(os.environ.get("FORGELINE_TEST_PG_URL", PG_DEFAULT))
        if args.db == "postgresql"
        else SqliteScratch()
    )
    children: list[Child] = []
    closers: list[Callable[[], None]] = []
    logs = work / "logs"
    try:
        db_url = scratch.fresh().url
        broker = MosquittoBroker(workdir=work).start()
        closers.append(broker.stop)
        hook = WebhookReceiver()
        closers.append(hook.close)
        scenario = work / "scenario.yaml"
        scenario.write_text(SCENARIO.format(step_s=args.step_s))
        endpoints_file = work / "endpoints.json"
        sim = Child("sim", ["sim", "--scenario", str(scenario),
                            "--endpoints-file", str(endpoints_file)], logs)  # fmt: skip
        children.append(sim)
        wait_for(lambda: sim.check() or endpoints_file.exists(), 60, "simulators listening")
        api_port = free_port()
        config = cloud_config(work, broker, db_url, api_port, hook.url, args.batch_max_ms)
        cloud = Child("cloud", ["cloud", "--config", str(config)], logs)
        children.append(cloud)
        api = f"http://127.0.0.1:{api_port}"

        def cloud_up() -> bool:
            cloud.check()
            try:
                with urllib.request.urlopen(f"{api}/healthz", timeout=2):
                    return True
            except OSError:
                return False

        wait_for(cloud_up, 60, "cloud API answering")
        wire = WireWatch(broker.port)
        closers.append(wire.close)
        endpoints = json.loads(endpoints_file.read_text())
        edge = edge_config(endpoints, broker.url, work / "edge")
        if args.opcua_publishing_ms is not None:
            for device in edge["devices"]:
                if "endpoint_url" in device:  # OPC UA
                    device["profile"] = str(faster_subscription(work, device["profile"],
                                                                args.opcua_publishing_ms))  # fmt: skip
        edge_file = write_yaml(work / "edge.yaml", edge)
        edge = Child("edge", ["edge", "--config", str(edge_file)], logs)
        children.append(edge)
        progress(f"plant up ({args.db}); {args.repeats} excursions per protocol after a warm-up")
        bench = Bench(api, endpoints_file, hook, wire, args.hold_s)
        runs = [DeviceRun(target) for target in TARGETS]
        threads = [
            threading.Thread(target=bench.run_device, args=(run, args.repeats), daemon=True)
            for run in runs
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for child in children:
                child.check()
            time.sleep(0.5)
        for run in runs:
            if run.error is not None:
                raise run.error
        progress(f"excursions done in {time.monotonic() - started:.0f} s; stopping the plant")
        for child in reversed(children):
            child.stop()  # the cloud drains its notification records on the way out
        children.clear()
        records = read_cloud_records(db_url)
        batch_max_ms = args.batch_max_ms or CloudConfig.model_fields["batch_max_ms"].default
        version = getattr(scratch, "version", sqlite3.sqlite_version)
        print(report(runs, records, args, args.db, version, batch_max_ms))
        if any(run.missed for run in runs):
            progress(f"notifications were missed: the logs stay in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)  # kept, with the logs, when the run failed
    except BaseException:
        for child in children:
            progress(f"--- {child.name} ({child.log_path}) ---\n{child.tail(30)}")
        raise
    finally:
        for child in reversed(children):
            child.stop()
        for close in reversed(closers):
            close()
        scratch.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
