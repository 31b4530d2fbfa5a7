"""The edge agent: coordinators → report by exception → durable log → MQTT, with acks back.

``build_agent(config)`` creates everything (no I/O); ``EdgeAgent.run(stop)`` connects and runs
until ``stop`` is set, then drains the log for a bounded time and exits cleanly.

Two lanes leave the log. The live lane publishes a message right after its commit, when the
broker is up. The backlog lane walks the log in order at a bounded rate and (re-)sends what was
never sent or was sent more than ``resend_after_s`` ago without an acknowledgement; messages
written while the broker was down are encoded with ``historical: true`` so the cloud never lets
them overwrite current values. A message leaves the log only when the cloud acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from device_profiles import profile_path
from edge.buffer import Outbox, OutgoingMessage
from edge.config import DeviceSettings, EdgeConfig, EdgeConfigError
from edge.coordinator import Backoff, DeviceCoordinator
from edge.drivers.base import Driver, Endpoint, create_driver
from edge.health import EdgeHealth
from edge.mqtt_link import MqttLink
from edge.processors import MAX_FORWARD_WINDOWS
from edge.writes import Result, WriteAudit, WriteRequest, check_write
from protocols.clock import now_ms
from protocols.errors import WireError
from protocols.mqtt_url import parse_mqtt_url
from protocols.profile import Profile, load_profile
from protocols.wire import (
    AckMessage,
    BirthMessage,
    CommandMessage,
    DataMessage,
    Event,
    EventMessage,
    FaultText,
    JsonCodec,
    Sample,
    StateRuleText,
    StatusMessage,
    Topic,
    TopicKind,
    parse_topic,
)

log = logging.getLogger("forgeline.edge.agent")

OUTBOX_FILE = "outbox.sqlite"


@dataclass(slots=True)
class _Reading:
    device: str
    samples: list[Sample]
    events: list[Event]
    read: int


@dataclass(slots=True)
class Device:
    settings: DeviceSettings
    profile: Profile
    driver: Driver
    coordinator: DeviceCoordinator | None = None


def endpoint_for(settings: DeviceSettings, profile: Profile, data_dir: Path) -> Endpoint:
    default_port = 4840 if profile.protocol == "opcua" else 502
    return Endpoint(
        device_id=settings.id,
        host=settings.host,
        port=settings.port or default_port,
        unit_id=settings.unit_id,
        endpoint_url=settings.endpoint_url,
        serial_port=settings.serial_port,
        baudrate=settings.baudrate,
        parity=settings.parity,
        stopbits=settings.stopbits,
        bytesize=settings.bytesize,
        inter_frame_delay_ms=settings.inter_frame_delay_ms,
        timeout_s=settings.timeout_s,
        username=settings.username,
        password=settings.password,
        security_policy=settings.security_policy,
        security_mode=settings.security_mode,
        pki_dir=str(data_dir / "pki"),
        trust_on_first_use=settings.trust_on_first_use,
    )


class EdgeAgent:
    """One edge: its devices, its log and its broker connection."""

    def __init__(self, config: EdgeConfig, devices: list[Device]) -> None:
        self.config = config
        self.session = str(uuid.uuid4())
        self.codec = JsonCodec()
        self.devices = {d.settings.id: d for d in devices}
        self.health = EdgeHealth(list(self.devices))
        self.outbox: Outbox | None = None
        self.audit: WriteAudit | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self.link: MqttLink | None = None
        self._seq = itertools.count(1)
        self._queue: asyncio.Queue[_Reading] = asyncio.Queue()
        self._sent_at: dict[tuple[str, int], float] = {}
        self._cursor = 0
        self.failed = False
        self._status_topic = str(Topic.edge_topic(TopicKind.STATUS, config.site, config.edge_id))
        self._ack_topic = str(Topic.edge_topic(TopicKind.ACK, config.site, config.edge_id))
        self._cmd_topic = str(Topic.edge_topic(TopicKind.CMD, config.site, config.edge_id))

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(cfg.data_dir / OUTBOX_FILE, cfg.buffer.max_bytes, cfg.buffer.max_age_s)
        self.audit = WriteAudit(cfg.data_dir / "audit.sqlite")
        depth = self.outbox.depth()
        log.info(
            "edge agent starting: site=%s edge=%s session=%s devices=%d backlog_messages=%d",
            cfg.site, cfg.edge_id, self.session, len(self.devices), depth.messages,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        url = parse_mqtt_url(cfg.mqtt.url)
        self.link = MqttLink(
            url,
            cfg.mqtt.client_id or f"forgeline-edge-{cfg.edge_id}",
            loop=loop,
            subscriptions=[self._ack_topic, self._cmd_topic],
            on_message=self._on_message,
            on_connected=self._on_connected,
            will=(self._status_topic, self._status(online=False)),
            keepalive_s=cfg.mqtt.keepalive_s,
            tls={
                "ca_file": cfg.mqtt.ca_file,
                "cert_file": cfg.mqtt.cert_file,
                "key_file": cfg.mqtt.key_file,
                "insecure": cfg.mqtt.tls_insecure,
            },
        )
        self.link.start()
        metrics_server = None
        if cfg.metrics_port is not None:
            from prometheus_client import start_http_server

            metrics_server, _ = start_http_server(cfg.metrics_port, registry=self.health.registry)
            log.info("prometheus metrics: url=http://0.0.0.0:%d/metrics", cfg.metrics_port)
        polling = asyncio.Event()
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        for device in self.devices.values():
            device.coordinator = DeviceCoordinator(
                device.settings.id,
                device.profile,
                device.driver,
                self._sink,
                self.health,
                poll_interval_s=device.settings.poll_interval_s,
                connect_timeout_s=cfg.connect_timeout_s,
                backoff=backoff,
            )
        pollers = [
            asyncio.create_task(d.coordinator.run(polling), name=f"poll-{d.settings.id}")
            for d in self.devices.values()
            if d.coordinator is not None
        ]
        background = [
            asyncio.create_task(self._writer(), name="log-writer"),
            asyncio.create_task(self._backlog_lane(), name="backlog-lane"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
        ]
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait(
                [stopping, *background], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopping and not task.cancelled() and task.exception():
                    self.failed = True
                    log.critical(
                        "edge agent internal task failed: task=%s error=%r; stopping so that the "
                        "service manager restarts the agent (the log on disk is kept)",
                        task.get_name(), task.exception(),
                    )  # fmt: skip
        finally:
            stopping.cancel()
            polling.set()
            await asyncio.gather(*pollers, return_exceptions=True)
            await self._flush_queue()
            await self._drain(cfg.drain_on_stop_s)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self._update_health()
            self.link.stop(final=(self._status_topic, self._status(online=False)))
            depth = self.outbox.depth()
            log.info(
                "edge agent stopped: edge=%s unacknowledged_messages=%d (kept on disk for next start)",
                cfg.edge_id, depth.messages,
            )  # fmt: skip
            self.outbox.close()
            self.audit.close()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()

    async def _drain(self, timeout_s: float) -> None:
        """Give the cloud up to ``timeout_s`` to acknowledge everything in the log."""
        assert self.outbox is not None
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth().messages and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    # ------------------------------------------------------------------ data path

    async def _sink(
        self, device: str, samples: list[Sample], events: list[Event], read: int
    ) -> None:
        await self._queue.put(_Reading(device, samples, events, read))

    async def _writer(self) -> None:
        """Group-commit readings into the log, then publish them on the live lane."""
        while True:
            first = await self._queue.get()
            await asyncio.sleep(self.config.buffer.flush_interval_s)
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit_until_done(batch)

    async def _commit_until_done(self, batch: list[_Reading]) -> None:
        """Commit a batch; if the disk refuses (full, read-only), say so once and keep trying."""
        failures = 0
        while True:
            try:
                self._commit(batch)
            except sqlite3.Error as exc:
                failures += 1
                if failures == 1:
                    log.error(
                        "cannot write the edge log: path=%s error=%s; readings are held in memory "
                        "and retried every second (free disk space or fix permissions)",
                        self.config.data_dir / OUTBOX_FILE, exc,
                    )  # fmt: skip
                await asyncio.sleep(1.0)
                continue
            if failures:
                log.info("edge log writable again after %d attempts", failures)
            return

    async def _flush_queue(self) -> None:
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch:
            self._commit(batch)

    def _commit(self, batch: list[_Reading]) -> None:
        assert self.outbox is not None
        assert self.link is not None
        live = self.link.connected
        now = now_ms()
        messages: list[OutgoingMessage] = []
        counts: list[tuple[str, str, int]] = []
        cfg = self.config
        for reading in batch:
            counts.append((reading.device, "read", reading.read))
            if reading.samples:
                seq = next(self._seq)
                data = DataMessage(self.session, seq, now, tuple(reading.samples), not live)
                topic = Topic.device_topic(TopicKind.DATA, cfg.site, cfg.edge_id, reading.device)
                messages.append(
                    OutgoingMessage(
                        self.session, seq, str(topic), self.codec.encode(data),
                        reading.device, len(reading.samples), now,
                    )
                )  # fmt: skip
            if reading.events:
                seq = next(self._seq)
                event = EventMessage(self.session, seq, now, tuple(reading.events), not live)
                topic = Topic.device_topic(TopicKind.EVENT, cfg.site, cfg.edge_id, reading.device)
                messages.append(
                    OutgoingMessage(
                        self.session, seq, str(topic), self.codec.encode(event),
                        reading.device, 0, now,
                    )
                )  # fmt: skip
        self.outbox.append(messages, counts)
        for m in messages:
            if m.device and m.samples:
                self.health.published(m.device, m.samples)
        if live:
            sent = time.monotonic()
            for m in messages:
                if self.link.publish(m.topic, m.payload):
                    self._sent_at[(m.session, m.seq)] = sent

    async def _backlog_lane(self) -> None:
        """Walk the log oldest first and (re-)send what is unsent or unacknowledged too long."""
        assert self.outbox is not None
        assert self.link is not None
        tick_s = 0.1
        budget = max(1, int(self.config.buffer.backlog_rate * tick_s))
        resend_after = self.config.buffer.resend_after_s
        while True:
            await asyncio.sleep(tick_s)
            if not self.link.connected:
                continue
            rows = self.outbox.after(self._cursor, budget * 4)
            if not rows:
                self._cursor = 0
                continue
            now = time.monotonic()
            sent = 0
            for row in rows:
                self._cursor = row.rowid
                last = self._sent_at.get((row.session, row.seq))
                if last is not None and now - last < resend_after:
                    continue
                if not self.link.publish(row.topic, row.payload):
                    break
                self._sent_at[(row.session, row.seq)] = now
                sent += 1
                if sent >= budget:
                    break

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            kind = parse_topic(topic).kind
            message = self.codec.decode(kind, payload)
        except WireError as exc:
            log.warning("ignored a message the edge cannot read: topic=%s error=%s", topic, exc)
            return
        if isinstance(message, AckMessage):
            self._acknowledge(message)
        elif isinstance(message, CommandMessage):
            task = asyncio.get_running_loop().create_task(self._command(message))
            self._commands.add(task)  # keep a reference until it is done
            task.add_done_callback(self._commands.discard)

    def _acknowledge(self, ack: AckMessage) -> None:
        assert self.outbox is not None
        for session, ranges in ack.ranges.items():
            self.outbox.acknowledge(session, ranges)
            for first, last in ranges:
                if last - first < len(self._sent_at):
                    for seq in range(first, last + 1):
                        self._sent_at.pop((session, seq), None)
                else:
                    for key in [
                        k for k in self._sent_at if k[0] == session and first <= k[1] <= last
                    ]:
                        del self._sent_at[key]

    async def _command(self, command: CommandMessage) -> None:
        log.info("command received: command=%s id=%s", command.command, command.command_id)
        if command.command == "resend_birth":
            self._publish_births()
        elif command.command == "write":
            await self._write(WriteRequest.from_command(command))
        elif command.command == "forward_waveform":
            await self._forward_waveform(command)
        else:
            log.warning("unknown command ignored: command=%s", command.command)

    async def _write(self, request: WriteRequest) -> None:
        """Check, audit, carry out and report one southbound write."""
        assert self.audit is not None
        now = now_ms()
        if not self.audit.begin(request, now):
            log.info("write command seen before, ignored: id=%s", request.command_id)
            return
        device = self.devices.get(request.device or "")
        age_s = (now - request.created_ms) / 1000
        reason: str | None
        if device is None:
            reason = f"no device {request.device!r} on this edge (have: {sorted(self.devices)})"
        elif request.metric is None:
            reason = "the write names no metric"
        elif age_s > self.config.command_max_age_s:
            reason = f"the command is {age_s:.0f} s old (limit {self.config.command_max_age_s} s)"
        else:
            reason = check_write(device.profile, request.metric, request.value)
        result: Result = "rejected"
        if reason is None and device is not None and request.metric is not None:
            try:
                await device.driver.write(request.metric, request.value)
                result, reason = "ok", "written"
            except Exception as exc:  # noqa: BLE001 - a failed write is reported, never fatal
                result, reason = "failed", str(exc) or type(exc).__name__
        detail = f"{result}: {reason} (command {request.command_id} by {request.user or 'unknown'})"
        self.audit.finish(request.command_id, result, reason or "")
        log.log(
            logging.INFO if result == "ok" else logging.WARNING,
            "southbound write %s: device=%s metric=%s value=%r user=%s id=%s detail=%s",
            result, request.device, request.metric, request.value, request.user,
            request.command_id, reason,
        )  # fmt: skip
        if device is not None:
            event = Event("write_result", now_ms(), request.metric, None, request.value, detail)
            await self._queue.put(_Reading(device.settings.id, [], [event], 0))

    async def _forward_waveform(self, command: CommandMessage) -> None:
        """Check and audit a request for the next N raw windows of a waveform tag."""
        assert self.audit is not None
        args = command.args
        device_id, metric = args.get("device"), args.get("metric")
        windows = args.get("windows", 1)
        request = WriteRequest(
            command.command_id, command.created_ms, _text(args.get("user")), _text(device_id),
            _text(metric), windows,
        )  # fmt: skip
        if not self.audit.begin(request, now_ms()):
            log.info("forward_waveform command seen before, ignored: id=%s", command.command_id)
            return
        device = self.devices.get(device_id) if isinstance(device_id, str) else None
        reason: str | None = None
        if device is None:
            reason = f"no device {device_id!r} on this edge (have: {sorted(self.devices)})"
        elif not isinstance(metric, str):
            reason = f"the command names no metric (got {metric!r})"
        elif (count := _whole_number_in(windows, 1, MAX_FORWARD_WINDOWS)) is None:
            reason = f"windows must be a whole number 1..{MAX_FORWARD_WINDOWS}, got {windows!r}"
        elif device.coordinator is None:
            reason = f"device {device_id!r} is not running"
        else:
            try:
                device.coordinator.forward_waveform(metric, count)
            except KeyError:
                waveforms = [t.name for t in device.profile.tags if t.waveform is not None]
                reason = (
                    f"{metric!r} is not a waveform tag of device {device_id!r} "
                    f"(profile {device.profile.model} has: {waveforms or 'none'})"
                )
        result: Result = "rejected" if reason else "ok"
        detail = reason or f"the next {windows} window(s) of {metric} will be published"
        self.audit.finish(command.command_id, result, detail)
        log.log(
            logging.INFO if result == "ok" else logging.WARNING,
            "forward_waveform %s: device=%s metric=%s windows=%r id=%s detail=%s",
            result, device_id, metric, windows, command.command_id, detail,
        )  # fmt: skip

    # ------------------------------------------------------------------ status and births

    def _on_connected(self) -> None:
        assert self.link is not None
        self.link.publish(self._status_topic, self._status(online=True), retain=True)
        self._publish_births()
        self.health.mqtt(True)

    def _publish_births(self) -> None:
        assert self.link is not None
        cfg = self.config
        for device in self.devices.values():
            profile = device.profile
            birth = BirthMessage(
                session=self.session,
                created_ms=now_ms(),
                profile=profile.model,
                protocol=profile.protocol,
                metrics=profile.metric_definitions(),
                state_map={str(k): v for k, v in profile.states.items()},
                ideal_cycle_time_s=profile.ideal_cycle_time_s,
                units_per_cycle=profile.units_per_cycle,
                area=device.settings.area,
                line=device.settings.line,
                fault_codes={
                    str(code): FaultText(fault.reason, fault.category)
                    for code, fault in profile.fault_codes.items()
                },
                state_rules=tuple(StateRuleText(r.state, r.when) for r in profile.state_rules),
                counter_rollover=profile.workarounds.counter_rollover,
            )
            topic = Topic.device_topic(TopicKind.BIRTH, cfg.site, cfg.edge_id, device.settings.id)
            self.link.publish(str(topic), self.codec.encode(birth), retain=True)

    def _status(self, *, online: bool) -> bytes:
        health = self.health.summary() if online else {}
        return self.codec.encode(StatusMessage(online, now_ms(), self.session, health))

    def _update_health(self) -> None:
        if self.outbox is not None:
            depth = self.outbox.depth()
            self.health.buffer(depth.messages, depth.bytes, depth.oldest_created_ms)
        if self.link is not None:
            self.health.mqtt(self.link.connected)

    async def _housekeeping(self) -> None:
        """Limits, health figures and the periodic status message."""
        assert self.outbox is not None
        assert self.link is not None
        last_status = 0.0
        while True:
            await asyncio.sleep(1.0)
            dropped = self.outbox.enforce_limits()
            if dropped:
                log.warning(
                    "buffer limit reached: dropped_messages=%d (raise buffer.max_bytes/max_age_s "
                    "or fix the link to the cloud)", dropped,
                )  # fmt: skip
            self._update_health()
            now = time.monotonic()
            if self.link.connected and now - last_status >= self.config.status_interval_s:
                last_status = now
                self.link.publish(self._status_topic, self._status(online=True), retain=True)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _whole_number_in(value: object, low: int, high: int) -> int | None:
    """``value`` as an int when it is a whole number in low..high (3.0 counts), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        return None  # NaN fails the range check too
    return int(value) if value == int(value) else None


def build_agent(config: EdgeConfig) -> EdgeAgent:
    """Load every device's profile and build its driver (no I/O yet)."""
    devices = []
    for settings in config.devices:
        if not settings.enabled:
            continue
        profile = load_profile(profile_path(settings.profile))
        try:
            driver = create_driver(profile, endpoint_for(settings, profile, config.data_dir))
        except ValueError as exc:
            raise EdgeConfigError(
                f"device {settings.id} (profile {settings.profile}): {exc}"
            ) from exc
        devices.append(Device(settings, profile, driver))
    return EdgeAgent(config, devices)


async def run_edge(config: EdgeConfig, stop: asyncio.Event | None = None) -> int:
    """Run an agent until ``stop`` (or SIGTERM/SIGINT when none is given); the exit code."""
    agent = build_agent(config)
    if stop is None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
    await agent.run(stop)
    return 1 if agent.failed else 0


def _stop_on_signals(stop: asyncio.Event) -> None:
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def outbox_path(data_dir: Path) -> Path:
    return data_dir / OUTBOX_FILE
