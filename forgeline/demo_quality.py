"""The demo's quality and condition story: an SPC chart on press-01, and the pump's bearing.

``QualityStarter`` waits until the demo's cloud has seen ``press-01``, defines an individuals
(I-MR) chart of its barrel zone 1 temperature through ``/api/spc`` (specification = the
profile's engineering limits) and, once the first part of the run is over, freezes the chart's
phase I limits from it; from then on the cloud's evaluator judges every new sample. The
condition monitor needs nothing started: the demo's cloud config names a condition file
(``condition_settings``) that gives ``pump-01`` its vibration class and short look-backs.
``quality_summary`` and ``condition_summary`` read what came of it for the report, and
``condition_line`` is the live view's one line about the monitored machines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from forgeline.demo_production import call_api, wait_for_machine
from protocols.clock import now_ms

log = logging.getLogger(__name__)

MACHINE = "press-01"
METRIC = "barrel_temperature_zone1"
CHART = "press-01 barrel zone 1 (demo)"
PUMP = "pump-01"
PUMP_PROFILE = "pump_drive_monitor"
PUMP_CLASS = "iso10816_1_class1"  # an 11 kW motor: ISO 10816-1 class I (0.71 / 1.8 / 4.5 mm/s)
SPC_ALARM_KINDS = ("spc_rule",)
CONDITION_ALARM_KINDS = ("vibration_zone", "remaining_life", "temperature_trend")
BASELINE_S = 30.0  # phase I: the first this-many seconds of the run (a third of a short run)
MIN_BASELINE_POINTS = 8  # ... extended until it holds at least this many samples
# Report by exception publishes a value only when it moved more than the deadband from the last
# one published, so consecutive samples tend to alternate and to sit away from each other:
# nelson4 (14 alternating) and nelson8 (8 beyond 1 sigma, both sides) would judge the data path,
# not the process. The chart applies the rules that look at location and trend.
SPC_RULES = ["nelson1", "nelson2", "nelson3", "nelson5", "nelson6"]
# A temperature slope at steady load needs hours of data; a demo of minutes cannot tell the
# simulated processes' slow wander (an Ornstein-Uhlenbeck drift of 30 min) from a trend, so only
# the pump's temperature is watched (its bearing heats in seconds: a 20 s span is enough).
_PUMP_TREND_SPAN_H = 20 / 3600


def condition_settings(profiles: Iterable[str]) -> dict[str, Any]:
    """The demo's condition file for a plant of these device profiles: the pump's class and
    temperature watch, windows sized for a run of minutes, no temperature trend elsewhere."""
    quiet = {"temperature": {"enabled": False}}
    return {
        "lookback_h": 1.0,
        "trend_bucket_s": 0,  # every stored window: the demo's bearing ages in seconds
        "zone_windows": 3,
        "baseline_windows": 10,
        "rul_horizon_h": 168,
        "profiles": {
            **{profile: quiet for profile in sorted(set(profiles)) if profile != PUMP_PROFILE},
            PUMP_PROFILE: {
                "vibration_class": PUMP_CLASS,
                "temperature": {
                    "metric": "motor_de_bearing_temperature", "limit_c": 90.0,
                    "load_metric": "motor_load", "load_band_pct": 10, "lookback_h": 1.0,
                    "min_span_h": _PUMP_TREND_SPAN_H,
                },
            }
        },
    }  # fmt: skip


def baseline_s(duration_s: float | None) -> float:
    """How long phase I lasts: ``BASELINE_S``, or a third of a shorter run."""
    return BASELINE_S if duration_s is None else min(BASELINE_S, duration_s / 3)


def _specification() -> tuple[float | None, float | None]:
    """The monitored parameter's engineering limits from press-01's device profile."""
    from device_profiles import profile_path
    from protocols.profile import load_profile

    limits = load_profile(profile_path("sole_injection_press")).tag(METRIC).limits
    return (None, None) if limits is None else (limits.low, limits.high)


def define_chart(api: str, machine_id: int) -> int:
    """The demo's chart (created, or replaced if a reused database has it); its id."""
    lsl, usl = _specification()
    body = {
        "name": CHART, "machine_id": machine_id, "metric": METRIC, "chart_type": "i_mr",
        "rules": SPC_RULES, "lsl": lsl, "usl": usl, "alarm": True, "alarm_priority": "medium",
    }  # fmt: skip
    for chart in call_api(api, "GET", f"/spc/charts?machine_id={machine_id}"):
        if chart["name"] == CHART:
            return int(call_api(api, "PUT", f"/spc/charts/{chart['id']}?by=demo", body)["id"])
    return int(call_api(api, "POST", "/spc/charts?by=demo", body)["id"])


