"""SPC end to end: a chart on a simulated press's injection pressure, through real processes.

The press (OPC UA) runs steadily; a quality engineer defines an X̄-R chart through the API,
freezes its limits over a baseline of the live data, and the simulator's ``excursion`` fault
(``forgeline sim fault``) then shifts the pressure: the evaluator records a violation, raises
an ``spc_rule`` alarm, and the chart view, the capability and the parameter chart answer with
numbers checked against the raw series. A cloud started with ``spc_charts_file`` loads the
charts of the file.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from plant_harness import PlantRun

from device_profiles import profile_path
from forgeline.processes import wait_for

pytestmark = [pytest.mark.integration]

METRIC = "injection_pressure"
LSL, USL = 70.0, 95.0  # the profile's limits of the injection pressure, bar
SHIFTED = 93.0  # bar: held by the excursion, inside the specification but far off the centre
SUBGROUP = 5
SCENARIO = """
site: test-plant
step_s: 0.1
lines:
  - name: Line P
    area: Moulding
    machines:
      - device_id: press-01
        profile: {profile}
        seed: 3
        behaviour: {{initial_state: running, p_down: 0, p_setup: 0, p_planned_stop: 0,
                    mean_running_s: 100000, excursions_per_hour: 0, drift: 0}}
"""


def _press_profile(tmp_path: Path) -> Path:
    """The built-in press with no deadband on the injection pressure: every new value is sent."""
    text = profile_path("sole_injection_press").read_text()
    marker = "node: s=Press.InjectionPressure\n    unit: bar\n    deadband: 1.0"
    assert marker in text, "the press profile changed: adapt the test's deadband override"
    path = tmp_path / "press_every_value.yaml"
    path.write_text(text.replace(marker, marker.replace("deadband: 1.0", "deadband: 0.0")))
    return path


def _samples(plant: PlantRun, machine_id: int, start: int, end: int) -> list[tuple[int, float]]:
    raw = plant.get(f"/api/series?machine={machine_id}&metric={METRIC}&start={start}&end={end}")
    return [(s["ts_ms"], s["value"]) for s in raw["samples"] if s["value"] is not None]


def _spc_alarms(plant: PlantRun, chart_id: int) -> list[dict[str, Any]]:
    return [a for a in plant.get("/api/alarms?state=all") if a["point_key"] == f"spc:{chart_id}"]


def test_a_process_shift_fires_a_rule_and_raises_the_chart_alarm(
    plant: PlantRun, tmp_path: Path
) -> None:
    profile = _press_profile(tmp_path)
    plant.start_sim(scenario_text=SCENARIO.format(profile=profile))
    plant.start_cloud()
    plant.start_edge(profiles={"press-01": profile})
    wait_for(lambda: len(plant.get("/api/machines")) == 1, 60, "the press's birth stored")
    [press] = plant.get("/api/machines")

    status, chart = plant.post("/api/spc/charts?by=li.wei", {
        "name": "press-01 injection pressure", "machine": press["name"], "metric": METRIC,
        "chart_type": "xbar_r", "subgroup_size": SUBGROUP, "rules": "nelson",
        "lsl": LSL, "target": 82.5, "usl": USL, "alarm": True, "alarm_priority": "high",
    })  # fmt: skip
    assert status == 201, chart
    assert (chart["machine_id"], chart["limits"], chart["created_by"]) == (
        press["id"],
        None,
        "li.wei",
    )
    charts = f"/api/spc/charts/{chart['id']}"

    # phase I over a baseline of the live data: 20 subgroups of five consecutive samples
    first_ms = time.time_ns() // 1_000_000 - 60_000
    wait_for(lambda: len(_samples(plant, press["id"], first_ms, first_ms + 600_000)) >= 110,
             60, "a baseline of injection pressures stored")  # fmt: skip
    baseline = _samples(plant, press["id"], first_ms, first_ms + 600_000)[:100]
    baseline_from, baseline_to = baseline[0][0], baseline[-1][0] + 1
    status, limits = plant.post(f"{charts}/limits", {
        "baseline_from": baseline_from, "baseline_to": baseline_to, "set_by": "li.wei",
        "note": "steady running after start-up",
    })  # fmt: skip
    assert status == 201, limits
    assert (limits["subgroups_used"], limits["points_used"]) == (20, 100), limits
    means = [statistics.fmean(v for _, v in baseline[i : i + SUBGROUP])
             for i in range(0, 100, SUBGROUP)]  # fmt: skip
    ranges = [max(v for _, v in baseline[i : i + SUBGROUP]) - min(v for _, v in baseline[i : i + SUBGROUP])
              for i in range(0, 100, SUBGROUP)]  # fmt: skip
    a2 = 0.577  # X̄-R chart factor for n = 5
    assert limits["centre"] == pytest.approx(statistics.fmean(means))
    assert limits["ucl"] == pytest.approx(
        statistics.fmean(means) + a2 * statistics.fmean(ranges), rel=1e-3
    )
    assert limits["lcl"] == pytest.approx(
        statistics.fmean(means) - a2 * statistics.fmean(ranges), rel=1e-3
    )
    # a held value changes once: even one shifted sample takes its subgroup's mean past the UCL
    assert limits["centre"] + (SHIFTED - limits["centre"]) / SUBGROUP > limits["ucl"], limits

    # phase II: in-control points first, then the process shifts. (A false alarm before the
    # shift is possible, about 1 % per point for the eight rules: the checks below do not assume
    # there is none.)
    def points(start: int, end: int) -> list[dict[str, Any]]:
        return list(plant.get(f"{charts}?from={start}&to={end}")["view"]["points"])

    wait_for(lambda: len(points(baseline_to, baseline_to + 600_000)) >= 3, 60,
             "three phase II points evaluated")  # fmt: skip
    shifted_at = time.time_ns() // 1_000_000
    answer = plant.sim_fault("press-01", "excursion", "--metric", METRIC,
                             "--value", str(SHIFTED), "--for", "4")  # fmt: skip
    assert "press-01" in answer, answer

    def shift_violations() -> list[dict[str, Any]]:
        found = plant.get(f"{charts}/violations?from={shifted_at}&to={shifted_at + 600_000}")
        return [v for v in found if v["rule"] == "nelson1"]

    wait_for(lambda: bool(shift_violations()), 60, "a nelson1 violation after the shift")
    first = shift_violations()[0]
    assert first["recorded"] is True
    assert first["statistic"] > limits["ucl"], first
    assert first["ts_ms"] <= shifted_at + 5_000, (first, shifted_at)  # the next subgroup or so
    assert any(p["value"] > limits["ucl"] for p in first["points"]), first

    assert first["alarm_id"] is not None, first
    alarm = plant.get(f"/api/alarms/{first['alarm_id']}")
    assert (alarm["point_key"], alarm["kind"], alarm["rule"], alarm["priority"]) == (
        f"spc:{chart['id']}", "spc_rule", "spc.press-01 injection pressure", "high",
    )  # fmt: skip
    assert alarm["machine_id"] == press["id"]
    assert alarm["id"] in {a["id"] for a in _spc_alarms(plant, chart["id"])}
    # the excursion ends after 4 s: the next in-control point returns the alarm to normal
    wait_for(lambda: plant.get(f"/api/alarms/{alarm['id']}")["returned_ms"] is not None, 60,
             "the chart's alarm returned to normal")  # fmt: skip

    # the chart view over phase II: points judged against the frozen limits
    now_ms = time.time_ns() // 1_000_000
    view = plant.get(f"{charts}?from={baseline_to}&to={now_ms}")["view"]
    assert view["source"] == "evaluated", view["source"]
    # each point carries the limits it was judged against: the frozen ones (the point's are
    # centre ± 3σ/√n exactly, the stored row's use the tabulated A2 = 0.577: 0.04 % apart)
    for point in view["points"]:
        assert point["centre"] == limits["centre"], point
        assert (point["lcl"], point["ucl"]) == pytest.approx(
            (limits["lcl"], limits["ucl"]), rel=1e-5
        ), point
        beyond = not point["lcl"] <= point["statistic"] <= point["ucl"]
        assert point["out_of_control"] == beyond == (abs(point["z"]) > 3), point
    assert first["ts_ms"] in {p["ts_ms"] for p in view["points"] if p["out_of_control"]}
    assert (first["rule"], first["ts_ms"]) in {(v["rule"], v["ts_ms"]) for v in view["violations"]}
    before = [p for p in view["points"] if p["ts_ms"] < shifted_at]
    assert len(before) >= 3, view["points"]
    assert sum(p["out_of_control"] for p in before) <= 1, before

    # capability over the baseline: the raw samples' mean and spread; a capable process
    capability = plant.get(f"{charts}/capability?from={baseline_from}&to={baseline_to}")
    values = [v for _, v in baseline]
    assert capability["points_used"] == 100, capability
    assert capability["mean"] == pytest.approx(statistics.fmean(values))
    assert capability["sigma_overall"] == pytest.approx(statistics.stdev(values), rel=1e-6)
    assert capability["sigma_within"] == pytest.approx(statistics.fmean(ranges) / 2.326, rel=1e-3)
    assert capability["cp"] == pytest.approx((USL - LSL) / (6 * capability["sigma_within"]))
    assert 1.33 < capability["cpk"] <= capability["cp"], capability
    assert sum(capability["histogram"]["counts"]) == 100

    # the parameter chart shows the chart's specification and control limits
    series = plant.get(f"/api/charts/series?machine={press['id']}&metric={METRIC}"
                       f"&start={baseline_from}&end={now_ms}")  # fmt: skip
    shown = series["limits"]
    assert (shown["spec_low"], shown["spec_high"]) == (LSL, USL), shown
    assert (shown["control_low"], shown["control_center"], shown["control_high"]) == pytest.approx(
        (limits["lcl"], limits["centre"], limits["ucl"])
    ), shown
    assert shown["spec_and_control_source"], shown


def test_a_cloud_started_with_a_charts_file_loads_its_charts(
    plant: PlantRun, tmp_path: Path
) -> None:
    profile = _press_profile(tmp_path)
    plant.start_sim(scenario_text=SCENARIO.format(profile=profile))
    plant.start_cloud()
    plant.start_edge(profiles={"press-01": profile})
    wait_for(lambda: len(plant.get("/api/machines")) == 1, 60, "the press's birth stored")
    [press] = plant.get("/api/machines")
    assert plant.get("/api/spc/charts") == []
    plant.stop_cloud()  # the file names the machine by name: it must exist when the file loads

    charts_file = tmp_path / "spc-charts.yaml"
    charts_file.write_text(f"""\
