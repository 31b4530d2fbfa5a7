"""The alarm tables made by migration 0004 match the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.db import Base

ALARM_TABLES = {"alarm", "alarm_event", "alarm_limit", "alarm_rule", "alarm_shelf"}


def _tables_of(diff) -> set[str]:
    names = set()
    for item in diff:
        for part in item if isinstance(item, list) else [item]:
            for value in part[1:]:
                name = getattr(value, "name", None)
                table = getattr(value, "table", None)
                names.add(getattr(table, "name", None) or name)
                if isinstance(value, str):
                    names.add(value)
    return names


def test_migration_matches_the_models(db_engine):
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not (_tables_of(diff) & ALARM_TABLES), diff
