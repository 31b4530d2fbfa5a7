"""Shared test fixtures: a real Mosquitto broker per test, and fresh migrated databases.

Brokers
    ``mosquitto``           a broker with default settings (no persistence), function-scoped
    ``mosquitto_factory``   ``mosquitto_factory(persistence=True, extra_config=[...])`` → started
                            ``MosquittoBroker``; every broker made is stopped after the test

Databases
    ``db_url``              parametrized over ``sqlite`` and ``postgresql``: the URL of a fresh,
                            empty schema migrated to Alembic head, private to the test
    ``db_engine``           an engine on ``db_url`` (disposed after the test)
    ``pg_admin_url``        session-scoped URL of a scratch PostgreSQL database made for this run

PostgreSQL comes from ``FORGELINE_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``). A missing Mosquitto binary or an
unreachable PostgreSQL fails the tests loudly; neither is ever skipped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO_BIN = os.environ.get("FORGELINE_MOSQUITTO", "/usr/sbin/mosquitto")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# --------------------------------------------------------------------------- Mosquitto


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MosquittoBroker:
    """A Mosquitto process on a free port of 127.0.0.1, started and stopped by a test.

    ``restart()`` comes back on the same port, so clients configured with ``url`` reconnect.
    With ``persistence=True`` the broker keeps sessions and queued messages across a ``stop()``
    (SIGTERM saves the database); ``kill()`` (SIGKILL) loses whatever was not yet saved.
    """

    def __init__(
        self,
        *,
        persistence: bool = False,
        extra_config: list[str] | tuple[str, ...] = (),
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.persistence = persistence
        self.extra_config = list(extra_config)
        self._port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="forgeline-mosquitto-"))
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """The broker's log so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _write_config(self) -> None:
        lines = [
            f"listener {self._port} 127.0.0.1",
            "allow_anonymous true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto drops to user 'mosquitto', who cannot write our temp dir.
            lines.append("user root")
        if self.persistence:
            store = self.workdir / "store"
            store.mkdir(exist_ok=True)
            lines += ["persistence true", f"persistence_location {store}/"]
        else:
            lines.append("persistence false")
        lines += self.extra_config
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start the broker and wait until its port accepts connections."""
        if not os.path.exists(MOSQUITTO_BIN):
            pytest.fail(
                f"Mosquitto is not installed at {MOSQUITTO_BIN}: install it "
                "(apt-get install mosquitto) or set FORGELINE_MOSQUITTO to its path",
                pytrace=False,
            )
        if self.running:
            return self
        self._write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO_BIN, "-c", str(self.conf_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with code {self.process.returncode} on port {self._port}; "
                    f"log:\n{self.log()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"mosquitto did not accept connections on port {self._port} within {timeout} s; "
            f"log:\n{self.log()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (a persistent broker saves its database on the way out)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self, timeout: float = 10.0) -> MosquittoBroker:
        """Stop (if running) and start again on the same port."""
        self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        self.kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.url}, persistence={self.persistence})"


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., MosquittoBroker]]:
    """Make started brokers: ``mosquitto_factory(persistence=True, extra_config=[...])``."""
    made: list[MosquittoBroker] = []

    def make(**options: Any) -> MosquittoBroker:
        broker = MosquittoBroker(**options)
        made.append(broker)
        return broker.start()

    yield make
    for broker in made:
        broker.cleanup()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """A started Mosquitto with default settings (no persistence) on a free port."""
    return mosquitto_factory()


# --------------------------------------------------------------------------- databases


def _pg_admin_base() -> str:
    return os.environ.get("FORGELINE_TEST_PG_URL", DEFAULT_PG_URL)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A scratch database ``forgeline_test_<random>`` for this run, dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(_pg_admin_base())
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"forgeline_test_{secrets.token_hex(4)}"
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_url.render_as_string(hide_password=True)}: "
            f"{exc}\nStart it or point FORGELINE_TEST_PG_URL at a server you can create "
            "databases on.",
            pytrace=False,
        )
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty schema migrated to head: a SQLite file, or a PostgreSQL schema of its own.

    For PostgreSQL the URL carries ``options=-csearch_path=<schema>``, so every engine made
    from it (by the code under test too) works in the test's private schema.
    """
    from cloud.db import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'forgeline.db'}"
        migrate(url)
        yield url
        return

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = request.getfixturevalue("pg_admin_url")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as conn, contextlib.suppress(Exception):
            conn.execute(text("SET lock_timeout = '5s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Any]:
    """A SQLAlchemy engine on ``db_url`` (made by ``cloud.db.create_engine_for``), disposed after."""
    from cloud.db import create_engine_for

    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()
