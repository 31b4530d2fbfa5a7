"""Assess one machine's condition from its stored series: zone, health, remaining life, temperature.

``assess_machine(conn, machine_id, now_ms, settings)`` reads, for each overall velocity RMS
metric of the machine (role ``vibration``, name not ending in ``_peak``, ``_crest_factor`` or
``_kurtosis``) and its feature series (``<tag>_peak`` ... beside ``<tag>_rms``):

- **zone**: the mean of the newest ``zone_windows`` good samples, against the machine's
  vibration class (set through the API, else the condition file by machine name, else by
  profile; without one the zone is unknown, health and trend are still assessed);
- **health**: the newest feature values against the machine's own baseline, made from the
  first ``baseline_windows`` good samples of each feature series (None until there are that many);
- **remaining life**: the trend over ``lookback_h`` (mean per ``trend_bucket_s`` bucket) fitted and
  extrapolated to the class's C/D boundary (calendar hours, assuming the machine runs on as it did);

and for each temperature metric (role ``temperature``, or the one configured) its trend at
steady load. Every assessment is stored (``condition_assessment``) once per machine, metric,
signal and newest sample (``data_to_ms``): a pass over data already assessed, by any worker,
keeps the row there is. Alarms go through ``cloud.alarms.external``, in the caller's
transaction, on the source time of the newest sample: zone C (medium) and zone D (high),
returned once the zone is back in A or B; remaining life below ``rul_horizon_h`` (high);
temperature rising (medium). Zone C or D, a short remaining life or a rising temperature also
creates a suggested maintenance work order (one live per machine × kind: a later pass updates
its evidence; its due date only moves earlier).

Series queries: ``readings``; alarms: ``signals``; suggested work orders: ``suggestions``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, select

from cloud.db import dialect_insert, table_of
from cloud.errors import InvalidRequest
from cloud.maintenance.condition_config import ConditionSettings, TemperatureWatch
from cloud.maintenance.health import baseline_of, health_index
from cloud.maintenance.models import (
    SIGNAL_TEMPERATURE,
    SIGNAL_VIBRATION,
    ConditionAssessment,
    MachineVibrationClass,
)
from cloud.maintenance.readings import (
    MachineRow,
    Series,
    feature_metrics,
    first_values,
    has_data,
    held_values,
    machine_row,
    machine_series,
    newest_values,
    overall_rms_metrics,
    temperature_metrics,
    trend_points,
    waveform_tag,
)
from cloud.maintenance.rul import RulEstimate, estimate_rul
from cloud.maintenance.signals import (
    hours_text,
    open_alarm_ids,
    point_key,
    rul_alarm,
    rul_interval,
    temperature_alarm,
    zone_alarms,
)
from cloud.maintenance.suggestions import HOUR_MS, due_after, suggest
from cloud.maintenance.temperature import TemperatureTrend, temperature_trend
from cloud.maintenance.trend import MIN_POINTS, fit_linear
from cloud.maintenance.zones import VibrationClass, load_vibration_classes, zone_of
from cloud.production.parameters import series_url

ZONE_ALARMED = ("C", "D")
# one stored assessment per machine, metric, signal and newest sample (the unique constraint)
ONE_PER_DATA = ("machine_id", "metric", "signal", "data_to_ms")

_class = table_of(MachineVibrationClass)
_assessment = table_of(ConditionAssessment)


@dataclass(frozen=True, slots=True)
class Assessment:
    """One assessment, with the alarms open on its points and its suggestions; ``id`` is its
    stored row (an earlier pass' row when that one saw the same newest sample)."""

    id: int
    machine_id: int
    metric: str
    signal: str  # "vibration" | "temperature"
    assessed_ms: int
    data_to_ms: int | None
    class_id: str | None
    zone: str | None
    rms: float | None
    health: float | None
    rul: RulEstimate | None
    temperature: TemperatureTrend | None
    features: dict[str, float]
    alarm_ids: dict[str, int] = field(default_factory=dict)  # point key -> open alarm id
    suggestion_ids: tuple[int, ...] = ()


def assess_machine(
    conn: Connection,
    machine_id: int,
    now_ms: int,
    settings: ConditionSettings,
    *,
    classes: Mapping[str, VibrationClass] | None = None,
) -> list[Assessment]:
    """Assess every condition metric of one machine that has data, as of ``now_ms`` (store,
    alarm, suggest).

    Runs in the caller's transaction; ``classes`` is the class table (default: loaded from
    ``settings.vibration_classes_file`` or the packaged file).
    """
    machine = machine_row(conn, machine_id)
    if classes is None:
        classes = load_vibration_classes(settings.vibration_classes_file)
    series = machine_series(conn, machine)
    out: list[Assessment] = []
    overall = overall_rms_metrics(series)
    if overall:
        cls, source, problem = vibration_class_of(conn, machine, settings, classes)
        note: dict[str, Any] = {"class_source": source}
        if problem is not None:
            note["class_problem"] = problem
        for metric in overall:
            if has_data(conn, series[metric], now_ms):
                out.append(
                    _assess_vibration(conn, machine, metric, series, cls, note, now_ms, settings)
                )
    watch = settings.temperature_for(machine.name, machine.profile)
    for metric in temperature_metrics(series, watch):
        if has_data(conn, series[metric], now_ms):
            out.append(_assess_temperature(conn, machine, metric, series, watch, now_ms, settings))
    return out


def vibration_class_of(
    conn: Connection,
    machine: MachineRow,
    settings: ConditionSettings,
    classes: Mapping[str, VibrationClass],
) -> tuple[VibrationClass | None, str, str | None]:
    """The machine's class, where it came from (api | config | none), and a problem if any."""
    chosen = conn.execute(
        select(_class.c.class_id).where(_class.c.machine_id == machine.id)
    ).scalar()
    source = "api"
    if chosen is None:
        chosen, source = settings.class_for(machine.name, machine.profile), "config"
    if chosen is None:
        return None, "none", None
    if chosen not in classes:
        return None, source, f"vibration class {chosen!r} is not in the class table"
    return classes[chosen], source, None


def set_vibration_class(
    conn: Connection, machine_id: int, class_id: str, *, set_by: str | None, now_ms: int,
    classes: Mapping[str, VibrationClass],
) -> None:  # fmt: skip
    """Choose the machine's vibration class (it wins over the condition file's defaults)."""
    machine_row(conn, machine_id)
    if class_id not in classes:
        raise InvalidRequest(
            f"class_id: unknown vibration class {class_id!r}; known: {', '.join(sorted(classes))}"
        )
    values = {"class_id": class_id, "set_by": set_by, "set_ms": now_ms}
    stmt = dialect_insert(conn, _class).values(machine_id=machine_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["machine_id"], set_=values))


