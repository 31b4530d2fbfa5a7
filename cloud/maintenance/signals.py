"""The condition monitor's alarms, raised and returned through ``cloud.alarms.external``.

Each watched metric has points keyed ``pdm:<machine_id>:<metric>:<what>``: ``zone_c``
(medium) and ``zone_d`` (high) for an overall vibration RMS, returned once the zone is back
below them; ``rul`` (high) while the remaining life is below the horizon; ``temperature``
(medium) while a temperature rises at steady load. Every call runs in the caller's transaction,
on the source time of the newest sample assessed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from cloud.alarms.external import SignalPoint, raise_signal, return_signal
from cloud.alarms.models import Alarm
from cloud.db import table_of
from cloud.maintenance.rul import RulEstimate
from cloud.maintenance.temperature import TemperatureTrend
from cloud.maintenance.zones import VibrationClass
from cloud.notify.message import Priority

_alarm = table_of(Alarm)


def point_key(machine_id: int, metric: str, what: str) -> str:
    """The alarm point of one condition of one metric (``zone_c``, ``zone_d``, ``rul``,
    ``temperature``)."""
    return f"pdm:{machine_id}:{metric}:{what}"


def open_alarm_ids(conn: Connection, keys: Sequence[str]) -> dict[str, int]:
    """Point key → id of the alarm open on it, for those of ``keys`` that have one."""
    rows = conn.execute(
        select(_alarm.c.open_key, _alarm.c.id).where(_alarm.c.open_key.in_(list(keys)))
    )
    return {r.open_key: int(r.id) for r in rows}


_ZONE_HELP: dict[str, tuple[Priority, str, str, str]] = {
    "C": (
        "medium",
        "Vibration in zone C: unsatisfactory for long-term continuous operation",
        "Wear, looseness, misalignment or unbalance; bearing wear makes it rise steadily",
        "Plan maintenance at the next opportunity; check the trend and the remaining life",
    ),
    "D": (
        "high",
        "Vibration in zone D: severe enough to damage the machine",
        "Advanced bearing or mechanical damage",
        "Stop the machine as soon as production allows and repair it",
    ),
}


def zone_alarms(
    conn: Connection, machine_id: int, metric: str, unit: str | None, zone: str | None,
    rms: float | None, cls: VibrationClass | None, ts_ms: int, now_ms: int,
) -> None:  # fmt: skip
    """Raise zone C and D while the zone is at or above them, return them when it is below; an
    unknown zone (no class or no value) leaves both points as they are."""
    if zone is None or rms is None or cls is None:
        return  # unknown: leave the points as they are
    for level, boundary in (("C", cls.b_c), ("D", cls.c_d)):
        key = point_key(machine_id, metric, f"zone_{level.lower()}")
        priority, consequence, cause, action = _ZONE_HELP[level]
        if zone >= level:
            point = SignalPoint(
                key=key, rule=f"pdm.vibration_zone_{level.lower()}", kind="vibration_zone",
                priority=priority, machine_id=machine_id, metric=metric, unit=unit, cause=cause,
                consequence=consequence, action=action, roles=("maintenance",),
            )  # fmt: skip
            message = (
                f"{metric} {rms:.2f} {cls.unit}: zone {zone} of {cls.title} "
                f"(zone {level} from {boundary:g} {cls.unit})"
            )
            raise_signal(conn, point, ts_ms=ts_ms, message=message, value=rms, limit=boundary,
                         now_ms=now_ms)  # fmt: skip
        else:
            message = f"{metric} {rms:.2f} {cls.unit}: back in zone {zone} of {cls.title}"
            return_signal(conn, key, ts_ms=ts_ms, message=message, value=rms, now_ms=now_ms)


def rul_alarm(
    conn: Connection, machine_id: int, metric: str, rul: RulEstimate | None, horizon_h: float,
    ts_ms: int, now_ms: int,
) -> bool:  # fmt: skip
    """Raise the remaining-life alarm while the estimate is below ``horizon_h``, else return it.
    Answers whether it is short."""
    key = point_key(machine_id, metric, "rul")
    short = rul is not None and rul.rul_h is not None and rul.rul_h < horizon_h
    if rul is not None and short:
        assert rul.rul_h is not None
        point = SignalPoint(
            key=key, rule="pdm.remaining_life", kind="remaining_life", priority="high",
            machine_id=machine_id, metric=metric, unit="h",
            cause="The vibration trend reaches the zone C/D boundary soon (wear progressing)",
            consequence="Failure expected within the horizon if nothing is done",
            action="Plan the repair before the low bound of the remaining life",
            roles=("maintenance",),
        )  # fmt: skip
        fit = f", {rul.model} fit" if rul.model is not None else ""
        message = (
            f"{metric}: remaining life {hours_text(rul.rul_h)} "
            f"({rul_interval(rul)}{fit}), below the {horizon_h:g} h horizon"
        )
        raise_signal(conn, point, ts_ms=ts_ms, message=message, value=rul.rul_h,
                     limit=horizon_h, now_ms=now_ms)  # fmt: skip
    else:
        message = f"{metric}: remaining life no longer below {horizon_h:g} h ({_rul_text(rul)})"
        value = None if rul is None else rul.rul_h
        return_signal(conn, key, ts_ms=ts_ms, message=message, value=value, now_ms=now_ms)
    return short


def temperature_alarm(
    conn: Connection, machine_id: int, metric: str, unit: str | None,
    trend: TemperatureTrend, ts_ms: int, now_ms: int,
) -> None:  # fmt: skip
    """Raise the temperature alarm while the trend rises at steady load, else return it."""
    key = point_key(machine_id, metric, "temperature")
    slope = trend.slope_c_per_h
    if trend.rising and slope is not None:
        point = SignalPoint(
            key=key, rule="pdm.temperature_trend", kind="temperature_trend", priority="medium",
            machine_id=machine_id, metric=metric, unit=unit,
            cause="Friction or lubrication trouble, a failing fan or cooling, overload",
            consequence="Bearing or winding damage if the temperature keeps rising",
            action="Check lubrication, cooling and load; compare with the vibration trend",
            roles=("maintenance",),
        )  # fmt: skip
        limit_text = (
            f"; {hours_text(trend.hours_to_limit)} to the limit" if trend.hours_to_limit is not None
            else ""
        )  # fmt: skip
        message = f"{metric} rising {slope:.2f} °C/h at steady load{limit_text}"
        raise_signal(conn, point, ts_ms=ts_ms, message=message, value=slope, now_ms=now_ms)
    else:
        message = f"{metric}: no rising trend any more ({trend.reason})"
        return_signal(conn, key, ts_ms=ts_ms, message=message, value=slope, now_ms=now_ms)


def hours_text(hours: float) -> str:
    """A time left for people: ``140 h``, ``45 min``, ``30 s`` (an aged demo bearing has
    seconds)."""
    if hours >= 1.0:
        return f"{hours:.0f} h"
    if hours * 60 >= 1.0:
        return f"{hours * 60:.0f} min"
    return f"{hours * 3600:.0f} s"


def rul_interval(rul: RulEstimate) -> str:
    """The estimate's interval in words, e.g. ``90% interval 140 h-160 h``."""
    low = "?" if rul.low_h is None else hours_text(rul.low_h)
    high = "?" if rul.high_h is None else hours_text(rul.high_h)
    return f"{rul.confidence:.0%} interval {low}-{high}"


def _rul_text(rul: RulEstimate | None) -> str:
    if rul is None:
        return "no estimate"
    if rul.rul_h is None:
        return str(rul.reason)
    return f"{hours_text(rul.rul_h)}, {rul_interval(rul)}"
