"""The alarm engine: fed by the ingest stream, ticking on its own thread, telling the notifier.

Threads: ``observe`` runs in the ingest writer thread and only puts the stored batch on a
bounded queue (microseconds; a full queue drops the batch, counted and logged once). One
engine thread takes batches off the queue, evaluates them in memory (``Evaluation``), stores
the resulting transitions (``transitions``, one transaction) and hands the notifications to
the ``Notifier``; every ``tick_s`` it lets time pass (delays, stale data, state durations,
stalled counters), escalates, expires shelves and hands over API-recorded events. Between
ticks, points whose on- or off-delay is running are checked every ``TIMER_PASS_S``, so a delay
fires within about 0.1 s of running out rather than at the next tick. A slow or
failing database for alarms therefore never delays ingest: unsaved transitions are kept and
retried on the next tick.

Every ``refresh_s`` (and after a birth, or ``wake()`` from the API) it reloads machines,
series, limits and rules and aligns its points with the open alarms in the database, which is
what several workers sharing the stream converge on (see ``docs/alarms.md``, "Several
workers").
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from cloud.alarms import catalog as db
from cloud.alarms.builtin import builtin_rules
from cloud.alarms.evaluation import Evaluation
from cloud.alarms.points import Catalog, bind
from cloud.alarms.rules import AlarmRule, RuleEntry, combine_rules, load_rules_file
from cloud.alarms.transitions import (
    PointChange,
    apply_changes,
    escalate_due,
    expire_shelves,
    hand_over_pending,
)
from cloud.config import CloudConfig
from cloud.counters import Counters
from cloud.db import writer_engine
from cloud.ingest.handoff import BatchConsumer
from cloud.ingest.writer import BatchResult
from cloud.notify.message import Notification, Notifier
from protocols.clock import now_ms

log = logging.getLogger(__name__)

TIMER_PASS_S = 0.1  # how often running on/off-delays are checked between ticks

_WAKE = object()
_MAX_UNSAVED = 50_000
_UNKNOWN_DEVICE_REFRESH_MS = 5_000


@dataclass
class AlarmCounters(Counters):
    """What the engine has done since it started (read with ``snapshot()``)."""

    batches: int = 0
    samples_evaluated: int = 0
    samples_ignored_old: int = 0
    transitions: int = 0
    notifications: int = 0
    dropped_batches: int = 0
    db_errors: int = 0
    errors: int = 0
    refreshes: int = 0
    points: int = 0
    unsaved: int = 0
    last_evaluation_ms: float = 0.0


class AlarmEngine(BatchConsumer):
    """Alarm evaluation for one cloud worker: ``start()``, ``observe(batch)``, ``stop()``."""

    def __init__(
        self,
        engine: Engine,
        notifier: Notifier,
        *,
        file_rules: Sequence[AlarmRule] = (),
        builtin: bool = True,
        tick_s: float = 1.0,
        refresh_s: float = 10.0,
        operator_position: str = "line",
        queue_max: int = 10_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.engine = engine
        self.notifier = notifier
        self.file_rules = tuple(file_rules)
        self.builtin = builtin
        self.tick_s = tick_s
        self.refresh_s = refresh_s
        self.operator_position = operator_position
        self.clock = clock
        self.counters = AlarmCounters()
        super().__init__(
            self.counters, "alarms: the engine", "their alarms are not evaluated",
            thread_name="alarm-engine", queue_max=queue_max,
        )  # fmt: skip
        self.rules: list[RuleEntry] = []
        self._writer = writer_engine(engine)
        self._evaluation = Evaluation()
        self._edges_online: dict[str, bool] = {}
        self._rules_by_name: dict[str, AlarmRule] = {}
        self._unsaved: list[PointChange] = []
        self._stopping = threading.Event()
        self._failing = False
        self._failing_steps: set[str] = set()
        self._last_refresh_ms = 0
        self._primed = False
        self._unknown_refresh_ms = 0

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Load rules, points and open alarms (a restart resumes them), then start ticking."""
        self.refresh()
        self._start_thread()
        log.info(
            "alarms: %d rules, %d alarm points, ticking every %.3g s",
            len(self.rules), len(self._evaluation.points), self.tick_s,
        )  # fmt: skip

    def stop(self, timeout: float = 10.0) -> None:
        """Evaluate what is queued, store it, and stop the thread."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # wake the thread now; what is queued goes first
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Reload rules and limits and hand over API-recorded events now (called by the API)."""
        with contextlib.suppress(queue.Full):  # full: the next tick does it
            self._queue.put_nowait(_WAKE)

    @property
    def points(self) -> int:
        return len(self._evaluation.points)

    # ------------------------------------------------------------------ loading

    def refresh(self) -> None:
        """Reload machines, series, limits, rules and open alarms; rebind and seed the points."""
        now = self.clock()
        with self.engine.connect() as conn:
            machines = db.load_machines(conn)
            series = db.load_series(conn)
            rules = combine_rules(
                builtin_rules() if self.builtin else (), self.file_rules,
                db.load_stored_rules(conn),
            )  # fmt: skip
            catalog = Catalog(machines, series, db.load_overrides(conn), tuple(rules))
            active = db.load_active_points(conn)
            self._edges_online = db.load_edges_online(conn)
            if not self._primed:  # once, before any batch: what was stored before we ran
                self._evaluation.prime(
                    db.load_latest(conn, machines),
                    db.load_open_states(conn, [m.id for m in machines.values()]),
                )
                self._primed = True
        specs = bind(catalog)
        changes, fresh = self._evaluation.rebind(specs, machines, series, active, now)
        busy = {c.spec.key for c in self._unsaved}
        self._evaluation.reconcile(active, busy | {p.spec.key for p in fresh})
        changes += self._evaluation.seed(fresh)
        self.rules = rules
        self._rules_by_name = {e.rule.name: e.rule for e in rules}
        self._last_refresh_ms = now
        self.counters.bump("refreshes")
        self.counters.points = len(self._evaluation.points)
        self._store(changes)

    def _poll_state_intervals(self) -> None:
        machine_ids = self._evaluation.machines_without_state_tag()
        if not machine_ids:
            return
        with self.engine.connect() as conn:
            states = db.load_open_states(conn, machine_ids)
        changes: list[PointChange] = []
        for machine_id, state in states.items():
            changes += self._evaluation.on_machine_state(machine_id, state)
        self._store(changes)

    # ------------------------------------------------------------------ engine thread

    def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_s
        next_timers = time.monotonic() + TIMER_PASS_S
        while True:
            wake = min(next_tick, next_timers) if self._evaluation.timed else next_tick
            timeout = max(0.0, wake - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is None and self._stopping.is_set():
                self._guard(self._store, [])
                return
            if isinstance(item, BatchResult):
                self._guard(self._on_batch, item)
            elif item is _WAKE:
                self._guard(self._on_wake)
            elif isinstance(item, threading.Event):
                self._guard(self._store, [])
                item.set()
            if time.monotonic() >= next_tick:
                self._tick()
                next_tick = time.monotonic() + self.tick_s
            elif self._evaluation.timed and time.monotonic() >= next_timers:
                self._guard(self._timers_pass, self.clock())
            if time.monotonic() >= next_timers:
                next_timers = time.monotonic() + TIMER_PASS_S

    def _guard(self, step: Callable[..., None], *args: Any) -> None:
        """Run one step; a failure is counted, logged once per streak, and never kills us."""
        name = step.__name__
        try:
            step(*args)
        except Exception:  # the engine thread must outlive any failure
            self.counters.bump("errors")
            if name not in self._failing_steps:
                log.exception("alarms: %s failed; the engine goes on and tries again", name)
            self._failing_steps.add(name)
            return
        if name in self._failing_steps:
            log.info("alarms: %s works again", name)
            self._failing_steps.discard(name)

    def _on_batch(self, result: BatchResult) -> None:
        self._handoff.caught_up()
        started = time.perf_counter()
        if result.births or self._has_unknown_device(result):
            self.refresh()
        before = (self._evaluation.evaluated, self._evaluation.ignored_old)
        changes = self._evaluation.on_stored(result.stored_data)
        self.counters.bump("batches")
        self.counters.bump("samples_evaluated", self._evaluation.evaluated - before[0])
        self.counters.bump("samples_ignored_old", self._evaluation.ignored_old - before[1])
        self.counters.last_evaluation_ms = (time.perf_counter() - started) * 1000
        self._store(changes)

    def _has_unknown_device(self, result: BatchResult) -> bool:
        now = self.clock()
        if now - self._unknown_refresh_ms < _UNKNOWN_DEVICE_REFRESH_MS:
            return False
        machines = self._evaluation.machines
        if any((t.edge, t.device or "") not in machines for t, _rows in result.stored_data):
            self._unknown_refresh_ms = now
            return True
        return False

    def _on_wake(self) -> None:
        self.refresh()
        self._db_jobs(self.clock())

    def _tick(self) -> None:
        """Each step on its own: a database failure in one never stops time for the others."""
        now = self.clock()
        if now - self._last_refresh_ms >= self.refresh_s * 1000:
            self._guard(self.refresh)
        self._guard(self._poll_state_intervals)
        self._guard(self._time_passes, now)
        self._guard(self._db_jobs, now)

    def _time_passes(self, now: int) -> None:
        self._store(self._evaluation.on_tick(now, self._edges_online))

    def _timers_pass(self, now: int) -> None:
        """Between ticks: fire the on- and off-delays that have run out (in memory, quick)."""
        self._store(self._evaluation.on_timers(now, self._edges_online))

    def _db_jobs(self, now: int) -> None:
        with self._writer.begin() as conn:
            told = escalate_due(conn, now, self._rules_by_name)
            told += expire_shelves(conn, now)
            told += hand_over_pending(conn, now)
        self._tell(told)

    def _store(self, changes: list[PointChange]) -> None:
        """Store transitions (with any unsaved from before) and tell; keep them on failure."""
        pending = self._unsaved + changes
        if not pending:
            return
        try:
            with self._writer.begin() as conn:
                told = apply_changes(conn, pending, self.clock())
        except Exception as error:  # noqa: BLE001 - kept and retried on the next tick
            self.counters.bump("db_errors")
            if not self._failing:
                log.error(
                    "alarms: cannot store %d alarm transitions (%s); keeping them and retrying "
                    "every tick. Check the database.", len(pending), error,
                )  # fmt: skip
            self._failing = True
            self._unsaved = pending[-_MAX_UNSAVED:]
            self.counters.unsaved = len(self._unsaved)
            return
        if self._failing:
            log.info("alarms: stored %d transitions after the database came back", len(pending))
        self._failing = False
        self._unsaved = []
        self.counters.unsaved = 0
        self.counters.bump("transitions", len(pending))
        self._tell(told)

    def _tell(self, told: list[Notification]) -> None:
        for notification in told:
            self.notifier.submit(notification)
        self.counters.bump("notifications", len(told))


def build_alarm_engine(config: CloudConfig, engine: Engine, notifier: Notifier) -> AlarmEngine:
    """The alarm engine of a cloud worker, from its config (reads and checks the rules file)."""
    file_rules = load_rules_file(config.alarm_rules_file) if config.alarm_rules_file else ()
    return AlarmEngine(
        engine,
        notifier,
        file_rules=file_rules,
        builtin=config.alarm_builtin_rules,
        tick_s=config.alarm_tick_s,
        refresh_s=config.alarm_refresh_s,
        operator_position=config.operator_position,
    )
