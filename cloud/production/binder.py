"""The unit binder: units bound to machine cycles from the PLC's serial tag, and bench tests.

A machine whose profile has a ``unit_serial`` tag shows the serial of the unit it works on.
When that serial changes to S at ``ts`` (a good, non-empty value), the binder finds the
operation running on the machine and calls ``trace.register_unit(..., now=ts, source="plc")``:
the unit is created at a serialising operation (or an existing one is scanned), its cycle on
the machine starts at ``ts`` and the previous unit's cycle ends there. So a trace summarises
the parameters of each unit's own cycle.

On a *test bench* the cycle counter counts finished tests: when it increments at ``ts``, the
unit shown before the serial changed has been tested, and the binder records a ``UnitTest``
for it, from its cycle start to ``ts``, with the latest value of each ``process_param`` series
of the machine judged against the series' limits. The verdict is the bench's own: pass when
``good_count`` incremented at the same moment, fail when ``scrap_count`` did, otherwise every
value within its limits. A machine is a test bench when the binder is told so by name
(``test_benches``: machine or profile names), or else when its profile name, or the name of
the routing step the tested unit's cycle ran in, contains "test".

The samples are read in memory by ``serial_track.SerialTrack`` (plain values, no I/O); this
module carries out what they call for.

Threads: ``observe`` runs in the ingest writer thread and only puts the stored batch on a
bounded queue (a full queue drops the batch, counted and logged once per streak). One binder
thread feeds each machine's samples to its track and carries out what they call for, one
transaction per binding or test. A serial that cannot be bound (no operation runs on the
machine, a serial made by another order, an operation that does not serialise ...) is counted
and logged once per machine and streak, never raised.

Restarts and duplicates: the last serial, counters and parameter values of each machine start
from ``ts_latest``, so a restart does not re-bind the unit already in the machine; a binding
or test that already exists at the same moment (same unit, machine and time) is not stored
twice, so a batch observed again changes nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloud.assets.models import Machine
from cloud.counters import Counters
from cloud.db import writer_engine
from cloud.errors import CloudError
from cloud.ingest.handoff import BatchConsumer
from cloud.ingest.writer import BatchResult
from cloud.production import lifecycle as lc
from cloud.production.models import RoutingOperation, WorkOrderOperation
from cloud.production.records import record_test
from cloud.production.serial_track import (
    Action,
    CycleCounted,
    MachineTags,
    Parameter,
    SerialShown,
    SerialTrack,
)
from cloud.production.trace import register_unit
from cloud.production.trace_models import Unit, UnitCycle, UnitTest
from cloud.timeseries.models import TsLatest, TsSeries

log = logging.getLogger(__name__)

SERIAL_ROLE = "unit_serial"
COUNTER_ROLES = ("cycle_count", "good_count", "scrap_count")
TESTED_ROLE = "process_param"
_ROLES = (SERIAL_ROLE, *COUNTER_ROLES, TESTED_ROLE)
_UNKNOWN_DEVICE_REFRESH_S = 5.0
_NAME_MAX = 64  # unit_test.name


def _first_ts(batch: BatchResult | None) -> dict[tuple[str, ...], int]:
    """(edge, device, metric) → the earliest sample timestamp of it in ``batch``."""
    first: dict[tuple[str, ...], int] = {}
    for topic, rows in batch.stored_data if batch is not None else ():
        for metric, ts, *_ in rows.samples:
            key = (topic.edge, topic.device or "", metric)
            if ts < first.get(key, ts + 1):
                first[key] = ts
    return first


@dataclass
class BinderCounters(Counters):
    """What the binder has done since it started (read with ``snapshot()``)."""

    batches: int = 0
    serial_changes: int = 0
    units_created: int = 0
    units_bound: int = 0
    unbound_serials: int = 0  # no operation ran on the machine
    bind_errors: int = 0  # register_unit refused (the message says why)
    tests_recorded: int = 0
    tests_unrecorded: int = 0  # the tested unit was not bound on the machine, or had no values
    duplicates: int = 0  # a binding or test already stored at the same moment
    dropped_batches: int = 0
    errors: int = 0  # anything else (database down ...): logged, the thread goes on
    refreshes: int = 0
    machines: int = 0


def load_machine_tags(
    session: Session,
) -> tuple[dict[tuple[str, str], MachineTags], set[tuple[str, str]]]:
    """Machines with a ``unit_serial`` series by (edge, device), and every known (edge, device)."""
    known = {
        (edge, device) for edge, device in session.execute(select(Machine.edge, Machine.device))
    }
    rows = session.execute(
        select(Machine, TsSeries)
        .join(TsSeries, (TsSeries.edge == Machine.edge) & (TsSeries.device == Machine.device))
        .where(TsSeries.role.in_(_ROLES))
        .order_by(Machine.id, TsSeries.metric)
    )
    found: dict[int, tuple[Machine, list[TsSeries]]] = {}
    for machine, series in rows:
        found.setdefault(machine.id, (machine, []))[1].append(series)
    out: dict[tuple[str, str], MachineTags] = {}
    for machine, series_list in found.values():
        serial = next((s.metric for s in series_list if s.role == SERIAL_ROLE), None)
        if serial is None:
            continue
        counters = {s.role: s.metric for s in series_list if s.role in COUNTER_ROLES}
        parameters = {
            s.metric: Parameter(s.metric, s.unit, s.low_limit, s.high_limit)
            for s in series_list
            if s.role == TESTED_ROLE
        }
        out[(machine.edge, machine.device)] = MachineTags(
            machine.id, machine.name, machine.profile, machine.edge, machine.device, serial,
            counters, parameters,
        )  # fmt: skip
    return out, known


class UnitBinder(BatchConsumer):
    """Serial tags → unit cycles and bench tests: ``start()``, ``observe(batch)``, ``stop()``."""

    def __init__(
        self,
        engine: Engine,
        *,
        test_benches: Collection[str] | None = None,
        refresh_s: float = 60.0,
        queue_max: int = 10_000,
    ) -> None:
        self.engine = engine
        self.test_benches = None if test_benches is None else frozenset(test_benches)
        self.refresh_s = refresh_s
        self.counters = BinderCounters()
        super().__init__(
            self.counters, "unit binder: the binder", "their serial changes are not bound",
            thread_name="unit-binder", queue_max=queue_max,
        )  # fmt: skip
        self._writer = writer_engine(engine)
        self._machines: dict[tuple[str, str], MachineTags] = {}
        self._known: set[tuple[str, str]] = set()
        self._tracks: dict[int, SerialTrack] = {}
        self._warned: set[tuple[int, str]] = set()  # (machine id, kind) logged this streak
        self._failing_steps: set[str] = set()
        self._last_refresh = 0.0
        self._unknown_refresh = 0.0

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Load the machines with a serial tag and their latest values, then start the thread."""
        self.refresh()
        self._start_thread()
        log.info("unit binder: %d machines with a unit_serial tag", len(self._machines))

    def refresh(self, batch: BatchResult | None = None) -> None:
        """Reload the machines with a serial tag; prime the ones new to us from ``ts_latest``.

        During a batch, ``ts_latest`` already holds the batch's own samples: a latest value
        that is not older than the batch's first sample of its metric is left out, so the
        batch's serial changes are still seen as changes."""
        with Session(self.engine) as session:
            machines, known = load_machine_tags(session)
            fresh = [t for t in machines.values() if t.machine_id not in self._tracks]
            self._prime(session, fresh, _first_ts(batch))
        for tags in machines.values():
            track = self._tracks.get(tags.machine_id)
            if track is not None:
                track.tags = tags  # limits or parameters may have changed
        self._machines, self._known = machines, known
        self._last_refresh = time.monotonic()
        self.counters.bump("refreshes")
        self.counters.machines = len(machines)

    # ------------------------------------------------------------------ binder thread

    def _prime(
        self, session: Session, fresh: list[MachineTags], first_ts: dict[tuple[str, ...], int]
    ) -> None:
        for tags in fresh:
            track = SerialTrack(tags)
            rows = session.execute(
                select(TsSeries.metric, TsLatest.ts, TsLatest.value, TsLatest.text_value,
                       TsLatest.quality)
                .join(TsLatest, TsLatest.series_id == TsSeries.id)
                .where(TsSeries.edge == tags.edge, TsSeries.device == tags.device)
            )  # fmt: skip
            for metric, ts, value, text_value, quality in rows:
                first = first_ts.get((tags.edge, tags.device, metric))
                if first is not None and ts >= first:
                    continue  # stored by the batch at hand: fed next, not primed
                shown = text_value if text_value is not None else value
                track.prime(metric, ts, shown, quality == 0)
            self._tracks[tags.machine_id] = track

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.refresh_s)
            except queue.Empty:
                item = False
            if item is None:
                return
            if isinstance(item, BatchResult):
                self._guard(self._on_batch, item)
            elif isinstance(item, threading.Event):
                item.set()
            if time.monotonic() - self._last_refresh >= self.refresh_s:
                self._guard(self.refresh)

    def _guard(self, step: Callable[..., None], *args: Any) -> None:
        """Run one step; a failure is counted, logged once per streak, and never kills us."""
        name = step.__name__
        try:
            step(*args)
        except Exception:  # the binder thread must outlive any failure
            self.counters.bump("errors")
            if name not in self._failing_steps:
                log.exception("unit binder: %s failed; the binder goes on", name)
            self._failing_steps.add(name)
            return
        if name in self._failing_steps:
            log.info("unit binder: %s works again", name)
            self._failing_steps.discard(name)

    def _on_batch(self, result: BatchResult) -> None:
        self._handoff.caught_up()
        self.counters.bump("batches")
        if result.births or self._has_unknown_device(result):
            self.refresh(result)
        for topic, rows in result.stored_data:
            tags = self._machines.get((topic.edge, topic.device or ""))
            if tags is None:
                continue
            track = self._tracks[tags.machine_id]
            for action in track.feed(rows.samples):
                self._guard(self._carry_out, tags, action)

    def _has_unknown_device(self, result: BatchResult) -> bool:
        now = time.monotonic()
        if now - self._unknown_refresh < _UNKNOWN_DEVICE_REFRESH_S:
            return False
        if any((t.edge, t.device or "") not in self._known for t, _ in result.stored_data):
            self._unknown_refresh = now
            return True
        return False

    def _carry_out(self, tags: MachineTags, action: Action) -> None:
        with Session(self._writer) as session:
            if isinstance(action, SerialShown):
                self._bind(session, tags, action)
            else:
                self._record_test(session, tags, action)

    # ------------------------------------------------------------------ actions

    def _bind(self, session: Session, tags: MachineTags, shown: SerialShown) -> None:
        self.counters.bump("serial_changes")
        operation = session.scalars(
            select(WorkOrderOperation)
            .where(
                WorkOrderOperation.machine_id == tags.machine_id,
                WorkOrderOperation.state.in_((lc.RUNNING, lc.PAUSED)),
            )
            .order_by(WorkOrderOperation.state != lc.RUNNING,
                      WorkOrderOperation.started_ms.desc(), WorkOrderOperation.id.desc())
            .limit(1)
        ).first()  # fmt: skip
        if operation is None:
            self.counters.bump("unbound_serials")
            self._warn_once(
                tags, "unbound",
                f"unit binder: {tags.name} shows serial {shown.serial!r} but no operation runs "
                "on it, so the unit is not bound to its cycle (nor traced). Start the work "
                "order's operation on this machine before the PLC shows serials.",
            )  # fmt: skip
            return
        if self._bound_before(session, tags, shown):
            self.counters.bump("duplicates")
            return
        try:
            _unit, created = register_unit(
                session, operation.work_order_id, operation.sequence, shown.serial, shown.ts,
                source="plc",
            )  # fmt: skip
        except CloudError as error:
            session.rollback()
            self.counters.bump("bind_errors")
            self._warn_once(
                tags, "bind",
                f"unit binder: {tags.name}: serial {shown.serial!r} at {shown.ts} not bound: "
                f"{error} (further refusals on this machine are counted, not logged, until "
                "one succeeds)",
            )  # fmt: skip
            return
        session.commit()
        self.counters.bump("units_created" if created else "units_bound")
        self._recovered(tags, "bind", "unbound")

    def _bound_before(self, session: Session, tags: MachineTags, shown: SerialShown) -> bool:
        return (
            session.scalar(
                select(UnitCycle.id)
                .join(Unit, Unit.id == UnitCycle.unit_id)
                .where(
                    Unit.serial == shown.serial,
                    UnitCycle.machine_id == tags.machine_id,
                    UnitCycle.start_ms == shown.ts,
                )
                .limit(1)
            )
            is not None
        )

    def _record_test(self, session: Session, tags: MachineTags, counted: CycleCounted) -> None:
        if counted.serial is None:
            return
        found = session.execute(
            select(Unit, UnitCycle, RoutingOperation.name)
            .join(UnitCycle, UnitCycle.unit_id == Unit.id)
            .outerjoin(WorkOrderOperation, WorkOrderOperation.id == UnitCycle.operation_id)
            .outerjoin(
                RoutingOperation, RoutingOperation.id == WorkOrderOperation.routing_operation_id
            )
            .where(
                Unit.serial == counted.serial,
                UnitCycle.machine_id == tags.machine_id,
                UnitCycle.start_ms <= counted.ts,
            )
            .order_by(UnitCycle.start_ms.desc(), UnitCycle.id.desc())
            .limit(1)
        ).first()
        if found is None:
            if self._is_bench(tags, None):
                self.counters.bump("tests_unrecorded")
                self._warn_once(
                    tags, "test",
                    f"unit binder: {tags.name} finished a test of {counted.serial!r} at "
                    f"{counted.ts}, but that serial was not bound to a cycle on it; the test is "
                    "not recorded (see the earlier binding message)",
                )  # fmt: skip
            return
        unit, cycle, step_name = found
        if not self._is_bench(tags, step_name):
            return
        if not counted.values:
            self.counters.bump("tests_unrecorded")
            self._warn_once(
                tags, "values",
                f"unit binder: {tags.name} is a test bench but has no process_param tag, so "
                "its tests have no values and are not recorded",
            )  # fmt: skip
            return
        duplicate = session.scalar(
            select(UnitTest.id).where(
                UnitTest.unit_id == unit.id,
                UnitTest.machine_id == tags.machine_id,
                UnitTest.finished_ms == counted.ts,
            )
        )
        if duplicate is not None:
            self.counters.bump("duplicates")
            return
        name = f"{tags.profile or tags.name} test"[:_NAME_MAX]
        record_test(
            session, unit, name, cycle.start_ms, counted.ts, counted.values,
            machine_id=tags.machine_id, passed=counted.passed, source="plc",
        )  # fmt: skip
        session.commit()
        self.counters.bump("tests_recorded")
        self._recovered(tags, "test")

    def _is_bench(self, tags: MachineTags, step_name: str | None) -> bool:
        if self.test_benches is not None:
            return tags.name in self.test_benches or tags.profile in self.test_benches
        names = (tags.profile or "", step_name or "")
        return any("test" in n.lower() for n in names)

    def _warn_once(self, tags: MachineTags, kind: str, message: str) -> None:
        if (tags.machine_id, kind) not in self._warned:
            self._warned.add((tags.machine_id, kind))
            log.warning("%s", message)

    def _recovered(self, tags: MachineTags, *kinds: str) -> None:
        for kind in kinds:
            if (tags.machine_id, kind) in self._warned:
                self._warned.discard((tags.machine_id, kind))
                log.info("unit binder: %s: %s works again", tags.name, kind)


__all__ = ["BinderCounters", "UnitBinder", "load_machine_tags"]
