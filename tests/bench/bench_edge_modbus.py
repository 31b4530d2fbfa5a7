"""Benchmark of the edge's Modbus path against a raw pymodbus loop measured in the same run.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_edge_modbus.py [--tags 500] [--devices 4] [--servers 1]
        [--seconds 20] [--warmup 3] [--repeats 2] [--profile]

Every device is a profile of ``--tags`` float32 holding registers (500 tags = 1000 registers =
9 blocks: the planner never splits a float32 across two requests), served by a pymodbus server
in a subprocess whose values change on every read, so report by exception passes every value.
Two paths, alternated ``--repeats`` times:

``raw pymodbus``   one ``AsyncModbusTcpClient`` per device reading the blocks the edge's planner
                   makes, back to back; nothing decoded. A point is one float32 (two registers).
``edge agent``     the real ``EdgeAgent`` (``build_agent(config)``, ``run(stop)``) in this process
                   with a poll interval of 1 ms (so it polls back to back): poll, decode, report
                   by exception, events, durable log (SQLite WAL, synchronous=FULL), publish to a
                   real Mosquitto, and delete on acknowledgement. A stand-in for the cloud in a
                   subprocess acknowledges every message it receives. A point is one sample
                   committed to the log (the agent's ``published`` counter).

The CPU clock is ``time.process_time()`` of this process (the agent, its paho thread and its
SQLite work); the server, Mosquitto and the acknowledging stand-in run in other processes and
are reported apart. Progress goes to stderr, the result (Markdown) to stdout. ``--profile`` adds
a cProfile pass of the agent (event-loop thread only) and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edge_kit import (
    Helper,
    MosquittoBroker,
    machine_lines,
    median,
    process_cpu_s,
    progress,
    temp_dir,
    write_modbus_profile,
)
from pymodbus.client import AsyncModbusTcpClient

from edge.agent import build_agent, outbox_path
from edge.buffer import read_outbox_summary
from edge.config import EdgeConfig
from protocols.modbus.planner import plan_blocks
from protocols.profile import load_profile


@dataclass
class Window:
    """One measured window of one path."""

    path: str
    seconds: float
    cpu_s: float
    points: int
    read: int = 0
    server_cpu_s: float = 0.0
    broker_cpu_s: float = 0.0
    acker_cpu_s: float = 0.0
    messages_left: int = 0

    @property
    def rate(self) -> float:
        return self.points / self.seconds

    def per_million(self, cpu_s: float) -> float:
        return cpu_s / self.points * 1e6 if self.points else float("nan")


@dataclass
class Rig:
    """Everything outside the edge process: server(s), broker, acknowledging stand-in."""

    work: Path
    profile_path: Path
    ports: list[int]
    server: Helper
    broker: MosquittoBroker
    acker: Helper

    def others_cpu(self) -> tuple[float, float, float]:
        broker_pid = self.broker.process.pid if self.broker.process else 0
        return self.server.cpu_s(), process_cpu_s(broker_pid), self.acker.cpu_s()


# --------------------------------------------------------------------------- raw baseline


async def raw_window(rig: Rig, devices: int, warmup_s: float, seconds: float) -> Window:
    profile = load_profile(rig.profile_path)
    blocks = [(b.start, b.count) for b in plan_blocks(profile.tags, profile.modbus_options)]
    counted = [0]
    running = True

    async def loop(port: int) -> None:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0, retries=0)
        await client.connect()
        try:
            while running:
                for start, count in blocks:
                    response = await client.read_holding_registers(start, count=count, device_id=1)
                    if response.isError():
                        raise RuntimeError(f"raw read {start}+{count} failed: {response}")
                    counted[0] += count // 2
        finally:
            client.close()

    tasks = [asyncio.create_task(loop(rig.ports[i % len(rig.ports)])) for i in range(devices)]
    await asyncio.sleep(warmup_s)
    before = (time.monotonic(), time.process_time(), counted[0], rig.others_cpu())
    await asyncio.sleep(seconds)
    after = (time.monotonic(), time.process_time(), counted[0], rig.others_cpu())
    running = False
    await asyncio.gather(*tasks)
    return Window(
        "raw pymodbus (read the same blocks, no decode)",
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2],
        read=after[2] - before[2],
        server_cpu_s=after[3][0] - before[3][0],
        broker_cpu_s=after[3][1] - before[3][1],
        acker_cpu_s=after[3][2] - before[3][2],
    )


# --------------------------------------------------------------------------- edge agent


def edge_config(rig: Rig, devices: int, data_dir: Path) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "site": "bench",
            "edge_id": "bench-edge",
            "data_dir": str(data_dir),
            "mqtt": {"url": rig.broker.url},
            "drain_on_stop_s": 5.0,
            "devices": [
                {
                    "id": f"dev-{i:02d}",
                    "profile": str(rig.profile_path),
                    "port": rig.ports[i % len(rig.ports)],
                    "poll_interval_s": 0.001,
                }
                for i in range(devices)
            ],
        }
    )


def _totals(path: Path) -> tuple[int, int]:
    _pending, counters = read_outbox_summary(path)
    published = sum(c.get("published", 0) for c in counters.values())
    read = sum(c.get("read", 0) for c in counters.values())
    return published, read


async def edge_window(
    rig: Rig,
    devices: int,
    warmup_s: float,
    seconds: float,
    data_dir: Path,
    profiler: cProfile.Profile | None = None,
) -> Window:
    agent = build_agent(edge_config(rig, devices, data_dir))
    stop = asyncio.Event()
    run = asyncio.create_task(agent.run(stop))
    log_path = outbox_path(data_dir)
    deadline = time.monotonic() + 15
    while not (agent.link and agent.link.connected and log_path.exists()):
        if run.done() or time.monotonic() > deadline:
            stop.set()
            await run
            raise RuntimeError("the edge agent did not connect to the broker within 15 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(warmup_s)
    published0, read0 = _totals(log_path)
    before = (time.monotonic(), time.process_time(), rig.others_cpu())
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(seconds)
    if profiler is not None:
        profiler.disable()
    after = (time.monotonic(), time.process_time(), rig.others_cpu())
    published1, read1 = _totals(log_path)
    stop.set()
    await run
    assert agent.outbox is not None
    left = read_depth(log_path)
    if agent.failed:
        raise RuntimeError("the edge agent reported an internal failure; see the log above")
    return Window(
        "edge agent (poll + decode + RBE + log + publish + ack)",
        after[0] - before[0],
        after[1] - before[1],
        published1 - published0,
        read=read1 - read0,
        server_cpu_s=after[2][0] - before[2][0],
        broker_cpu_s=after[2][1] - before[2][1],
        acker_cpu_s=after[2][2] - before[2][2],
        messages_left=left,
    )


def read_depth(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


# --------------------------------------------------------------------------- report


def report(args: argparse.Namespace, raw: list[Window], edge: list[Window], blocks: int) -> str:
    command = " ".join(sys.argv)
    lines = ["## Edge Modbus (`bench_edge_modbus.py`)", "", "### Machine", ""]
    lines += machine_lines(["pymodbus", "paho-mqtt", "numpy", "pydantic"])
    lines += [
        "",
        f"Command: `.venv/bin/python {command}`. {args.devices} devices × {args.tags} "
        f"float32 tags ({2 * args.tags} registers, {blocks} blocks a poll), "
        f"{args.seconds:g} s windows after {args.warmup:g} s warm-up, median of {args.repeats}.",
        "",
        "| path | points/s | CPU-s per million points (this process) | CPU cores used |"
        " points/s ÷ raw | CPU per point ÷ raw |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    raw_rate = median([w.rate for w in raw])
    raw_cpu = median([w.per_million(w.cpu_s) for w in raw])
    for windows in (raw, edge):
        rate = median([w.rate for w in windows])
        cpu = median([w.per_million(w.cpu_s) for w in windows])
        cores = median([w.cpu_s / w.seconds for w in windows])
        lines.append(
            f"| {windows[0].path} | {rate:,.0f} | {cpu:.2f} | {cores:.2f} | "
            f"{rate / raw_rate:.2f} | {cpu / raw_cpu:.1f} |"
        )
    lines += [
        "",
        "Other processes, CPU-s per million points (median):",
        "",
        "| path | pymodbus server | Mosquitto | ack stand-in |",
        "|---|---:|---:|---:|",
    ]
    for windows in (raw, edge):
        lines.append(
            f"| {windows[0].path} | "
            f"{median([w.per_million(w.server_cpu_s) for w in windows]):.2f} | "
            f"{median([w.per_million(w.broker_cpu_s) for w in windows]):.2f} | "
            f"{median([w.per_million(w.acker_cpu_s) for w in windows]):.2f} |"
        )
    lines += ["", "Every window:", ""]
    for w in [*raw, *edge]:
        extra = (
            f", read {w.read:,}, left in the log at stop {w.messages_left}"
            if w.path.startswith("edge")
            else ""
        )
        lines.append(
            f"- {w.path.split(' (')[0]}: {w.points:,} points in {w.seconds:.1f} s, "
            f"{w.rate:,.0f}/s, {w.cpu_s:.2f} CPU-s ({w.per_million(w.cpu_s):.2f} per million)"
            f"{extra}"
        )
    return "\n".join(lines)


def print_profile(profiler: cProfile.Profile, points: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(f"\ncProfile of one edge window ({points:,} points), by own time:\n")
    stats.sort_stats("tottime").print_stats(30)
    out.write("\nby cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(40)
    print("```\n" + out.getvalue().strip() + "\n```")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=500, help="float32 tags per device")
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--servers", type=int, default=1, help="server ports (one process)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="add a cProfile pass")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    work = temp_dir("forgeline-bench-modbus-")
    profile_path = write_modbus_profile(work / "bench_profile.yaml", args.tags)
    profile = load_profile(profile_path)
    blocks = len(plan_blocks(profile.tags, profile.modbus_options))
    progress(f"work dir {work}; {args.tags} tags = {blocks} blocks per poll")
    server = Helper(
        "modbus-server",
        "modbus_churn_server.py",
        ["--registers", str(2 * args.tags), "--servers", str(args.servers)],
        work,
    )
    broker = MosquittoBroker(workdir=work / "mosquitto")
    (work / "mosquitto").mkdir()
    broker.start()
    acker = Helper("ack-stand-in", "ack_stand_in.py", ["--port", str(broker.port)], work)
    rig = Rig(work, profile_path, server.json()["ports"], server, broker, acker)
    progress(f"server ports {rig.ports}, broker {broker.url}, ack stand-in pid {acker.pid}")
    raw: list[Window] = []
    edge: list[Window] = []
    try:
        for r in range(args.repeats):
            progress(f"run {r + 1}/{args.repeats}: raw pymodbus, {args.seconds:g} s")
            w = asyncio.run(raw_window(rig, args.devices, args.warmup, args.seconds))
            progress(f"  raw: {w.rate:,.0f} points/s, {w.per_million(w.cpu_s):.2f} CPU-s/M")
            raw.append(w)
            progress(f"run {r + 1}/{args.repeats}: edge agent, {args.seconds:g} s")
            w = asyncio.run(
                edge_window(rig, args.devices, args.warmup, args.seconds, work / f"edge-{r}")
            )
            progress(
                f"  edge: {w.rate:,.0f} points/s, {w.per_million(w.cpu_s):.2f} CPU-s/M "
                f"(read {w.read:,}, published {w.points:,}, left {w.messages_left})"
            )
            edge.append(w)
        print(report(args, raw, edge, blocks))
        if args.profile:
            progress(f"profiled edge pass, {args.seconds:g} s")
            profiler = cProfile.Profile()
            w = asyncio.run(
                edge_window(
                    rig, args.devices, args.warmup, args.seconds, work / "edge-prof", profiler
                )
            )
            print_profile(profiler, w.points)
    finally:
        acker.stop()
        broker.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
