"""Benchmark of the cloud's ingest write path against raw baselines measured in the same run.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_ingest.py [--db postgresql|sqlite|both] [--messages N]
        [--samples-per-message K] [--batch B] [--repeats R] [--profile]

Paths, each written into a freshly migrated schema after a warm-up, R times (median shown):

``forgeline``         ``IngestWriter.write()`` per batch of B messages: decode, validate, claim
                      ``(edge, session, seq)``, write the samples (COPY on PostgreSQL), advance
                      ``ts_latest``, touch the edge; one transaction per batch.
``forgeline, x2``     every message delivered twice: each batch holds B/2 new messages and the
                      B/2 of the batch before again (an edge re-sending after a lost ack).
``re-delivery``       the whole stream again into the schema that already holds it: duplicates only.
``raw COPY``          PostgreSQL: psycopg 3 ``COPY ts_sample (...) FROM STDIN`` with ``write_row``
                      of the same rows, already decoded, series ids known; one transaction a batch.
``raw executemany``   ``INSERT`` of the same rows with ``executemany``; one transaction a batch.
``json.loads``        the payloads parsed and nothing else: the decode floor.
``JsonCodec.decode``  ``parse_topic`` and the strict decoder (validation), no database.

Progress goes to stderr, the result (machine, command, a Markdown table) to stdout. The scratch
PostgreSQL database (``FORGELINE_TEST_PG_URL``, default local ``postgres``) and the SQLite
files are removed at the end. ``--profile`` adds a cProfile breakdown of one forgeline pass.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ingest_stream import START_MS, Plant, RawRow, Stream, build_plant
from machine_info import cpu_model, ram_gib
from scratch_db import FreshDatabase, PostgresScratch, ScratchServer, SqliteScratch

from cloud.db import create_engine_for
from cloud.ingest.writer import IngestWriter, ReceivedMessage
from protocols.wire import JsonCodec, TopicKind, parse_topic

COPY_SQL = "COPY ts_sample (series_id, ts, value, text_value, quality, reason) FROM STDIN"
INSERT_PG = (
    "INSERT INTO ts_sample (series_id, ts, value, text_value, quality, reason) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
INSERT_SQLITE = (
    "INSERT INTO ts_sample (series_id, ts, value, text_value, quality, reason) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
WARMUP_SEED, MAIN_SEED = 1, 2
DAY_MS = 86_400_000

Batch = list[ReceivedMessage]


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workload


@dataclass
class Workload:
    """Everything written, built before any clock starts."""

    plant: Plant
    births: list[ReceivedMessage]
    warmup: Stream
    main: Stream
    batch: int

    def batches(self) -> list[Batch]:
        messages = self.main.messages
        return [messages[i : i + self.batch] for i in range(0, len(messages), self.batch)]

    def warmup_batches(self) -> list[Batch]:
        messages = self.warmup.messages
        return [messages[i : i + self.batch] for i in range(0, len(messages), self.batch)]

    def twice_batches(self) -> list[Batch]:
        """Each batch: B/2 new messages after the B/2 of the previous batch again."""
        half = max(1, self.batch // 2)
        messages = self.main.messages
        chunks = [messages[i : i + half] for i in range(0, len(messages), half)]
        out = [chunks[0]]
        out += [chunks[i - 1] + chunks[i] for i in range(1, len(chunks))]
        out.append(chunks[-1])
        return out

    def row_batches(self, stream: Stream) -> list[list[RawRow]]:
        rows = stream.rows
        return [
            [row for message_rows in rows[i : i + self.batch] for row in message_rows]
            for i in range(0, len(rows), self.batch)
        ]


def build_workload(messages: int, samples_per_message: int, batch: int) -> Workload:
    plant = build_plant(samples_per_message)
    # The warm-up is an earlier agent run (its own sessions) of the same devices, a day before.
    warmup = plant.stream(min(messages, 2 * batch), START_MS - DAY_MS, WARMUP_SEED)
    main = plant.stream(messages, START_MS, MAIN_SEED)
    return Workload(plant, plant.births(START_MS - 2 * DAY_MS), warmup, main, batch)


# --------------------------------------------------------------------------- measurements


@dataclass
class Measured:
    """One path's runs: what one run delivers and stores, and how long each run took."""

    database: str
    path: str
    messages: int
    samples: int
    stored_samples: int
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def rate(self, count: int) -> float:
        return count / self.median


