"""Benchmark of SPC evaluation throughput in points per second.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_spc.py [--points 1000000] [--samples 200000]

(a) The streaming core: ``RuleState.push`` over all twelve rules (nelson1..8, we1..4) on
    ``--points`` standard normal points with a slow drift, against two raw baselines measured in
    the same run over the same points: a numpy pass computing every z-score (vectorised), and a
    plain Python loop computing each z-score and summing them (the floor of any per-point loop).
    The batch form ``rules.evaluate`` over the same points is shown too.
(b) End to end on SQLite: ``--samples`` bore samples written through the real ``IngestWriter``
    (messages of 100 samples, 5 messages a batch), with an X̄-R chart (n = 5) and an I-MR chart
    on the metric, both with frozen limits:
    ``catch-up``   one ``evaluate_pending`` pass over everything stored (one read per chart);
    ``streaming``  ``evaluate_pending`` after every stored batch (what the evaluator thread does
                   per batch: read the new samples, plot, push, store points and violations).
    Raw baseline: sqlite3 ``SELECT ts, value`` of the same samples, fetched into Python.

Progress goes to stderr, the result (machine, command, Markdown tables) to stdout.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
from machine_info import cpu_model, ram_gib
from scratch_db import SqliteScratch
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db import create_engine_for
from cloud.ingest.writer import IngestWriter, ReceivedMessage
from cloud.spc import service
from cloud.spc.config import ChartSpec
from cloud.spc.evaluator import evaluate_pending
from cloud.spc.models import SpcPoint, SpcViolation
from cloud.spc.rules import RULES, RuleState, evaluate
from protocols.quality import Quality
from protocols.wire import (
    BirthMessage,
    DataMessage,
    JsonCodec,
    MetricDefinition,
    Sample,
    Topic,
    TopicKind,
)

T0 = 1_800_000_000_000
CODEC = JsonCodec()
ALL_RULES = [str(rule) for rule in RULES]


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


# --- (a) the streaming core --------------------------------------------------------------------


def core(points: int) -> list[tuple[str, float, str]]:
    rng = np.random.default_rng(6)
    values = rng.normal(0.0, 1.0, points) + np.linspace(0.0, 0.5, points)
    as_list = values.tolist()

    def numpy_z() -> float:
        return float(((values - 0.0) / 1.0).sum())

    def python_z() -> float:
        total = 0.0
        for x in as_list:
            total += (x - 0.0) / 1.0
        return total

    def streaming() -> int:
        state = RuleState(0.0, 1.0, ALL_RULES)
        fired = 0
        push = state.push
        for x in as_list:
            fired += len(push(x))
        return fired

    def batch() -> int:
        return len(evaluate(values, 0.0, 1.0, ALL_RULES))

    rows = []
    for name, run in (("raw: numpy z-scores", numpy_z), ("raw: Python loop of z-scores", python_z),
                      ("RuleState.push, 12 rules", streaming),
                      ("rules.evaluate (batch), 12 rules", batch)):  # fmt: skip
        progress(f"(a) {name} ...")
        seconds, result = timed(run)
        rows.append((name, seconds, f"{result:,}" if isinstance(result, int) else "-"))
    fired_stream, fired_batch = rows[2][2], rows[3][2]
    if fired_stream != fired_batch:
        raise SystemExit(f"streaming ({fired_stream}) and batch ({fired_batch}) disagree")
    return rows


# --- (b) end to end on SQLite ------------------------------------------------------------------


def _message(kind: TopicKind, body: Any) -> ReceivedMessage:
    topic = str(Topic.device_topic(kind, "plant1", "edge1", "lathe1"))
    return ReceivedMessage(topic, CODEC.encode(body), 0)


def _batches(samples: int, session: str) -> list[list[ReceivedMessage]]:
    rng = np.random.default_rng(7)
    values = 74.0 + rng.normal(0.0, 0.01, samples)
    values[samples // 2 :] += 0.004  # a shift half way: the run rules have work to do
    messages = []
    for seq, start in enumerate(range(0, samples, 100), start=1):
        chunk = tuple(
            Sample("bore", T0 + i * 1_000, float(values[i]), Quality.GOOD)
            for i in range(start, min(samples, start + 100))
        )
        messages.append(_message(TopicKind.DATA, DataMessage(session, seq, 1_000, chunk)))
    return [messages[i : i + 5] for i in range(0, len(messages), 5)]


def _birth(session: str) -> ReceivedMessage:
    metrics = (MetricDefinition("bore", "float32", "process_param", "mm"),)
    return _message(TopicKind.BIRTH, BirthMessage(session=session, created_ms=1_000,
                                                  profile="lathe", protocol="modbus_tcp",
                                                  metrics=metrics))  # fmt: skip


def _prepare(url: str, baseline: int) -> tuple[Any, IngestWriter, list[int]]:
    """A database with the lathe, its baseline stored, and two charts with frozen limits."""
    engine = create_engine_for(url)
    writer = IngestWriter(engine)
    session_id = uuid.uuid4().hex
    writer.write([_birth(session_id)])
    rng = np.random.default_rng(8)
    base = [("bore", T0 - (baseline - i) * 1_000, 74.0 + float(rng.normal(0.0, 0.01)))
            for i in range(baseline)]  # fmt: skip
    for start in range(0, baseline, 500):
        chunk = tuple(Sample(m, ts, v, Quality.GOOD) for m, ts, v in base[start : start + 500])
        writer.write([_message(TopicKind.DATA, DataMessage(uuid.uuid4().hex, 1, 1_000, chunk))])
    ids = []
    with Session(engine) as session:
        for name, kind, size in (("bore xbar", "xbar_r", 5), ("bore i", "i_mr", 1)):
            spec = ChartSpec(name=name, machine="lathe1", metric="bore", chart_type=kind,
                             subgroup_size=size, rules="nelson")  # fmt: skip
            chart = service.create_chart(session, spec, "bench", T0)
            service.set_limits(session, chart.id, T0 - baseline * 1_000, T0, set_by="bench",
                               now=T0)  # fmt: skip
            ids.append(chart.id)
        session.commit()
    return engine, writer, ids


def _stored(engine: Any) -> tuple[int, int]:
    with Session(engine) as session:
        points = session.scalar(select(func.count()).select_from(SpcPoint)) or 0
        violations = session.scalar(select(func.count()).select_from(SpcViolation)) or 0
    return points, violations


def end_to_end(samples: int) -> list[tuple[str, float, str, str]]:
    scratch = SqliteScratch()
    rows: list[tuple[str, float, str, str]] = []
    try:
        # catch-up: everything stored first, then one pass
        fresh = scratch.fresh()
        engine, writer, _ids = _prepare(fresh.url, 1_000)
        progress("(b) storing the samples for catch-up ...")
        for batch in _batches(samples, uuid.uuid4().hex):
            writer.write(batch)
        raw: sqlite3.Connection = fresh.connect_raw()

        def fetch() -> int:
            rows_ = raw.execute(
                "SELECT ts, value FROM ts_sample WHERE series_id = 1 AND ts >= ? AND quality = 0"
                " ORDER BY ts", (T0,),
            ).fetchall()  # fmt: skip
            return len(rows_)

        progress("(b) raw fetch ...")
        seconds, fetched = timed(fetch)
        rows.append(("raw: SELECT ts, value of the samples", seconds, f"{fetched:,}", "-"))
        progress("(b) catch-up pass ...")
        seconds, _ = timed(lambda: evaluate_pending(engine, now_ms=T0))
        points, violations = _stored(engine)
        rows.append(("catch-up: one pass, X̄-R n=5 + I-MR", seconds, f"{points:,}",
                     f"{violations:,}"))  # fmt: skip
        raw.close()
        engine.dispose()

        # streaming: a pass after every stored batch
        fresh = scratch.fresh()
        engine, writer, _ids = _prepare(fresh.url, 1_000)
        progress("(b) streaming: write a batch, evaluate, repeat ...")
        evaluating = writing = 0.0
        for batch in _batches(samples, uuid.uuid4().hex):
            seconds, _ = timed(lambda batch=batch: writer.write(batch))
            writing += seconds
            seconds, _ = timed(lambda: evaluate_pending(engine, now_ms=T0))
            evaluating += seconds
        points, violations = _stored(engine)
        rows.append(("streaming: a pass per batch of 500 samples", evaluating, f"{points:,}",
                     f"{violations:,}"))  # fmt: skip
        rows.append(("(ingest writer, same batches, for scale)", writing, f"{samples:,}", "-"))
        engine.dispose()
    finally:
        scratch.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200_000)
    args = parser.parse_args(argv)
    core_rows = core(args.points)
    e2e_rows = end_to_end(args.samples)

    out = io.StringIO()
    libs = ", ".join(f"{n} {version(n)}" for n in ("SQLAlchemy", "numpy"))
    print("Machine:", file=out)
    print(f"- CPU: {os.cpu_count()} × {cpu_model()} (nproc {len(os.sched_getaffinity(0))})\n"
          f"- RAM: {ram_gib():.1f} GiB\n"
          f"- Python {platform.python_version()}, {platform.system()} {platform.release()}\n"
          f"- SQLite {sqlite3.sqlite_version}\n- {libs}\n"
          f"- load average when the run ended: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=out)  # fmt: skip
    print(f"\nCommand: `.venv/bin/python tests/bench/bench_spc.py "
          f"{' '.join(argv or sys.argv[1:])}`", file=out)  # fmt: skip
    print(f"\n(a) Streaming core, {args.points:,} points\n", file=out)
    print("| pass | s | points/s | × Python loop | violations |\n|---|---:|---:|---:|---:|",
          file=out)  # fmt: skip
    loop_s = core_rows[1][1]
    for name, seconds, fired in core_rows:
        print(f"| {name} | {seconds:.3f} | {args.points / seconds:,.0f} | "
              f"{seconds / loop_s:.1f} | {fired} |", file=out)  # fmt: skip
    print(f"\n(b) End to end on SQLite, {args.samples:,} samples (1 s apart) of one metric, two "
          "charts\n", file=out)  # fmt: skip
    print("| pass | s | samples/s | points/s | × raw fetch | points | violations |\n"
          "|---|---:|---:|---:|---:|---:|---:|", file=out)  # fmt: skip
    raw_s = e2e_rows[0][1]
    for name, seconds, points, violations in e2e_rows:
        rate = f"{int(points.replace(',', '')) / seconds:,.0f}" if "pass" in name else "-"
        print(f"| {name} | {seconds:.3f} | {args.samples / seconds:,.0f} | {rate} | "
              f"{seconds / raw_s:.1f} | {points} | {violations} |", file=out)  # fmt: skip
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
