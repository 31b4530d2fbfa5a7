"""Benchmark of the chart series query: 30 days of 1 s data of one series to 1,000 points.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_chart.py [--days 30] [--points 1000] [--runs 20]

One machine and one temperature series with a sample every second (a slow wave with noise and
a handful of single-sample spikes) are loaded with COPY into a freshly migrated schema of a
scratch PostgreSQL database (``FORGELINE_TEST_PG_URL``, dropped at the end); the per-minute
roll-up ``ts_minute`` is filled by the back-fill of migration 0012 (timed), then ANALYZEd.

Measured over R runs each, in the same run, p50 and p95:

``raw: whole window``       psycopg ``SELECT ts, value`` of every sample of the window, fetched
                            into Python: what a chart without server-side downsampling moves
``chart minmax, samples``   ``chart_series(method="minmax", rollup=False)``: min/max per bucket
                            in SQL over every sample, annotations and limits included
``chart minmax, roll-up``   ``chart_series(method="minmax")``: the same over ``ts_minute`` (and
                            the samples of the partial minutes at the window's ends)
``chart lttb, samples``     ``chart_series(method="lttb", rollup=False)``: the same
                            pre-aggregation, then LTTB
``chart lttb, roll-up``     ``chart_series(method="lttb")``: pre-aggregated from the roll-up

Every chart must count every sample and draw the 250.0 spikes, or the run stops.

Progress goes to stderr, the result (machine, command, a Markdown table) to stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

from machine_info import cpu_model, ram_gib
from scratch_db import FreshDatabase, PostgresScratch
from sqlalchemy.orm import Session

from cloud.charts.service import chart_series
from cloud.db import create_engine_for

T0 = 1_800_000_000_000
SITE = "plant1"


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load(fresh: FreshDatabase, days: int) -> tuple[int, int]:
    """Machine 1 with series 1 of ``days`` × 86,400 samples; returns (samples, spikes)."""
    rng = random.Random(7)
    count = days * 86_400
    spikes = set(rng.sample(range(count), 5))
    conn = fresh.connect_raw()
    try:
        with conn.transaction():
            cur = conn.cursor()
            cur.execute("INSERT INTO asset_site (id, name) VALUES (%s, %s)", (SITE, SITE))
            cur.execute(
                "INSERT INTO machine (id, name, site_id, edge, device, ideal_cycle_time_s, "
                "units_per_cycle, state_map, fault_codes, placed_by, created_ms, updated_ms) "
                "VALUES (1, 'press1', %s, 'edge1', 'press1', 2.5, 1, '{}', '{}', 'birth', 0, 0)",
                (SITE,),
            )
            cur.execute(
                "INSERT INTO ts_series (id, site, edge, device, metric, unit, data_type, role, "
                "low_limit, high_limit) VALUES (1, %s, 'edge1', 'press1', 'temperature', "
                "'degC', 'float32', 'temperature', 20, 80)",
                (SITE,),
            )
            with cur.copy("COPY ts_sample (series_id, ts, value, quality) FROM STDIN") as copy:
                for i in range(count):
                    value = (
                        250.0 if i in spikes else 50.0 + 10.0 * ((i // 3_600) % 2) + rng.random()
                    )
                    copy.write_row((1, T0 + i * 1_000, value, 0))
        conn.execute("ANALYZE")
        conn.commit()  # psycopg opened a transaction for ANALYZE: without this its stats are lost
    finally:
        conn.close()
    return count, len(spikes)


def backfill_rollup(fresh: FreshDatabase) -> int:
    """Fill ``ts_minute`` from the loaded samples with migration 0012's back-fill; its rows."""
    path = Path(__file__).parents[2] / "cloud/migrations/versions/0012_ts_minute.py"
    spec = importlib.util.spec_from_file_location("migration_0012", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    conn = fresh.connect_raw()
    try:
        with conn.transaction():
            conn.execute(migration.BACKFILL_SQL)
        conn.execute("ANALYZE ts_minute")
        conn.commit()
        return int(conn.execute("SELECT count(*) FROM ts_minute").fetchone()[0])
    finally:
        conn.close()


def timed(run: Callable[[], int], runs: int) -> tuple[list[float], int]:
    run()  # warm the cache: every figure is a warm one
    seconds = []
    rows = 0
    for _ in range(runs):
        start = time.perf_counter()
        rows = run()
        seconds.append(time.perf_counter() - start)
    return seconds, rows


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    server = PostgresScratch()
    try:
        fresh = server.fresh()
        started = time.perf_counter()
        count, spikes = load(fresh, args.days)
        progress(f"loaded {count:,} samples in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        minutes = backfill_rollup(fresh)
        backfill_s = time.perf_counter() - started
        progress(f"rolled up into {minutes:,} minutes in {backfill_s:.1f} s")
        end = T0 + count * 1_000
        raw_conn = fresh.connect_raw()
        engine = create_engine_for(fresh.url)

        def raw() -> int:
            with raw_conn.cursor() as cur:
                cur.execute(
                    "SELECT ts, value FROM ts_sample WHERE series_id = 1 AND ts >= %s AND ts < %s"
                    " ORDER BY ts",
                    (T0, end),
                )
                return len(cur.fetchall())

        def chart(method: str, rollup: bool) -> Callable[[], int]:
            def run() -> int:
                with Session(engine) as session:
                    found = chart_series(
                        session, 1, "temperature", T0, end, args.points, method, rollup=rollup
                    )
                drawn = sum(1 for p in found.points if p.value == 250.0)
                if found.raw_count != count or drawn != spikes:
                    raise SystemExit(
                        f"{method} (roll-up {rollup}): wrong chart ({found.raw_count} samples, "
                        f"{drawn} of {spikes} spikes)"
                    )
                return len(found.points)

            return run

        results = []
        for name, run in (("raw: whole window", raw),
                          ("chart minmax, samples", chart("minmax", False)),
                          ("chart minmax, roll-up", chart("minmax", True)),
                          ("chart lttb, samples", chart("lttb", False)),
                          ("chart lttb, roll-up", chart("lttb", True))):  # fmt: skip
            progress(f"measuring {name} ...")
            results.append((name, *timed(run, args.runs)))
        raw_conn.close()
        engine.dispose()
    finally:
        server.close()
    out = io.StringIO()
    libs = ", ".join(f"{n} {version(n)}" for n in ("SQLAlchemy", "psycopg", "numpy"))
    print("Machine:", file=out)
    print(f"- CPU: {os.cpu_count()} × {cpu_model()} (nproc {len(os.sched_getaffinity(0))})\n"
          f"- RAM: {ram_gib():.1f} GiB\n"
          f"- Python {platform.python_version()}, {platform.system()} {platform.release()}\n"
          f"- PostgreSQL server {server.version}\n- {libs}\n"
          f"- load average when the run ended: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=out)  # fmt: skip
    print(f"\nCommand: `.venv/bin/python tests/bench/bench_chart.py "
          f"{' '.join(argv or sys.argv[1:])}`", file=out)  # fmt: skip
    print(f"\n{args.days} days of 1 s data: {count:,} samples ({spikes} single-sample spikes), "
          f"rolled up into {minutes:,} minutes by the migration 0012 back-fill in "
          f"{backfill_s:.1f} s; {args.runs} warm runs each\n", file=out)  # fmt: skip
    print("| query | rows | p50 s | p95 s | p50 × raw |\n|---|---:|---:|---:|---:|", file=out)
    raw_p50 = statistics.median(results[0][1])
    for name, seconds, rows in results:
        p50 = statistics.median(seconds)
        print(f"| {name} | {rows:,} | {p50:.3f} | {p95(seconds):.3f} | {p50 / raw_p50:.2f} |",
              file=out)  # fmt: skip
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
