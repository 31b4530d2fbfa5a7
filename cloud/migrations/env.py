"""Alembic environment: runs migrations on the URL (or connection) that ``cloud.db.migrate`` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

import cloud.models  # noqa: F401  (registers every table on Base.metadata)
from cloud.db import Base, create_engine_for


def _run_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: call cloud.db.migrate(url)")
    engine = create_engine_for(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context.configure(
                connection=conn,
                target_metadata=Base.metadata,
                render_as_batch=conn.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("forgeline migrations run online only: use cloud.db.migrate(url)")
_run_online()
