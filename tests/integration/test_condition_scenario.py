"""Condition monitoring end to end: a pump's bearing wears fast, through real processes.

A pump with the ``pump_drive_monitor`` profile (OPC UA) carries a seeded ``bearing:`` model aged
ten running hours per second, so that its overall velocity RMS crosses the B/C boundary of
ISO 20816-3 group 2 rigid (2.8 mm/s) about 25 s after the start and the C/D boundary (4.5 mm/s,
the bearing's failure) about 22 s later. The edge turns every window into features; the cloud's
condition monitor, given the class by the condition file and run every second, raises the zone
C alarm when the model says it should, estimates the remaining life against the model's truth,
and suggests a maintenance work order. Raw windows asked for through the API come back through
the edge and match their stored RMS feature.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from plant_harness import PlantRun

from forgeline.processes import wait_for
from simulators.bearing import BearingModel

pytestmark = [pytest.mark.integration]

TAG = "motor_de_velocity"
RMS = f"{TAG}_rms"
FEATURES = ("rms", "peak", "crest_factor", "kurtosis")
CLASS_ID = "iso20816_3_group2_rigid"  # A/B 1.4, B/C 2.8, C/D 4.5 mm/s
B_C, C_D = 2.8, 4.5
MODEL = BearingModel(seed=7, life_h=1000.0, baseline_rms=1.0, failure_rms=4.5)
WEAR_TIME_SCALE = 36_000.0  # running hours of wear per hour running: 10 h per second
INITIAL_H = 529.0  # the B/C crossing (779.2 h) comes 25 s after the start, C/D (1000 h) 47 s
REFRESH_S = 0.5  # one window every half second: 5 running hours apart
HOURS_PER_S = WEAR_TIME_SCALE / 3600.0
SCENARIO = f"""
site: pump-house
step_s: 0.1
lines:
  - name: Cooling water
    area: Utilities
    machines:
      - device_id: pump-07
        profile: pump_drive_monitor
        seed: 7
        behaviour: {{initial_state: running, p_down: 0, p_setup: 0, p_planned_stop: 0,
                    mean_running_s: 100000, excursions_per_hour: 0}}
        bearing:
          seed: {MODEL.seed}
          life_h: {MODEL.life_h}
          baseline_rms: {MODEL.baseline_rms}
          failure_rms: {MODEL.failure_rms}
          initial_h: {INITIAL_H}
          wear_time_scale: {WEAR_TIME_SCALE}
          window_refresh_s: {REFRESH_S}
