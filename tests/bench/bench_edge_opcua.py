"""Benchmark: how many OPC UA items one edge keeps up with at 1 s sampling, every item changing.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_edge_opcua.py [--items 1000,2000,4000,6000,8000,10000]
        [--items-per-server 2000] [--seconds 20] [--warmup 8] [--keep-going]

For each N, asyncua servers in subprocesses (``opcua_churn_server.py``, at most
``--items-per-server`` variables each) hold N Double variables in all and write a new value
into every one of them at each whole second (asyncua's server ignores the sampling interval, so
the server sets the pace itself). The real ``EdgeAgent`` runs in this process with one device
per server, each with a profile generated on the fly: ``opcua.subscribe`` true, sampling and
publishing interval 1000 ms, poll interval 1 s, no deadband. It publishes to a real Mosquitto; a
stand-in for the cloud (``ack_stand_in.py``) acknowledges every message.

The window of ``--seconds`` starts half-way between two ticks, ``--warmup`` seconds after the
agent's first full read was logged. Over it the script counts the changes the servers made
(their status files), the notifications the agent's subscriptions received and dropped, the
samples the agent committed to its log, the depth of the subscriptions' queues at the end, the
event loop's worst lag, and the agent's CPU (``time.process_time()`` of this process).

**Keeping up** at N means: no notification dropped; the notifications received fall short of
the changes made by at most one tick (N), and the samples logged by at most two (the 1 s poll
drains the queue at its own phase, then the log commits); and the queues hold at most one
tick's changes at the end. An agent that handles 95 % of the stream misses that over a 20 s
window. A step where a server was late (a tick's writes took longer than the second they had)
is reported as server-bound and not judged. The script goes up the list and stops after the
first N at which the agent falls behind (``--keep-going`` runs them all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_kit import (
    Helper,
    MosquittoBroker,
    machine_lines,
    progress,
    temp_dir,
    write_yaml,
)
from opcua_churn_server import NAMESPACE

from edge.agent import EdgeAgent, build_agent, outbox_path
from edge.buffer import read_outbox_summary
from edge.config import EdgeConfig


@dataclass
class Step:
    items: int
    seconds: float
    produced: int
    received: int
    dropped: int
    published: int
    queue_end: int
    max_loop_lag_s: float
    cpu_s: float
    server_late: int
    server_max_tick_s: float
    startup_s: float
    servers: int
    server_cpu_s: float

    @property
    def server_bound(self) -> bool:
        return self.server_late > 0

    @property
    def keeps_up(self) -> bool:
        return (
            self.dropped == 0
            and self.produced - self.received <= self.items
            and self.produced - self.published <= 2 * self.items
            and self.queue_end <= self.items
        )

    @property
    def cpu_us_per_notification(self) -> float:
        return self.cpu_s / self.received * 1e6 if self.received else float("nan")

    @property
    def verdict(self) -> str:
        if self.server_bound:
            return "server-bound (not judged)"
        return "keeps up" if self.keeps_up else "**falls behind**"


def write_opcua_profile(path: Path, items: int) -> Path:
    return write_yaml(
        path,
        {
            "model": f"bench-opcua-{items}",
            "protocol": "opcua",
            "poll_interval_s": 1.0,
            "heartbeat_s": 3600.0,
            "opcua": {
                "namespace_uri": NAMESPACE,
                "subscribe": True,
                "sampling_interval_ms": 1000,
                "publishing_interval_ms": 1000,
                "timeout_s": 30.0,
            },
            "tags": [
                {
                    "name": f"t{i:05d}",
                    "role": "process_param",
                    "type": "float64",
                    "node": f"s=v{i:05d}",
                }
                for i in range(items)
            ],
        },
    )


def edge_config(urls: list[str], mqtt_url: str, profiles: list[Path], data_dir: Path) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "site": "bench",
            "edge_id": "bench-edge",
            "data_dir": str(data_dir),
            "mqtt": {"url": mqtt_url},
            "connect_timeout_s": 120.0,
            "drain_on_stop_s": 5.0,
            "devices": [
                {"id": f"opc-{i:02d}", "profile": str(profile), "endpoint_url": url}
                for i, (url, profile) in enumerate(zip(urls, profiles, strict=True))
            ],
        }
    )


def _published(path: Path) -> int:
    _pending, counters = read_outbox_summary(path)
    return sum(c.get("published", 0) for c in counters.values())


def _server_status(paths: list[Path]) -> dict[str, float]:
    """The servers' status files, summed (``max_tick_s``: the largest)."""
    total = {"ticks": 0.0, "late": 0.0, "max_tick_s": 0.0, "changes": 0.0}
    for path in paths:
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key in ("ticks", "late", "changes"):
            total[key] += float(status[key])
        total["max_tick_s"] = max(total["max_tick_s"], float(status["max_tick_s"]))
    return total


