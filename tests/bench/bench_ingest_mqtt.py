"""Benchmark of ingest end to end from MQTT into PostgreSQL, against a raw COPY in the same run.

Run by hand from the repository root (pytest collects ``test_*.py`` only, never this file)::

    .venv/bin/python tests/bench/bench_ingest_mqtt.py [--messages N] [--samples-per-message K]
        [--batch B] [--repeats R] [--workers W] [--profile]

Paths, each on a fresh schema (and a fresh broker) R times, median shown:

``raw COPY``          psycopg 3 ``COPY ts_sample (...) FROM STDIN`` with ``write_row`` of the same
                      rows, already decoded, series ids known, into a freshly migrated
                      ``ts_sample`` (same index); one transaction per B messages. The baseline.
``raw COPY binary``   the same in ``FORMAT BINARY``, as forgeline's store writes: shown so that
                      the baseline is seen not to be the slower of the two.
``MQTT only``         a publisher process (paho, QoS 1) → Mosquitto → a paho subscriber in this
                      process that only counts: the floor of the MQTT leg, no database.
``writer, no MQTT``   ``IngestWriter.write()`` called directly with batches of B messages.
``forgeline``         the publisher process → Mosquitto → the real ``IngestWorker``
                      (``cloud.ingest.worker``, built from ``CloudConfig`` as ``cloud.service``
                      does) → PostgreSQL. Timed from the first publish to the moment the
                      worker has committed every sample; the table then checks with
                      ``count(*)`` that every sample and claim is in the database exactly once.
                      ``--workers W`` runs W workers on the shared subscription, the first in
                      this process, the others in their own processes.

The broker is a real Mosquitto on a free port, with ``max_queued_messages 0`` (no limit) and
the ``deploy/`` in-flight window, because its default limit of 1000 queued messages would drop
messages silently while the worker falls behind the publisher. The publisher is a separate
process that publishes the pre-encoded messages as fast as the broker acknowledges them (200
in flight, like the edge). Before the clock starts the worker has stored the births and a
warm-up stream, so its series ids are cached and its statements prepared.

The worker runs in the benchmark's process; ``gc.freeze()`` after building the workload keeps
the pre-encoded stream out of the garbage collector's full passes, as if the worker ran alone.

Progress goes to stderr; the machine, the command, the table and the CPU split of the
end-to-end run go to stdout as Markdown. ``--profile`` adds a cProfile of the worker's
``IngestWriter.decode`` and ``write_decoded`` calls during one extra end-to-end run.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import multiprocessing
import os
import pstats
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from bench_ingest import (
    COPY_SQL,
    Forgeline,
    Workload,
    build_workload,
    copy_rows,
    machine_lines,
    progress,
    time_raw,
)
from paho.mqtt.enums import CallbackAPIVersion
from scratch_db import FreshDatabase, PostgresScratch
from sqlalchemy import Engine, text

from cloud.config import CloudConfig
from cloud.db import create_engine_for
from cloud.ingest.worker import IngestWorker

REPO = Path(__file__).resolve().parents[2]
PUBLISHER_INFLIGHT = 200  # what edge/mqtt_link.py uses
BROKER_CONFIG = (
    "max_queued_messages 0",  # no limit: the default 1000 drops silently for a slow subscriber
    "max_queued_bytes 0",
    "max_inflight_messages 100",  # as deploy/mosquitto/mosquitto.conf
)
STALL_S = 60.0
COPY_TYPES = ("int4", "int8", "float8", "text", "int2", "text")


def _broker_class() -> Any:
    """``MosquittoBroker`` from tests/conftest.py (tests/ is not a package)."""
    path = REPO / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("forgeline_test_fixtures", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MosquittoBroker


# --------------------------------------------------------------------------- publisher process


@dataclass(frozen=True)
class Published:
    """What the publisher process reports: its clock at the first publish and at the last ack."""

    first_publish: float
    all_acked: float
    cpu_s: float


def publish_all(port: int, messages: list[tuple[str, bytes]], report: Any) -> None:
    """In a separate process: connect, publish every message at QoS 1, wait for every ack."""
    acked = 0
    done = threading.Event()
    total = len(messages)

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == total:
            done.set()

    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-publisher-{os.getpid()}")
    client.max_inflight_messages_set(PUBLISHER_INFLIGHT)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"the publisher could not connect to the broker on port {port}")
    cpu_start = time.process_time()
    first = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process on Linux
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    if not done.wait(600):
        raise RuntimeError(f"the broker acknowledged {acked} of {total} messages in 600 s")
    last = time.monotonic()
    client.disconnect()
    client.loop_stop()
    report.send(Published(first, last, time.process_time() - cpu_start))


class Publisher:
    """The publisher process, started with ``spawn`` (no fork of a process with threads)."""

    def __init__(self, port: int, messages: list[tuple[str, bytes]]) -> None:
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self.process = context.Process(
            target=publish_all, args=(port, messages, send), name="bench-publisher", daemon=True
        )
        self.process.start()
        send.close()

    def result(self, timeout: float = 600.0) -> Published:
        if not self._receive.poll(timeout):
            raise RuntimeError("the publisher process did not report")
        published: Published = self._receive.recv()
        self.process.join(10)
        return published

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)


def _as_pairs(workload_messages: Sequence[Any]) -> list[tuple[str, bytes]]:
    return [(m.topic, m.payload) for m in workload_messages]


# --------------------------------------------------------------------------- measurements


@dataclass
class Measured:
    """One path's runs: how much one run moves, how long each run took."""

    path: str
    messages: int
    samples: int
    seconds: list[float] = field(default_factory=list)

    def rate(self, count: int) -> float:
        return count / statistics.median(self.seconds)


