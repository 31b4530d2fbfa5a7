"""The production part of a cloud process: machine counts into running operations, live.

``CountingLoop(engine, interval_s).start()`` recounts every live operation (running, paused,
or finished within the settle time; see ``cloud.production.counting``) every ``interval_s``
seconds in its own thread, rolls the counts up into the work orders and backflushes. A
database that is down is logged and retried on the next tick; nothing is lost, because the
counts are recomputed from the stored samples.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cloud.db import writer_engine
from cloud.production.counting import recount
from protocols.clock import now_ms

log = logging.getLogger(__name__)


class CountingLoop:
    """Recount live operations every ``interval_s`` seconds."""

    def __init__(self, engine: Engine, interval_s: float = 2.0) -> None:
        self._engine = writer_engine(engine)  # reads, then writes: take SQLite's lock first
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="production-counts", daemon=True)
        self._thread.start()
        log.info("production: counting machine output into running operations every %g s",
                 self.interval_s)  # fmt: skip

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self) -> int:
        """One pass; answers how many operations' counts changed."""
        with Session(self._engine) as session:
            changed = recount(session, now_ms())
            session.commit()
        self.passes += 1
        return changed

    def _run(self) -> None:
        failing = False
        while not self._stopping.wait(self.interval_s):
            try:
                self.run_once()
                if failing:
                    log.info("production: counting works again")
                failing = False
            except SQLAlchemyError as error:
                self.failures += 1
                if not failing:
                    log.error(
                        "production: counting machine output failed (%s); retrying every %g s. "
                        "Is the database up?", error.__class__.__name__, self.interval_s,
                    )  # fmt: skip
                failing = True
