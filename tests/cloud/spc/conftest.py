"""Fixtures of the SPC runtime tests: a ring lathe born through the real ingest writer.

``lathe`` is a machine made by a real birth (``IngestWriter.write``) with a measured bore
diameter and good/scrap counters; ``lathe.feed(...)`` writes samples as real data messages and
returns the stored ``BatchResult``s, ready for an evaluator's ``observe``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import cloud.models
import cloud.spc.models  # noqa: F401  (the SPC tables)
from cloud.assets.models import Machine
from cloud.ingest.writer import BatchResult, IngestWriter
from protocols.wire import MetricDefinition
from tests.cloud.conftest import Wire

T = 1_800_000_000_000  # a fixed start: every time in the tests is an offset from it
DEVICE = "ring-lathe"
METRICS = (
    MetricDefinition("state", "uint16", "state"),
    MetricDefinition("bore", "float32", "process_param", "mm", 73.95, 74.05),
    MetricDefinition("parts_good", "uint32", "good_count"),
    MetricDefinition("parts_scrap", "uint32", "scrap_count"),
)


@dataclass
class Lathe:
    engine: Engine
    writer: IngestWriter
    wire: Wire
    machine_id: int

    def feed(self, samples: Sequence[tuple[Any, ...]], per_message: int = 50) -> list[BatchResult]:
        """Write ``(metric, ts, value)`` samples, ``per_message`` to a data message."""
        return [
            self.writer.write([self.wire.data(DEVICE, samples[i : i + per_message])])
            for i in range(0, len(samples), per_message)
        ]

    def bores(self, start_ms: int, values: Sequence[float], step_ms: int = 1_000) -> list[Any]:
        """Bore samples at ``start_ms``, ``start_ms + step_ms`` ..."""
        return [("bore", start_ms + i * step_ms, v) for i, v in enumerate(values)]


@pytest.fixture
def lathe(db_engine: Engine, wire: Wire) -> Lathe:
    writer = IngestWriter(db_engine)
    writer.write([wire.birth(DEVICE, metrics=METRICS)])
    with Session(db_engine) as session:
        machine_id = session.scalars(select(Machine.id).where(Machine.device == DEVICE)).one()
    return Lathe(db_engine, writer, wire, machine_id)
