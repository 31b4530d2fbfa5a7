"""Benchmark of the backward trace of a serial in PostgreSQL, against a raw baseline in the same run.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_trace.py --database-url forgeline_trace_<...>
        [--serials 200] [--warmup 20] [--seed 11] [--profile]
    .venv/bin/python tests/bench/bench_trace.py --units 20000 --samples 1000000 [--keep] ...

With ``--database-url`` (a URL, or a database name on the server of ``FORGELINE_TEST_PG_URL``)
it measures a data set that ``gen_trace_dataset.py`` built; without it, it builds one first in a
scratch database (``--units``, ``--samples``, ``--order-size``; ``--seed`` seeds it as well as
the choice of serials), dropped at the end unless ``--keep``. A full-size set takes about 8
minutes to build, so build it once with the generator and measure it as often as needed.

``--serials`` units are picked at random (seeded) among all units; ``--warmup`` others first
run through both paths, so connections, prepared statements and caches are in steady state.
Each measured serial then goes through:

``trace``  ``cloud.production.trace.backward_trace(session, serial, now)`` in a new ORM
           session (opened and closed inside the clock), as an API request would run it;
           ``now`` is the end of the data. A VALVE-A unit's trace includes its actuator's.
``raw``    psycopg directly: one ``SELECT`` of the unit by serial joined to its cycles, then
           one ``SELECT min(value), max(value), avg(value) FROM ts_sample WHERE series_id = %s
           AND ts >= %s AND ts < %s`` per (cycle, traced series of the cycle's machine). The
           machines' series are read once before any clock starts.

Pass 1 ("first touch") alternates which of the two runs first for each serial, so both pay for
pages that are not yet in PostgreSQL's buffers equally often; pass 2 ("again") runs both once
more, with the pages cached. The script checks every trace against the raw rows (same cycle
windows, one parameter per traced series) and stops if they differ. ``--profile`` adds a third
pass that times each SQL statement the trace sends and prints EXPLAIN (ANALYZE, BUFFERS) of the
slowest one. Progress goes to stderr, the result (machine, data set, Markdown tables) to stdout.
"""

# ruff: noqa: S608 - SQL text here is built from constant fragments and placeholders only
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from gen_trace_dataset import (
    Plan,
    connect,
    drop_database,
    generate,
    prepare_database,
    summary,
    target_url,
)
from machine_info import cpu_model, ram_gib
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from cloud.db import create_engine_for
from cloud.production.trace import UnitTrace, backward_trace

UNIT_CYCLES = (
    "SELECT u.id, c.machine_id, c.start_ms, c.end_ms FROM unit u "
    "JOIN unit_cycle c ON c.unit_id = u.id WHERE u.serial = %s ORDER BY c.start_ms"
)
WINDOW_SUMMARY = (
    "SELECT min(value), max(value), avg(value) FROM ts_sample "
    "WHERE series_id = %s AND ts >= %s AND ts < %s"
)
# The roles whose series a trace summarises (forgeline's own list is in cloud.production);
# every trace is checked to hold one parameter per such series of the machine.
TRACED_ROLES = ("process_param", "temperature", "vibration")
SIZED_TABLES = ("ts_sample", "unit", "unit_cycle", "consumption", "unit_test", "unit_test_value")


def scalar(conn: Any, sql: str, parameters: Sequence[Any] = ()) -> Any:
    row = conn.execute(sql, parameters).fetchone()
    if row is None:
        raise SystemExit(f"no row from {sql!r}")
    return row[0]


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the two paths


Cycle = tuple[int, int, int, int | None]  # unit id, machine id, start ms, end ms


@dataclass
class RawPath:
    """The floor: the unit's cycles and a min/max/avg per (cycle, series), nothing else."""

    conn: Any
    series_of: dict[int, list[int]]  # machine id -> traced series ids

    def __call__(self, serial: str) -> list[Cycle]:
        cycles: list[Cycle] = self.conn.execute(UNIT_CYCLES, (serial,)).fetchall()
        for _, machine, start, end in cycles:
            for series_id in self.series_of.get(machine, ()):
                self.conn.execute(WINDOW_SUMMARY, (series_id, start, end)).fetchone()
        return cycles


