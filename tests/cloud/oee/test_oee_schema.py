"""The OEE tables made by migration 0003 match the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.db import Base

OEE_TABLES = {"oee_calendar", "oee_machine_settings", "oee_downtime_reason", "oee_rollup"}


def _oee_differences(diff) -> list:
    """The diff entries that touch an OEE table (added/removed tables, columns, indexes ...)."""
    out = []
    for item in diff:
        for part in item if isinstance(item, list) else [item]:
            names = set()
            for value in part[1:]:
                if isinstance(value, str):
                    names.add(value)
                names.add(getattr(value, "name", None))
                names.add(getattr(getattr(value, "table", None), "name", None))
            if names & OEE_TABLES:
                out.append(part)
    return out


def test_migration_matches_the_models(db_engine):
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert _oee_differences(diff) == []