@dataclass
class EndToEnd:
    """Details of one end-to-end run, for the CPU split and the checks."""

    seconds: float
    publish_seconds: float
    batches: int
    stored_messages: int
    cpu: dict[str, float]
    queue_depths: list[int]


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds (user + system) of one thread of this process, from /proc."""
    if native_id is None:
        return 0.0
    return _stat_cpu(Path(f"/proc/self/task/{native_id}/stat"))


def _stat_cpu(path: Path) -> float:
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int | None) -> float:
    return 0.0 if pid is None else _stat_cpu(Path(f"/proc/{pid}/stat"))


def copy_rows_binary(conn: Any, rows: list[Any]) -> None:
    """The same COPY in binary format, as ``SqlTimeSeriesStore`` writes it."""
    with conn.cursor() as cursor, cursor.copy(COPY_SQL + " (FORMAT BINARY)") as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(row)
    conn.commit()


def time_mqtt_only(broker_class: Any, workload: Workload) -> float:
    """Publisher → Mosquitto → a paho subscriber here that counts; seconds until all arrived."""
    broker = broker_class(extra_config=list(BROKER_CONFIG)).start()
    received = 0
    all_in = threading.Event()
    total = len(workload.main.messages)
    subscribed = threading.Event()

    def on_message(*_args: Any) -> None:
        nonlocal received
        received += 1
        if received == total:
            all_in.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-counter")
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    try:
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.subscribe("forgeline/v1/+/+/+/data", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("the counting subscriber was not subscribed within 10 s")
        publisher = Publisher(broker.port, _as_pairs(workload.main.messages))
        try:
            if not all_in.wait(600):
                raise RuntimeError(f"the subscriber received {received} of {total} messages")
            end = time.monotonic()
            published = publisher.result()
        finally:
            publisher.kill()
        return end - published.first_publish
    finally:
        client.disconnect()
        client.loop_stop()
        broker.cleanup()


def serve_worker(config: CloudConfig, ready: Any, stop: Any, counts: Any) -> None:
    """In a separate process: one more ``IngestWorker``; ``counts`` mirrors its counters."""
    engine = create_engine_for(config.database_url)
    worker = IngestWorker(config, engine)
    worker.start()
    try:
        if not worker.wait_connected(10):
            raise RuntimeError("an extra worker could not connect to the broker")
        ready.set()
        while True:
            stopping = stop.wait(0.02)
            snapshot = worker.counters.snapshot()
            counts[0] = snapshot["stored_samples"]
            counts[1] = sum(
                snapshot[k] for k in ("duplicates", "dead_letters", "dropped_queue_full")
            )
            if stopping:
                return
    finally:
        worker.stop()
        engine.dispose()


class ExtraWorker:
    """An ``IngestWorker`` in its own process, sharing the subscription with the others."""

    def __init__(self, config: CloudConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._counts = context.Array("q", 2, lock=False)
        self.process = context.Process(
            target=serve_worker, args=(config, self._ready, self._stop, self._counts),
            name=f"bench-{config.worker_id}", daemon=True,
        )  # fmt: skip
        self.process.start()
        if not self._ready.wait(30):
            self.close()
            raise RuntimeError(f"worker {config.worker_id} did not start")

    @property
    def stored_samples(self) -> int:
        return int(self._counts[0])

    @property
    def lost(self) -> int:
        """Duplicates, dead letters and queue drops: none is expected."""
        return int(self._counts[1])

    def close(self) -> None:
        self._stop.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)


class WorkerRun:
    """A fresh schema, a fresh broker and started ``IngestWorker``s, births and warm-up stored.

    The first worker runs in this process (its threads are measured); ``workers - 1`` more run
    in their own processes, all on the shared subscription, as several cloud processes would.
    """

    def __init__(self, broker_class: Any, fresh: FreshDatabase, workload: Workload, run: int,
                 batch: int, workers: int = 1) -> None:  # fmt: skip
        self.workload = workload
        self.queue_depths: list[int] = []
        self.extra: list[ExtraWorker] = []
        self.broker = broker_class(extra_config=list(BROKER_CONFIG)).start()
        self.engine: Engine = create_engine_for(fresh.url)
        config = CloudConfig(
            mqtt_url=self.broker.url, db_url=fresh.url, worker_id=f"bench-{run}",
            batch_max_messages=batch,
        )  # fmt: skip
        self.worker = IngestWorker(config, self.engine)
        self.worker.start()
        if not self.worker.wait_connected(10):
            raise RuntimeError(f"the worker did not connect; broker log:\n{self.broker.log()}")
        for i in range(2, workers + 1):
            self.extra.append(ExtraWorker(config.with_overrides(worker_id=f"bench-{run}-{i}")))
        births = len(workload.births)
        self._publish_and_wait(workload.births, lambda c: c["births"] >= births, "the births")
        warm = workload.warmup.samples
        self._publish_and_wait(
            workload.warmup.messages, lambda c: c["stored_samples"] >= warm, "the warm-up stream"
        )

    def _publish_and_wait(
        self, messages: Sequence[Any], done: Callable[[dict[str, Any]], bool], what: str
    ) -> tuple[float, Published]:
        """Publish from a publisher process; seconds from its first publish until ``done``."""
        publisher = Publisher(self.broker.port, _as_pairs(messages))
        try:
            end = self._wait(done, what, publisher)
            published = publisher.result()
        finally:
            publisher.kill()
        return end - published.first_publish, published

    def _wait(
        self, done: Callable[[dict[str, Any]], bool], what: str, publisher: Publisher
    ) -> float:
        last_progress, last_count = time.monotonic(), -1
        self.queue_depths = []
        while True:
            counters = self._counters()
            if done(counters):
                return time.monotonic()
            self.queue_depths.append(self.worker.queued)
            if publisher.process.exitcode not in (None, 0):
                raise RuntimeError(
                    f"the publisher process failed (exit code {publisher.process.exitcode})"
                )
            if counters["dropped_queue_full"] or counters["dead_letters"]:
                raise RuntimeError(f"the worker lost messages while storing {what}: {counters}")
            count = counters["stored_samples"] + counters["births"]
            if count != last_count:
                last_progress, last_count = time.monotonic(), count
            elif time.monotonic() - last_progress > STALL_S:
                raise RuntimeError(
                    f"no progress for {STALL_S:.0f} s while storing {what}: {counters}; broker "
                    f"log:\n{self.broker.log()[-3000:]}"
                )
            time.sleep(0.02)

    def _counters(self) -> dict[str, Any]:
        """The in-process worker's counters, with every worker's stored samples and losses."""
        counters = self.worker.counters.snapshot()
        counters["stored_samples"] += sum(w.stored_samples for w in self.extra)
        counters["dead_letters"] += sum(w.lost for w in self.extra)
        return counters

    def run_main(self, profiler: cProfile.Profile | None = None) -> EndToEnd:
        if profiler is not None:
            self._profile_writes(profiler)
        worker_threads = {
            "worker: writer thread": getattr(self.worker._thread, "native_id", None),
            "worker: paho network thread": getattr(
                getattr(self.worker._client, "_thread", None), "native_id", None
            ),
        }
        before = self._counters()
        extra_pids = [w.process.pid for w in self.extra]
        extra_before = sum(_process_cpu(pid) for pid in extra_pids)
        cpu_before = {name: _thread_cpu(tid) for name, tid in worker_threads.items()}
        process_before = time.process_time()
        broker_pid = self.broker.process.pid if self.broker.process else None
        broker_before = _process_cpu(broker_pid)
        backends = self._backend_pids()
        backends_before = sum(_process_cpu(pid) for pid in backends)
        target = before["stored_samples"] + self.workload.main.samples
        gc.collect()
        seconds, published = self._publish_and_wait(
            self.workload.main.messages, lambda c: c["stored_samples"] >= target, "the main stream"
        )
        after = self._counters()
        cpu = {name: _thread_cpu(tid) - cpu_before[name] for name, tid in worker_threads.items()}
        cpu["worker process, all threads"] = time.process_time() - process_before
        if extra_pids:
            cpu[f"{len(extra_pids)} more worker processes"] = (
                sum(_process_cpu(pid) for pid in extra_pids) - extra_before
            )
        cpu["mosquitto"] = _process_cpu(broker_pid) - broker_before
        cpu["PostgreSQL backends of the workers"] = (
            sum(_process_cpu(pid) for pid in backends) - backends_before
        )
        cpu["publisher process"] = published.cpu_s
        self._check(after)
        return EndToEnd(
            seconds,
            published.all_acked - published.first_publish,
            after["batches"] - before["batches"],
            after["stored_messages"] - before["stored_messages"],
            cpu,
            self.queue_depths,
        )

    def _backend_pids(self) -> list[int]:
        """The server processes of every connection to the scratch database (same machine)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
            return [int(r[0]) for r in rows]

    def _profile_writes(self, profiler: cProfile.Profile) -> None:
        """Profile the writer thread's calls into the writer (decode and write)."""
        writer = self.worker.writer

        def profiled(method: Callable[[Any], Any]) -> Callable[[Any], Any]:
            def call(batch: Any) -> Any:
                profiler.enable()
                try:
                    return method(batch)
                finally:
                    profiler.disable()

            return call

        writer.decode = profiled(writer.decode)  # type: ignore[method-assign,assignment]
        writer.write_decoded = profiled(writer.write_decoded)  # type: ignore[method-assign,assignment]

    def _check(self, counters: dict[str, Any]) -> None:
        """Every sample and every claim stored exactly once, nothing dropped or dead-lettered."""
        messages = len(self.workload.warmup.messages) + len(self.workload.main.messages)
        samples = self.workload.warmup.samples + self.workload.main.samples
        with self.engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM ts_sample")).scalar_one()
            claims = conn.execute(text("SELECT count(*) FROM ingest_message")).scalar_one()
        bad = {k: counters[k] for k in ("duplicates", "dead_letters", "dropped_queue_full")}
        if (stored, claims) != (samples, messages) or any(bad.values()):
            raise RuntimeError(
                f"the database holds {stored} samples and {claims} claims, expected {samples} "
                f"and {messages}; worker counters {bad}: the benchmark measured the wrong work"
            )
        if "dropped" in self.broker.log():
            raise RuntimeError(f"the broker dropped messages:\n{self.broker.log()[-3000:]}")

    def close(self) -> None:
        for extra in self.extra:
            extra.close()
        self.worker.stop()
        self.engine.dispose()
        self.broker.cleanup()