class Forgeline:
    """An ``IngestWriter`` on a fresh schema, births stored and warmed up, ready to time."""

    def __init__(self, fresh: FreshDatabase, workload: Workload) -> None:
        self.engine = create_engine_for(fresh.url)
        self.writer = IngestWriter(self.engine)
        self.writer.write(workload.births)
        for batch in workload.warmup_batches():
            self.writer.write(batch)

    def run(
        self,
        batches: Sequence[Batch],
        stored: int,
        duplicates: int,
        profiler: cProfile.Profile | None = None,
    ) -> float:
        """Write every batch; check what was stored; return the seconds it took."""
        got_stored = got_duplicates = 0
        gc.collect()
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for batch in batches:
            result = self.writer.write(batch)
            got_stored += result.stored_samples
            got_duplicates += result.duplicates
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - start
        if (got_stored, got_duplicates) != (stored, duplicates):
            raise RuntimeError(
                f"the writer stored {got_stored} samples and saw {got_duplicates} duplicates; "
                f"expected {stored} and {duplicates}: the benchmark measured the wrong work"
            )
        return elapsed

    def close(self) -> None:
        self.engine.dispose()


def _count_rows(conn: Any) -> int:
    cursor = conn.cursor()
    cursor.execute("SELECT count(*) FROM ts_sample")
    return int(cursor.fetchone()[0])


def time_raw(
    fresh: FreshDatabase, workload: Workload, write: Callable[[Any, list[RawRow]], None]
) -> float:
    """Warm up, then write every batch of rows with ``write(conn, rows)``; return the seconds."""
    conn = fresh.connect_raw()
    try:
        for rows in workload.row_batches(workload.warmup):
            write(conn, rows)
        gc.collect()
        start = time.perf_counter()
        for rows in workload.row_batches(workload.main):
            write(conn, rows)
        elapsed = time.perf_counter() - start
        expected = workload.warmup.samples + workload.main.samples
        if _count_rows(conn) != expected:
            raise RuntimeError(f"the raw baseline left {_count_rows(conn)} rows, not {expected}")
        return elapsed
    finally:
        conn.close()


def copy_rows(conn: Any, rows: list[RawRow]) -> None:
    with conn.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        for row in rows:
            copy.write_row(row)
    conn.commit()


