"""Shared pieces of the edge benchmarks: helper processes, a broker, CPU clocks, machine facts.

Nothing here measures anything by itself. The benchmarks (``bench_edge_*.py``, ``bench_drain.py``)
run the real edge agent in their own process and everything it talks to (PLC servers, Mosquitto,
the cloud or a stand-in acknowledging for it) in other processes, so that the edge's CPU clock
(``time.process_time()``) counts the edge alone.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from machine_info import cpu_model, ram_gib  # noqa: E402

from tests.conftest import MosquittoBroker, free_port  # noqa: E402

__all__ = [
    "BENCH_DIR",
    "REPO",
    "Helper",
    "MosquittoBroker",
    "free_port",
    "machine_lines",
    "median",
    "process_cpu_s",
    "progress",
    "temp_dir",
    "write_modbus_profile",
    "write_yaml",
]


def progress(line: str) -> None:
    """One progress line on stderr (the result goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process so far (``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


class Helper:
    """A helper script of this folder in a subprocess; ``ready_line`` is its first stdout line."""

    def __init__(self, name: str, script: str, args: Sequence[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / script), *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)},
        )
        assert self.proc.stdout is not None
        self.ready_line = self.proc.stdout.readline().decode().strip()
        if not self.ready_line:
            self.stop()
            raise RuntimeError(f"{name} did not start; its log ({self.log_path}):\n{self.tail()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def json(self) -> Any:
        return json.loads(self.ready_line)

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_modbus_profile(
    path: Path, tags: int, *, deadband: float | None = None, first_address: int = 0
) -> Path:
    """A Modbus TCP profile of ``tags`` float32 holding registers, contiguous from
    ``first_address``, no deadband: report by exception passes every changed value."""
    tag_list: list[dict[str, Any]] = []
    for i in range(tags):
        tag: dict[str, Any] = {
            "name": f"t{i:05d}",
            "role": "process_param",
            "type": "float32",
            "table": "holding",
            "address": first_address + 2 * i,
        }
        if deadband is not None:
            tag["deadband"] = deadband
        tag_list.append(tag)
    return write_yaml(
        path,
        {
            "model": f"bench-modbus-{tags}",
            "protocol": "modbus_tcp",
            "poll_interval_s": 1.0,
            "heartbeat_s": 3600.0,
            "modbus": {"addressing": "zero_based", "word_order": "ABCD", "timeout_s": 2.0},
            "tags": tag_list,
        },
    )


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def machine_lines(libraries: Sequence[str]) -> list[str]:
    """Markdown bullets: CPU, RAM, Python, library versions, Mosquitto and the load average."""
    cpu = cpu_model()
    ram = ram_gib()
    mosquitto = "unknown"
    try:
        out = subprocess.run(
            ["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
        mosquitto = out.splitlines()[0].strip() if out else mosquitto
    except (OSError, subprocess.SubprocessError):
        pass
    import sqlite3

    libs = ", ".join(f"{name} {version(name)}" for name in libraries)
    return [
        f"- CPU: {os.cpu_count()} × {cpu} (nproc {len(os.sched_getaffinity(0))})",
        f"- RAM: {ram:.1f} GiB",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}; SQLite library {sqlite3.sqlite_version}",
        f"- {libs}",
        f"- broker: {mosquitto}",
        f"- load average when the run ended: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]
