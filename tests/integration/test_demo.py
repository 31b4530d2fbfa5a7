"""``forgeline demo`` itself, for a minute, with its report: nothing lost, OEE, alarms, the
production run, the SPC chart on press-01 and the condition of the pump's worn bearing."""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from device_profiles import profile_path
from forgeline import demo_quality
from forgeline.processes import free_port
from protocols.profile import load_profile
from simulators.behaviour import BearingWear
from simulators.scenario import load_scenario

pytestmark = [pytest.mark.integration]

DURATION_S = 60  # long enough for phase I (20 s), phase II and the pump's bearing in zone C
EPOCH_SLACK_S = 5.0  # the simulators' clock starts at most this long before their endpoints file


@dataclass(frozen=True)
class DemoRun:
    report: dict[str, Any]
    run_dir: Path
    sim_epoch_s: float  # the latest the simulators' clock can have started (endpoints file)
    stdout: str
    logs: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    tmp_path = tmp_path_factory.mktemp("demo")
    report_file = tmp_path / "report.json"
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "forgeline", "demo", "--duration", str(DURATION_S), "--report",
         str(report_file), "--api-port", str(free_port()), "--data-dir", str(run_dir),
         "--no-live"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (run_dir / "logs").glob("*.log")
    )
    assert result.returncode == 0, result.stdout + result.stderr + logs
    return DemoRun(
        report=json.loads(report_file.read_text()), run_dir=run_dir,
        sim_epoch_s=(run_dir / "endpoints.json").stat().st_mtime, stdout=result.stdout, logs=logs,
    )  # fmt: skip


def _pump_bearing() -> BearingWear:
    [pump] = [
        m for line in load_scenario("demo").lines for m in line.machines
        if m.device_id == demo_quality.PUMP
    ]  # fmt: skip
    assert pump.bearing is not None
    return pump.bearing.wear(pump.seed)


def _running_h(bearing: BearingWear, at_ms: int, epoch_s: float) -> float:
    """The pump's running hours at ``at_ms`` if the simulators' clock started at ``epoch_s``
    (the pump runs all the time)."""
    return bearing.initial_h + (at_ms / 1000 - epoch_s) * bearing.wear_time_scale / 3600


def _zone(rms: float, cls: dict[str, float]) -> str:
    return "ABCD"[sum(rms >= cls[b] for b in ("a_b", "b_c", "c_d"))]


def test_demo_runs_and_accounts_for_every_sample(demo: DemoRun) -> None:
    machines = demo.report["machines"]
    assert len(machines) >= 7
    assert {m["protocol"] for m in machines} == {"modbus_tcp", "opcua"}
    for machine in machines:
        assert set(machine) == {"machine", "protocol", "read", "published", "stored",
                                "duplicates", "pending", "lost", "oee", "alarms_raised"}  # fmt: skip
        assert machine["read"] > 0, machine
        assert machine["published"] > 0, machine
        assert machine["lost"] == 0, machine
        assert machine["stored"] + machine["pending"] == machine["published"], machine
    assert demo.report["totals"]["lost"] == 0
    assert "demo finished" in demo.stdout


def test_demo_reports_oee_per_machine(demo: DemoRun) -> None:
    # OEE per machine over the run: the ISO 22400 time elements add up to the planned busy
    # time (no calendar in the demo: all of it is planned), and the state was known most of it
    for machine in demo.report["machines"]:
        oee = machine["oee"]
        assert oee is not None, machine
        t = oee["time_elements"]
        assert t["pbt_ms"] == oee["window"]["to_ms"] - oee["window"]["from_ms"]
        assert (
            t["apt_ms"] + t["aust_ms"] + t["adet_ms"] + t["adot_ms"] + t["unkt_ms"] == t["pbt_ms"]
        )
        assert t["unkt_ms"] < t["pbt_ms"] / 2, machine
        assert oee["availability"] == pytest.approx(t["apt_ms"] / t["pbt_ms"])


def test_demo_reports_the_alarms_and_the_work_order(demo: DemoRun) -> None:
    report = demo.report
    # the demo scenario overheats press-01's nozzle from the start: the built-in high-limit
    # alarm is raised (after its 2 s on-delay) and is in the report, once
    raised = [
        a for a in report["alarms"]
        if a["machine"] == "press-01" and a["metric"] == "nozzle_temperature"
    ]  # fmt: skip
    assert [a["rule"] for a in raised] == ["builtin_limit_high"], raised
    assert raised[0]["value"] > raised[0]["limit"] == 190.0
    assert report["totals"]["alarms_raised"] == len(report["alarms"])
    for machine in report["machines"]:
        on_machine = [a for a in report["alarms"] if a["machine"] == machine["machine"]]
        assert machine["alarms_raised"] == len(on_machine), machine

    # the demo runs a work order on the breaker cell: released, its operation running there
    production = report["production"]
    assert production is not None, demo.stdout + demo.logs
    assert (production["work_order"], production["machine"]) == ("WO-DEMO-1", "breaker-01")
    assert production["state"] == "running"
    assert production["quantity_ordered"] == 500