def _assess_vibration(
    conn: Connection, machine: MachineRow, metric: str, series: Mapping[str, Series],
    cls: VibrationClass | None, class_note: dict[str, Any], now_ms: int,
    settings: ConditionSettings,
) -> Assessment:  # fmt: skip
    overall = series[metric]
    start_ms = now_ms - round(settings.lookback_h * HOUR_MS)
    ts, values = trend_points(conn, overall.id, start_ms, now_ms,
                              round(settings.trend_bucket_s * 1000))  # fmt: skip
    newest = newest_values(conn, overall.id, now_ms, settings.zone_windows)
    data_to_ms = newest[-1][0] if newest else None
    rms = sum(v for _t, v in newest) / len(newest) if newest else None
    zone = zone_of(rms, cls) if cls is not None and rms is not None else None

    features: dict[str, float] = {}
    baseline_samples: dict[str, list[float]] = {}
    feature_trends: dict[str, dict[str, Any]] = {}
    bucket_ms = round(settings.trend_bucket_s * 1000)
    for name, feature_metric in feature_metrics(metric, series).items():
        feature_id = series[feature_metric].id
        last = newest_values(conn, feature_id, now_ms, 1)
        first = first_values(conn, feature_id, now_ms, settings.baseline_windows)
        if last:
            features[name] = last[0][1]
        if len(first) >= settings.baseline_windows:
            baseline_samples[name] = first
        feature_trends[name] = _feature_trend(
            trend_points(conn, feature_id, start_ms, now_ms, bucket_ms),
            features.get(name), baseline_samples.get(name),
        )  # fmt: skip
    health: float | None = None
    health_note = "no baseline yet"
    usable = {name: value for name, value in features.items() if name in baseline_samples}
    if usable:
        baseline = baseline_of({name: baseline_samples[name] for name in usable})
        health = health_index(usable, baseline, vibration_class=cls)
        health_note = f"from {', '.join(sorted(usable))}"
    elif features:
        health_note = f"fewer than {settings.baseline_windows} windows stored: no baseline yet"

    rul: RulEstimate | None = None
    if cls is not None:
        rul = estimate_rul(ts, values, cls.c_d, now_ms=now_ms,
                           confidence=settings.rul_confidence)  # fmt: skip
    ts_ms = data_to_ms if data_to_ms is not None else now_ms
    zone_alarms(conn, machine.id, metric, overall.unit, zone, rms, cls, ts_ms, now_ms)
    rul_short = False
    if cls is not None:
        rul_short = rul_alarm(conn, machine.id, metric, rul, settings.rul_horizon_h, ts_ms,
                               now_ms)  # fmt: skip
    keys = [point_key(machine.id, metric, w) for w in ("zone_c", "zone_d", "rul")]
    alarm_ids = open_alarm_ids(conn, keys)

    trend = {
        "points_used": len(ts), "from_ms": ts[0] if ts else None, "to_ms": ts[-1] if ts else None,
        "bucket_s": settings.trend_bucket_s, "slope_per_h": _slope_per_h(ts, values),
    }  # fmt: skip
    links = {
        "series": series_url(machine.id, metric, start_ms, now_ms),
        "features": {
            name: series_url(machine.id, m, start_ms, now_ms)
            for name, m in feature_metrics(metric, series).items()
        },
    }
    tag = waveform_tag(metric)
    if tag is not None:
        links["waveforms"] = _waveform_url(machine.id, tag, start_ms, now_ms)
    detail: dict[str, Any] = {
        "class": _class_json(cls), **class_note, "zone_windows": len(newest),
        "features": features, "feature_trends": feature_trends, "health": health_note,
        "trend": trend, "rul": _rul_json(rul), "alarm_ids": alarm_ids, "links": links,
    }  # fmt: skip
    row_id = _store(
        conn, machine_id=machine.id, metric=metric, signal=SIGNAL_VIBRATION, assessed_ms=now_ms,
        data_to_ms=data_to_ms, class_id=None if cls is None else cls.id, zone=zone, rms=rms,
        health=health, rul_h=None if rul is None else rul.rul_h,
        rul_low_h=None if rul is None else rul.low_h,
        rul_high_h=None if rul is None else rul.high_h,
        model=None if rul is None else rul.model,
        points_used=len(ts) if rul is None else rul.points_used,
        temperature_metric=None, temperature_slope_c_per_h=None, detail=detail,
    )  # fmt: skip

    evidence = {
        "assessment_id": row_id, "metric": metric, "zone": zone, "rms": rms,
        "class": _class_json(cls), "features": features, "feature_trends": feature_trends,
        "health": health, "trend": trend,
        "rul": _rul_json(rul), "alarm_ids": alarm_ids, "links": links,
        "data_to_ms": data_to_ms,
    }  # fmt: skip
    suggestion_ids: list[int] = []
    unit = cls.unit if cls is not None else (overall.unit or "")
    if zone in ZONE_ALARMED and cls is not None and rms is not None:
        due = now_ms if zone == "D" else due_after(now_ms, None if rul is None else rul.low_h)
        reason = f"{machine.name}: {metric} {rms:.2f} {unit} is in zone {zone} of {cls.title}; " + (
            "stop and repair." if zone == "D" else "plan maintenance."
        )
        due_ms = due
        suggestion_ids.append(suggest(conn, machine.id, "vibration_zone", reason=reason,
                                      evidence=evidence, due_by_ms=due_ms, now_ms=now_ms))  # fmt: skip
    if rul_short and rul is not None and rul.rul_h is not None:
        reason = (
            f"{machine.name}: {metric} is expected to reach zone D ({cls.c_d if cls else '?'} "
            f"{unit}) in {hours_text(rul.rul_h)} ({rul_interval(rul)}); plan the repair."
        )
        due = due_after(now_ms, rul.low_h if rul.low_h is not None else rul.rul_h)
        due_ms = due
        suggestion_ids.append(suggest(conn, machine.id, "remaining_life", reason=reason,
                                      evidence=evidence, due_by_ms=due_ms, now_ms=now_ms))  # fmt: skip
    return Assessment(
        id=row_id, machine_id=machine.id, metric=metric, signal=SIGNAL_VIBRATION,
        assessed_ms=now_ms, data_to_ms=data_to_ms, class_id=None if cls is None else cls.id,
        zone=zone, rms=rms, health=health, rul=rul, temperature=None, features=features,
        alarm_ids=alarm_ids, suggestion_ids=tuple(suggestion_ids),
    )  # fmt: skip


