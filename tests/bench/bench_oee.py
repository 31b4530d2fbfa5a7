"""Benchmark of OEE queries over 200 machines × 30 days, against raw baselines in the same run.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_oee.py [--db postgresql|sqlite|both] [--machines 200]
        [--days 30] [--mean-state-s 300] [--counter-every-s 300] [--repeats 3]

The plant: one site, 10 lines of 20 machines, a three-shift site calendar (Europe/Berlin,
Sunday night to Friday, a 30-minute break per shift). Each machine gets state intervals that
change every few minutes (running 3-20 min, short and long idle and down stops, setups,
planned stops) and a good and a scrap counter sampled every ``--counter-every-s`` (with the
heartbeat of report-by-exception), written straight into a freshly migrated scratch schema
(COPY on PostgreSQL, ``executemany`` on SQLite). "Now" is the end of the data.

Measured, each the median of R runs (the slow live site query: one run):

``raw: site rows``        psycopg / sqlite3 ``SELECT`` of every state interval and counter
                          sample of the 30 days, fetched into Python: the I/O floor of a live
                          computation
``site, live``            ``site_oee(use_rollups=False)``: every machine computed from intervals
                          and samples
``roll-up 30 days``       ``roll_up``: every hour and shift of every machine, upserted (once)
``site, roll-ups``        ``site_oee``: hourly roll-ups summed in SQL + live partial hours
``raw: one machine``      the bare SELECT of one machine's intervals and samples
``machine, live``         ``machine_oee`` over 30 days
``current shift``         ``current_oee``: every machine's current shift, live
``raw: current shift``    the bare SELECT of every machine's rows of the current shift

Progress goes to stderr, the result (machine, command, a Markdown table) to stdout. The scratch
PostgreSQL database (``FORGELINE_TEST_PG_URL``) and the SQLite files are removed at the end.
"""

# ruff: noqa: S608 - SQL text here is built from constant fragments and placeholders only
from __future__ import annotations

import argparse
import io
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from machine_info import cpu_model, ram_gib
from scratch_db import FreshDatabase, PostgresScratch, ScratchServer, SqliteScratch

from cloud.db import create_engine_for, writer_engine
from cloud.oee.calendar_schema import CalendarSpec
from cloud.oee.service import current_oee, machine_oee, site_oee
from cloud.oee.settings import OeeSettings
from cloud.oee.store import save_calendar

S = 1000
DAY_MS = 86_400_000
NOW = int(datetime(2026, 11, 4, 10, 17, tzinfo=UTC).timestamp() * 1000)  # a Wednesday morning
SITE = "plant1"
LINES = 10
SETTINGS = OeeSettings()
CALENDAR = {
    "name": "plant1-three-shifts",
    "site": SITE,
    "time_zone": "Europe/Berlin",
    "shifts": [
        {"name": "early", "start": "06:00", "end": "14:00", "weekdays": "mon-fri",
         "breaks": [{"start": "10:00", "end": "10:30"}]},
        {"name": "late", "start": "14:00", "end": "22:00", "weekdays": "mon-fri",
         "breaks": [{"start": "18:00", "end": "18:30"}]},
        {"name": "night", "start": "22:00", "end": "06:00", "weekdays": "sun-thu",
         "breaks": [{"start": "02:00", "end": "02:30"}]},
    ],
}  # fmt: skip
# state -> (weight, shortest s, longest s)
STATES = {
    "running": (60, 180, 1200),
    "idle": (15, 20, 600),
    "down": (10, 30, 1500),
    "setup": (5, 600, 1800),
    "planned_stop": (4, 900, 1800),
    "offline": (1, 60, 900),
}


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workload


@dataclass
class Plant:
    machines: int
    days: int
    mean_state_s: int
    counter_every_s: int
    intervals: list[tuple[Any, ...]] = field(default_factory=list)
    samples: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def start_ms(self) -> int:
        return NOW - self.days * DAY_MS


