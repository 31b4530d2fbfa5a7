"""Scratch databases for benchmarks: a fresh, migrated schema per measurement, dropped at the end.

PostgreSQL: one database ``forgeline_bench_<random>`` per run (made through the admin URL from
``FORGELINE_TEST_PG_URL``), one schema per measurement in it, the whole database dropped in
``close()``. SQLite: one temporary folder per run, one file per measurement, removed in
``close()``. Every schema is brought to Alembic head by ``cloud.db.migrate``, so raw baselines
write into a table with exactly the indexes forgeline's own ``ts_sample`` has.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from cloud.db import SQLITE_BUSY_TIMEOUT_MS, migrate

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def pg_admin_url() -> str:
    return os.environ.get("FORGELINE_TEST_PG_URL", DEFAULT_PG_URL)


@dataclass(frozen=True)
class FreshDatabase:
    """A migrated, empty schema: its SQLAlchemy URL and a factory of raw DB-API connections."""

    url: str
    connect_raw: Callable[[], Any]


class ScratchServer(Protocol):
    """Hands out fresh schemas for one benchmark run and removes them all in ``close()``."""

    name: str
    version: str

    def fresh(self) -> FreshDatabase: ...

    def close(self) -> None: ...


class PostgresScratch:
    """A scratch PostgreSQL database for one run; every ``fresh()`` is a new schema in it."""

    name = "postgresql"

    def __init__(self, admin_url: str | None = None) -> None:
        self._admin_url = make_url(admin_url or pg_admin_url())
        self._admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        self.database = f"forgeline_bench_{secrets.token_hex(4)}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.database}"'))
            self.version = str(conn.execute(text("SHOW server_version")).scalar_one())
        self._url: URL = self._admin_url.set(database=self.database)
        self._engine = create_engine(self._url, isolation_level="AUTOCOMMIT")
        self._schemas = 0

    def fresh(self) -> FreshDatabase:
        self._schemas += 1
        schema = f"run_{self._schemas}"
        with self._engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        options = f"-csearch_path={schema}"
        url = self._url.update_query_dict({"options": options})
        migrate(url)
        connect_args = self._url.translate_connect_args(username="user", database="dbname")

        def connect_raw() -> Any:
            import psycopg

            return psycopg.connect(**connect_args, options=options)

        return FreshDatabase(url.render_as_string(hide_password=False), connect_raw)

    def close(self) -> None:
        self._engine.dispose()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        self._admin.dispose()


class SqliteScratch:
    """A temporary folder for one run; every ``fresh()`` is a new database file in it."""

    name = "sqlite"
    version = sqlite3.sqlite_version

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="forgeline-bench-"))
        self._files = 0

    def fresh(self) -> FreshDatabase:
        self._files += 1
        path = self.folder / f"run_{self._files}.db"
        url = f"sqlite:///{path}"
        migrate(url)

        def connect_raw() -> Any:
            # The same settings as forgeline's engine (cloud.db), so the baseline is comparable.
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn

        return FreshDatabase(url, connect_raw)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