class QualityStarter(threading.Thread):
    """Define the chart when press-01 is seen, and set its phase I limits at ``baseline_to_ms``
    (later if the baseline holds fewer than ``MIN_BASELINE_POINTS`` samples by then: the
    baseline then ends when it has them).

    ``chart_id`` and ``limits`` are the answers (None until then, or on error); ``cancel``
    ends the wait (the demo stops before the baseline is over).
    """

    def __init__(self, api: str, baseline_from_ms: int, baseline_to_ms: int) -> None:
        super().__init__(name="demo-quality", daemon=True)
        self.api = api
        self.baseline_from_ms = baseline_from_ms
        self.baseline_to_ms = baseline_to_ms
        self.chart_id: int | None = None
        self.limits: dict[str, Any] | None = None
        self._stop_waiting = threading.Event()

    def cancel(self) -> None:
        self._stop_waiting.set()

    def run(self) -> None:
        try:
            machine_id = wait_for_machine(self.api, MACHINE, 30.0, self._stop_waiting)
            if machine_id is None:
                log.warning("demo quality: no machine %s seen; no SPC chart defined", MACHINE)
                return
            self.chart_id = define_chart(self.api, machine_id)
            log.info("demo quality: chart %r (id %d) on %s %s; phase I until %d", CHART,
                     self.chart_id, MACHINE, METRIC, self.baseline_to_ms)  # fmt: skip
            baseline_to_ms = self._baseline_end(self.chart_id)
            if baseline_to_ms is None:
                return
            self.limits = call_api(self.api, "POST", f"/spc/charts/{self.chart_id}/limits", {
                "baseline_from": self.baseline_from_ms, "baseline_to": baseline_to_ms,
                "set_by": "demo", "note": "phase I: the first part of the demo run",
            })  # fmt: skip
            log.info("demo quality: phase I limits of %s: centre %.2f, %.2f..%.2f", METRIC,
                     self.limits["centre"], self.limits["lcl"], self.limits["ucl"])  # fmt: skip
        except (OSError, ValueError) as error:  # urllib's HTTPError is an OSError
            log.error("demo quality: could not define the chart or its limits: %s", error)

    def _baseline_end(self, chart_id: int) -> int | None:
        """The end of phase I: ``baseline_to_ms``, or later until the baseline has enough
        samples; None if the demo stops first."""
        baseline_to_ms = self.baseline_to_ms
        while True:
            # the baseline is complete once a sample past its end could have been stored
            wait_s = (baseline_to_ms - now_ms()) / 1000 + 1.0
            if self._stop_waiting.wait(max(wait_s, 0.0)):
                return None
            window = f"from={self.baseline_from_ms}&to={baseline_to_ms}"
            points = call_api(self.api, "GET", f"/spc/charts/{chart_id}?{window}")["view"]["points"]
            if len(points) >= MIN_BASELINE_POINTS:
                return baseline_to_ms
            log.info("demo quality: %d samples of %s in the baseline so far; extending it",
                     len(points), METRIC)  # fmt: skip
            baseline_to_ms = now_ms() + 2000


def _alarms(api: str, kinds: tuple[str, ...], since_ms: int) -> list[dict[str, Any]]:
    return [
        {key: alarm[key] for key in ("id", "rule", "kind", "priority", "machine", "metric",
                                     "value", "limit", "message", "state", "raised_ms")}
        for alarm in call_api(api, "GET", "/alarms?state=all&limit=10000")
        if alarm["kind"] in kinds and alarm["raised_ms"] >= since_ms
    ]  # fmt: skip


