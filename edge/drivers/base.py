"""The driver interface every field bus implements, and the explicit registry of drivers.

A driver owns one device connection. ``__init__`` only validates (no I/O); ``connect`` opens the
link and may be retried; ``read`` performs one poll of every tag and returns one sample per tag
(per-tag failures as bad-quality samples); a lost link raises ``DeviceUnreachable`` so the
coordinator can mark the whole device bad, back off and reconnect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from protocols.profile import Profile
from protocols.wire import Sample, Value


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one device instance is reached; the profile says what it is."""

    device_id: str
    host: str = "127.0.0.1"
    port: int = 502
    unit_id: int = 1
    endpoint_url: str | None = None  # OPC UA: opc.tcp://host:port/path
    serial_port: str | None = None  # Modbus RTU
    baudrate: int = 19200
    parity: str = "E"
    stopbits: int = 1
    bytesize: int = 8
    inter_frame_delay_ms: float | None = None  # Modbus RTU; None: 3.5 character times
    timeout_s: float | None = None  # None: the profile's
    username: str | None = None
    password: str | None = None
    security_policy: str = "None"  # OPC UA: None or Basic256Sha256
    security_mode: str = "None"  # OPC UA: None, Sign or SignAndEncrypt
    pki_dir: str | None = None  # OPC UA: the edge's certificate and trusted peers
    trust_on_first_use: bool = False  # OPC UA: save an unknown server's certificate once


class Driver(Protocol):
    """One device connection.

    A driver whose device pushes changes (OPC UA subscriptions) also has ``changes``, an
    ``asyncio.Event`` it sets when changes have arrived; the coordinator then calls ``read``
    at once (with ``due`` empty) instead of waiting for the next poll. Polling drivers have none.
    A driver that reads waveform tags (arrays, ``Tag.waveform``) also has ``take_windows()``,
    which returns the ``edge.features.WaveformWindow`` objects read since the last call; the
    coordinator turns them into feature samples. Drivers without waveform tags have none.
    """

    async def connect(self) -> None:
        """Open the link; raise DeviceUnreachable if the device cannot be reached."""

    async def read(self, due: frozenset[str] | None = None) -> list[Sample]:
        """One poll of the tags named in ``due`` (every tag when None): a sample each, bad
        quality where a tag failed. Scan classes make ``due`` a subset: the coordinator asks
        for the tags whose interval has come round."""

    async def write(self, metric: str, value: Value) -> None:
        """Write one writable tag; raise DeviceRejected or DeviceUnreachable on failure."""

    async def close(self) -> None:
        """Close the link; never raises."""


DriverFactory = Callable[[Profile, Endpoint], Driver]

_REGISTRY: dict[str, DriverFactory] = {}


def register(protocol: str, factory: DriverFactory) -> None:
    """Register the driver for a profile protocol (``modbus_tcp``, ``opcua`` ...)."""
    _REGISTRY[protocol] = factory


def create_driver(profile: Profile, endpoint: Endpoint) -> Driver:
    """Build the driver for a profile's protocol (the built-in drivers are registered on first use)."""
    if not _REGISTRY:
        _register_builtin()
    try:
        factory = _REGISTRY[profile.protocol]
    except KeyError:
        raise ValueError(
            f"no driver for protocol {profile.protocol!r} (have: {', '.join(sorted(_REGISTRY))})"
        ) from None
    return factory(profile, endpoint)


def _modbus(profile: Profile, endpoint: Endpoint) -> Driver:
    from edge.drivers.modbus import ModbusDriver

    return ModbusDriver(profile, endpoint)


def _opcua(profile: Profile, endpoint: Endpoint) -> Driver:
    from edge.drivers.opcua import OpcUaDriver

    return OpcUaDriver(profile, endpoint)


def _register_builtin() -> None:
    """The built-in drivers, each imported when first used (a Modbus-only edge never loads
    the OPC UA stack: about 26 MiB less resident memory)."""
    register("modbus_tcp", _modbus)
    register("modbus_rtu", _modbus)
    register("opcua", _opcua)
