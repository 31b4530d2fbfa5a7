"""Helpers of the ERP webhook tests: a real ERP on loopback, a plant, orders run through the
production service, a settable clock, and the app with the integration routes.

``ErpServer``      a real ``ThreadingHTTPServer`` that checks every body's HMAC signature with
                   its secret (401 when it does not match) and otherwise answers from a script
                   of statuses, then ``default``; ``hang`` makes it accept and never answer
``Clock``          a settable millisecond clock for ``WebhookDelivery(clock_ms=...)``
``act(...)``       an operator action through ``service.operation_action`` by a named operator
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api import integration
from cloud.api.app import create_app
from cloud.assets.models import Area, Line, Machine, Site
from cloud.integration.models import ErpDelivery, ErpDeliveryAttempt, ErpWebhook
from cloud.production import service
from cloud.production.models import WorkOrderOperation
from forgeline.processes import free_port

SECRET = "erp-shared-secret-0123456789"


# --------------------------------------------------------------------------- the ERP


@dataclass(frozen=True)
class ErpRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool | None  # None: the request carried no signature

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ErpServer:
    """A real HTTP server standing in for the ERP's webhook receiver."""

    secret: str | None = SECRET
    statuses: list[int] = field(default_factory=list)  # answered in turn, then ``default``
    default: int = 200
    port: int = 0
    requests: list[ErpRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._hang = threading.Event()
        self._release = threading.Event()
        erp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                erp._received(self.path, dict(self.headers.items()), body)
                if erp._hang.is_set():
                    erp._release.wait(30)
                    return
                status = erp._status(body, self.headers.get("X-Forgeline-Signature"))
                reply = json.dumps({"status": status}).encode()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/erp/moved")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port or free_port()), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _valid(self, body: bytes, signature: str | None) -> bool | None:
        if signature is None:
            return None
        if self.secret is None:
            return False
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature, f"sha256={digest}")

    def _received(self, path: str, headers: dict[str, str], body: bytes) -> None:
        valid = self._valid(body, headers.get("X-Forgeline-Signature"))
        with self._lock:
            self.requests.append(ErpRequest(path, headers, body, valid))
            self._lock.notify_all()

    def _status(self, body: bytes, signature: str | None) -> int:
        if self.secret is not None and not self._valid(body, signature):
            return 401
        with self._lock:
            return self.statuses.pop(0) if self.statuses else self.default

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/erp/hooks?token=t0ken"

    def hang(self) -> None:
        """Accept every request from now on and never answer it."""
        self._hang.set()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[ErpRequest]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"the ERP got {len(self.requests)} requests, expected {count}")
                self._lock.wait(left)
            return list(self.requests)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def dead_url() -> str:
    """An http URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}/erp/hooks"


# --------------------------------------------------------------------------- time


@dataclass
class Clock:
    now: int

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.01)


# --------------------------------------------------------------------------- the plant


def make_plant(engine: Engine) -> dict[str, int]:
    """Site plant1, line A with machines press-1 and bench-1."""
    with Session(engine) as session:
        session.add(Site(id="plant1", name="Plant 1"))
        session.flush()
        area = Area(site_id="plant1", name="Valves")
        session.add(area)
        session.flush()
        line = Line(area_id=area.id, name="A")
        session.add(line)
        session.flush()
        machines = {}
        for name in ("press-1", "bench-1"):
            machine = Machine(
                name=name, site_id="plant1", area_id=area.id, line_id=line.id, edge="edge1",
                device=name, created_ms=0, updated_ms=0,
            )  # fmt: skip
            session.add(machine)
            session.flush()
            machines[name] = machine.id
        session.commit()
        return {"line": line.id, **machines}


def act(
    session: Session,
    work_order_id: int,
    sequence: int,
    action: str,
    at: int,
    operator: str,
    **counts: Any,
) -> WorkOrderOperation:
    """``service.operation_action`` by ``operator`` at ``at`` (counts and reason as keywords)."""
    return service.operation_action(
        session, work_order_id, sequence, action, at, operator=operator, **counts
    )


def one_step_order(
    engine: Engine,
    machine_id: int,
    at: int,
    external_id: str = "WO-1",
    *,
    complete: bool = False,
    keep_queued: bool = False,
) -> int:
    """A one-operation work order on ``machine_id``, run from ``at`` to ``at + 60 s`` (and
    completed at ``at + 70 s`` with ``complete``).

    The service queues ``operation.completed`` (and ``work_order.completed``) for the endpoints
    that exist; unless ``keep_queued``, those rows are removed so that a test queues exactly the
    events it counts."""
    with Session(engine) as session:
        service.upsert_product(session, "PLATE", service.ProductSpec("Plate"), at)
        step = service.OperationSpec(10, "Punch", machine_id=machine_id)
        service.upsert_routing(session, "R-PLATE", service.RoutingSpec("PLATE", "r", (step,)), at)
        spec = service.WorkOrderSpec("PLATE", 5)
        order_id = service.upsert_work_order(session, external_id, spec, at).id
        service.work_order_action(session, order_id, "release", at)
        act(session, order_id, 10, "start", at, "alice")
        act(session, order_id, 10, "report", at + 30_000, "alice", good=5)
        act(session, order_id, 10, "finish", at + 60_000, "alice")
        if complete:
            service.work_order_action(session, order_id, "complete", at + 70_000)
        if not keep_queued:
            session.execute(delete(ErpDelivery))
        session.commit()
        return order_id


def operation_of(session: Session, work_order_id: int, sequence: int) -> WorkOrderOperation:
    return session.scalars(
        select(WorkOrderOperation).where(
            WorkOrderOperation.work_order_id == work_order_id,
            WorkOrderOperation.sequence == sequence,
        )
    ).one()


def add_endpoint(
    engine: Engine,
    name: str,
    url: str,
    *,
    secret: str | None = SECRET,
    events: str = "operation.completed,work_order.completed",
    enabled: bool = True,
) -> None:
    with Session(engine) as session:
        session.add(
            ErpWebhook(
                name=name, url=url, secret=secret, events=events, enabled=enabled,
                created_ms=0, updated_ms=0,
            )
        )  # fmt: skip
        session.commit()


def delivery(engine: Engine, delivery_id: int) -> ErpDelivery:
    with Session(engine) as session:
        row = session.get(ErpDelivery, delivery_id)
        assert row is not None
        return row


def attempts(engine: Engine, delivery_id: int) -> list[ErpDeliveryAttempt]:
    with Session(engine) as session:
        query = select(ErpDeliveryAttempt).where(ErpDeliveryAttempt.delivery_id == delivery_id)
        return list(session.scalars(query.order_by(ErpDeliveryAttempt.attempt)))


# --------------------------------------------------------------------------- the API


def integration_app(engine: Engine) -> FastAPI:
    """The cloud's app, with the integration routes (until ``create_app`` includes them)."""
    app = create_app(engine)
    if not any(getattr(route, "path", "").startswith("/api/integration") for route in app.routes):
        app.include_router(integration.router)
    return app


def client_for(engine: Engine) -> TestClient:
    return TestClient(integration_app(engine))
