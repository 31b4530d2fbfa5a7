"""What the alarm engine reads from the database: machines, series, limits, rules and seeds."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from pydantic import ValidationError
from sqlalchemy import Connection, select

from cloud.alarms.condition import Reading
from cloud.alarms.models import ACTIVE_ACK, ACTIVE_UNACK, Alarm, AlarmLimit, AlarmRuleRow
from cloud.alarms.points import DeviceKey, LimitOverride, MachineInfo, SeriesInfo
from cloud.alarms.rules import AlarmRule
from cloud.assets.models import Area, Line, Machine
from cloud.db import table_of
from cloud.ingest.models import EdgeNode
from cloud.machine_state.models import StateInterval
from cloud.timeseries.models import TsLatest, TsSeries

log = logging.getLogger(__name__)

_machine = table_of(Machine)
_area = table_of(Area)
_line = table_of(Line)
_series = table_of(TsSeries)
_latest = table_of(TsLatest)
_limits = table_of(AlarmLimit)
_rules = table_of(AlarmRuleRow)
_alarm = table_of(Alarm)
_edges = table_of(EdgeNode)
_intervals = table_of(StateInterval)


def load_machines(
    conn: Connection, machine_ids: Collection[int] | None = None
) -> dict[DeviceKey, MachineInfo]:
    """Machines by (edge, device); only ``machine_ids`` when given."""
    query = (
        select(
            _machine.c.id,
            _machine.c.name,
            _machine.c.site_id,
            _area.c.name.label("area"),
            _line.c.name.label("line"),
            _machine.c.edge,
            _machine.c.device,
            _machine.c.profile,
            _machine.c.state_map,
        )
        .outerjoin(_area, _area.c.id == _machine.c.area_id)
        .outerjoin(_line, _line.c.id == _machine.c.line_id)
    )
    if machine_ids is not None:
        query = query.where(_machine.c.id.in_(list(machine_ids)))
    return {
        (r.edge, r.device): MachineInfo(
            int(r.id),
            r.name,
            r.site_id,
            r.area,
            r.line,
            r.edge,
            r.device,
            r.profile,
            dict(r.state_map or {}),
        )
        for r in conn.execute(query)
    }


def load_series(conn: Connection) -> dict[DeviceKey, dict[str, SeriesInfo]]:
    out: dict[DeviceKey, dict[str, SeriesInfo]] = {}
    query = select(
        _series.c.edge, _series.c.device, _series.c.metric, _series.c.role, _series.c.unit,
        _series.c.low_limit, _series.c.high_limit,
    )  # fmt: skip
    for r in conn.execute(query):
        info = SeriesInfo(r.metric, r.role, r.unit, r.low_limit, r.high_limit)
        out.setdefault((r.edge, r.device), {})[r.metric] = info
    return out


def load_overrides(conn: Connection) -> dict[tuple[int, str], LimitOverride]:
    query = select(
        _limits.c.machine_id, _limits.c.metric, _limits.c.low_low, _limits.c.low,
        _limits.c.high, _limits.c.high_high,
    )  # fmt: skip
    return {
        (int(r.machine_id), r.metric): LimitOverride(r.low_low, r.low, r.high, r.high_high)
        for r in conn.execute(query)
    }


def load_stored_rules(conn: Connection) -> dict[str, AlarmRule]:
    """Rules stored through the API; one that no longer validates is logged and skipped."""
    out: dict[str, AlarmRule] = {}
    for name, definition in conn.execute(select(_rules.c.name, _rules.c.definition)):
        try:
            out[name] = AlarmRule.model_validate(definition)
        except ValidationError as error:
            log.error(
                "alarms: stored rule %r is not valid any more and is skipped (%s); fix it with "
                "PUT /api/alarm-rules/%s", name, error, name,
            )  # fmt: skip
    return out


def load_edges_online(conn: Connection) -> dict[str, bool]:
    return {r.edge: bool(r.online) for r in conn.execute(select(_edges.c.edge, _edges.c.online))}


def load_open_states(conn: Connection, machine_ids: Iterable[int]) -> dict[int, Reading]:
    """Each machine's current state interval as a reading (``text`` = state) from its start."""
    ids = sorted(set(machine_ids))
    out: dict[int, Reading] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(_intervals.c.machine_id, _intervals.c.state, _intervals.c.start_ms).where(
            _intervals.c.machine_id.in_(chunk), _intervals.c.end_ms.is_(None)
        )
        for r in conn.execute(query):
            out[int(r.machine_id)] = Reading(int(r.start_ms), None, 0, r.state)
    return out


def load_latest(
    conn: Connection, devices: Iterable[DeviceKey]
) -> dict[tuple[str, str, str], Reading]:
    """The newest sample of every series of ``devices``."""
    wanted = sorted(set(devices))
    out: dict[tuple[str, str, str], Reading] = {}
    for start in range(0, len(wanted), 300):
        chunk = set(wanted[start : start + 300])
        query = (
            select(
                _series.c.edge,
                _series.c.device,
                _series.c.metric,
                _latest.c.ts,
                _latest.c.value,
                _latest.c.quality,
                _latest.c.text_value,
            )
            .join(_latest, _latest.c.series_id == _series.c.id)
            .where(_series.c.edge.in_({e for e, _ in chunk}))
        )
        for r in conn.execute(query):
            if (r.edge, r.device) in chunk:
                out[(r.edge, r.device, r.metric)] = Reading(
                    int(r.ts), r.value, int(r.quality), r.text_value
                )
    return out


def load_active_points(conn: Connection) -> set[str]:
    """Keys of the points whose open alarm is active (acknowledged or not)."""
    query = select(_alarm.c.open_key).where(
        _alarm.c.open_key.is_not(None), _alarm.c.state.in_((ACTIVE_UNACK, ACTIVE_ACK))
    )
    return {str(key) for key in conn.scalars(query)}
