"""The FastAPI application factory: ``create_app(config_or_engine, worker=None)``.

Nothing happens at import time; the factory builds the engine (from a ``CloudConfig``) or uses
the one it is given, and the routes read it through dependencies. OpenAPI docs: ``/docs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from cloud.api import ingest, machines, production, series, unit_records
from cloud.api.alarms import router as alarm_router
from cloud.api.charts import router as charts_router
from cloud.api.commands import router as command_router
from cloud.api.deps import EngineDep
from cloud.api.imports import router as import_router
from cloud.api.integration import router as integration_router
from cloud.api.maintenance import router as maintenance_router
from cloud.api.notify import router as notify_router
from cloud.api.oee import router as oee_router
from cloud.api.spc import router as spc_router
from cloud.api.trace_export import router as trace_export_router
from cloud.config import CloudConfig
from cloud.db import create_engine_for, session_factory
from cloud.errors import InvalidRequest, NotFound
from cloud.maintenance.condition_config import condition_settings
from cloud.oee.settings import OeeSettings
from cloud.timeseries.sql import SqlTimeSeriesStore

if TYPE_CHECKING:
    from cloud.alarms.engine import AlarmEngine
    from cloud.commands import CommandPublisher
    from cloud.ingest.worker import IngestWorker
    from cloud.integration.delivery import WebhookDelivery
    from cloud.notify.dispatcher import Dispatcher
    from cloud.spc.evaluator import SpcEvaluator


def create_app(
    source: CloudConfig | Engine,
    worker: IngestWorker | None = None,
    commands: CommandPublisher | None = None,
    notifier: Dispatcher | None = None,
    alarms: AlarmEngine | None = None,
    config: CloudConfig | None = None,
    erp_webhooks: WebhookDelivery | None = None,
    spc: SpcEvaluator | None = None,
) -> FastAPI:
    """The REST API over the database of ``source`` (a config, or an engine the caller owns).

    ``config`` gives the settings (e.g. OEE's) when ``source`` is an engine; a ``CloudConfig``
    source is its own config.
    """
    owns_engine = isinstance(source, CloudConfig)
    if isinstance(source, CloudConfig):
        config = source
    engine = create_engine_for(source.database_url) if isinstance(source, CloudConfig) else source

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="forgeline cloud",
        description=(
            "Machines, their state and time series, OEE and the ISO 22400 KPIs, alarms and "
            "their notifications, production and traceability, parameter and SPC charts, "
            "condition monitoring, and the ingest pipeline."
        ),
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.store = SqlTimeSeriesStore(engine)
    app.state.worker = worker
    app.state.commands = commands
    app.state.oee_settings = OeeSettings.from_config(config)
    app.state.condition_settings = condition_settings(
        config.condition_file if config is not None else None
    )
    app.state.notifier = notifier  # alarm notifications: deliveries API and the WebSocket stream
    app.state.alarms = alarms  # the running alarm engine (rule sources, wake after API edits)
    app.state.erp_webhooks = erp_webhooks  # the ERP webhook delivery thread (woken on retry)
    app.state.spc_evaluator = spc  # the running SPC evaluator (reloaded after chart edits)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, error: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_request: Request, error: InvalidRequest) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.get("/healthz", tags=["health"])
    def healthz(db: EngineDep) -> JSONResponse:
        """200 when the database answers, 503 when it does not."""
        try:
            with db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - any failure means "unhealthy"
            return JSONResponse({"status": "degraded", "database": str(error)}, status_code=503)
        body: dict[str, object] = {"status": "ok", "database": "ok"}
        if app.state.worker is not None:
            body["mqtt_connected"] = app.state.worker.counters.connected
        return JSONResponse(body)

    app.include_router(machines.router)
    app.include_router(series.router)
    app.include_router(ingest.router)
    app.include_router(command_router)
    app.include_router(notify_router)
    app.include_router(alarm_router)
    app.include_router(oee_router)
    app.include_router(production.router)
    app.include_router(unit_records.router)
    app.include_router(trace_export_router)
    app.include_router(import_router)
    app.include_router(integration_router)
    app.include_router(charts_router)
    app.include_router(maintenance_router)
    app.include_router(spc_router)
    return app