def _baseline_values(run_dir: Path, metric: str, from_ms: int, to_ms: int) -> list[float]:
    """press-01's good samples of the metric in [from_ms, to_ms), from the demo's database."""
    with sqlite3.connect(run_dir / "forgeline.db") as db:
        rows = db.execute(
            "SELECT s.value FROM ts_sample s JOIN ts_series r ON r.id = s.series_id "
            "WHERE r.device = ? AND r.metric = ? AND s.ts >= ? AND s.ts < ? AND s.quality = 0 "
            "AND s.value IS NOT NULL ORDER BY s.ts",
            (demo_quality.MACHINE, metric, from_ms, to_ms),
        ).fetchall()
    return [float(value) for (value,) in rows]


def test_demo_charts_press_01_with_phase_i_limits_from_the_first_third(demo: DemoRun) -> None:
    quality = demo.report["quality"]
    assert quality is not None, demo.stdout + demo.logs
    limits = load_profile(profile_path("sole_injection_press")).tag(demo_quality.METRIC).limits
    assert limits is not None
    assert (quality["machine"], quality["metric"], quality["chart_type"]) == (
        "press-01",
        demo_quality.METRIC,
        "i_mr",
    )
    assert (quality["lsl"], quality["usl"]) == (limits.low, limits.high)
    assert quality["rules"] == demo_quality.SPC_RULES

    # phase I: the first third of the run; the limits are those of its individuals, recomputed
    # here from the stored samples: X̄ ± 2.660·MR̄ (σ = MR̄/d2, d2 = 1.128 for ranges of 2)
    frozen = quality["limits"]
    assert frozen is not None, demo.stdout + demo.logs
    # (extended if it held fewer than MIN_BASELINE_POINTS samples by then)
    assert frozen["baseline_to_ms"] - frozen["baseline_from_ms"] >= DURATION_S / 3 * 1000
    values = _baseline_values(demo.run_dir, demo_quality.METRIC, frozen["baseline_from_ms"],
                              frozen["baseline_to_ms"])  # fmt: skip
    assert len(values) == frozen["subgroups_used"] >= demo_quality.MIN_BASELINE_POINTS
    mean_moving_range = sum(abs(b - a) for a, b in itertools.pairwise(values)) / (len(values) - 1)
    assert frozen["centre"] == pytest.approx(sum(values) / len(values))
    assert frozen["sigma"] == pytest.approx(mean_moving_range / 1.128)
    assert frozen["ucl"] == pytest.approx(frozen["centre"] + 2.660 * mean_moving_range)
    assert frozen["lcl"] == pytest.approx(frozen["centre"] - 2.660 * mean_moving_range)

    # phase II: the rest of the run judged point by point; a violation is one of the chart's
    # rules after the baseline, and the chart's alarm was raised by the first of them
    assert quality["points"] >= 5, quality
    for violation in quality["violations"]:
        assert violation["rule"] in demo_quality.SPC_RULES
        assert violation["ts_ms"] >= frozen["baseline_to_ms"]
    if quality["violations"]:
        first = min(v["ts_ms"] for v in quality["violations"])
        assert min(a["raised_ms"] for a in quality["alarms"]) == first, quality["alarms"]
        assert {(a["machine"], a["kind"]) for a in quality["alarms"]} == {("press-01", "spc_rule")}
    else:
        assert quality["alarms"] == []

    # capability over the run: Cpk and Ppk from the reported mean and sigmas and the spec
    capability = quality["capability"]
    assert capability is not None
    assert capability["points_used"] > len(values)
    assert limits.low is not None
    assert limits.high is not None
    nearest = min(limits.high - capability["mean"], capability["mean"] - limits.low)
    assert capability["cpk"] == pytest.approx(nearest / (3 * capability["sigma_within"]))
    assert capability["ppk"] == pytest.approx(nearest / (3 * capability["sigma_overall"]))
    assert capability["cp"] == pytest.approx(
        (limits.high - limits.low) / (6 * capability["sigma_within"])
    )


