"""``forgeline demo`` itself, for a few seconds, with its report: nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from forgeline.processes import free_port

pytestmark = [pytest.mark.integration]


def test_demo_runs_and_accounts_for_every_sample(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "forgeline", "demo", "--duration", "8", "--report",
         str(report_file), "--api-port", str(free_port()), "--data-dir", str(tmp_path / "run"),
         "--no-live"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (tmp_path / "run" / "logs").glob("*.log")
    )
    assert result.returncode == 0, result.stdout + result.stderr + logs
    report = json.loads(report_file.read_text())
    machines = report["machines"]
    assert len(machines) >= 6
    assert {m["protocol"] for m in machines} == {"modbus_tcp", "opcua"}
    for machine in machines:
        assert set(machine) == {"machine", "protocol", "read", "published", "stored",
                                "duplicates", "pending", "lost"}  # fmt: skip
        assert machine["read"] > 0, machine
        assert machine["published"] > 0, machine
        assert machine["lost"] == 0, machine
        assert machine["stored"] + machine["pending"] == machine["published"], machine
    assert report["totals"]["lost"] == 0
    assert "demo finished" in result.stdout