def _assess_temperature(
    conn: Connection, machine: MachineRow, metric: str, series: Mapping[str, Series],
    watch: TemperatureWatch, now_ms: int, settings: ConditionSettings,
) -> Assessment:  # fmt: skip
    temperature = series[metric]
    start_ms = now_ms - round(watch.lookback_h * HOUR_MS)
    ts, values = trend_points(conn, temperature.id, start_ms, now_ms,
                              round(settings.trend_bucket_s * 1000))  # fmt: skip
    load: list[float] | None = None
    load_note: str | None = None
    if watch.load_metric is not None:
        if watch.load_metric not in series:
            load_note = f"load metric {watch.load_metric!r} is not a series of this machine"
        else:
            load = held_values(conn, series[watch.load_metric].id, ts)
            if load is None:
                load_note = f"load metric {watch.load_metric!r} has no value before the window"
    trend = temperature_trend(
        ts, values, load, limit=watch.limit_c, load_band_pct=watch.load_band_pct,
        min_slope_c_per_h=watch.min_slope_c_per_h, confidence=settings.rul_confidence,
        min_span_h=watch.min_span_h,
    )  # fmt: skip
    data_to_ms = ts[-1] if ts else None
    ts_ms = data_to_ms if data_to_ms is not None else now_ms
    temperature_alarm(conn, machine.id, metric, temperature.unit, trend, ts_ms, now_ms)
    alarm_ids = open_alarm_ids(conn, [point_key(machine.id, metric, "temperature")])
    trend_json = {
        "slope_c_per_h": trend.slope_c_per_h, "low": trend.low, "high": trend.high,
        "points_used": trend.points_used, "rising": trend.rising,
        "hours_to_limit": trend.hours_to_limit, "reason": trend.reason,
        "limit_c": watch.limit_c, "load_metric": watch.load_metric, "load_note": load_note,
        "from_ms": ts[0] if ts else None, "to_ms": data_to_ms,
    }  # fmt: skip
    links = {"series": series_url(machine.id, metric, start_ms, now_ms)}
    if watch.load_metric is not None and watch.load_metric in series:
        links["load"] = series_url(machine.id, watch.load_metric, start_ms, now_ms)
    detail = {"temperature": trend_json, "alarm_ids": alarm_ids, "links": links,
              "latest": values[-1] if values else None}  # fmt: skip
    row_id = _store(
        conn, machine_id=machine.id, metric=metric, signal=SIGNAL_TEMPERATURE,
        assessed_ms=now_ms, data_to_ms=data_to_ms, class_id=None, zone=None, rms=None,
        health=None, rul_h=None, rul_low_h=None, rul_high_h=None, model=None,
        points_used=trend.points_used, temperature_metric=metric,
        temperature_slope_c_per_h=trend.slope_c_per_h, detail=detail,
    )  # fmt: skip
    suggestion_ids: list[int] = []
    if trend.rising and trend.slope_c_per_h is not None:
        evidence = {"assessment_id": row_id, "metric": metric, "trend": trend_json,
                    "alarm_ids": alarm_ids, "links": links, "data_to_ms": data_to_ms}  # fmt: skip
        limit_text = (
            f", {hours_text(trend.hours_to_limit)} to the {watch.limit_c:g} °C limit"
            if trend.hours_to_limit is not None and watch.limit_c is not None else ""
        )  # fmt: skip
        reason = (
            f"{machine.name}: {metric} rises {trend.slope_c_per_h:.2f} °C/h at steady load"
            f"{limit_text}; check lubrication, cooling and load."
        )
        due_ms = due_after(ts_ms, trend.hours_to_limit)  # hours from the newest point
        suggestion_ids.append(suggest(conn, machine.id, "temperature_trend", reason=reason,
                                      evidence=evidence, due_by_ms=due_ms, now_ms=now_ms))  # fmt: skip
    return Assessment(
        id=row_id, machine_id=machine.id, metric=metric, signal=SIGNAL_TEMPERATURE,
        assessed_ms=now_ms, data_to_ms=data_to_ms, class_id=None, zone=None, rms=None,
        health=None, rul=None, temperature=trend,
        features={} if not values else {"temperature": values[-1]},
        alarm_ids=alarm_ids, suggestion_ids=tuple(suggestion_ids),
    )  # fmt: skip