charts:
  - name: press-01 nozzle
    machine: "{press["name"]}"
    metric: nozzle_temperature
    chart_type: i_mr
    subgroup_size: 1
    rules: western_electric
    lsl: 180.0
    usl: 190.0
    alarm: true
  - name: press-01 pressure
    machine: "{press["name"]}"
    metric: {METRIC}
    chart_type: xbar_s
    subgroup_size: 4
    lsl: {LSL}
    usl: {USL}
""")
    plant.start_cloud(spc_charts_file=charts_file)
    loaded = {c["name"]: c for c in plant.get("/api/spc/charts")}
    assert set(loaded) == {"press-01 nozzle", "press-01 pressure"}, loaded
    nozzle, pressure = loaded["press-01 nozzle"], loaded["press-01 pressure"]
    assert (nozzle["machine_id"], nozzle["metric"], nozzle["chart_type"]) == (
        press["id"], "nozzle_temperature", "i_mr",
    )  # fmt: skip
    assert nozzle["rules"] == ["we1", "we2", "we3", "we4"], nozzle
    assert (nozzle["lsl"], nozzle["usl"], nozzle["alarm"]) == (180.0, 190.0, True)
    assert (pressure["chart_type"], pressure["subgroup_size"], pressure["alarm"]) == (
        "xbar_s", 4, False,
    )  # fmt: skip
    assert nozzle["created_by"] == f"file:{charts_file.name}", nozzle
    # the loaded chart works like one made through the API: it answers with the live data
    now_ms = time.time_ns() // 1_000_000
    wait_for(lambda: len(_samples(plant, press["id"], now_ms - 600_000, now_ms + 600_000)) > 20,
             30, "the press still reporting")  # fmt: skip
    view = plant.get(
        f"/api/spc/charts/{pressure['id']}?from={now_ms - 600_000}&to={now_ms + 600_000}"
    )
    assert view["view"]["source"] == "samples", view["view"]
    assert view["view"]["points"], view["view"]
