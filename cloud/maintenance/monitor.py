"""The condition monitor of a cloud process: every machine's condition assessed every few minutes.

``assess_all(engine, now_ms, settings)`` assesses every machine that has a vibration or
temperature series, each in its own transaction (a failing machine does not stop the others;
its error is returned, not raised). ``ConditionMonitor(engine, settings, interval_s)`` runs it
in a thread; an error is counted, and logged once per machine and streak (and once when the
machine recovers), never raised. Assessments are recomputed from the stored series, so a
missed pass loses nothing but a history row; several workers may run passes at once, and a
pass over data already assessed stores no second row (see ``service``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine

from cloud.db import writer_engine
from cloud.maintenance.condition_config import ConditionSettings
from cloud.maintenance.readings import monitored_machine_ids
from cloud.maintenance.service import Assessment, assess_machine
from cloud.maintenance.zones import VibrationClass, load_vibration_classes
from protocols.clock import now_ms as clock_ms

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AssessmentPass:
    """What one pass over the machines did: assessments per machine, errors per machine."""

    assessments: dict[int, list[Assessment]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


def assess_all(
    engine: Engine,
    now_ms: int,
    settings: ConditionSettings,
    *,
    classes: Mapping[str, VibrationClass] | None = None,
) -> AssessmentPass:
    """Assess every monitored machine as of ``now_ms``; one transaction per machine."""
    writer = writer_engine(engine)  # reads, then writes: take SQLite's lock first
    if classes is None:
        classes = load_vibration_classes(settings.vibration_classes_file)
    with writer.connect() as conn:
        machine_ids = monitored_machine_ids(conn)
    done = AssessmentPass()
    for machine_id in machine_ids:
        try:
            with writer.begin() as conn:
                done.assessments[machine_id] = assess_machine(
                    conn, machine_id, now_ms, settings, classes=classes
                )
        except Exception as error:  # noqa: BLE001 - one machine's failure must not stop the rest
            done.errors[machine_id] = f"{error.__class__.__name__}: {error}"
    return done


class ConditionMonitor:
    """Assess every machine's condition every ``interval_s`` seconds in a thread."""

    def __init__(
        self, engine: Engine, settings: ConditionSettings, interval_s: float = 300.0
    ) -> None:
        self._engine = engine
        self.settings = settings
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: set[int] = set()  # machines in an error streak
        self._pass_failing = False
        self.passes = 0
        self.failures = 0  # machine assessments (or whole passes) that failed

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="condition-monitor", daemon=True)
        self._thread.start()
        log.info("maintenance: assessing machine condition every %g s", self.interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self, now_ms: int | None = None) -> AssessmentPass:
        """One pass (errors logged once per machine and streak, never raised)."""
        try:
            done = assess_all(self._engine, clock_ms() if now_ms is None else now_ms,
                              self.settings)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - the loop must survive a database outage
            self.failures += 1
            if not self._pass_failing:
                log.error(
                    "maintenance: the condition pass failed (%s: %s); retrying every %g s. "
                    "Is the database up?", error.__class__.__name__, error, self.interval_s,
                )  # fmt: skip
            self._pass_failing = True
            return AssessmentPass()
        if self._pass_failing:
            log.info("maintenance: condition passes work again")
        self._pass_failing = False
        self.passes += 1
        self.failures += len(done.errors)
        for machine_id, problem in done.errors.items():
            if machine_id not in self._failing:
                log.error(
                    "maintenance: assessing machine %d failed (%s); it is retried every pass "
                    "and logged again only after it has recovered", machine_id, problem,
                )  # fmt: skip
            self._failing.add(machine_id)
        for machine_id in sorted(self._failing - set(done.errors)):
            if machine_id in done.assessments:
                log.info("maintenance: assessing machine %d works again", machine_id)
            self._failing.discard(machine_id)  # recovered, or no longer monitored
        return done

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.run_once()