def test_demo_pump_condition_follows_its_bearing(demo: DemoRun) -> None:
    condition = demo.report["condition"]
    assert condition is not None, demo.stdout + demo.logs
    bearing = _pump_bearing()
    model = bearing.model
    cls = condition["classes"][demo_quality.PUMP_CLASS]
    pump = {a["metric"]: a for a in condition["assessments"] if a["machine_name"] == "pump-01"}
    # the waveform's RMS feature (edge) and the module's own overall value: both overall RMS
    for metric in ("motor_de_velocity_rms", "motor_de_overall_velocity"):
        found = pump[metric]
        assert (found["signal"], found["class_id"]) == ("vibration", demo_quality.PUMP_CLASS)
        # the zone is that of the reported RMS (mean of the newest 3 windows), and that RMS is
        # the model's at the windows' time: between the trend 10 s before the newest window
        # (the simulators' clock started by the endpoints file) and the trend at it (the clock
        # started up to EPOCH_SLACK_S earlier), with 3 sigma of the windows' scatter
        rms = found["rms"]
        assert found["zone"] == _zone(rms, cls), found
        earliest = _running_h(bearing, found["data_to_ms"] - 10_000, demo.sim_epoch_s)
        latest = _running_h(bearing, found["data_to_ms"], demo.sim_epoch_s - EPOCH_SLACK_S)
        low = model.overall_rms(earliest) * math.exp(-3 * model.noise)
        high = model.overall_rms(latest) * math.exp(3 * model.noise)
        assert low <= rms <= high, (metric, low, rms, high)
        # a minute into the demo the bearing has left zone B: the story the demo tells
        assert found["zone"] == "C", found
        assert found["health"] is not None, found
        assert 0 <= found["health"] < 100, found

        # remaining life to C/D (the bearing's failure, 4.5 mm/s) in calendar time, against
        # the model's: the hours left to failure_h at the simulators' ageing rate
        assert cls["c_d"] == model.failure_rms
        assert found["rul_h"] is not None, found
        assert found["rul_low_h"] <= found["rul_h"], found
        assert found["rul_high_h"] is None or found["rul_h"] <= found["rul_high_h"], found
        true_rul_s = [
            (model.failure_h - _running_h(bearing, found["assessed_ms"], epoch))
            / bearing.wear_time_scale * 3600
            for epoch in (demo.sim_epoch_s, demo.sim_epoch_s - EPOCH_SLACK_S)
        ]  # fmt: skip
        rul_s = found["rul_h"] * 3600
        assert 0.7 * min(true_rul_s) <= rul_s <= 1.3 * max(true_rul_s), (metric, rul_s, true_rul_s)

    # the bearing warms with wear: 15 °C over the defect stage, aged at wear_time_scale
    temperature = pump["motor_de_bearing_temperature"]
    wear_c_per_h = model.wear_rise_c / (model.failure_h - model.onset_h) * bearing.wear_time_scale
    slope = temperature["temperature_slope_c_per_h"]
    assert 0.5 * wear_c_per_h <= slope <= 1.5 * wear_c_per_h, (slope, wear_c_per_h)

    # zone C and a remaining life below the horizon: alarms and suggested work orders for the
    # pump; the other machines' temperature watch is off in the demo, so nothing else
    kinds = {(a["rule"], a["metric"]) for a in condition["alarms"]}
    for metric in ("motor_de_velocity_rms", "motor_de_overall_velocity"):
        assert ("pdm.vibration_zone_c", metric) in kinds
        assert ("pdm.remaining_life", metric) in kinds
    assert {a["machine"] for a in condition["alarms"]} == {"pump-01"}
    zone_c = [a for a in condition["alarms"] if a["rule"] == "pdm.vibration_zone_c"]
    assert all(a["value"] >= a["limit"] == cls["b_c"] for a in zone_c), zone_c
    suggested = {(s["machine"], s["kind"]) for s in condition["suggestions"]}
    assert {("pump-01", "vibration_zone"), ("pump-01", "remaining_life")} <= suggested
    assert all(s["machine"] == "pump-01" for s in condition["suggestions"]), suggested
    assert f"{demo_quality.PUMP} motor_de" in demo.stdout


def test_demo_runs_a_short_demo_without_findings_yet(tmp_path: Path) -> None:
    """Half a minute: phase I ends at 10 s at the earliest, the bearing is in zone B or just in C; the
    report has the sections, with what there is."""
    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "forgeline", "demo", "--duration", "30", "--report",
         str(report_file), "--api-port", str(free_port()), "--data-dir", str(tmp_path / "run"),
         "--no-live"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_file.read_text())
    assert report["totals"]["lost"] == 0
    quality = report["quality"]
    assert quality is not None, result.stdout
    limits = quality["limits"]
    if limits is None:  # the baseline had too few samples when the demo stopped
        assert (quality["points"], quality["violations"]) == (0, []), quality
    else:
        assert limits["baseline_to_ms"] - limits["baseline_from_ms"] >= 10_000
        assert all(v["ts_ms"] >= limits["baseline_to_ms"] for v in quality["violations"])
    condition = report["condition"]
    assert condition is not None, result.stdout
    cls = condition["classes"][demo_quality.PUMP_CLASS]
    pump = [
        a for a in condition["assessments"]
        if a["machine_name"] == demo_quality.PUMP and a["signal"] == "vibration"
    ]  # fmt: skip
    assert len(pump) == 2, condition["assessments"]
    for found in pump:
        assert found["zone"] == _zone(found["rms"], cls) in ("B", "C"), found