def _store(conn: Connection, **values: Any) -> int:
    """Store one assessment; answers its id. When a row for the same machine, metric, signal
    and newest sample is there (an earlier pass, or another worker's), it is kept and its id
    answered."""
    stmt = dialect_insert(conn, _assessment).values(**values)
    stmt = stmt.on_conflict_do_nothing(index_elements=list(ONE_PER_DATA))
    new_id = conn.execute(stmt.returning(_assessment.c.id)).scalar()
    if new_id is not None:
        return int(new_id)
    same = [_assessment.c[name] == values[name] for name in ONE_PER_DATA]
    return int(conn.execute(select(_assessment.c.id).where(*same)).scalar_one())


def _feature_trend(
    points: tuple[list[int], list[float]], latest: float | None, baseline: list[float] | None
) -> dict[str, Any]:
    """One feature's trend over the look-back: slope per hour, and the newest value against the
    median of the machine's baseline windows (``vs_baseline`` 1.0: as when it was new)."""
    ts, values = points
    median = statistics.median(baseline) if baseline else None
    ratio = latest / median if latest is not None and median else None
    return {"slope_per_h": _slope_per_h(ts, values), "points_used": len(ts), "latest": latest,
            "baseline_median": median, "vs_baseline": ratio}  # fmt: skip


