"""Benchmark: the edge agent's peak resident memory with 20,000 tags (40 devices × 500 tags).

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_edge_rss.py [--devices 40] [--tags 500]
        [--poll-s 1.0] [--seconds 120]

The edge is the real agent started as the operator starts it, ``python -m forgeline edge
--config edge.yaml``, in its own process, so that nothing of this script (pytest's fixtures,
helpers) is counted. Its config names ``--devices`` Modbus TCP devices, each with a generated
profile of ``--tags`` float32 tags (500 tags = 1000 registers = 9 blocks), polled every
``--poll-s`` seconds. The devices are served by ``modbus_churn_server.py`` (one port per device,
one process): every value changes on every read, so every value is decoded, logged and
published on every poll, the most memory-hungry case for report by exception. The agent
publishes to a real Mosquitto; ``ack_stand_in.py`` acknowledges every message, as the cloud does.

Every second the script reads the agent's ``VmRSS`` and ``VmHWM`` (peak resident set) from
``/proc/<pid>/status``. It reports the peak, the resident set after start-up and at the end
(growth between them would be a leak), and the samples the agent logged (from its log's
counters) to show that it really polled every device. As a baseline it measures an interpreter
that imports the agent's modules (the CLI, the agent, both drivers) and does nothing else.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from edge_kit import (
    REPO,
    Helper,
    MosquittoBroker,
    machine_lines,
    progress,
    temp_dir,
    write_modbus_profile,
    write_yaml,
)

from edge.agent import outbox_path
from edge.buffer import read_outbox_summary
from protocols.modbus.planner import plan_blocks
from protocols.profile import load_profile


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in KiB (empty once it has exited)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


_IMPORTS_ONLY = """
import forgeline.cli, edge.agent, edge.drivers.modbus, edge.drivers.opcua
for line in open("/proc/self/status"):
    if line.startswith("VmHWM"):
        print(line.split()[1])
"""


def imports_only_kib() -> int:
    """Peak resident set of an interpreter that imported what the agent imports, and no more."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS_ONLY], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    return int(out.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--tags", type=int, default=500, help="float32 tags per device")
    parser.add_argument("--poll-s", type=float, default=1.0, help="poll interval")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the agent runs")
    args = parser.parse_args()
    work = temp_dir("forgeline-bench-rss-")
    profile_path = write_modbus_profile(work / "bench_profile.yaml", args.tags)
    profile = load_profile(profile_path)
    blocks = len(plan_blocks(profile.tags, profile.modbus_options))
    total_tags = args.devices * args.tags
    progress(f"work dir {work}; {args.devices} devices × {args.tags} tags = {total_tags:,} tags")
    server = Helper(
        "modbus-server",
        "modbus_churn_server.py",
        ["--registers", str(2 * args.tags), "--servers", str(args.devices)],
        work,
    )
    (work / "mosquitto").mkdir()
    broker = MosquittoBroker(workdir=work / "mosquitto").start()
    acker = Helper("ack-stand-in", "ack_stand_in.py", ["--port", str(broker.port)], work)
    ports = server.json()["ports"]
    data_dir = work / "edge"
    config = write_yaml(
        work / "edge.yaml",
        {
            "site": "bench",
            "edge_id": "bench-edge",
            "data_dir": str(data_dir),
            "mqtt": {"url": broker.url},
            "drain_on_stop_s": 5.0,
            "devices": [
                {
                    "id": f"plc-{i:03d}",
                    "profile": str(profile_path),
                    "port": ports[i],
                    "poll_interval_s": args.poll_s,
                }
                for i in range(args.devices)
            ],
        },
    )
    log_file = (work / "edge.log").open("ab")
    edge = subprocess.Popen(
        [sys.executable, "-m", "forgeline", "edge", "--config", str(config), "--log-level",
         "WARNING"],
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    samples: list[tuple[float, dict[str, int]]] = []
    started = time.monotonic()
    try:
        next_report = started + 10
        while time.monotonic() - started < args.seconds:
            if edge.poll() is not None:
                raise RuntimeError(
                    f"the edge agent exited with code {edge.returncode}; see {work / 'edge.log'}"
                )
            samples.append((time.monotonic() - started, memory_kib(edge.pid)))
            if time.monotonic() >= next_report:
                next_report += 10
                mem = samples[-1][1]
                progress(
                    f"  t={samples[-1][0]:.0f} s: VmRSS {mem.get('VmRSS', 0) / 1024:.1f} MiB, "
                    f"VmHWM {mem.get('VmHWM', 0) / 1024:.1f} MiB"
                )
            time.sleep(1.0)
        final = memory_kib(edge.pid)
        edge.terminate()
        edge.wait(30)
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait()
        log_file.close()
        acker.stop()
        broker.stop()
        server.stop()
    _pending, counters = read_outbox_summary(outbox_path(data_dir))
    read = sum(c.get("read", 0) for c in counters.values())
    published = sum(c.get("published", 0) for c in counters.values())
    polled = sum(1 for c in counters.values() if c.get("read", 0) > 0)
    shutil.rmtree(work, ignore_errors=True)
    baseline_mib = imports_only_kib() / 1024
    after_start = next((m for t, m in samples if t >= 10 and m), samples[0][1])
    peak_mib = final.get("VmHWM", 0) / 1024
    lines = ["## Edge peak RSS (`bench_edge_rss.py`)", "", "### Machine", ""]
    lines += machine_lines(["pymodbus", "paho-mqtt", "pydantic", "PyYAML"])
    lines += [
        "",
        f"Command: `.venv/bin/python {' '.join(sys.argv)}`. {args.devices} Modbus TCP devices × "
        f"{args.tags} float32 tags = {total_tags:,} tags ({blocks} blocks a device), polled every "
        f"{args.poll_s:g} s for {args.seconds:g} s, every value changing on every read.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| peak resident set (VmHWM) | **{peak_mib:.1f} MiB** |",
        f"| baseline: the agent's modules imported, nothing started | {baseline_mib:.1f} MiB |",
        f"| peak above the baseline | {peak_mib - baseline_mib:.1f} MiB |",
        f"| resident set 10 s after start | {after_start.get('VmRSS', 0) / 1024:.1f} MiB |",
        f"| resident set at the end | {final.get('VmRSS', 0) / 1024:.1f} MiB |",
        f"| devices that were polled | {polled} of {args.devices} |",
        f"| values read / samples logged | {read:,} / {published:,} |",
        f"| samples logged per second (whole run, start-up included) | "
        f"{published / args.seconds:,.0f} |",
        "",
        f"Aim ≤ 150 MB (143 MiB): {'met' if peak_mib * 1.048576 <= 150 else 'not met'}.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