# --------------------------------------------------------------------------- report


def _fmt(rate: float) -> str:
    return f"{rate:,.0f}"


def table(results: Sequence[Measured], baseline: Measured, binary: Measured) -> list[str]:
    base, base_binary = baseline.rate(baseline.samples), binary.rate(binary.samples)
    lines = [
        "| path | messages/s | samples/s | ÷ raw COPY | ÷ raw COPY binary |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in results:
        rate = m.rate(m.samples)
        lines.append(
            f"| {m.path} | {_fmt(m.rate(m.messages))} | {_fmt(rate)} "
            f"| {rate / base:.2f} | {rate / base_binary:.2f} |"
        )
    return lines


def cpu_table(run: EndToEnd) -> list[str]:
    lines = [
        f"CPU of the median end-to-end run ({run.seconds:.2f} s wall; the publisher had every "
        f"message acknowledged by the broker after {run.publish_seconds:.2f} s; "
        f"the worker in this process stored {run.batches} batches, "
        f"{run.stored_messages / max(run.batches, 1):.0f} messages a batch on average):",
        "",
        "| process / thread | CPU-seconds | share of the wall time |",
        "|---|---:|---:|",
    ]
    for name, seconds in run.cpu.items():
        lines.append(f"| {name} | {seconds:.2f} | {seconds / run.seconds:.0%} |")
    depths = sorted(run.queue_depths) or [0]
    lines += [
        "",
        f"The worker's queue (sampled every 20 ms): median {statistics.median(depths):,.0f}, "
        f"max {depths[-1]:,} messages; below one batch in "
        f"{sum(d < 500 for d in depths) / len(depths):.0%} of the samples.",
    ]
    return lines


def profile_text(profiler: cProfile.Profile) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(20)
    body = stream.getvalue().replace(str(REPO) + "/", "")
    return "\n".join(line for line in body.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="data messages per run")
    parser.add_argument("--samples-per-message", type=int, default=20)
    parser.add_argument(
        "--batch", type=int, default=500, help="the worker's batch_max_messages (its default)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=1,
        help="ingest workers on the shared subscription (the extra ones in their own processes)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", action="store_true", help="add a cProfile of the worker's writes"
    )
    args = parser.parse_args(argv)
    if min(args.messages, args.samples_per_message, args.batch, args.repeats, args.workers) < 1:
        parser.error("--messages, --samples-per-message, --batch, --repeats, --workers: >= 1")

    started = time.perf_counter()
    progress(f"building {args.messages} messages of {args.samples_per_message} samples ...")
    workload = build_workload(args.messages, args.samples_per_message, args.batch)
    n, samples = len(workload.main.messages), workload.main.samples
    payload_bytes = sum(len(m.payload) for m in workload.main.messages)
    progress(
        f"built: {len(workload.plant.devices)} devices, {samples} samples, "
        f"{payload_bytes / n:,.0f} bytes a message"
    )
    broker_class = _broker_class()
    # The worker runs in this process: keep the benchmark's own data (the pre-encoded stream and
    # its rows) out of the garbage collector's full passes, as if the worker ran alone.
    gc.collect()
    gc.freeze()
    raw = Measured("raw COPY ... FROM STDIN (write_row), no MQTT", n, samples)
    raw_binary = Measured("raw COPY ... FROM STDIN (FORMAT BINARY), no MQTT", n, samples)
    mqtt_only = Measured(
        "MQTT only: publisher → Mosquitto → paho subscriber that counts", n, samples
    )
    direct = Measured(
        f"forgeline IngestWriter.write, no MQTT (batches of {args.batch})", n, samples
    )
    workers = "IngestWorker" if args.workers == 1 else f"{args.workers} IngestWorkers"
    end_to_end = Measured(
        f"**forgeline end to end: publisher → Mosquitto → {workers} → PostgreSQL**", n, samples
    )
    runs: list[EndToEnd] = []
    profile = ""
    server = PostgresScratch()
    try:
        for run in range(1, args.repeats + 1):
            tag = f"run {run}/{args.repeats}"
            raw.seconds.append(time_raw(server.fresh(), workload, copy_rows))
            progress(f"[{tag}] {raw.path}: {raw.seconds[-1]:.2f} s")
            raw_binary.seconds.append(time_raw(server.fresh(), workload, copy_rows_binary))
            progress(f"[{tag}] {raw_binary.path}: {raw_binary.seconds[-1]:.2f} s")
            mqtt_only.seconds.append(time_mqtt_only(broker_class, workload))
            progress(f"[{tag}] MQTT only: {mqtt_only.seconds[-1]:.2f} s")
            writer = Forgeline(server.fresh(), workload)
            try:
                direct.seconds.append(writer.run(workload.batches(), samples, 0))
            finally:
                writer.close()
            progress(f"[{tag}] IngestWriter.write, no MQTT: {direct.seconds[-1]:.2f} s")
            progress(f"[{tag}] end to end: fresh schema and broker, births, warm-up ...")
            worker_run = WorkerRun(
                broker_class, server.fresh(), workload, run, args.batch, args.workers
            )
            try:
                progress(f"[{tag}] end to end: publishing {n} messages ...")
                runs.append(worker_run.run_main())
            finally:
                worker_run.close()
            end_to_end.seconds.append(runs[-1].seconds)
            progress(
                f"[{tag}] end to end: {runs[-1].seconds:.2f} s "
                f"({samples / runs[-1].seconds:,.0f} samples/s, every sample checked)"
            )
        if args.profile:
            progress("profiling the worker's writes in one more end-to-end run ...")
            profiler = cProfile.Profile()
            worker_run = WorkerRun(
                broker_class, server.fresh(), workload, 99, args.batch, args.workers
            )
            try:
                worker_run.run_main(profiler)
            finally:
                worker_run.close()
            profile = profile_text(profiler)
        machine = machine_lines([server])
    finally:
        server.close()

    command = "python tests/bench/bench_ingest_mqtt.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    median_run = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    print("## Machine\n")
    print("\n".join(machine))
    print(f"\n## Command\n\n```\n{command.strip()}\n```\n")
    print(
        f"{n} messages × {args.samples_per_message} samples ({samples} samples, "
        f"{payload_bytes / n:,.0f} bytes a message), worker batches of up to {args.batch}, "
        f"{len(workload.plant.devices)} devices; median of {args.repeats} runs.\n"
    )
    print("\n".join(table([raw, raw_binary, mqtt_only, direct, end_to_end], raw, raw_binary)))
    print()
    print("\n".join(cpu_table(median_run)))
    if profile:
        print(f"\n### cProfile of the worker's writer calls\n\n```\n{profile}\n```")
    progress(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