def executemany_pg(conn: Any, rows: list[RawRow]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(INSERT_PG, rows)
    conn.commit()


def executemany_sqlite(conn: Any, rows: list[RawRow]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT_SQLITE, rows)
    conn.execute("COMMIT")


def time_json_loads(workload: Workload) -> float:
    payloads = [m.payload for m in workload.main.messages]
    gc.collect()
    start = time.perf_counter()
    for payload in payloads:
        json.loads(payload)
    return time.perf_counter() - start


def time_codec(workload: Workload) -> float:
    codec = JsonCodec()
    messages = workload.main.messages
    gc.collect()
    start = time.perf_counter()
    for message in messages:
        parse_topic(message.topic)
        codec.decode(TopicKind.DATA, message.payload)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- one database


def bench_database(server: ScratchServer, workload: Workload, repeats: int) -> list[Measured]:
    n, samples = len(workload.main.messages), workload.main.samples
    db = server.name
    unique = Measured(db, "forgeline IngestWriter.write", n, samples, samples)
    twice = Measured(db, "forgeline, every message twice", 2 * n, 2 * samples, samples)
    again = Measured(db, "forgeline, re-delivery (all duplicates)", n, samples, 0)
    raws: list[tuple[Measured, Callable[[Any, list[RawRow]], None]]] = []
    if db == "postgresql":
        raws.append(
            (Measured(db, "raw COPY ... FROM STDIN (write_row)", n, samples, samples), copy_rows)
        )
        raws.append((Measured(db, "raw executemany INSERT", n, samples, samples), executemany_pg))
    else:
        raws.append(
            (Measured(db, "raw executemany INSERT", n, samples, samples), executemany_sqlite)
        )

    for run in range(1, repeats + 1):
        tag = f"[{db}] run {run}/{repeats}"
        writer = Forgeline(server.fresh(), workload)
        try:
            unique.seconds.append(writer.run(workload.batches(), samples, 0))
            progress(f"{tag} {unique.path}: {unique.seconds[-1]:.2f} s")
            again.seconds.append(writer.run(workload.batches(), 0, n))
            progress(f"{tag} {again.path}: {again.seconds[-1]:.2f} s")
        finally:
            writer.close()
        writer = Forgeline(server.fresh(), workload)
        try:
            twice.seconds.append(writer.run(workload.twice_batches(), samples, n))
            progress(f"{tag} {twice.path}: {twice.seconds[-1]:.2f} s")
        finally:
            writer.close()
        for measured, write in raws:
            measured.seconds.append(time_raw(server.fresh(), workload, write))
            progress(f"{tag} {measured.path}: {measured.seconds[-1]:.2f} s")
    return [unique, twice, again, *(m for m, _ in raws)]


def bench_decode(workload: Workload, repeats: int) -> list[Measured]:
    n, samples = len(workload.main.messages), workload.main.samples
    loads = Measured("-", "json.loads of the payloads", n, samples, 0)
    codec = Measured("-", "parse_topic + JsonCodec.decode", n, samples, 0)
    time_json_loads(workload)
    time_codec(workload)  # warm-up
    for run in range(1, repeats + 1):
        loads.seconds.append(time_json_loads(workload))
        codec.seconds.append(time_codec(workload))
        progress(
            f"[decode] run {run}/{repeats} json.loads {loads.seconds[-1]:.3f} s, "
            f"JsonCodec {codec.seconds[-1]:.3f} s"
        )
    return [loads, codec]


# --------------------------------------------------------------------------- profile

# (depth, label, file suffix, function): the steps of IngestWriter.write, by cumulative time.
_WRITER = "cloud/ingest/writer.py"
_SQL_STORE = "cloud/timeseries/sql.py"
_STEPS = (
    (0, "write() total", _WRITER, "write"),
    (1, "decode + validate (_decode)", _WRITER, "_decode"),
    (1, "transaction (_write_items)", _WRITER, "_write_items"),
    (2, "_store", _WRITER, "_store"),
    (3, "claim (edge, session, seq) (_claim)", _WRITER, "_claim"),
    (3, "new series (_add_series)", _WRITER, "_add_series"),
    (3, "ts_sample rows (_sample_rows)", _WRITER, "_sample_rows"),
    (3, "COPY + latest upsert (SqlTimeSeriesStore._write)", _SQL_STORE, "_write"),
    (4, "newest per series (newest_by_series)", _SQL_STORE, "newest_by_series"),
    (3, "state series of the devices (_state_roles)", _WRITER, "_state_roles"),
    (3, "touch edges (_touch_edges)", _WRITER, "_touch_edges"),
    (3, "machine states (_derive_states)", _WRITER, "_derive_states"),
)


def profile_database(server: ScratchServer, workload: Workload) -> str:
    """A cProfile breakdown of one forgeline pass (cProfile slows Python code more than I/O)."""
    writer = Forgeline(server.fresh(), workload)
    profiler = cProfile.Profile()
    try:
        writer.run(workload.batches(), workload.main.samples, 0, profiler)
    finally:
        writer.close()
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in raw.items():
        for _depth, label, suffix, name in _STEPS:
            if filename.endswith(suffix) and function == name:
                cumulative[label] = cumulative.get(label, 0.0) + ct
    total = cumulative.get("write() total", 0.0) or 1.0
    store_children = sum(
        cumulative.get(label, 0.0) for depth, label, _s, _n in _STEPS if depth == 3
    )
    derived = {
        "rest of _store (bookkeeping)": cumulative.get("_store", 0.0) - store_children,
        "begin + commit (_write_items - _store)": (
            cumulative.get("transaction (_write_items)", 0.0) - cumulative.get("_store", 0.0)
        ),
    }
    lines = [f"### cProfile of one forgeline pass on {server.name} (cumulative seconds)", ""]
    lines += ["| step | seconds | share |", "|---|---:|---:|"]
    rows = [(d, label) for d, label, _s, _n in _STEPS if label in cumulative]
    rows.append((3, "rest of _store (bookkeeping)"))
    rows.append((2, "begin + commit (_write_items - _store)"))
    for depth, label in rows:
        seconds = cumulative.get(label, derived.get(label, 0.0))
        lines.append(f"| {'· ' * depth}{label} | {seconds:.3f} | {seconds / total:.0%} |")
    lines += ["", "Top functions by own time:", "", "```"]
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(15)
    body = stream.getvalue().strip().splitlines()
    header = body.index("") + 1 if "" in body else 0  # drop pstats' own preamble
    site_packages = str(Path(json.__file__).parent)
    repo = str(Path(__file__).resolve().parents[2])
    shorten = [
        line.replace(repo + "/", "")
        .replace(site_packages + "/", "")
        .replace(str(Path(sys.prefix) / "lib"), "venv/lib")
        for line in body[header:]
    ]
    lines += [*shorten, "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def machine_lines(servers: Sequence[ScratchServer]) -> list[str]:
    cpu = cpu_model()
    ram = ram_gib()
    pg = next((s.version for s in servers if s.name == "postgresql"), "not used")
    libs = ", ".join(f"{name} {version(name)}" for name in ("SQLAlchemy", "psycopg", "alembic"))
    return [
        f"- CPU: {os.cpu_count()} × {cpu} (nproc {len(os.sched_getaffinity(0))})",
        f"- RAM: {ram:.1f} GiB",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} {platform.release()}",
        f"- PostgreSQL server {pg}; SQLite library {sqlite3.sqlite_version}",
        f"- {libs}",
        f"- load average when the run ended: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def _fmt(rate: float) -> str:
    return f"{rate:,.0f}"


def table(results: Sequence[Measured]) -> list[str]:
    baselines: dict[str, Measured] = {}
    for m in results:
        if m.database == "postgresql" and m.path.startswith("raw COPY"):
            baselines[m.database] = m
        if m.database == "sqlite" and m.path.startswith("raw executemany"):
            baselines[m.database] = m
    lines = [
        "| database | path | messages/s | samples/s | stored samples/s | stored ÷ raw baseline |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for m in results:
        base = baselines.get(m.database)
        stored = m.rate(m.stored_samples) if m.stored_samples else 0.0
        if base is None or not m.stored_samples:
            ratio = "—"
        else:
            ratio = f"{stored / base.rate(base.stored_samples):.2f}"
        lines.append(
            f"| {m.database} | {m.path} | {_fmt(m.rate(m.messages))} | {_fmt(m.rate(m.samples))} "
            f"| {_fmt(stored) if m.stored_samples else '—'} | {ratio} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--messages", type=int, default=4000, help="data messages per run")
    parser.add_argument("--samples-per-message", type=int, default=20)
    parser.add_argument(
        "--batch", type=int, default=500, help="messages per write (the worker's default)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="add a cProfile breakdown")
    args = parser.parse_args(argv)
    if min(args.messages, args.samples_per_message, args.batch, args.repeats) < 1:
        parser.error("--messages, --samples-per-message, --batch and --repeats must be >= 1")

    started = time.perf_counter()
    progress(f"building {args.messages} messages of {args.samples_per_message} samples ...")
    workload = build_workload(args.messages, args.samples_per_message, args.batch)
    payload_bytes = sum(len(m.payload) for m in workload.main.messages)
    progress(
        f"built: {len(workload.plant.devices)} devices on "
        f"{len({d.edge for d in workload.plant.devices})} edges, {workload.main.samples} samples, "
        f"{payload_bytes / len(workload.main.messages):,.0f} bytes a message"
    )

    names = ("postgresql", "sqlite") if args.db == "both" else (args.db,)
    servers: list[ScratchServer] = []
    results: list[Measured] = []
    profiles: list[str] = []
    try:
        for name in names:
            server: ScratchServer = PostgresScratch() if name == "postgresql" else SqliteScratch()
            servers.append(server)
            results += bench_database(server, workload, args.repeats)
            if args.profile:
                progress(f"[{name}] profiling one forgeline pass ...")
                profiles.append(profile_database(server, workload))
        results += bench_decode(workload, args.repeats)
        machine = machine_lines(servers)
    finally:
        for server in servers:
            server.close()

    command = "python tests/bench/bench_ingest.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print("## Machine\n")
    print("\n".join(machine))
    print(f"\n## Command\n\n```\n{command.strip()}\n```\n")
    print(
        f"{len(workload.main.messages)} messages × {args.samples_per_message} samples "
        f"({workload.main.samples} samples, {payload_bytes / len(workload.main.messages):,.0f} "
        f"bytes a message), batches of {args.batch}, {len(workload.plant.devices)} devices; "
        f"median of {args.repeats} runs.\n"
    )
    print("\n".join(table(results)))
    for profile in profiles:
        print("\n" + profile)
    progress(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
