"""What the condition monitor reads from the time-series store: which of a machine's metrics are
watched, and their good samples (newest, first, held at given times, or bucketed as trend points).

A machine's series are found by its edge and device. Overall velocity RMS metrics are the
role-``vibration`` series whose name does not end in ``_peak``, ``_crest_factor`` or
``_kurtosis``; ``<tag>_rms`` has its features (``<tag>_peak`` ...) beside it. Temperature
metrics are the configured one, else every role-``temperature`` series. Only good samples
(quality 0, a value) are ever read.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from cloud.assets.models import Machine
from cloud.db import table_of
from cloud.errors import NotFound
from cloud.maintenance.condition_config import TemperatureWatch
from cloud.timeseries.models import TsSeries
from protocols.profile import WAVEFORM_FEATURES

FEATURE_SUFFIXES: tuple[str, ...] = WAVEFORM_FEATURES
_NOT_OVERALL = tuple(f"_{suffix}" for suffix in FEATURE_SUFFIXES if suffix != "rms")

_machine = table_of(Machine)
_series = table_of(TsSeries)


@dataclass(frozen=True, slots=True)
class MachineRow:
    """The machine columns the condition monitor needs."""

    id: int
    name: str
    edge: str
    device: str
    profile: str | None


@dataclass(frozen=True, slots=True)
class Series:
    """One time series of a machine."""

    id: int
    metric: str
    role: str
    unit: str | None


def machine_row(conn: Connection, machine_id: int) -> MachineRow:
    """The machine, or NotFound."""
    row = conn.execute(
        select(_machine.c.id, _machine.c.name, _machine.c.edge, _machine.c.device,
               _machine.c.profile).where(_machine.c.id == machine_id)
    ).first()  # fmt: skip
    if row is None:
        raise NotFound(f"machine {machine_id} does not exist")
    return MachineRow(int(row.id), row.name, row.edge, row.device, row.profile)


def machine_series(conn: Connection, machine: Any) -> dict[str, Series]:
    """The machine's series by metric name (any role)."""
    rows = conn.execute(
        select(_series.c.id, _series.c.metric, _series.c.role, _series.c.unit).where(
            _series.c.edge == machine.edge, _series.c.device == machine.device
        )
    )
    return {r.metric: Series(int(r.id), r.metric, r.role, r.unit) for r in rows}


def monitored_machine_ids(conn: Connection) -> list[int]:
    """Machines that have at least one vibration or temperature series."""
    query = (
        select(_machine.c.id)
        .where(
            select(_series.c.id)
            .where(
                _series.c.edge == _machine.c.edge,
                _series.c.device == _machine.c.device,
                _series.c.role.in_(bindparam("roles", expanding=True)),
            )
            .exists()
        )
        .order_by(_machine.c.id)
    )
    rows = conn.execute(query, {"roles": ["vibration", "temperature"]})
    return [int(r.id) for r in rows]


def overall_rms_metrics(series: Mapping[str, Series]) -> list[str]:
    """The overall velocity RMS metrics among role-"vibration" series (features excluded)."""
    return sorted(
        name for name, s in series.items()
        if s.role == "vibration" and not name.endswith(_NOT_OVERALL)
    )  # fmt: skip


def feature_metrics(overall: str, series: Mapping[str, Series]) -> dict[str, str]:
    """Feature name → metric for one overall RMS metric: ``<tag>_rms`` has its siblings."""
    if not overall.endswith("_rms"):
        return {"rms": overall}
    tag = overall.removesuffix("_rms")
    return {suffix: f"{tag}_{suffix}" for suffix in FEATURE_SUFFIXES if f"{tag}_{suffix}" in series}


def waveform_tag(overall: str) -> str | None:
    """The waveform tag behind a ``<tag>_rms`` feature metric (a plain RMS tag has none)."""
    return overall.removesuffix("_rms") if overall.endswith("_rms") else None