def _subscriptions(agent: EdgeAgent) -> list[Any]:
    """Every device's ``protocols.opcua.Subscription`` objects (one per scan class)."""
    found: list[Any] = []
    for device in agent.devices.values():
        driver = device.driver
        many = getattr(driver, "subscriptions", None)  # {(sampling, publishing): Subscription}
        if many is not None:
            found += list(many.values())
        elif (one := getattr(driver, "_subscription", None)) is not None:
            found.append(one)
    return found


def _counts(agent: EdgeAgent) -> tuple[int, int, int]:
    """Notifications received, notifications dropped, and queued now, over all subscriptions."""
    subs = _subscriptions(agent)
    if not subs:
        raise RuntimeError("the OPC UA driver is not subscribed (see the log)")
    return (
        sum(s.notifications for s in subs),
        sum(s.dropped for s in subs),
        sum(s.queue.qsize() for s in subs),
    )


async def _half_second() -> None:
    """Sleep until the wall clock is half-way between two whole seconds (between two ticks)."""
    await asyncio.sleep((1.5 - time.time() % 1.0) % 1.0)


async def measure(
    items: int,
    per_server: int,
    work: Path,
    broker: MosquittoBroker,
    warmup_s: float,
    seconds: float,
) -> Step:
    count = -(-items // per_server)
    sizes = [items // count + (1 if i < items % count else 0) for i in range(count)]
    status_paths = [work / f"server-{items}-{i}.json" for i in range(count)]
    started = time.monotonic()
    servers: list[Helper] = []
    try:
        for i, size in enumerate(sizes):
            servers.append(
                Helper(
                    f"opcua-server-{items}-{i}",
                    "opcua_churn_server.py",
                    ["--variables", str(size), "--status", str(status_paths[i])],
                    work,
                )
            )
        urls = [server.json()["url"] for server in servers]
        progress(
            f"  N={items}: {count} server(s) of {sizes[0]} items up in "
            f"{time.monotonic() - started:.1f} s"
        )
        profiles = [write_opcua_profile(work / f"profile-{size}.yaml", size) for size in sizes]
        data_dir = work / f"edge-{items}"
        agent = build_agent(edge_config(urls, broker.url, profiles, data_dir))
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        log_path = outbox_path(data_dir)
        connect_started = time.monotonic()
        deadline = connect_started + 300
        while not (log_path.exists() and _published(log_path) >= items):
            if run.done() or time.monotonic() > deadline:
                stop.set()
                await run
                raise RuntimeError(f"N={items}: the agent's first full read did not arrive")
            await asyncio.sleep(0.2)
        startup_s = time.monotonic() - connect_started
        progress(f"  N={items}: subscribed and first full read logged after {startup_s:.1f} s")
        await asyncio.sleep(warmup_s)
        lag = [0.0]
        measuring = True

        async def watch_loop() -> None:
            while measuring:
                t = time.monotonic()
                await asyncio.sleep(0.05)
                lag[0] = max(lag[0], time.monotonic() - t - 0.05)

        await _half_second()
        watcher = asyncio.create_task(watch_loop())
        (n0, d0, _), s0 = _counts(agent), _server_status(status_paths)
        p0, c0, t0 = _published(log_path), time.process_time(), time.monotonic()
        sc0 = sum(server.cpu_s() for server in servers)
        await asyncio.sleep(round(seconds))
        (n1, d1, queue_end), s1 = _counts(agent), _server_status(status_paths)
        p1, c1, t1 = _published(log_path), time.process_time(), time.monotonic()
        sc1 = sum(server.cpu_s() for server in servers)
        measuring = False
        await watcher
        stop.set()
        await run
        return Step(
            items=items,
            seconds=t1 - t0,
            produced=int(s1["changes"] - s0["changes"]),
            received=n1 - n0,
            dropped=d1 - d0,
            published=p1 - p0,
            queue_end=queue_end,
            max_loop_lag_s=lag[0],
            cpu_s=c1 - c0,
            server_late=int(s1["late"] - s0["late"]),
            server_max_tick_s=s1["max_tick_s"],
            startup_s=startup_s,
            servers=count,
            server_cpu_s=sc1 - sc0,
        )
    finally:
        for server in servers:
            server.stop()


def report(args: argparse.Namespace, steps: list[Step]) -> str:
    lines = ["## Edge OPC UA (`bench_edge_opcua.py`)", "", "### Machine", ""]
    lines += machine_lines(["asyncua", "paho-mqtt", "pydantic"])
    lines += [
        "",
        f"Command: `.venv/bin/python {' '.join(sys.argv)}`. Window {args.seconds:g} s after "
        f"{args.warmup:g} s warm-up, every item changing once a second.",
        "",
        "| items (servers) | changes/s made | notifications/s received | dropped |"
        " samples/s logged | queue at end | worst loop lag | edge CPU cores |"
        " edge CPU µs per notification | servers' CPU cores | slowest server tick | verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s.items:,} ({s.servers}) | {s.produced / s.seconds:,.0f} | "
            f"{s.received / s.seconds:,.0f} | {s.dropped:,} | {s.published / s.seconds:,.0f} | "
            f"{s.queue_end:,} | {s.max_loop_lag_s * 1000:,.0f} ms | {s.cpu_s / s.seconds:.2f} | "
            f"{s.cpu_us_per_notification:.0f} | {s.server_cpu_s / s.seconds:.2f} | "
            f"{s.server_max_tick_s:.2f} s | {s.verdict} |"
        )
    kept = [s.items for s in steps if s.keeps_up and not s.server_bound]
    behind = [s.items for s in steps if not s.keeps_up and not s.server_bound]
    lines += [
        "",
        (f"Largest N kept up with: {max(kept):,}" if kept else "No N kept up with")
        + (f"; first N fallen behind at: {min(behind):,}." if behind else "; none fell behind."),
        "",
        "Start-up (connect, resolve, create monitored items, first full read logged): "
        + ", ".join(f"N={s.items:,} {s.startup_s:.1f} s" for s in steps)
        + ".",
    ]
    return "\n".join(lines)


async def run_all(args: argparse.Namespace, work: Path, broker: MosquittoBroker) -> list[Step]:
    steps: list[Step] = []
    for items in args.items:
        progress(f"N={items}: starting")
        step = await measure(items, args.items_per_server, work, broker, args.warmup, args.seconds)
        progress(
            f"  N={items}: made {step.produced / step.seconds:,.0f}/s, received "
            f"{step.received / step.seconds:,.0f}/s, dropped {step.dropped}, logged "
            f"{step.published / step.seconds:,.0f}/s, queue {step.queue_end}, lag "
            f"{step.max_loop_lag_s * 1000:.0f} ms, CPU {step.cpu_s / step.seconds:.2f} cores: "
            f"{step.verdict}"
        )
        steps.append(step)
        if not step.keeps_up and not step.server_bound and not args.keep_going:
            break
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--items",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[1000, 2000, 4000, 6000, 8000, 10000],
        help="comma-separated item counts, in increasing order",
    )
    parser.add_argument("--items-per-server", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--keep-going", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    work = temp_dir("forgeline-bench-opcua-")
    (work / "mosquitto").mkdir()
    broker = MosquittoBroker(workdir=work / "mosquitto").start()
    acker = Helper("ack-stand-in", "ack_stand_in.py", ["--port", str(broker.port)], work)
    progress(f"work dir {work}, broker {broker.url}")
    try:
        steps = asyncio.run(run_all(args, work, broker))
        print(report(args, steps))
    finally:
        acker.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