def build_plant(machines: int, days: int, mean_state_s: int, counter_every_s: int) -> Plant:
    """Intervals and samples for machine ids 1..N and series ids 2m-1 (good), 2m (scrap)."""
    plant = Plant(machines, days, mean_state_s, counter_every_s)
    rng = random.Random(7)
    names = list(STATES)
    weights = [STATES[n][0] for n in names]
    table_mean = sum(w * (lo + hi) / 2 for w, lo, hi in STATES.values()) / sum(weights)
    scale = mean_state_s / table_mean  # stretch the table to the asked mean interval
    for machine in range(1, machines + 1):
        t = plant.start_ms - rng.randrange(0, 600) * S
        previous = None
        while t < NOW:
            state = rng.choices(names, weights)[0]
            if state == previous:
                continue
            previous = state
            _, low, high = STATES[state]
            length = int(rng.uniform(low, high) * scale * S)
            end = t + length
            fault = str(rng.choice((3, 12, 17, 41))) if state == "down" else None
            plant.intervals.append((machine, state, None, fault, t, end if end < NOW else None))
            t = end
        good = scrap = 0
        for ts in range(plant.start_ms, NOW, counter_every_s * S):
            good += rng.randrange(0, 2 * counter_every_s // 20 + 1)
            plant.samples.append((2 * machine - 1, ts, float(good), None, 0, None))
            if rng.random() < 0.2:
                scrap += rng.randrange(0, 3)
                plant.samples.append((2 * machine, ts, float(scrap), None, 0, None))
    return plant


def _seed_sql(conn: Any, plant: Plant, paramstyle: str) -> None:
    p = "%s" if paramstyle == "pyformat" else "?"
    cur = conn.cursor()
    cur.execute(f"INSERT INTO asset_site (id, name) VALUES ({p}, {p})", (SITE, SITE))
    cur.execute(f"INSERT INTO asset_area (id, site_id, name) VALUES (1, {p}, {p})", (SITE, "Hall"))
    for line in range(1, LINES + 1):
        cur.execute(
            f"INSERT INTO asset_line (id, area_id, name) VALUES ({p}, 1, {p})",
            (line, f"Line {line}"),
        )
    per_line = max(1, plant.machines // LINES)
    machine_rows = [
        (m, f"m{m:03d}", SITE, 1, min(LINES, (m - 1) // per_line + 1), "edge1", f"m{m:03d}",
         8.0, 1, "{}", '{"3": {"reason": "Spindle overload", "category": "breakdown"}}',
         "birth", 0, 0)
        for m in range(1, plant.machines + 1)
    ]  # fmt: skip
    cur.executemany(
        "INSERT INTO machine (id, name, site_id, area_id, line_id, edge, device, "
        "ideal_cycle_time_s, units_per_cycle, state_map, fault_codes, placed_by, created_ms, "
        f"updated_ms) VALUES ({', '.join([p] * 14)})",
        machine_rows,
    )
    series_rows = []
    for m in range(1, plant.machines + 1):
        for offset, (metric, role) in ((1, ("good", "good_count")), (0, ("scrap", "scrap_count"))):
            series_rows.append((2 * m - offset, SITE, "edge1", f"m{m:03d}", metric, "uint32", role))
    cur.executemany(
        "INSERT INTO ts_series (id, site, edge, device, metric, data_type, role) "
        f"VALUES ({', '.join([p] * 7)})",
        series_rows,
    )


def seed(fresh: FreshDatabase, server: str, plant: Plant) -> None:
    conn = fresh.connect_raw()
    try:
        if server == "postgresql":
            with conn.transaction():
                _seed_sql(conn, plant, "pyformat")
                with conn.cursor().copy(
                    "COPY state_interval (machine_id, state, raw_code, fault_code, start_ms, "
                    "end_ms) FROM STDIN"
                ) as copy:
                    for row in plant.intervals:
                        copy.write_row(row)
                with conn.cursor().copy(
                    "COPY ts_sample (series_id, ts, value, text_value, quality, reason) FROM STDIN"
                ) as copy:
                    for row in plant.samples:
                        copy.write_row(row)
            conn.execute("ANALYZE")
        else:
            conn.execute("BEGIN")
            _seed_sql(conn, plant, "qmark")
            conn.executemany(
                "INSERT INTO state_interval (machine_id, state, raw_code, fault_code, start_ms, "
                "end_ms) VALUES (?, ?, ?, ?, ?, ?)",
                plant.intervals,
            )
            conn.executemany(
                "INSERT INTO ts_sample (series_id, ts, value, text_value, quality, reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                plant.samples,
            )
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
    finally:
        conn.close()


# --------------------------------------------------------------------------- measurements


@dataclass
class Measured:
    database: str
    what: str
    rows: int | None
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def timed(repeats: int, fn: Callable[[], Any]) -> tuple[list[float], Any]:
    out, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - start)
    return out, result


def same_totals(a: Any, b: Any) -> bool:
    """Equal time elements; quantities equal up to float summation order."""

    def close(x: float | None, y: float | None) -> bool:
        return x == y if x is None or y is None else math.isclose(x, y, rel_tol=1e-9)

    return (
        a.elements == b.elements
        and all(
            close(getattr(a.quantities, f), getattr(b.quantities, f))
            for f in ("produced", "good", "scrap", "startup_scrap")
        )
        and close(a.ideal_produced_s, b.ideal_produced_s)
        and close(a.ideal_good_s, b.ideal_good_s)
    )


def raw_select(fresh: FreshDatabase, machine_ids: Sequence[int] | None, lo: int, hi: int) -> int:
    """The bare SELECT of the intervals and counter samples a window needs, all rows fetched."""
    conn = fresh.connect_raw()
    try:
        p = "?" if isinstance(conn, sqlite3.Connection) else "%s"
        where_m = where_s = ""
        args_m: list[Any] = [lo, hi]
        args_s: list[Any] = [lo, hi]
        if machine_ids is not None:
            marks = ", ".join([p] * len(machine_ids))
            where_m = f" AND machine_id IN ({marks})"
            where_s = f" AND series_id IN ({', '.join([p] * 2 * len(machine_ids))})"
            args_m += list(machine_ids)
            args_s += [s for m in machine_ids for s in (2 * m - 1, 2 * m)]
        cur = conn.cursor()
        cur.execute(
            "SELECT machine_id, state, start_ms, end_ms, fault_code FROM state_interval "
            f"WHERE start_ms >= {p} AND start_ms < {p}{where_m}",
            args_m,
        )
        rows = len(cur.fetchall())
        cur.execute(
            f"SELECT series_id, ts, value, quality FROM ts_sample WHERE ts >= {p} AND ts < {p}"
            f"{where_s}",
            args_s,
        )
        rows += len(cur.fetchall())
        return rows
    finally:
        conn.close()


def bench_database(server: ScratchServer, plant: Plant, repeats: int) -> list[Measured]:
    from cloud.oee.rollup import roll_up

    fresh = server.fresh()
    name = server.name
    start = time.perf_counter()
    seed(fresh, name, plant)
    progress(f"[{name}] seeded {len(plant.intervals):,} intervals and {len(plant.samples):,} "
             f"samples in {time.perf_counter() - start:.1f} s")  # fmt: skip
    engine = create_engine_for(fresh.url)
    with writer_engine(engine).begin() as conn:
        save_calendar(conn, CalendarSpec.model_validate(CALENDAR), "api", 0)
    lo, hi = plant.start_ms, NOW
    out: list[Measured] = []

    def measure(what: str, runs: int, fn: Callable[[], Any], rows: int | None = None) -> Any:
        seconds, result = timed(runs, fn)
        count = result if isinstance(result, int) and rows is None else rows
        out.append(Measured(name, what, count, seconds))
        progress(f"[{name}] {what}: {statistics.median(seconds):.3f} s")
        return result

    site_rows = measure("raw: site rows", repeats, lambda: raw_select(fresh, None, lo, hi))
    with engine.connect() as conn:
        live = measure(
            "site, live (no roll-ups)", 1,
            lambda: site_oee(conn, SETTINGS, SITE, lo, hi, NOW, use_rollups=False), site_rows,
        )  # fmt: skip
    written = measure(
        "roll-up every hour and shift", 1, lambda: roll_up(engine, SETTINGS, lo, hi, NOW)
    )
    with engine.connect() as conn:
        summed = measure(
            "site, roll-ups + live ends", repeats,
            lambda: site_oee(conn, SETTINGS, SITE, lo, hi, NOW), written,
        )  # fmt: skip
        if not same_totals(summed.kpis.totals, live.kpis.totals):
            raise SystemExit(f"[{name}] roll-up and live site totals differ: the benchmark is void")
        progress(f"[{name}] site OEE {summed.kpis.oee:.4f}, availability "
                 f"{summed.kpis.availability:.4f} (roll-ups == live)")  # fmt: skip
        one_rows = measure("raw: one machine", repeats, lambda: raw_select(fresh, [1], lo, hi))
        measure(
            "one machine, live", repeats,
            lambda: machine_oee(conn, SETTINGS, 1, lo, hi, NOW), one_rows,
        )  # fmt: skip
        views = current_oee(conn, SETTINGS, NOW)
        shift_lo = min(v.window.from_ms for v in views)
        shift_rows = measure(
            "raw: current shift, all machines", repeats,
            lambda: raw_select(fresh, None, shift_lo, NOW),
        )  # fmt: skip
        measure(
            "current shift, all machines", repeats, lambda: current_oee(conn, SETTINGS, NOW),
            shift_rows,
        )  # fmt: skip
    engine.dispose()
    return out


# --------------------------------------------------------------------------- report


def machine_lines(servers: Sequence[ScratchServer]) -> list[str]:
    pg = next((s.version for s in servers if s.name == "postgresql"), "not used")
    libs = ", ".join(f"{n} {version(n)}" for n in ("SQLAlchemy", "psycopg"))
    return [
        f"- CPU: {os.cpu_count()} × {cpu_model()} (nproc {len(os.sched_getaffinity(0))})",
        f"- RAM: {ram_gib():.1f} GiB",
        f"- Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- PostgreSQL server {pg}; SQLite library {sqlite3.sqlite_version}",
        f"- {libs}",
        f"- load average when the run ended: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def table(results: Sequence[Measured]) -> list[str]:
    lines = ["| database | query | rows | median s | × raw |", "|---|---|---:|---:|---:|"]
    raw: dict[tuple[str, str], float] = {}
    for r in results:
        if r.what.startswith("raw: "):
            raw[(r.database, r.what)] = r.median
    baseline_of = {
        "site, live (no roll-ups)": "raw: site rows",
        "site, roll-ups + live ends": "raw: site rows",
        "one machine, live": "raw: one machine",
        "current shift, all machines": "raw: current shift, all machines",
    }
    for r in results:
        base = raw.get((r.database, baseline_of.get(r.what, "")))
        ratio = f"{r.median / base:.2f}" if base else ""
        rows = f"{r.rows:,}" if r.rows is not None else ""
        lines.append(f"| {r.database} | {r.what} | {rows} | {r.median:.3f} | {ratio} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--mean-state-s", type=int, default=300)
    parser.add_argument("--counter-every-s", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    plant = build_plant(args.machines, args.days, args.mean_state_s, args.counter_every_s)
    progress(f"workload: {len(plant.intervals):,} intervals, {len(plant.samples):,} samples "
             f"({time.perf_counter() - start:.1f} s to build)")  # fmt: skip
    servers: list[ScratchServer] = []
    results: list[Measured] = []
    try:
        if args.db in ("postgresql", "both"):
            servers.append(PostgresScratch())
            results += bench_database(servers[-1], plant, args.repeats)
        if args.db in ("sqlite", "both"):
            servers.append(SqliteScratch())
            results += bench_database(servers[-1], plant, args.repeats)
    finally:
        for server in servers:
            server.close()
    out = io.StringIO()
    print("Machine:", file=out)
    print("\n".join(machine_lines(servers)), file=out)
    print(
        f"\nCommand: `.venv/bin/python tests/bench/bench_oee.py {' '.join(argv or sys.argv[1:])}`",
        file=out,
    )
    print(f"\n{args.machines} machines × {args.days} days: {len(plant.intervals):,} state "
          f"intervals, {len(plant.samples):,} counter samples\n", file=out)  # fmt: skip
    print("\n".join(table(results)), file=out)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