@dataclass
class TracePath:
    engine: Engine
    now: int

    def __call__(self, serial: str) -> UnitTrace:
        with Session(self.engine) as session:
            return backward_trace(session, serial, self.now)


def traced_series(conn: Any) -> dict[int, list[int]]:
    rows = conn.execute(
        "SELECT m.id, s.id FROM machine m JOIN ts_series s ON s.edge = m.edge "
        "AND s.device = m.device WHERE s.role = ANY(%s) ORDER BY m.id, s.id",
        (list(TRACED_ROLES),),
    ).fetchall()
    out: dict[int, list[int]] = {}
    for machine, series in rows:
        out.setdefault(machine, []).append(series)
    return out


def same_windows(trace: UnitTrace, cycles: list[Cycle], series_of: dict[int, list[int]]) -> str:
    """Empty if the trace's operations cover exactly the unit's cycles; else what differs."""
    seen = sorted(
        (op.machine_id, getattr(op, "window_start_ms", op.started_ms),
         getattr(op, "window_end_ms", op.finished_ms), len(op.parameters))
        for op in trace.operations
    )  # fmt: skip
    expected = sorted((m, s, e, len(series_of.get(m, ()))) for _, m, s, e in cycles)
    return "" if seen == expected else f"trace {seen} != raw {expected}"


# --------------------------------------------------------------------------- measurement


@dataclass
class Timings:
    trace_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    with_component: list[bool] = field(default_factory=list)


def clock(fn: Callable[[str], Any], serial: str) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(serial)
    return (time.perf_counter() - start) * 1000, result


def run_pass(serials: Sequence[str], trace: TracePath, raw: RawPath, alternate: bool) -> Timings:
    out = Timings()
    for i, serial in enumerate(serials):
        if alternate and i % 2:
            trace_ms, unit_trace = clock(trace, serial)
            raw_ms, cycles = clock(raw, serial)
        else:
            raw_ms, cycles = clock(raw, serial)
            trace_ms, unit_trace = clock(trace, serial)
        differs = same_windows(unit_trace, cycles, raw.series_of)
        if differs:
            raise SystemExit(f"{serial}: the trace and the raw rows differ, the run is void: "
                             f"{differs}")  # fmt: skip
        out.trace_ms.append(trace_ms)
        out.raw_ms.append(raw_ms)
        out.with_component.append(bool(unit_trace.components))
    return out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values), "p95": cuts[94], "p99": cuts[98],
            "max": max(values), "mean": statistics.fmean(values)}  # fmt: skip


