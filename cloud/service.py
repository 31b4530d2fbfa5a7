"""The cloud process: migrate the database, run ingest, alarms, notifications, OEE roll-ups and
serve the API (uvicorn).

Start order: the notification dispatcher, the ERP webhook delivery, the alarm engine (it hands notifications to the
dispatcher), the unit binder (PLC serial tags into unit cycles), the SPC evaluator (control charts as
data arrives), the ingest worker (it hands each stored batch to the alarm engine, the binder
and the SPC evaluator), the OEE runtime (shift calendars file,
roll-up scheduler), the production counting loop, the condition monitor (vibration and
temperature: zones, health, remaining life), the command publisher, the API. Stop order
is the reverse, so nothing is handed to a part that has already stopped.

``CloudService`` is the programmatic handle (start / stop, the API's bound port); ``run_cloud``
runs it in the foreground until SIGTERM, SIGINT or ``stop_event``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud.alarms.engine import AlarmEngine, build_alarm_engine
from cloud.api.app import create_app
from cloud.commands import CommandPublisher
from cloud.config import CloudConfig
from cloud.db import create_engine_for, migrate, writer_engine
from cloud.errors import CloudError
from cloud.ingest.worker import IngestWorker
from cloud.integration.delivery import WebhookDelivery
from cloud.maintenance.condition_config import condition_settings
from cloud.maintenance.monitor import ConditionMonitor
from cloud.notify.dispatcher import Dispatcher, build_dispatcher
from cloud.oee.runtime import OeeRuntime
from cloud.production.binder import UnitBinder
from cloud.production.runtime import CountingLoop
from cloud.spc.config import load_charts_file
from cloud.spc.evaluator import SpcEvaluator
from cloud.spc.service import load_charts
from protocols.clock import now_ms

log = logging.getLogger(__name__)


class CloudService:
    """Ingest worker + REST API in one process, on one database engine."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.engine: Engine | None = None
        self.worker: IngestWorker | None = None
        self.notifier: Dispatcher | None = None
        self.alarms: AlarmEngine | None = None
        self.oee: OeeRuntime | None = None
        self.counting: CountingLoop | None = None
        self.condition: ConditionMonitor | None = None
        self.binder: UnitBinder | None = None
        self.spc: SpcEvaluator | None = None
        self.erp_webhooks: WebhookDelivery | None = None
        self.commands: CommandPublisher | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_port(self) -> int:
        """The port the API listens on (the real one when the config asked for port 0)."""
        if self._server is not None:
            for server in getattr(self._server, "servers", []):
                for sock in server.sockets:
                    return int(sock.getsockname()[1])
        return self.config.api_port

    @property
    def api_url(self) -> str:
        return f"http://{self.config.api_host}:{self.api_port}"

    def start(self, timeout: float = 30.0) -> None:
        """Migrate, start ingest, and return once the API accepts connections."""
        url = self.config.database_url
        condition = condition_settings(self.config.condition_file)  # a bad file fails first
        charts_file = self.config.spc_charts_file
        spc_charts = load_charts_file(charts_file) if charts_file else ()
        migrate(url)
        self.engine = create_engine_for(url)
        self.notifier = build_dispatcher(self.config, self.engine)
        self.notifier.start()
        self.erp_webhooks = WebhookDelivery(self.engine, self.config.erp_webhooks)
        self.erp_webhooks.start()
        self.alarms = build_alarm_engine(self.config, self.engine, self.notifier)
        self.alarms.start()
        self.binder = UnitBinder(self.engine)
        self.binder.start()
        if charts_file and spc_charts:
            with Session(writer_engine(self.engine)) as session:
                load_charts(session, spc_charts, f"file:{charts_file.name}", now_ms())
                session.commit()
        self.spc = SpcEvaluator(self.engine)
        self.spc.start()
        self.worker = IngestWorker(
            self.config,
            self.engine,
            observers=[self.alarms.observe, self.binder.observe, self.spc.observe],
        )
        self.worker.start()
        self.oee = OeeRuntime(self.config, self.engine)
        self.oee.start()
        self.counting = CountingLoop(self.engine, self.config.production_count_s)
        self.counting.start()
        self.condition = ConditionMonitor(self.engine, condition, self.config.condition_interval_s)
        self.condition.start()
        self.commands = CommandPublisher(self.config)
        self.commands.start()
        app = create_app(
            self.engine,
            worker=self.worker,
            commands=self.commands,
            notifier=self.notifier,
            alarms=self.alarms,
            config=self.config,
            erp_webhooks=self.erp_webhooks,
            spc=self.spc,
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.config.api_host,
                port=self.config.api_port,
                log_level=self.config.log_level.lower(),
                lifespan="on",
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="cloud-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise CloudError(
                    f"the API could not listen on {self.config.api_host}:{self.config.api_port} "
                    "(is the port taken? set api_port or --api-port)"
                )
            time.sleep(0.02)
        log.info("cloud: API on %s (docs at %s/docs)", self.api_url, self.api_url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, stop ingest (storing what is queued), release the database."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self.commands is not None:
            self.commands.stop()
            self.commands = None
        if self.condition is not None:
            self.condition.stop(timeout)
            self.condition = None
        if self.counting is not None:
            self.counting.stop(timeout)
            self.counting = None
        if self.oee is not None:
            self.oee.stop()
            self.oee = None
        if self.worker is not None:
            self.worker.stop(timeout)
        if self.spc is not None:
            self.spc.stop(timeout)
            self.spc = None
        if self.binder is not None:
            self.binder.stop(timeout)
            self.binder = None
        if self.alarms is not None:
            self.alarms.stop(timeout)
            self.alarms = None
        if self.erp_webhooks is not None:
            self.erp_webhooks.stop(timeout)
            self.erp_webhooks = None
        if self.notifier is not None:
            self.notifier.stop(timeout)
            self.notifier = None
        if self.engine is not None:
            self.engine.dispose()
        self._server = self._thread = self.worker = self.engine = None


def run_cloud(config: CloudConfig, stop_event: threading.Event | None = None) -> None:
    """Run the cloud in the foreground until SIGTERM / SIGINT (main thread) or ``stop_event``."""
    stop = stop_event or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("cloud: %s received, stopping", signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _on_signal)
    service = CloudService(config)
    try:
        service.start()
        while not stop.wait(0.5):
            pass
    finally:
        service.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