"""
# The alarm's time against the model's B/C crossing: the zone is the mean of the newest 3 windows
# (it lags the trend by one window, 0.5 s); each window scatters by 4 % (log sd), which the trend
# climbs in 0.04 / growth rate ≈ 19 running hours ≈ 1.9 s; the alarm carries the time of the
# newest sample of the pass that saw zone C, up to one pass (1 s) after the first one. Seen: +2.0 s
# (the windows are seeded, so the same in every run).
ZONE_EARLY_S, ZONE_LATE_S = 3.0, 4.0
FORWARDED = 8  # raw windows asked for
RUL_ERROR = 0.15  # the estimate's error against the true remaining time, relative (seen: < 1 %)


def _series(
    plant: PlantRun, machine_id: int, metric: str, start: int, end: int
) -> dict[int, float]:
    raw = plant.get(f"/api/series?machine={machine_id}&metric={metric}&start={start}&end={end}")
    return {s["ts_ms"]: s["value"] for s in raw["samples"] if s["value"] is not None}


def _alarms(plant: PlantRun, rule: str) -> list[dict[str, Any]]:
    return [
        a for a in plant.get("/api/alarms?state=all") if a["rule"] == rule and a["metric"] == RMS
    ]


def _window_index(samples: np.ndarray[Any, Any], first: int, last: int) -> tuple[int, float]:
    """Which of the model's windows ``first..last`` the raw ``samples`` are, and the running
    hours they were drawn at (from their RMS and the window's own seeded scatter).

    A window's shape comes from its index's random numbers alone (the wear changes it by a
    negligible amount within an hour), so the right index correlates ~1, every other ~0.
    """
    best, best_correlation = -1, 0.0
    for index in range(first, last + 1):
        nominal_h = INITIAL_H + index * REFRESH_S * HOURS_PER_S
        correlation = float(np.corrcoef(samples, MODEL.window(nominal_h, index))[0, 1])
        if correlation > best_correlation:
            best, best_correlation = index, correlation
    assert best_correlation > 0.999, (best, best_correlation)
    nominal_h = INITIAL_H + best * REFRESH_S * HOURS_PER_S
    model_window = MODEL.window(nominal_h, best)
    scatter = math.sqrt(float(np.mean(np.square(model_window)))) / MODEL.overall_rms(nominal_h)
    trend = math.sqrt(float(np.mean(np.square(samples)))) / scatter
    running_h = MODEL.onset_h + math.log(trend / MODEL.baseline_rms) / MODEL.growth_per_h
    return best, running_h


def test_a_wearing_bearing_goes_to_zone_c_with_alarm_remaining_life_and_work_order(
    plant: PlantRun, tmp_path: Path
) -> None:
    condition_file = tmp_path / "condition.yaml"
    condition_file.write_text(yaml.safe_dump({
        "lookback_h": 1.0, "trend_bucket_s": 1.0, "zone_windows": 3, "baseline_windows": 10,
        "profiles": {"pump_drive_monitor": {"vibration_class": CLASS_ID}},
    }))  # fmt: skip
    started_ms = time.time_ns() // 1_000_000
    plant.start_sim(scenario_text=SCENARIO)
    ready_ms = time.time_ns() // 1_000_000
    plant.start_cloud(condition_file=condition_file, condition_interval_s=1.0)
    plant.start_edge()
    wait_for(lambda: len(plant.get("/api/machines")) == 1, 60, "the pump's birth stored")
    [pump] = plant.get("/api/machines")
    machine = f"/api/maintenance/machines/{pump['id']}"

    # the features arrive, each stamped with its window's source time
    wait_for(lambda: len(_series(plant, pump["id"], f"{TAG}_kurtosis", started_ms,
                                 started_ms + 600_000)) >= 10, 40, "ten windows' features")  # fmt: skip
    features = {f: _series(plant, pump["id"], f"{TAG}_{f}", started_ms, started_ms + 600_000)
                for f in FEATURES}  # fmt: skip
    windows = sorted(features["kurtosis"])  # no deadband: one sample per window
    assert all((b - a) % (REFRESH_S * 1000) in (0, 1, REFRESH_S * 1000 - 1)
               for a, b in itertools.pairwise(windows)), windows  # fmt: skip
    for feature in ("rms", "peak", "crest_factor"):
        assert features[feature], feature
        assert set(features[feature]) <= set(windows), feature
    for ts, rms in features["rms"].items():
        if ts in features["peak"]:
            assert features["crest_factor"][ts] == pytest.approx(
                features["peak"][ts] / rms, rel=1e-5
            )
    assert all(0.0 < k < 30.0 for k in features["kurtosis"].values())

    # raw windows on demand: the edge forwards the next eight, they come back through the API
    # (eight, so that some of their RMS features surely passed the edge's 0.05 mm/s deadband)
    status, answer = plant.post(f"{machine}/waveforms", {"metric": TAG, "windows": FORWARDED})
    assert status == 202, answer
    asked_ms = time.time_ns() // 1_000_000

    def forwarded() -> list[dict[str, Any]]:
        return list(plant.get(f"{machine}/waveforms?metric={TAG}&from={asked_ms - 5_000}"
                              f"&to={asked_ms + 600_000}"))  # fmt: skip

    wait_for(lambda: len(forwarded()) >= FORWARDED, 30, "the raw windows forwarded")
    raw = forwarded()
    assert len(raw) == FORWARDED, [w["ts_ms"] for w in raw]
    assert len({w["ts_ms"] for w in raw}) == FORWARDED, [w["ts_ms"] for w in raw]
    stored = _series(plant, pump["id"], RMS, asked_ms - 60_000, asked_ms + 600_000)
    matched = 0
    epochs = []
    most = int((asked_ms + 10_000 - started_ms) / (REFRESH_S * 1000))
    for window in raw:
        assert window["problem"] is None, window["problem"]
        assert (window["metric"], window["sample_rate_hz"], window["unit"]) == (TAG, 2560.0, "mm/s")
        samples = np.asarray(window["samples"], dtype=np.float32).astype(np.float64)
        assert samples.size == 1024
        window_rms = math.sqrt(float(np.mean(np.square(samples))))
        if window["ts_ms"] in stored:  # the feature passed the deadband: the same window
            assert stored[window["ts_ms"]] == pytest.approx(window_rms, rel=1e-6), window["ts_ms"]
            matched += 1
        # it is the simulator's window of its time: drawn within a step (0.1 s) of its stamp
        index, running_h = _window_index(samples, 0, most)
        nominal_h = INITIAL_H + index * REFRESH_S * HOURS_PER_S
        assert nominal_h - 0.05 <= running_h <= nominal_h + 0.3 * HOURS_PER_S, (index, running_h)
        epochs.append(window["ts_ms"] - index * REFRESH_S * 1000)
    assert matched >= 1, ([w["ts_ms"] for w in raw], sorted(stored)[-10:])
    # the simulator's time zero, from the windows' stamps: the same for all, within its start
    assert max(epochs) - min(epochs) <= 1, epochs
    epoch_ms = float(min(epochs))
    assert started_ms - 1 <= epoch_ms <= ready_ms + 1, (started_ms, epoch_ms, ready_ms)

    def wall_ms(running_h: float) -> float:
        """When the pump reaches ``running_h`` (ms): it runs from the simulator's time zero."""
        return epoch_ms + (running_h - INITIAL_H) / HOURS_PER_S * 1000

    # every feature sample carries its window's source time: time zero + index × refresh
    for ts in windows:
        assert round(ts - epoch_ms) % round(REFRESH_S * 1000) in (0, 1, 499), (ts, epoch_ms)

    # every stored window's RMS follows the model's trend (4 % scatter per window)
    for ts, rms in features["rms"].items():
        trend = MODEL.overall_rms(INITIAL_H + (ts - epoch_ms) / 1000 * HOURS_PER_S)
        assert rms == pytest.approx(trend, rel=0.2), (ts, rms, trend)

    # zone C: the alarm comes when the model's trend crosses B/C
    crossing_ms = wall_ms(MODEL.crossing_h(B_C))
    wait_for(lambda: bool(_alarms(plant, "pdm.vibration_zone_c")), 60, "the zone C alarm raised")
    zone_c = min(_alarms(plant, "pdm.vibration_zone_c"), key=lambda a: a["raised_ms"])
    assert (zone_c["kind"], zone_c["priority"], zone_c["machine_id"]) == (
        "vibration_zone", "medium", pump["id"],
    )  # fmt: skip
    lag_s = (zone_c["raised_ms"] - crossing_ms) / 1000
    assert -ZONE_EARLY_S <= lag_s <= ZONE_LATE_S, lag_s

    # a remaining-life estimate with its interval; the model's true remaining time inside the error
    def vibration_assessments() -> list[dict[str, Any]]:
        history = plant.get(f"{machine}/condition?limit=10000")
        return [a for a in history["assessments"] if a["metric"] == RMS and a["rul_h"] is not None]

    wait_for(lambda: any(a["zone"] == "C" for a in vibration_assessments()), 30,
             "a zone C assessment with a remaining life")  # fmt: skip
    estimate = next(a for a in vibration_assessments() if a["zone"] == "C")
    assert estimate["class_id"] == CLASS_ID
    assert estimate["model"] == "exponential", estimate
    assert 0.0 < estimate["health"] < 100.0, estimate  # the first 10 windows are its baseline
    assert estimate["rul_low_h"] <= estimate["rul_h"], estimate
    assert estimate["rul_high_h"] is None or estimate["rul_h"] <= estimate["rul_high_h"], estimate
    at_ms = estimate["assessed_ms"]
    true_h = (wall_ms(MODEL.crossing_h(C_D)) - at_ms) / 3_600_000
    assert true_h > 0, estimate
    assert abs(estimate["rul_h"] - true_h) <= RUL_ERROR * true_h, (estimate, true_h)

    # the remaining life is far inside the 168 h horizon: its alarm and the suggested work orders
    wait_for(lambda: bool(_alarms(plant, "pdm.remaining_life")), 30, "the remaining-life alarm")
    suggestions = {
        s["kind"]: s for s in plant.get(f"/api/maintenance/suggestions?machine_id={pump['id']}")
    }
    assert {"vibration_zone", "remaining_life"} <= set(suggestions), suggestions
    zone_order = plant.get(f"/api/maintenance/suggestions/{suggestions['vibration_zone']['id']}")
    assert zone_order["status"] == "open"
    evidence = zone_order["evidence"]
    assert evidence["metric"] == RMS
    assert evidence["zone"] in ("C", "D")
    assert evidence["rms"] >= B_C * 0.9, evidence
    assert (evidence["class"]["b_c"], evidence["class"]["c_d"]) == (B_C, C_D), evidence["class"]
    assert set(FEATURES) <= {name.removeprefix(f"{TAG}_") for name in evidence["features"]}, (
        evidence
    )
    assert evidence["rul"]["rul_h"] is not None, evidence["rul"]
    assert evidence["alarm_ids"], evidence
    zone_alarm_ids = {a["id"] for a in _alarms(plant, "pdm.vibration_zone_c")}
    assert zone_alarm_ids & set(evidence["alarm_ids"].values()), evidence["alarm_ids"]
    assert "waveforms" in evidence["links"], evidence["links"]
    assert zone_order["due_by_ms"] is not None