def temperature_metrics(series: Mapping[str, Series], watch: TemperatureWatch) -> list[str]:
    """The temperature metrics to watch: the configured one, else every role-temperature one
    (none when the watch is switched off)."""
    if not watch.enabled:
        return []
    if watch.metric is not None:
        return [watch.metric] if watch.metric in series else []
    return sorted(name for name, s in series.items() if s.role == "temperature")


# Good samples of one series in (start, end]: raw, or the mean per bucket at its newest time.
_RAW = text(
    "SELECT ts, value FROM ts_sample WHERE series_id = :s AND ts > :start AND ts <= :end "
    "AND quality = 0 AND value IS NOT NULL ORDER BY ts"
)
_BUCKETED = text(
    "SELECT max(ts) AS ts, avg(value) AS value FROM ts_sample WHERE series_id = :s "
    "AND ts > :start AND ts <= :end AND quality = 0 AND value IS NOT NULL "
    "GROUP BY (ts - CAST(:start AS BIGINT)) / CAST(:bucket AS BIGINT) ORDER BY 1"
)


def trend_points(
    conn: Connection, series_id: int, start_ms: int, end_ms: int, bucket_ms: int
) -> tuple[list[int], list[float]]:
    """Good samples in ``(start_ms, end_ms]``: raw, or the mean per bucket (at its newest time)."""
    query = _BUCKETED if bucket_ms > 0 else _RAW
    params = {"s": series_id, "start": start_ms, "end": end_ms, "bucket": bucket_ms}
    rows = conn.execute(query, params).all()
    return [int(r.ts) for r in rows], [float(r.value) for r in rows]


def newest_values(
    conn: Connection, series_id: int, end_ms: int, count: int
) -> list[tuple[int, float]]:
    """The newest ``count`` good samples at or before ``end_ms``, oldest first."""
    rows = conn.execute(
        text(
            "SELECT ts, value FROM ts_sample WHERE series_id = :s AND ts <= :end AND quality = 0 "
            "AND value IS NOT NULL ORDER BY ts DESC LIMIT :n"
        ),
        {"s": series_id, "end": end_ms, "n": count},
    ).all()
    return [(int(r.ts), float(r.value)) for r in reversed(rows)]


def first_values(conn: Connection, series_id: int, end_ms: int, count: int) -> list[float]:
    """The first ``count`` good samples of a series (at or before ``end_ms``)."""
    rows = conn.execute(
        text(
            "SELECT value FROM ts_sample WHERE series_id = :s AND ts <= :end AND quality = 0 "
            "AND value IS NOT NULL ORDER BY ts LIMIT :n"
        ),
        {"s": series_id, "end": end_ms, "n": count},
    ).all()
    return [float(r.value) for r in rows]


def held_values(conn: Connection, series_id: int, at_ms: Sequence[int]) -> list[float] | None:
    """The value of a series in effect at each time of ``at_ms`` (ascending); None if it has
    no good sample at or before the first time."""
    if not at_ms:
        return []
    rows = conn.execute(
        text(
            "SELECT ts, value FROM ts_sample WHERE series_id = :s AND quality = 0 "
            "AND value IS NOT NULL AND ts <= :end AND ts >= COALESCE((SELECT max(p.ts) "
            "FROM ts_sample p WHERE p.series_id = :s AND p.ts <= :start AND p.quality = 0 "
            "AND p.value IS NOT NULL), :start) ORDER BY ts"
        ),
        {"s": series_id, "start": at_ms[0], "end": at_ms[-1]},
    ).all()
    times = [int(r.ts) for r in rows]
    if not times or times[0] > at_ms[0]:
        return None
    return [float(rows[bisect.bisect_right(times, t) - 1].value) for t in at_ms]


def has_data(conn: Connection, series: Series, now_ms: int) -> bool:
    """A series with no good sample yet (e.g. a waveform tag in the birth, whose windows
    arrive as features) is not assessed."""
    return bool(newest_values(conn, series.id, now_ms, 1))
