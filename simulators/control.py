"""Run-time fault injection: the control endpoint of a running ``forgeline sim``, and its client.

A running simulator listens on 127.0.0.1 (a port the OS picks) for one JSON object per line and
answers one JSON object per line::

    → {"token": "...", "op": "fault", "device": "cnc-01", "fault": "stop", "duration_s": 5}
    ← {"ok": true, "detail": "cnc-01: unresponsive for 5 s, then answers again"}
    ← {"ok": false, "error": "no simulated device 'cnc-9'; have: cnc-01, press-01"}

Its address (host, port, pid and a random token that keeps other local users out) is written
in the endpoints file under ``control`` and in a per-user state file (``state_file()``), so
``forgeline sim fault DEVICE KIND`` finds the one running simulator without being told where.

Faults, by their CLI names: ``stop`` (unresponsive), ``drop`` (drop_connections), ``bad``
(bad_quality) and ``excursion``; they mean what the scenario timeline's faults mean (see
docs/simulators.md). ``stop``, ``bad`` and ``excursion`` last ``duration_s`` (default
``DEFAULT_DURATION_S``), then the device recovers; ``drop`` happens once.

Errors: ``ControlError`` (a request that cannot be carried out; the message says why) and its
subclass ``NoRunningSim`` (nothing to talk to; the message says how to start a simulator).

The client half uses the standard library only, so ``forgeline sim fault`` needs neither
pymodbus nor asyncua.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

if TYPE_CHECKING:
    from simulators.runner import DeviceServer, SimulatedPlant

log = logging.getLogger(__name__)

FaultName = Literal["stop", "drop", "bad", "excursion"]
FAULT_NAMES: tuple[str, ...] = get_args(FaultName)
DEFAULT_DURATION_S = 30.0
START_HINT = "start one with `forgeline sim --scenario NAME|FILE` (e.g. --scenario demo)"
_MAX_LINE = 64 * 1024


class ControlError(Exception):
    """A fault request that cannot be carried out; the message says what was wrong."""


class NoRunningSim(ControlError):
    """No simulator answers where the endpoints or state file says it listens."""


@dataclass(frozen=True, slots=True)
class FaultRequest:
    """One fault to inject now into one device of the running plant."""

    device: str
    fault: FaultName
    duration_s: float | None = None
    metrics: tuple[str, ...] = ()
    value: float | None = None

    def __post_init__(self) -> None:
        if self.fault not in FAULT_NAMES:
            raise ControlError(f"unknown fault {self.fault!r}; use one of {', '.join(FAULT_NAMES)}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ControlError(f"the duration must be more than 0 s, not {self.duration_s}")
        if self.fault == "drop" and self.duration_s is not None:
            raise ControlError("drop closes the open connections once: --for does not apply")
        if self.fault == "excursion":
            if len(self.metrics) != 1 or self.value is None:
                raise ControlError("an excursion needs one --metric and a --value")
        elif self.value is not None:
            raise ControlError("--value belongs to excursion faults")
        if self.fault in ("stop", "drop") and self.metrics:
            raise ControlError(f"--metric does not apply to {self.fault}: it hits the whole device")

    @property
    def effective_duration_s(self) -> float:
        """How long the fault lasts (``DEFAULT_DURATION_S`` when none was given)."""
        return DEFAULT_DURATION_S if self.duration_s is None else self.duration_s

    def to_json(self) -> dict[str, Any]:
        return {
            "op": "fault",
            "device": self.device,
            "fault": self.fault,
            "duration_s": self.duration_s,
            "metrics": list(self.metrics),
            "value": self.value,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> FaultRequest:
        try:
            duration = document.get("duration_s")
            value = document.get("value")
            return cls(
                device=str(document["device"]),
                fault=cast(FaultName, str(document["fault"])),
                duration_s=None if duration is None else float(duration),
                metrics=tuple(str(m) for m in document.get("metrics") or ()),
                value=None if value is None else float(value),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError(f"malformed fault request: {exc!r}") from exc


# -- server (inside the running simulator) --------------------------------------------------------


class ControlServer:
    """The control endpoint of one running plant; ``start()`` listens, ``stop()`` closes."""

    def __init__(self, plant: SimulatedPlant, host: str = "127.0.0.1", port: int = 0) -> None:
        self._plant = plant
        self._host = host
        self._port = port
        self._token = secrets.token_urlsafe(16)
        self._server: asyncio.Server | None = None
        self._recoveries: dict[tuple[str, str, tuple[str, ...]], asyncio.Task[None]] = {}

    @property
    def address(self) -> dict[str, Any]:
        """What a client needs (the endpoints file's ``control`` entry)."""
        return {
            "host": self._host,
            "port": self._port,
            "token": self._token,
            "pid": os.getpid(),
        }

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_MAX_LINE
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("sim control listening host=%s port=%d", self._host, self._port)

    async def stop(self) -> None:
        """Stop listening and cancel pending recoveries (the devices stop with the plant)."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        recoveries = list(self._recoveries.values())
        self._recoveries.clear()
        for task in recoveries:
            task.cancel()
        await asyncio.gather(*recoveries, return_exceptions=True)

    async def apply(self, request: FaultRequest) -> str:
        """Inject one fault now; returns what was done (raises ControlError when it cannot)."""
        try:
            device = self._plant.device(request.device)
        except KeyError as exc:
            raise ControlError(str(exc.args[0])) from None
        self._check_metrics(device, request.metrics)
        detail = await self._inject(device, request)
        log.info(
            "sim fault device=%s kind=%s source=control: %s", request.device, request.fault, detail
        )
        return detail

    async def _inject(self, device: DeviceServer, request: FaultRequest) -> str:
        duration = request.effective_duration_s
        metrics = list(request.metrics) or None
        if request.fault == "drop":
            closed = await device.drop_connections()
            return f"{request.device}: closed {closed} open connection(s); reconnecting works"
        if request.fault == "excursion":
            try:
                await device.excursion(request.metrics[0], cast(float, request.value), duration)
            except ValueError as exc:
                raise ControlError(f"{request.device}: {exc}") from None
            return (
                f"{request.device}: {request.metrics[0]} held at {request.value:g} "
                f"for {duration:g} s"
            )
        if request.fault == "stop":
            await device.set_unresponsive(True)
            self._recover_after(request, duration, lambda: device.set_unresponsive(False))
            return f"{request.device}: unresponsive for {duration:g} s, then answers again"
        await device.set_bad_quality(True, metrics)
        self._recover_after(request, duration, lambda: device.set_bad_quality(False, metrics))
        which = ", ".join(request.metrics) if request.metrics else "every tag"
        return f"{request.device}: bad quality on {which} for {duration:g} s"

    @staticmethod
    def _check_metrics(device: DeviceServer, metrics: tuple[str, ...]) -> None:
        names = [t.name for t in device.profile.tags]
        unknown = [m for m in metrics if m not in names]
        if unknown:
            raise ControlError(
                f"{device.device_id} ({device.profile.model}) has no tag {', '.join(unknown)}; "
                f"have: {', '.join(names)}"
            )

    def _recover_after(
        self, request: FaultRequest, duration_s: float, recovery: Callable[[], Awaitable[None]]
    ) -> None:
        """Call ``recovery`` after ``duration_s``; the same fault again restarts the clock."""
        key = (request.device, request.fault, request.metrics)
        previous = self._recoveries.pop(key, None)
        if previous is not None:
            previous.cancel()  # the fault stays on; the new request sets when it ends

        async def recover() -> None:
            await asyncio.sleep(duration_s)
            await recovery()
            log.info("sim fault over device=%s kind=%s", request.device, request.fault)
            if self._recoveries.get(key) is task:
                del self._recoveries[key]

        task = asyncio.create_task(recover(), name=f"sim-control-{request.device}")
        self._recoveries[key] = task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10.0)
            answer = await self._answer(line)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError) as exc:
            log.warning("sim control: request not answered: %r", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            document = json.loads(line)
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not a JSON line: {exc}"}
        if not isinstance(document, dict):
            return {"ok": False, "error": "the request must be a JSON object"}
        token = str(document.get("token", ""))
        if not secrets.compare_digest(token, self._token):
            return {"ok": False, "error": "wrong or missing control token"}
        op = document.get("op")
        if op == "devices":
            return {"ok": True, "devices": [e["device_id"] for e in self._plant.endpoints]}
        if op != "fault":
            return {"ok": False, "error": f"unknown op {op!r}; use fault or devices"}
        try:
            detail = await self.apply(FaultRequest.from_json(document))
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "detail": detail}


# -- where a running simulator is found ----------------------------------------------------------


def state_file() -> Path:
    """The per-user file naming the running simulator ($XDG_RUNTIME_DIR or ~/.cache)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".cache"
    return base / "forgeline" / "sim.json"


def publish_address(
    control: dict[str, Any], site: str, devices: list[str], endpoints_file: Path | None
) -> Path:
    """Write the state file (private to the user, atomically); returns its path."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = {
        "site": site,
        "devices": devices,
        "endpoints_file": None if endpoints_file is None else str(endpoints_file.resolve()),
        "control": control,
    }
    fd, temp = tempfile.mkstemp(prefix=".sim.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp makes it mode 0600
            json.dump(document, handle, indent=2)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path


def withdraw_address(control: dict[str, Any]) -> None:
    """Remove the state file if it still names this simulator (a later one may have replaced it)."""
    path = state_file()
    with contextlib.suppress(OSError, ValueError):
        current = json.loads(path.read_text(encoding="utf-8")).get("control") or {}
        if current.get("pid") == control["pid"] and current.get("port") == control["port"]:
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_control(endpoints_file: Path | None = None) -> dict[str, Any]:
    """The control address from an endpoints file, or else from the per-user state file."""
    if endpoints_file is not None:
        try:
            document = json.loads(endpoints_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NoRunningSim(
                f"no endpoints file {endpoints_file}: is the simulator running? {START_HINT} "
                f"--endpoints-file {endpoints_file}"
            ) from None
        except (OSError, ValueError) as exc:
            raise ControlError(f"cannot read the endpoints file {endpoints_file}: {exc}") from None
        control = document.get("control") if isinstance(document, dict) else None
        if not isinstance(control, dict):
            raise ControlError(
                f"{endpoints_file} names no control endpoint (written by an older "
                "forgeline sim?): restart the simulator"
            )
        where = str(endpoints_file)
    else:
        path = state_file()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise NoRunningSim(f"no forgeline sim is running (no {path}); {START_HINT}") from None
        control = document.get("control") if isinstance(document, dict) else None
        if not isinstance(control, dict):
            raise NoRunningSim(f"{path} names no simulator; {START_HINT}")
        where = str(path)
    pid = control.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        raise NoRunningSim(
            f"the forgeline sim named in {where} (pid {pid}) is no longer running; {START_HINT}"
        )
    return control


def send(control: dict[str, Any], document: dict[str, Any], timeout_s: float = 10.0) -> Any:
    """Send one request to a running simulator and return its answer (a JSON object)."""
    host, port = str(control["host"]), int(control["port"])
    line = json.dumps({**document, "token": control.get("token", "")}).encode() + b"\n"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(line)
            received = b""
            while not received.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
    except ConnectionRefusedError:
        raise NoRunningSim(
            f"no forgeline sim answers at {host}:{port} (has it stopped?); {START_HINT}"
        ) from None
    except OSError as exc:
        raise ControlError(f"cannot talk to the simulator at {host}:{port}: {exc}") from None
    try:
        return json.loads(received)
    except ValueError:
        raise ControlError(
            f"the simulator at {host}:{port} closed the connection without an answer"
        ) from None


def inject_fault(request: FaultRequest, endpoints_file: Path | None = None) -> str:
    """Find the running simulator, inject ``request`` and return what it did."""
    answer = send(find_control(endpoints_file), request.to_json())
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise ControlError(str(error))
    return str(answer.get("detail", "done"))
