"""Run a simulated plant: one real server per machine, stepped in real time, faults on a timeline.

``SimulatedPlant`` starts every machine's server (concurrently), steps all behaviour models from
one task every ``step_s`` seconds of real time, applies the scenario's fault timeline, and
gives tests and the CLI the endpoints, the live values and each device's fault controls.
``run_scenario`` is what ``forgeline sim`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from protocols.profile import Profile
from simulators.behaviour import MachineBehaviour
from simulators.control import ControlServer, publish_address, withdraw_address
from simulators.modbus_server import ModbusDeviceServer
from simulators.opcua_server import OpcUaDeviceServer
from simulators.scenario import (
    Fault,
    Line,
    Machine,
    OpcUaSimOptions,
    Scenario,
    load_scenario,
    resolve_profile,
    scenario_path,
)

log = logging.getLogger(__name__)


class DeviceServer(Protocol):
    """What the plant needs of a simulated device, whatever its field bus."""

    device_id: str
    protocol: str
    profile: Profile
    behaviour: MachineBehaviour
    host: str
    port: int

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def step(self, now_s: float) -> None: ...
    def values(self) -> dict[str, Any]: ...
    def endpoint(self) -> dict[str, Any]: ...
    async def set_unresponsive(self, unresponsive: bool) -> None: ...
    async def drop_connections(self) -> int: ...
    async def set_bad_quality(self, bad: bool, metrics: list[str] | None = None) -> None: ...
    async def excursion(self, metric: str, value: float, duration_s: float) -> None: ...


def build_device(
    machine: Machine, profile: Profile, *, host: str = "127.0.0.1", epoch_s: float = 0.0
) -> DeviceServer:
    """The server for one scenario machine (not started)."""
    config = machine.behaviour.config()
    if machine.behaviour.fault_codes is None and profile.fault_codes:
        # the machine raises the alarm numbers its profile documents
        config = dataclasses.replace(config, fault_codes=tuple(profile.fault_codes))
    if machine.bearing is not None:
        config = dataclasses.replace(config, bearing=machine.bearing.wear(machine.seed))
    behaviour = MachineBehaviour(profile, seed=machine.seed, config=config)
    port = machine.port or 0
    if machine.opcua is not None and profile.protocol != "opcua":
        raise ValueError(
            f"device {machine.device_id}: 'opcua' options on a {profile.protocol} machine "
            f"(profile {profile.model})"
        )
    if profile.protocol == "modbus_tcp":
        return ModbusDeviceServer(
            machine.device_id, profile, behaviour, host=host, port=port, unit_id=machine.unit_id
        )
    if profile.protocol == "opcua":
        options = machine.opcua or OpcUaSimOptions()
        return OpcUaDeviceServer(
            machine.device_id,
            profile,
            behaviour,
            host=host,
            port=port,
            epoch_s=epoch_s,
            security=options.security,
            users=options.user_map(),
            pki_dir=options.certificate_dir,
            max_nodes_per_read=options.max_nodes_per_read,
        )
    raise ValueError(
        f"device {machine.device_id}: the simulators serve modbus_tcp and opcua, "
        f"not {profile.protocol} (profile {profile.model})"
    )


def _check_bearing(machine: Machine, profile: Profile) -> None:
    bearing = machine.bearing
    if bearing is None:
        return
    names = {t.name for t in profile.tags}
    for field in ("load_tag", "temperature_tag"):
        name = getattr(bearing, field)
        if name is not None and name not in names:
            raise ValueError(
                f"device {machine.device_id}: bearing.{field} {name!r} is not a tag of profile "
                f"{profile.model} (have: {', '.join(sorted(names))})"
            )


def _check_faults(machine: Machine, profile: Profile) -> None:
    names = {t.name for t in profile.tags}
    for i, fault in enumerate(machine.faults):
        wanted = [fault.metric] if fault.metric else list(fault.metrics or [])
        unknown = [m for m in wanted if m not in names]
        if unknown:
            raise ValueError(
                f"device {machine.device_id}: faults[{i}] names {unknown}, "
                f"which profile {profile.model} does not have"
            )


class SimulatedPlant:
    """A whole scenario of simulated machines, as an async context manager."""

    def __init__(
        self,
        scenario: Scenario | str | Path,
        *,
        host: str = "127.0.0.1",
        step_s: float | None = None,
    ) -> None:
        source: Path | None = None
        if not isinstance(scenario, Scenario):
            source = scenario_path(scenario)
            scenario = load_scenario(source)
        self.scenario = scenario
        self.host = host
        self.step_s = step_s or scenario.step_s
        self.epoch_s = time.time()
        self._t0 = 0.0
        self._devices: dict[str, DeviceServer] = {}
        self._placement: dict[str, tuple[Line, Machine]] = {}
        for line, machine in scenario.machines():
            profile = resolve_profile(machine.profile, source)
            _check_faults(machine, profile)
            _check_bearing(machine, profile)
            self._devices[machine.device_id] = build_device(
                machine, profile, host=host, epoch_s=self.epoch_s
            )
            self._placement[machine.device_id] = (line, machine)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedPlant:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every server (concurrently), then the stepping task and the fault timeline."""
        devices = list(self._devices.values())
        results = await asyncio.gather(*(d.start() for d in devices), return_exceptions=True)
        failures = [
            (d, r) for d, r in zip(devices, results, strict=True) if isinstance(r, BaseException)
        ]
        if failures:
            await asyncio.gather(*(d.stop() for d in devices), return_exceptions=True)
            device, error = failures[0]
            raise RuntimeError(
                f"simulated device {device.device_id} did not start: {error}"
            ) from error
        self._started = True
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self.epoch_s = time.time()
        for device in devices:
            if isinstance(device, OpcUaDeviceServer):
                device.epoch_s = self.epoch_s
        self._tasks.append(asyncio.create_task(self._step_forever(), name="sim-step"))
        for device_id, (_line, machine) in self._placement.items():
            for fault in machine.faults:
                task = asyncio.create_task(
                    self._apply_fault(self._devices[device_id], fault),
                    name=f"sim-fault-{device_id}",
                )
                self._tasks.append(task)

    async def stop(self) -> None:
        """Cancel the stepping and fault tasks and stop every server."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._started:
            await asyncio.gather(
                *(d.stop() for d in self._devices.values()), return_exceptions=True
            )
            self._started = False

    # -- what tests and the CLI use -----------------------------------------------------------

    @property
    def site(self) -> str:
        return self.scenario.site

    @property
    def now_s(self) -> float:
        """Simulated seconds since the plant started."""
        return asyncio.get_running_loop().time() - self._t0

    @property
    def endpoints(self) -> list[dict[str, Any]]:
        """One entry per device, in scenario order (the endpoints file's ``devices``)."""
        out = []
        for device_id, device in self._devices.items():
            line, _machine = self._placement[device_id]
            out.append({**device.endpoint(), "line": line.name, "area": line.area})
        return out

    def device(self, device_id: str) -> DeviceServer:
        """A device's server: its fault controls, behaviour and endpoint."""
        try:
            return self._devices[device_id]
        except KeyError:
            raise KeyError(
                f"no simulated device {device_id!r}; have: {', '.join(self._devices)}"
            ) from None

    def values(self, device_id: str) -> dict[str, Any]:
        """A device's current values by tag name."""
        return self.device(device_id).values()

    async def step_now(self) -> None:
        """Step every device to the current time at once (tests use it to skip a wait)."""
        now = self.now_s
        for device in self._devices.values():
            await device.step(now)

    # -- tasks --------------------------------------------------------------------------------

    async def _step_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            now = loop.time() - self._t0
            for device in self._devices.values():
                try:
                    await device.step(now)
                except Exception:
                    log.exception("simulated device %s: step failed", device.device_id)
            next_tick += self.step_s
            await asyncio.sleep(max(0.0, next_tick - loop.time()))

    async def _apply_fault(self, device: DeviceServer, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.at_s - self.now_s))
        log.info(
            "sim fault device=%s kind=%s duration_s=%s",
            device.device_id,
            fault.kind,
            fault.duration_s,
        )
        duration = fault.duration_s or 0.0
        if fault.kind == "drop_connections":
            await device.drop_connections()
        elif fault.kind == "excursion":
            assert fault.metric is not None
            assert fault.value is not None
            await device.excursion(fault.metric, fault.value, duration)
        elif fault.kind == "unresponsive":
            await device.set_unresponsive(True)
            await asyncio.sleep(duration)
            await device.set_unresponsive(False)
        elif fault.kind == "bad_quality":
            await device.set_bad_quality(True, fault.metrics)
            await asyncio.sleep(duration)
            await device.set_bad_quality(False, fault.metrics)
        log.info("sim fault over device=%s kind=%s", device.device_id, fault.kind)


