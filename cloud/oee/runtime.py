"""The OEE part of a cloud process: calendars from the file into the database, roll-up job.

``OeeRuntime(config, engine).start()`` validates and writes the calendars file (if the config
names one; a bad file raises ``ProfileError`` naming file, line and field, before anything
runs) and starts the roll-up scheduler; ``stop()`` stops it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from cloud.oee.rollup import RollupScheduler
from cloud.oee.settings import OeeSettings
from cloud.oee.store import sync_calendars_file
from protocols.clock import now_ms

log = logging.getLogger(__name__)


class OeeRuntime:
    """Calendars file sync at start, and the periodic roll-ups."""

    def __init__(self, config: Any, engine: Engine) -> None:
        self.settings = OeeSettings.from_config(config)
        self._engine = engine
        self.scheduler = RollupScheduler(engine, self.settings)

    def start(self) -> None:
        if self.settings.calendars_file is not None:
            names = sync_calendars_file(self._engine, self.settings.calendars_file, now_ms())
            log.info("shift calendars from %s: %s", self.settings.calendars_file, ", ".join(names))
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