def quality_summary(api: str, chart_id: int, started_ms: int) -> dict[str, Any]:
    """The chart's current limits, phase II points and violations, capability over the run."""
    to_ms = now_ms()
    chart = call_api(api, "GET", f"/spc/charts/{chart_id}")
    limits = chart["limits"]
    report: dict[str, Any] = {
        "chart_id": chart_id, "chart": chart["name"], "machine": MACHINE, "metric": METRIC,
        "chart_type": chart["chart_type"], "rules": chart["rules"], "lsl": chart["lsl"],
        "usl": chart["usl"], "limits": None, "points": 0, "out_of_control": 0,
        "violations": [], "capability": None,
        "alarms": _alarms(api, SPC_ALARM_KINDS, started_ms - 60_000),
    }  # fmt: skip
    if limits is not None:
        report["limits"] = {key: limits[key] for key in (
            "centre", "ucl", "lcl", "sigma", "dispersion_centre", "dispersion_ucl",
            "baseline_from_ms", "baseline_to_ms", "subgroups_used", "set_by", "set_ms",
        )}  # fmt: skip
        phase2 = f"from={limits['baseline_to_ms']}&to={to_ms}"
        view = call_api(api, "GET", f"/spc/charts/{chart_id}?{phase2}")["view"]
        points = view["points"] if view["source"] == "evaluated" else []
        report["points"] = len(points)
        report["out_of_control"] = sum(1 for p in points if p["out_of_control"])
        report["violations"] = [
            {"rule": v["rule"], "ts_ms": v["ts_ms"], "statistic": v["statistic"],
             "points": len(v["points"]), "alarm_id": v["alarm_id"]}
            for v in call_api(api, "GET", f"/spc/charts/{chart_id}/violations?{phase2}")
        ]  # fmt: skip
    try:
        found = call_api(
            api, "GET", f"/spc/charts/{chart_id}/capability?from={started_ms}&to={to_ms}"
        )
    except OSError as error:  # 400: too few samples for a capability yet
        log.warning("demo quality: no capability for %s: %s", CHART, error)
    else:
        report["capability"] = {key: found[key] for key in (
            "from_ms", "to_ms", "cp", "cpk", "pp", "ppk", "mean", "sigma_within",
            "sigma_overall", "points_used",
        )}  # fmt: skip
    return report


def _assessment(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in (
        "machine_name", "metric", "signal", "assessed_ms", "data_to_ms", "class_id", "zone",
        "rms", "health", "rul_h", "rul_low_h", "rul_high_h", "model", "points_used",
        "temperature_slope_c_per_h",
    )}  # fmt: skip


def condition_summary(api: str, started_ms: int) -> dict[str, Any]:
    """Every monitored machine's latest assessments, the classes they were judged by, the open
    maintenance suggestions and the condition alarms raised during the run."""
    machines = {m["id"]: m["device"] for m in call_api(api, "GET", "/machines")}
    assessments = [_assessment(a) for a in call_api(api, "GET", "/maintenance/condition")]
    used = {a["class_id"] for a in assessments if a["class_id"] is not None}
    classes = {
        c["id"]: {key: c[key] for key in ("title", "a_b", "b_c", "c_d", "unit")}
        for c in call_api(api, "GET", "/maintenance/vibration-classes")
        if c["id"] in used
    }
    suggestions = [
        {"id": s["id"], "machine": machines.get(s["machine_id"]), "kind": s["kind"],
         "reason": s["reason"], "due_by_ms": s["due_by_ms"], "status": s["status"],
         "created_ms": s["created_ms"]}
        for s in call_api(api, "GET", "/maintenance/suggestions?status=open")
    ]  # fmt: skip
    return {
        "assessments": sorted(assessments, key=lambda a: (a["machine_name"], a["metric"])),
        "classes": classes,
        "suggestions": suggestions,
        "alarms": _alarms(api, CONDITION_ALARM_KINDS, started_ms - 60_000),
    }


def _duration(hours: float) -> str:
    seconds = hours * 3600
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{hours:.0f} h"


def assessment_text(a: dict[str, Any]) -> str:
    """One assessment in a few words: ``pump-01 motor_de_velocity_rms 2.14 mm/s zone C ...``."""
    text = f"{a['machine_name']} {a['metric']} {a['rms']:.2f} mm/s zone {a['zone'] or '?'}"
    if a["health"] is not None:
        text += f" · health {a['health']:.0f}"
    if a["rul_h"] is not None:
        low, high = a["rul_low_h"], a["rul_high_h"]
        interval = (
            f" ({_duration(low)}–{_duration(high) if high is not None else '∞'})"
            if low is not None else ""
        )  # fmt: skip
        text += f" · RUL {_duration(a['rul_h'])}{interval}"
    return text


def condition_line(assessments: list[dict[str, Any]]) -> str:
    """The live view's line: the zone, health and RUL of each classed vibration metric."""
    shown = [
        assessment_text(a)
        for a in sorted(assessments, key=lambda a: (a["machine_name"], a["metric"]))
        if a["signal"] == "vibration" and a["class_id"] is not None and a["rms"] is not None
    ]
    return " | ".join(shown[:2])