def write_endpoints_file(
    path: str | Path,
    endpoints: list[dict[str, Any]],
    site: str | None = None,
    control: dict[str, Any] | None = None,
) -> None:
    """Write the endpoints file atomically (temp file in the same folder, then os.replace).

    ``control`` (the run-time fault endpoint, ``simulators.control``) is added as a top-level
    key when given; ``devices`` is the same either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"site": site, "devices": endpoints}
    if control is not None:
        document["control"] = control
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


async def run_scenario(
    scenario: str | Path, endpoints_file: Path | None = None, duration_s: float | None = None
) -> None:
    """Run a scenario until cancelled, SIGTERM (a clean return), or ``duration_s`` elapses.

    This is the body of ``forgeline sim``: it logs one line per device started and, once every
    server listens, writes the endpoints file (when asked) for the edge and the tests to read.
    It also opens the control endpoint for ``forgeline sim fault`` (``simulators.control``) and
    records its address in the endpoints file and the per-user state file.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = False
    try:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        handled = True
    except (NotImplementedError, RuntimeError, ValueError):
        handled = False  # not the main thread, or a platform without signal handlers
    try:
        async with SimulatedPlant(scenario) as plant:
            for entry in plant.endpoints:
                where = entry["endpoint_url"] or f"modbus://{entry['host']}:{entry['port']}"
                log.info(
                    "sim device started device=%s protocol=%s endpoint=%s line=%r",
                    entry["device_id"], entry["protocol"], where, entry["line"],
                )  # fmt: skip
            control = ControlServer(plant)
            await control.start()
            try:
                if endpoints_file is not None:
                    write_endpoints_file(
                        endpoints_file, plant.endpoints, plant.site, control.address
                    )
                    log.info(
                        "sim endpoints file written path=%s devices=%d",
                        endpoints_file,
                        len(plant.endpoints),
                    )
                devices = [e["device_id"] for e in plant.endpoints]
                try:
                    state = publish_address(control.address, plant.site, devices, endpoints_file)
                    log.info("sim control address written path=%s", state)
                except OSError as exc:  # a read-only home: faults still work via the endpoints file
                    log.warning("sim control address not written: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), duration_s)
                log.info("sim stopping reason=%s", "sigterm" if stop.is_set() else "duration")
            finally:
                withdraw_address(control.address)
                await control.stop()
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)