def timing_table(passes: Sequence[tuple[str, Timings]]) -> list[str]:
    lines = [
        "| pass | path | serials | p50 ms | p95 ms | p99 ms | max ms | mean ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in passes:
        subsets = [
            ("backward_trace", t.trace_ms),
            ("raw baseline", t.raw_ms),
            ("trace, units with a component", [
                ms for ms, c in zip(t.trace_ms, t.with_component, strict=True) if c]),
            ("trace, units without", [
                ms for ms, c in zip(t.trace_ms, t.with_component, strict=True) if not c]),
        ]  # fmt: skip
        for path, values in subsets:
            if len(values) < 2:
                continue
            p = percentiles(values)
            lines.append(
                f"| {name} | {path} | {len(values)} | {p['p50']:.1f} | {p['p95']:.1f} | "
                f"{p['p99']:.1f} | {p['max']:.1f} | {p['mean']:.1f} |"
            )
    return lines


def ratio_lines(passes: Sequence[tuple[str, Timings]]) -> list[str]:
    lines = ["| pass | p50 trace / p50 raw | p95 trace / p95 raw | median of per-serial ratios |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for name, t in passes:
        trace, raw = percentiles(t.trace_ms), percentiles(t.raw_ms)
        each = statistics.median(a / b for a, b in zip(t.trace_ms, t.raw_ms, strict=True))
        lines.append(f"| {name} | {trace['p50'] / raw['p50']:.2f} | "
                     f"{trace['p95'] / raw['p95']:.2f} | {each:.2f} |")  # fmt: skip
    return lines


# --------------------------------------------------------------------------- profile


@dataclass
class StatementTime:
    calls: int = 0
    total_ms: float = 0.0
    slowest_ms: float = 0.0
    slowest_parameters: Any = None


def profile(engine: Engine, serials: Sequence[str], trace: TracePath) -> list[str]:
    """Time every statement the trace sends; EXPLAIN ANALYZE the slowest single execution."""
    stats: dict[str, StatementTime] = {}
    started: list[float] = []

    def before(*args: Any) -> None:
        started.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        ms = (time.perf_counter() - started.pop()) * 1000
        entry = stats.setdefault(statement, StatementTime())
        entry.calls += 1
        entry.total_ms += ms
        if ms > entry.slowest_ms:
            entry.slowest_ms, entry.slowest_parameters = ms, parameters

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    start = time.perf_counter()
    try:
        for serial in serials:
            trace(serial)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    wall = (time.perf_counter() - start) * 1000
    ranked = sorted(stats.items(), key=lambda item: -item[1].total_ms)
    in_sql = sum(s.total_ms for s in stats.values())
    lines = [
        f"Profile pass over {len(serials)} serials: {wall / len(serials):.1f} ms per trace, "
        f"{in_sql / len(serials):.1f} ms of it waiting on SQL, "
        f"{sum(s.calls for s in stats.values()) / len(serials):.1f} statements per trace.",
        "",
        "| statement (start) | calls per trace | mean ms | share of SQL time |",
        "|---|---:|---:|---:|",
    ]
    for statement, s in ranked[:8]:
        text = " ".join(statement.split())[:90].replace("|", "\\|")
        lines.append(f"| `{text}` | {s.calls / len(serials):.1f} | {s.total_ms / s.calls:.2f} | "
                     f"{s.total_ms / in_sql:.0%} |")  # fmt: skip
    statement, slowest = ranked[0]
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + statement, slowest.slowest_parameters
        ).scalars()
        lines += ["", f"EXPLAIN (ANALYZE, BUFFERS) of the costliest statement's slowest run "
                      f"({slowest.slowest_ms:.1f} ms when profiled):", "", "```",
                  " ".join(statement.split()), f"-- parameters: {slowest.slowest_parameters}",
                  *plan, "```"]  # fmt: skip
    return lines


# --------------------------------------------------------------------------- report


def data_set_lines(conn: Any) -> list[str]:
    counts = {
        t: scalar(conn, f"SELECT count(*) FROM {t}")
        for t in ("unit", "unit_cycle", "consumption", "work_order", "ts_series", "ts_sample")
    }
    first, last = conn.execute("SELECT min(start_ms), max(end_ms) FROM unit_cycle").fetchone()
    components = scalar(conn, "SELECT count(*) FROM consumption WHERE consumed_unit_id IS NOT NULL")
    lines = [
        f"Data set: {counts['unit']:,} units in {counts['work_order']:,} work orders, "
        f"{counts['unit_cycle']:,} unit cycles, {counts['consumption']:,} consumption rows "
        f"({components:,} component serials), {counts['ts_sample']:,} samples of "
        f"{counts['ts_series']:,} series over {(last - first) / 86_400_000:.2f} days.",
        "",
        "| table | rows (estimate) | heap MiB | indexes MiB |",
        "|---|---:|---:|---:|",
    ]
    for table in SIZED_TABLES:
        estimate, heap, indexes = conn.execute(
            "SELECT reltuples::bigint, pg_relation_size(oid), pg_indexes_size(oid) "
            "FROM pg_class WHERE oid = %s::regclass",
            (table,),
        ).fetchone()
        lines.append(f"| {table} | {estimate:,} | {heap / 2**20:,.0f} | {indexes / 2**20:,.0f} |")
    size = scalar(conn, "SELECT pg_database_size(current_database())")
    lines.append(f"| whole database | | {size / 2**20:,.0f} | |")
    return lines


def machine_lines(conn: Any) -> list[str]:
    def show(name: str) -> str:
        return str(scalar(conn, f"SHOW {name}"))

    libs = ", ".join(f"{n} {version(n)}" for n in ("SQLAlchemy", "psycopg"))
    return [
        f"- CPU: {os.cpu_count()} × {cpu_model()} (nproc {len(os.sched_getaffinity(0))})",
        f"- RAM: {ram_gib():.1f} GiB",
        f"- Python {platform.python_version()}, {platform.system()} {platform.release()}; {libs}",
        f"- PostgreSQL {show('server_version')} on the same machine, loopback TCP: "
        f"shared_buffers {show('shared_buffers')}, work_mem {show('work_mem')}, "
        f"effective_cache_size {show('effective_cache_size')}",
        f"- load average when the run ended: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


# --------------------------------------------------------------------------- main


def pick_serials(conn: Any, count: int, seed: int) -> list[str]:
    highest = scalar(conn, "SELECT max(id) FROM unit")
    if highest is None or highest < count:
        raise SystemExit(f"--serials {count}: the data set holds only {highest or 0} units")
    ids = random.Random(seed).sample(range(1, highest + 1), count)
    serial_of = dict(conn.execute("SELECT id, serial FROM unit WHERE id = ANY(%s)", (ids,)))
    return [serial_of[i] for i in ids if i in serial_of]


def measure(url: URL, args: argparse.Namespace) -> list[str]:
    raw_conn = connect(url)
    raw_conn.autocommit = True
    engine = create_engine_for(url)
    try:
        now = scalar(raw_conn, "SELECT max(finished_ms) FROM work_order_operation")
        serials = pick_serials(raw_conn, args.warmup + args.serials, args.seed)
        warmup, measured = serials[: args.warmup], serials[args.warmup :]
        raw = RawPath(raw_conn, traced_series(raw_conn))
        trace = TracePath(engine, now)
        progress(f"warm-up: {len(warmup)} serials through both paths")
        run_pass(warmup, trace, raw, alternate=True)
        progress(f"pass 1 (first touch): {len(measured)} serials")
        first = run_pass(measured, trace, raw, alternate=True)
        progress(f"pass 2 (again): {len(measured)} serials")
        again = run_pass(measured, trace, raw, alternate=False)
        passes = [("first touch", first), ("again", again)]
        lines = ["Machine:", *machine_lines(raw_conn), "", *data_set_lines(raw_conn), ""]
        lines += [f"{len(measured)} serials (seed {args.seed}) after {len(warmup)} warm-up "
                  f"serials; now = {now} (end of the data).", ""]  # fmt: skip
        lines += [*timing_table(passes), "", *ratio_lines(passes)]
        if args.profile:
            progress("profile pass")
            lines += ["", *profile(engine, measured, trace)]
        return lines
    finally:
        engine.dispose()
        raw_conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", help="a data set built by gen_trace_dataset.py")
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--order-size", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch data set")
    parser.add_argument("--serials", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    lines: list[str] = []
    if args.database_url:
        url, created = target_url(args.database_url), False
    else:
        plan = Plan(args.units, args.samples, args.order_size, args.seed)
        url, created = prepare_database(None)
    try:
        if created:
            lines += [*summary(plan, url, generate(plan, url)), ""]
        lines += measure(url, args)
    finally:
        if created and not args.keep:
            drop_database(url)
            progress(f"dropped {url.database}")
    command = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"Command: `.venv/bin/python tests/bench/bench_trace.py {command}`\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
