"""Fixtures of the integration tests: ``plant``, a ``PlantRun`` on the test's broker and database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plant_harness import PlantRun


@pytest.fixture
def plant(tmp_path: Path, mosquitto: Any, db_url: str) -> Iterator[PlantRun]:
    run = PlantRun(tmp_path, mosquitto.url, db_url)
    try:
        yield run
    finally:
        run.close()
