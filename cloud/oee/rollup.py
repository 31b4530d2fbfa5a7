"""Roll-ups: each machine's time elements and quantities per hour and per shift instance.

Rows are upserted (``INSERT ... ON CONFLICT (machine_id, period_kind, period_start_ms) DO
UPDATE``), so two workers, or two runs over the same periods, never double count: the last
writer's figures stand, and they are the same figures. ``roll_up`` computes whole periods that
ended by ``now``; ``RollupScheduler`` (APScheduler 3.x ``BackgroundScheduler``) runs
``roll_up_recent`` every ``rollup_interval_s``, which re-does the periods of the last
``rollup_lookback_s`` so late data and stops that were still growing are corrected. Live
figures for a current shift are never taken from roll-ups; windows longer than a few hours are
summed from hourly rows plus live computation of the partial hours at both ends.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, Engine, bindparam, func, select

from cloud.db import dialect_insert, table_of, writer_engine
from cloud.oee.calendar import planned_windows
from cloud.oee.compute import PreparedMachine, window_totals
from cloud.oee.kpi import Kpis, Quantities, Totals, compute_kpis
from cloud.oee.loader import MachineInfo, load_machines, prepare
from cloud.oee.models import OeeRollup
from cloud.oee.settings import OeeSettings
from cloud.oee.timemodel import TimeElements
from protocols.clock import now_ms

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
KIND_HOUR = "hour"
KIND_SHIFT = "shift"
KINDS = (KIND_HOUR, KIND_SHIFT)
MACHINES_PER_CHUNK = 50
ROWS_PER_STATEMENT = 500
LONGEST_WINDOW_MS = 2 * 86_400_000
"""No shift or overtime window is longer than this (used to find a period's windows)."""

_rollup = table_of(OeeRollup)
_ELEMENT_COLUMNS = (
    "pot_ms", "pdot_ms", "apt_ms", "aust_ms", "adet_ms", "adot_ms", "unkt_ms", "micro_stop_ms",
    "micro_stops", "failure_events",
)  # fmt: skip
_QUANTITY_COLUMNS = ("produced", "good", "scrap", "startup_scrap")
_IDEAL_COLUMNS = ("ideal_produced_s", "ideal_good_s", "ideal_startup_scrap_s")


def floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS


def ceil_hour(ms: int) -> int:
    return floor_hour(ms + HOUR_MS - 1)


@dataclass(frozen=True, slots=True)
class Period:
    kind: str
    start_ms: int
    end_ms: int
    shift_name: str | None = None
    local_date: str | None = None


def hour_periods(from_ms: int, to_ms: int) -> list[Period]:
    """Whole UTC hours inside ``[from_ms, to_ms)``."""
    return [
        Period(KIND_HOUR, h, h + HOUR_MS)
        for h in range(ceil_hour(from_ms), floor_hour(to_ms) - HOUR_MS + 1, HOUR_MS)
    ]


def shift_periods(machine: MachineInfo, from_ms: int, to_ms: int) -> list[Period]:
    """Shift instances of the machine's calendar that ended in ``(from_ms, to_ms]``."""
    return [
        Period(KIND_SHIFT, w.start_ms, w.end_ms, w.shift, w.local_date.isoformat())
        for w in planned_windows(machine.calendar, from_ms, to_ms)
        if from_ms < w.end_ms <= to_ms
    ]


def totals_row(totals: Totals) -> dict[str, Any]:
    """The roll-up columns of ``totals``."""
    e, q = totals.elements, totals.quantities
    row: dict[str, Any] = {name: getattr(e, name) for name in _ELEMENT_COLUMNS}
    row |= {name: getattr(q, name) for name in _QUANTITY_COLUMNS}
    row |= {name: getattr(totals, name) for name in _IDEAL_COLUMNS}
    return row


def row_totals(row: Any, machines: int = 1) -> Totals:
    """``Totals`` from a roll-up row (or a row of sums with the same column names)."""
    return _totals(row._mapping, machines)


def _totals(m: Any, machines: int) -> Totals:
    return Totals(
        TimeElements(*(int(m[name] or 0) for name in _ELEMENT_COLUMNS)),
        Quantities(*(m[name] for name in _QUANTITY_COLUMNS)),
        ideal_produced_s=m["ideal_produced_s"],
        ideal_good_s=m["ideal_good_s"],
        ideal_startup_scrap_s=m["ideal_startup_scrap_s"],
        machines=machines,
    )


def period_rows(
    prepared: PreparedMachine, periods: Iterable[Period], computed_ms: int, settings: OeeSettings
) -> list[dict[str, Any]]:
    periods = list(periods)
    if not periods:
        return []
    # the calendar's windows over all periods once; each period picks its own by bisection
    windows = planned_windows(
        prepared.params.calendar,
        min(p.start_ms for p in periods),
        max(p.end_ms for p in periods),
    )
    starts = [w.start_ms for w in windows]
    out = []
    for period in periods:
        first = bisect.bisect_left(starts, period.start_ms - LONGEST_WINDOW_MS)
        last = bisect.bisect_left(starts, period.end_ms)
        overlapping = [w for w in windows[first:last] if w.end_ms > period.start_ms]
        result = window_totals(
            prepared,
            period.start_ms,
            period.end_ms,
            reduced_yield_ms=settings.startup_scrap_window_ms,
            windows=overlapping,
        )
        out.append(
            {
                "machine_id": prepared.params.machine_id, "period_kind": period.kind,
                "period_start_ms": period.start_ms, "period_end_ms": period.end_ms,
                "shift_name": period.shift_name, "local_date": period.local_date,
                "computed_ms": computed_ms, **totals_row(result.totals),
            }
        )  # fmt: skip
    return out


def upsert_rollups(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or overwrite roll-up rows (in key order, so concurrent writers never deadlock)."""
    if not rows:
        return
    ordered = sorted(rows, key=lambda r: (r["machine_id"], r["period_kind"], r["period_start_ms"]))
    stmt = dialect_insert(conn, _rollup)
    keys = ("machine_id", "period_kind", "period_start_ms")
    update = {c.name: stmt.excluded[c.name] for c in _rollup.columns if c.name not in keys}
    upsert = stmt.on_conflict_do_update(index_elements=list(keys), set_=update)
    for i in range(0, len(ordered), ROWS_PER_STATEMENT):
        conn.execute(upsert, ordered[i : i + ROWS_PER_STATEMENT])


def roll_up(
    engine: Engine,
    settings: OeeSettings,
    from_ms: int,
    to_ms: int,
    now_ms: int,
    *,
    machine_ids: Iterable[int] | None = None,
    kinds: Sequence[str] = KINDS,
) -> int:
    """Compute and upsert the whole periods ending in ``(from_ms, min(to_ms, now_ms)]``.

    Returns the number of rows written. Machines go in chunks, one transaction each.
    """
    to_ms = min(to_ms, now_ms)
    with engine.connect() as conn:
        machines = load_machines(conn, settings, machine_ids=machine_ids)
    written = 0
    for i in range(0, len(machines), MACHINES_PER_CHUNK):
        chunk = machines[i : i + MACHINES_PER_CHUNK]
        periods = {
            m.id: [
                *(hour_periods(from_ms, to_ms) if KIND_HOUR in kinds else []),
                *(shift_periods(m, from_ms, to_ms) if KIND_SHIFT in kinds else []),
            ]
            for m in chunk
        }
        starts = [p.start_ms for ps in periods.values() for p in ps]
        if not starts:
            continue
        lo, hi = min(starts), max(p.end_ms for ps in periods.values() for p in ps)
        with engine.connect() as conn:
            prepared = prepare(conn, chunk, lo, hi, now_ms, settings)
        rows = [
            row
            for m in chunk
            for row in period_rows(prepared[m.id], periods[m.id], now_ms, settings)
        ]
        with writer_engine(engine).begin() as conn:
            upsert_rollups(conn, rows)
        written += len(rows)
    return written


def roll_up_recent(engine: Engine, settings: OeeSettings, now_ms: int) -> int:
    """Re-do every period that ended within the look-back (late data, stops still growing)."""
    return roll_up(engine, settings, now_ms - settings.rollup_lookback_ms, now_ms, now_ms)


def hourly_sums(
    conn: Connection, machine_ids: Sequence[int], from_ms: int, to_ms: int
) -> dict[int, tuple[int, Totals]]:
    """Per machine: how many hourly rows start in ``[from_ms, to_ms)``, and their sum.

    A quantity is None in the sum when any row has it None (unknown stays unknown).
    """
    if not machine_ids:
        return {}
    c = _rollup.c
    sums = [func.sum(c[name]).label(name) for name in (*_ELEMENT_COLUMNS, *_IDEAL_COLUMNS)]
    sums += [func.sum(c[name]).label(name) for name in _QUANTITY_COLUMNS]
    known = [
        func.count(c[name]).label(f"n_{name}") for name in (*_QUANTITY_COLUMNS, *_IDEAL_COLUMNS)
    ]
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
    query = (
        select(c.machine_id, func.count().label("n"), *sums, *known)
        .where(
            c.machine_id.in_(ids),
            c.period_kind == KIND_HOUR,
            c.period_start_ms >= from_ms,
            c.period_start_ms < to_ms,
        )
        .group_by(c.machine_id)
    )
    out = {}
    for row in conn.execute(query, {"ids": list(machine_ids)}):
        m = dict(row._mapping)
        for name in (*_QUANTITY_COLUMNS, *_IDEAL_COLUMNS):
            if m[f"n_{name}"] < m["n"]:
                m[name] = None
            elif m[name] is not None:
                m[name] = float(m[name])
        totals = _totals(m, 1)
        out[int(m["machine_id"])] = (int(m["n"]), totals)
    return out


@dataclass(frozen=True, slots=True)
class StoredRollup:
    machine_id: int
    period_kind: str
    period_start_ms: int
    period_end_ms: int
    shift_name: str | None
    local_date: str | None
    computed_ms: int
    totals: Totals

    @property
    def kpis(self) -> Kpis:
        return compute_kpis(self.totals)


def list_rollups(
    conn: Connection, machine_id: int, kind: str, from_ms: int, to_ms: int
) -> list[StoredRollup]:
    """Stored roll-ups of one machine whose period starts in ``[from_ms, to_ms)``."""
    c = _rollup.c
    rows = conn.execute(
        select(_rollup)
        .where(
            c.machine_id == machine_id,
            c.period_kind == kind,
            c.period_start_ms >= from_ms,
            c.period_start_ms < to_ms,
        )
        .order_by(c.period_start_ms)
    )
    return [
        StoredRollup(
            r.machine_id, r.period_kind, r.period_start_ms, r.period_end_ms, r.shift_name,
            r.local_date, r.computed_ms, row_totals(r),
        )
        for r in rows
    ]  # fmt: skip


class RollupScheduler:
    """Runs ``roll_up_recent`` every ``settings.rollup_interval_s`` in a background thread."""

    def __init__(
        self, engine: Engine, settings: OeeSettings, clock: Callable[[], int] = now_ms
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._scheduler: Any = None
        self.runs = 0
        self.failures = 0

    def run_once(self) -> int:
        """One roll-up pass now (what the job does); errors are logged and counted, not raised."""
        try:
            written = roll_up_recent(self._engine, self._settings, self._clock())
        except Exception:  # a failed pass is retried by the next one
            self.failures += 1
            log.exception(
                "OEE roll-up failed; the next run (in %s s) retries",
                self._settings.rollup_interval_s,
            )
            return 0
        self.runs += 1
        return written

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self.run_once,
            "interval",
            seconds=self._settings.rollup_interval_s,
            id="oee-rollup",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