def _slope_per_h(ts_ms: Sequence[int], values: Sequence[float]) -> float | None:
    """Least-squares slope of the trend points, per hour (None below 3 points or no time span)."""
    if len(ts_ms) < MIN_POINTS or min(ts_ms) == max(ts_ms):
        return None
    return fit_linear([t / HOUR_MS for t in ts_ms], values).slope


def _rul_json(rul: RulEstimate | None) -> dict[str, Any] | None:
    if rul is None:
        return None
    return {
        "rul_h": rul.rul_h, "low_h": rul.low_h, "high_h": rul.high_h, "model": rul.model,
        "confidence": rul.confidence, "points_used": rul.points_used, "reason": rul.reason,
    }  # fmt: skip


def _class_json(cls: VibrationClass | None) -> dict[str, Any] | None:
    if cls is None:
        return None
    return {"id": cls.id, "title": cls.title, "standard": cls.standard, "a_b": cls.a_b,
            "b_c": cls.b_c, "c_d": cls.c_d, "unit": cls.unit}  # fmt: skip


def _waveform_url(machine_id: int, tag: str, start_ms: int, end_ms: int) -> str:
    query = urlencode({"metric": tag, "from": start_ms, "to": end_ms})
    return f"/api/maintenance/machines/{machine_id}/waveforms?{query}"
