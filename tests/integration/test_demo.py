"""``forgeline demo`` itself, for a few seconds, with its report: nothing lost, OEE and alarms."""

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
                                "duplicates", "pending", "lost", "oee", "alarms_raised"}  # fmt: skip
        assert machine["read"] > 0, machine
        assert machine["published"] > 0, machine
        assert machine["lost"] == 0, machine
        assert machine["stored"] + machine["pending"] == machine["published"], machine
    assert report["totals"]["lost"] == 0
    assert "demo finished" in result.stdout

    # OEE per machine over the run: the ISO 22400 time elements add up to the planned busy
    # time (no calendar in the demo: all of it is planned), and the state was known most of it
    for machine in machines:
        oee = machine["oee"]
        assert oee is not None, machine
        t = oee["time_elements"]
        assert t["pbt_ms"] == oee["window"]["to_ms"] - oee["window"]["from_ms"]
        assert (
            t["apt_ms"] + t["aust_ms"] + t["adet_ms"] + t["adot_ms"] + t["unkt_ms"] == t["pbt_ms"]
        )
        assert t["unkt_ms"] < t["pbt_ms"] / 2, machine
        assert oee["availability"] == pytest.approx(t["apt_ms"] / t["pbt_ms"])

    # the demo scenario overheats press-01's nozzle from the start: the built-in high-limit
    # alarm is raised (after its 2 s on-delay) and is in the report
    raised = [a for a in report["alarms"] if a["machine"] == "press-01"]
    assert [(a["rule"], a["metric"]) for a in raised] == [
        ("builtin_limit_high", "nozzle_temperature")
    ]
    assert raised[0]["value"] > raised[0]["limit"] == 190.0
    assert report["totals"]["alarms_raised"] == len(report["alarms"])
    assert next(m for m in machines if m["machine"] == "press-01")["alarms_raised"] == 1

    # the demo runs a work order on the breaker cell: released, its operation running there
    production = report["production"]
    assert production is not None, result.stdout + logs
    assert (production["work_order"], production["machine"]) == ("WO-DEMO-1", "breaker-01")
    assert production["state"] == "running"
    assert production["quantity_ordered"] == 500
