"""Machine-state intervals in the database: recompute after new (possibly late) state samples.

A machine's state comes from its state tag (through the state map) or, for machines without
one, from its profile's state rules evaluated over the tags they name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import Connection, delete, select, update

from cloud.db import table_of
from cloud.machine_state.derive import Interval, Reading, derive_intervals
from cloud.machine_state.models import StateInterval
from cloud.machine_state.rules import compile_rules, rule_readings, rule_state_map
from cloud.timeseries.models import ts_sample

_si = table_of(StateInterval)


def _readings(conn: Connection, series_id: int, from_ms: int | None) -> list[Reading]:
    query = select(ts_sample.c.ts, ts_sample.c.value, ts_sample.c.quality, ts_sample.c.text_value)
    query = query.where(ts_sample.c.series_id == series_id)
    if from_ms is not None:
        query = query.where(ts_sample.c.ts >= from_ms)
    return [Reading(r[0], r[1], r[2], r[3]) for r in conn.execute(query.order_by(ts_sample.c.ts))]


def _faults(conn: Connection, series_id: int | None, from_ms: int | None) -> list[Reading]:
    """A series' readings from ``from_ms`` on, led by the one that held at ``from_ms``."""
    if series_id is None:
        return []
    out = _readings(conn, series_id, from_ms)
    if from_ms is not None:
        before = conn.execute(
            select(ts_sample.c.ts, ts_sample.c.value, ts_sample.c.quality, ts_sample.c.text_value)
            .where(ts_sample.c.series_id == series_id, ts_sample.c.ts < from_ms)
            .order_by(ts_sample.c.ts.desc())
            .limit(1)
        ).first()
        if before is not None:
            out.insert(0, Reading(before[0], before[1], before[2], before[3]))
    return out


def recompute_states(
    conn: Connection,
    machine_id: int,
    state_series_id: int,
    state_map: Mapping[str, str],
    since_ms: int | None = None,
    fault_series_id: int | None = None,
) -> int:
    """Rebuild a machine's intervals from the interval holding ``since_ms`` onwards (all if None).

    Late samples are handled by choosing ``since_ms`` = the earliest new sample's time: every
    interval from the one that held at that time is deleted and derived again from the samples.
    Returns the number of intervals written.
    """

    def derive(from_ms: int | None) -> list[Interval]:
        return derive_intervals(
            _readings(conn, state_series_id, from_ms),
            state_map,
            _faults(conn, fault_series_id, from_ms),
        )

    return _rewrite(conn, machine_id, since_ms, derive)


def recompute_states_from_rules(
    conn: Connection,
    machine_id: int,
    rules: Sequence[Mapping[str, str | None]],
    series_by_metric: Mapping[str, int],
    since_ms: int | None = None,
    fault_series_id: int | None = None,
) -> int:
    """``recompute_states`` for a machine whose state comes from its profile's ``state_rules``."""
    compiled = compile_rules(rules)
    metrics = sorted(set().union(*(rule.names for rule in compiled)))

    def derive(from_ms: int | None) -> list[Interval]:
        held = {metric: _faults(conn, series_by_metric.get(metric), from_ms) for metric in metrics}
        return derive_intervals(
            rule_readings(held, compiled, from_ms),
            rule_state_map(compiled),
            _faults(conn, fault_series_id, from_ms),
        )

    return _rewrite(conn, machine_id, since_ms, derive)


def _rewrite(
    conn: Connection,
    machine_id: int,
    since_ms: int | None,
    derive: Callable[[int | None], list[Interval]],
) -> int:
    """Delete the intervals from the one holding ``since_ms`` on, and write ``derive``'s anew."""
    from_ms: int | None = None
    if since_ms is not None:
        anchor = conn.execute(
            select(_si.c.start_ms)
            .where(_si.c.machine_id == machine_id, _si.c.start_ms <= since_ms)
            .order_by(_si.c.start_ms.desc())
            .limit(1)
        ).scalar()
        from_ms = since_ms if anchor is None else int(anchor)
    previous = None
    if from_ms is not None:
        previous = conn.execute(
            select(_si.c.id, _si.c.state, _si.c.raw_code, _si.c.fault_code)
            .where(_si.c.machine_id == machine_id, _si.c.start_ms < from_ms)
            .order_by(_si.c.start_ms.desc())
            .limit(1)
        ).first()
    removal = delete(_si).where(_si.c.machine_id == machine_id)
    if from_ms is not None:
        removal = removal.where(_si.c.start_ms >= from_ms)
    conn.execute(removal)

    intervals = derive(from_ms)
    if previous is not None:
        if (
            intervals
            and (previous.state, previous.raw_code, previous.fault_code) == intervals[0].key
        ):
            end_ms = intervals[0].end_ms
            intervals = intervals[1:]
        else:
            end_ms = intervals[0].start_ms if intervals else None
        conn.execute(update(_si).where(_si.c.id == previous.id).values(end_ms=end_ms))
    if intervals:
        conn.execute(
            _si.insert(),
            [
                {
                    "machine_id": machine_id, "state": i.state, "raw_code": i.raw_code,
                    "fault_code": i.fault_code, "start_ms": i.start_ms, "end_ms": i.end_ms,
                }
                for i in intervals
            ],
        )  # fmt: skip
    return len(intervals)
