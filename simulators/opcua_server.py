"""Serve one simulated machine over OPC UA from its profile (asyncua server).

The server registers the profile's ``opcua.namespace_uri`` and creates, under an object named
after the device id, one variable per tag with the profile's node id (``s=Press.BarrelTemp`` is
a string id in that namespace; ``ns=..;`` ids are taken as written) and the variant type of the
tag's data type. Each ``step`` writes the behaviour's values with SourceTimestamp = simulated
time. Writable tags are writable by clients; what a client writes is handed to the behaviour,
which holds it.

A waveform tag (a profile ``waveform`` block) is a one-dimensional array variable of Float or
Double holding the behaviour's current window (``MachineBehaviour.window``): it is written only
when a new window is due, with SourceTimestamp = the window's time, so a client sees one change
per window.

Faults (coroutines, like the Modbus server's):

- ``set_unresponsive(True)`` stops the server's network side (clients lose the session and
  cannot connect); ``set_unresponsive(False)`` listens again on the same port, with the same
  address space.
- ``drop_connections()`` closes every client's socket; the server keeps listening.
- ``set_bad_quality(True, metrics)`` writes the last value again with StatusCode
  BadSensorFailure and keeps it so until switched back. Clients read a null value then: OPC UA
  Part 4 §7.7.1 says a Bad status carries no value, and asyncua's server enforces it.
- ``excursion(metric, value, duration_s)`` holds a signal outside its limits for a while.

Options that make it behave like a locked-down plant server:

- ``security``: the endpoints offered, among ``None``, ``Basic256Sha256/Sign`` and
  ``Basic256Sha256/SignAndEncrypt`` (default: ``None`` only). A secure endpoint needs the
  server's certificate: it is made on first start in ``pki_dir`` (``own/cert.der`` and
  ``own/key.pem``; a fresh temporary folder when not given) and kept across restarts, so a
  client that trusts ``certificate_path`` once keeps trusting it. Client certificates are not
  checked (any client certificate is accepted).
- ``users``: username → password; when given, anonymous sessions are refused and a wrong
  password answers BadUserAccessDenied.
- ``max_nodes_per_read``: advertised in ServerCapabilities/OperationLimits and enforced (asyncua
  never enforces it): a larger Read answers BadTooManyOperations. ``read_requests`` counts the
  Read requests clients sent (enforced or not), ``read_sizes`` their sizes.

Every variable with a unit gets an ``EngineeringUnits`` property (EUInformation, DisplayName =
the unit), and one with both limits a ``EURange`` property (Range low..high), as analog items of
real servers have; ``forgeline profiles browse`` drafts profiles from them.

asyncua builds the whole standard address space on ``init``: about 1.2 s of CPU per server on
our 2-core machines (in a worker thread, but bound by the GIL, so servers started together
take about 1.2 s each), which dominates start-up; the listening itself takes a few ms. Its
shelf-file cache and a pickled copy of the address space were both measured slower. ``stop``
takes up to 1 s (asyncua's server-time task sleeps 1 s between ticks).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import socket
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.node import Node
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from protocols.opcua.security import Pki, ensure_own_certificate
from protocols.opcua.values import VARIANT_TYPES
from protocols.profile import Profile, Tag
from simulators.behaviour import MachineBehaviour

log = logging.getLogger(__name__)

ENDPOINT_PATH = "/forgeline/"
_BIND_ATTEMPTS = 5
SECURITY_OPTIONS: dict[str, ua.SecurityPolicyType] = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256/Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256/SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}
# UN/CEFACT codes (OPC UA Part 8 §5.6.3) of units the built-in profiles use; others get -1.
_UNECE_CODES = {
    "°C": "CEL", "degC": "CEL", "bar": "BAR", "kPa": "KPA", "MPa": "MPA", "Pa": "PAL",
    "s": "SEC", "ms": "C26", "min": "MIN", "h": "HUR", "mm": "MMT", "m": "MTR", "mm/s": "C16",
    "m/s": "MTS", "kW": "KWT", "W": "WTT", "A": "AMP", "V": "VLT", "%": "P1", "Hz": "HTZ",
    "rpm": "RPM", "N": "NEU", "kN": "B47", "N·m": "NU", "Nm": "NU", "l/min": "L2", "kg": "KGM",
    "g": "GRM", "MΩ": "B75", "mΩ": "E45", "Ω": "OHM",
}  # fmt: skip
_UNITS_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS says is free now (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _stamp(moment: datetime) -> ua.DateTime:
    """asyncua types timestamps as its own datetime subclass; a plain aware datetime serves."""
    return cast(ua.DateTime, moment)


def variant_type(tag: Tag) -> ua.VariantType:
    """The OPC UA variant type a tag's variable holds."""
    if tag.type == "bitfield" and tag.bit is not None:
        return ua.VariantType.Boolean
    return VARIANT_TYPES[tag.type]


def unit_id(unit: str) -> int:
    """The UN/CEFACT UnitId of a unit (-1 when not known here)."""
    code = _UNECE_CODES.get(unit)
    return int.from_bytes(code.encode("ascii"), "big") if code else -1


def engineering_units(unit: str) -> ua.EUInformation:
    """The EUInformation value of a variable's EngineeringUnits property."""
    return ua.EUInformation(
        NamespaceUri=_UNITS_NAMESPACE,
        UnitId=cast(ua.Int32, unit_id(unit)),
        DisplayName=ua.LocalizedText(unit),
        Description=ua.LocalizedText(unit),
    )


class _Users(UserManager):
    """An asyncua user manager: these usernames with these passwords, nobody else."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)

    def get_user(
        self,
        iserver: object,
        username: str | None = None,
        password: str | None = None,
        certificate: object = None,
    ) -> User | None:
        expected = self._users.get(username or "")
        if expected is None or password is None:
            return None
        if not hmac.compare_digest(expected.encode(), str(password).encode()):
            return None
        return User(role=UserRole.User, name=username)


async def _declare_array(node: Node, samples: int) -> None:
    """Make a variable a one-dimensional array of ``samples`` values (ValueRank, dimensions)."""
    await node.write_attribute(
        AttributeIds.ValueRank, ua.DataValue(ua.Variant(1, ua.VariantType.Int32))
    )
    await node.write_attribute(
        AttributeIds.ArrayDimensions,
        ua.DataValue(ua.Variant([samples], ua.VariantType.UInt32)),
    )


def node_id(tag: Tag, namespace_index: int) -> ua.NodeId:
    """The node id of a tag: ``s=..``/``i=..`` in the profile namespace, ``ns=..;`` as written."""
    text = tag.node or ""
    if text.startswith(("ns=", "nsu=")):
        return ua.NodeId.from_string(text)
    return ua.NodeId.from_string(f"ns={namespace_index};{text}")


class OpcUaDeviceServer:
    """One OPC UA device: an asyncua server whose variables follow a behaviour model."""

    protocol = "opcua"

    def __init__(
        self,
        device_id: str,
        profile: Profile,
        behaviour: MachineBehaviour,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        epoch_s: float = 0.0,
        security: Sequence[str] = ("None",),
        users: Mapping[str, str] | None = None,
        pki_dir: str | Path | None = None,
        max_nodes_per_read: int | None = None,
    ) -> None:
        if profile.protocol != "opcua":
            raise ValueError(f"device {device_id}: profile {profile.model} is {profile.protocol}")
        unknown = [option for option in security if option not in SECURITY_OPTIONS]
        if unknown or not security:
            raise ValueError(
                f"device {device_id}: security {list(security)}: each must be one of "
                f"{', '.join(SECURITY_OPTIONS)} (and at least one)"
            )
        if users is not None and not users:
            raise ValueError(f"device {device_id}: users is empty (give None for anonymous)")
        if max_nodes_per_read is not None and max_nodes_per_read < 1:
            raise ValueError(f"device {device_id}: max_nodes_per_read must be at least 1")
        self.security = tuple(dict.fromkeys(security))
        self.users = dict(users) if users is not None else None
        self.pki_dir = Path(pki_dir) if pki_dir is not None else None
        self.max_nodes_per_read = max_nodes_per_read
        self.read_requests = 0  # Read requests from clients
        self.read_sizes: list[int] = []  # nodes per Read request, the last 1000
        self.application_uri = f"urn:forgeline:sim:{device_id}"
        self.device_id = device_id
        self.profile = profile
        self.behaviour = behaviour
        self.host = host
        self.port = port
        self.epoch_s = epoch_s
        """Wall-clock epoch (s) of simulated time 0: SourceTimestamp = epoch_s + now_s."""
        self.namespace_uri = (
            profile.opcua_options.namespace_uri or f"urn:forgeline:sim:{profile.model}"
        )
        self.namespace_index = 0
        self._server: Server | None = None
        self._running = False
        self._nodes: dict[str, Node] = {}
        self._written: dict[str, Any] = {}
        self._bad: set[str] = set()
        self._window_index: dict[str, int] = {}  # waveform tag → index of the window served

    @property
    def endpoint_url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{ENDPOINT_PATH}"

    @property
    def listening(self) -> bool:
        return self._running

    @property
    def secure(self) -> bool:
        return any(option != "None" for option in self.security)

    @property
    def certificate_path(self) -> Path | None:
        """The server certificate (DER) a client must trust; None until a secure server started."""
        return Pki(self.pki_dir).certificate_path if self.pki_dir is not None else None

    def endpoint(self) -> dict[str, Any]:
        """Where a client reaches this device (the shape of one endpoints-file entry)."""
        entry: dict[str, Any] = {
            "device_id": self.device_id,
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "namespace": self.namespace_uri,
            "endpoint_url": self.endpoint_url,
            "profile": self.profile.model,
        }
        if self.secure:
            entry["security"] = list(self.security)
            entry["server_certificate"] = str(self.certificate_path)
        if self.users is not None:
            entry["login"] = "username"
        return entry

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the address space (slow: asyncua's init) and start listening."""
        server = Server(user_manager=_Users(self.users) if self.users is not None else None)
        await server.init()
        server.set_server_name(f"forgeline simulator {self.device_id}")
        await server.set_application_uri(self.application_uri)
        server.set_security_policy([SECURITY_OPTIONS[option] for option in self.security])
        if self.secure:
            await self._load_certificate(server)
        if self.users is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        self.namespace_index = await server.register_namespace(self.namespace_uri)
        await self._build_address_space(server)
        if self.max_nodes_per_read is not None:
            limit = server.get_node(
                ua.NodeId(
                    ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
                )
            )
            await limit.write_value(ua.Variant(self.max_nodes_per_read, ua.VariantType.UInt32))
        server.subscribe_server_callback(CallbackType.PreRead, self._pre_read)
        self._server = server
        await self._listen()

    async def _load_certificate(self, server: Server) -> None:
        if self.pki_dir is None:
            self.pki_dir = Path(tempfile.mkdtemp(prefix=f"forgeline-sim-{self.device_id}-"))
        own = await asyncio.to_thread(
            ensure_own_certificate, Pki(self.pki_dir), self.application_uri, None, "server"
        )
        await server.load_certificate(str(own.certificate_path))
        await server.load_private_key(str(own.private_key_path))

    def _pre_read(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """Count clients' Read requests; refuse one above max_nodes_per_read."""
        if not event.is_external:
            return
        self.read_requests += 1
        count = len(event.request_params.NodesToRead)
        self.read_sizes = [*self.read_sizes[-999:], count]
        if self.max_nodes_per_read is not None and count > self.max_nodes_per_read:
            log.info(
                "device %s: refused a Read of %d nodes (MaxNodesPerRead %d)",
                self.device_id, count, self.max_nodes_per_read,
            )  # fmt: skip
            raise ServiceError(StatusCodes.BadTooManyOperations)

    async def stop(self) -> None:
        """Stop listening; the address space is dropped."""
        if self._server is not None:
            await self._server.stop()
            self._running = False
            self._server = None

    async def _listen(self) -> None:
        assert self._server is not None
        pinned = self.port != 0
        for attempt in range(_BIND_ATTEMPTS):
            if not pinned:
                self.port = free_port(self.host)
            self._server.set_endpoint(self.endpoint_url)
            try:
                await self._server.start()
            except OSError as exc:
                # another process took the port between our probe and the bind: ask again
                if pinned or exc.errno != errno.EADDRINUSE or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            self._running = True
            return

    async def _build_address_space(self, server: Server) -> None:
        idx = self.namespace_index
        device = await server.nodes.objects.add_object(
            ua.NodeId(cast(ua.String, self.device_id), cast(ua.Int16, idx)),
            ua.QualifiedName(self.device_id, idx),
        )
        now = self._timestamp(self.behaviour.now_s)
        values = self.behaviour.values()
        for tag in self.profile.tags:
            vtype = variant_type(tag)
            stamp = now
            if tag.waveform is not None:
                window = self.behaviour.window(tag.name)
                raw = self._raw_window(tag, window.values)
                stamp = self._timestamp(window.at_s)
                self._window_index[tag.name] = window.index
            else:
                raw = self._raw(tag, values[tag.name])
            node = await device.add_variable(
                node_id(tag, idx),
                ua.QualifiedName(tag.name, idx),
                ua.Variant(raw, vtype),
                varianttype=vtype,
            )
            if tag.waveform is not None:
                await _declare_array(node, tag.waveform.samples)
            if tag.description:
                await node.write_attribute(
                    AttributeIds.Description,
                    ua.DataValue(
                        ua.Variant(ua.LocalizedText(tag.description), ua.VariantType.LocalizedText)
                    ),
                )
            if tag.writable:
                await node.set_writable()
            await self._add_analog_properties(node, tag)
            await server.write_attribute_value(
                node.nodeid,
                ua.DataValue(ua.Variant(raw, vtype), SourceTimestamp=stamp, ServerTimestamp=now),
            )
            self._nodes[tag.name] = node
            self._written[tag.name] = raw

    @staticmethod
    async def _add_analog_properties(node: Node, tag: Tag) -> None:
        """EngineeringUnits (when the tag has a unit) and EURange (when it has both limits)."""
        auto = ua.NodeId(ua.Int32(0), node.nodeid.NamespaceIndex)  # the server picks the id
        if tag.unit:
            await node.add_property(
                auto,
                ua.QualifiedName("EngineeringUnits", 0),
                ua.Variant(engineering_units(tag.unit), ua.VariantType.ExtensionObject),
                datatype=ua.NodeId(ua.Int32(ObjectIds.EUInformation)),
            )
        limits = tag.limits
        if limits is not None and limits.low is not None and limits.high is not None:
            await node.add_property(
                auto,
                ua.QualifiedName("EURange", 0),
                ua.Variant(
                    ua.Range(Low=limits.low, High=limits.high), ua.VariantType.ExtensionObject
                ),
                datatype=ua.NodeId(ua.Int32(ObjectIds.Range)),
            )

    # -- simulation ---------------------------------------------------------------------------

    async def step(self, now_s: float) -> None:
        """Take the clients' writes, advance the behaviour to ``now_s`` and publish its values."""
        if self._server is not None:
            await self._read_writable()
        self.behaviour.step(now_s)
        if self._server is not None:
            await self._publish(now_s)

    def values(self) -> dict[str, Any]:
        return self.behaviour.values()

    async def _read_writable(self) -> None:
        assert self._server is not None
        for tag in self.profile.tags:
            if not tag.writable:
                continue
            current = self._server.read_attribute_value(self._nodes[tag.name].nodeid)
            raw = current.Value.Value if current.Value is not None else None
            if raw is not None and raw != self._written.get(tag.name):
                self._written[tag.name] = raw
                self.behaviour.set_value(tag.name, self._engineering(tag, raw))

    async def _publish(self, now_s: float) -> None:
        assert self._server is not None
        stamp = self._timestamp(now_s)
        server_stamp = _stamp(datetime.now(UTC))
        values = self.behaviour.values()
        for tag in self.profile.tags:
            if tag.name in self._bad:
                continue
            source_stamp = stamp
            if tag.waveform is not None:
                window = self.behaviour.window(tag.name)
                if self._window_index.get(tag.name) == window.index:
                    continue  # the same window: no change for subscribers
                self._window_index[tag.name] = window.index
                raw = self._raw_window(tag, window.values)
                source_stamp = self._timestamp(window.at_s)
            else:
                raw = self._raw(tag, values[tag.name])
            variant = ua.Variant(raw, variant_type(tag))
            await self._server.write_attribute_value(
                self._nodes[tag.name].nodeid,
                ua.DataValue(variant, SourceTimestamp=source_stamp, ServerTimestamp=server_stamp),
            )
            self._written[tag.name] = raw

    def subscriptions(self) -> list[tuple[float, list[ua.NodeId]]]:
        """Clients' subscriptions as the server holds them: (revised publishing interval in ms,
        monitored nodes), for tests (reads asyncua's internal subscription service)."""
        if self._server is None:
            return []
        out: list[tuple[float, list[ua.NodeId]]] = []
        for internal in self._server.iserver.subscription_service.subscriptions.values():
            items = internal.monitored_item_srv._monitored_items.values()
            nodes = [i.read_value_id.NodeId for i in items if i.read_value_id is not None]
            out.append((float(internal.data.RevisedPublishingInterval), nodes))
        return out

    # -- faults -------------------------------------------------------------------------------

    async def set_unresponsive(self, unresponsive: bool) -> None:
        """Stop listening (True: sessions drop, connects are refused) or listen again (False).

        Only the network side stops (asyncua's binary server); the address space and the
        internal server stay, so the restart on the same port is immediate.
        """
        if self._server is None or self._server.bserver is None:
            return
        if unresponsive and self._running:
            await self._server.bserver.stop()
            self._running = False
        elif not unresponsive and not self._running:
            await self._server.bserver.start()
            self._running = True

    async def drop_connections(self) -> int:
        """Close every client's socket; returns how many were closed."""
        if self._server is None:
            return 0
        transports = list(self._server.iserver.asyncio_transports)
        for transport in transports:
            transport.close()
        return len(transports)

    async def set_bad_quality(self, bad: bool, metrics: Iterable[str] | None = None) -> None:
        """Mark these tags (all when None) BadSensorFailure, or clear it (clients read null)."""
        names = list(metrics) if metrics is not None else [t.name for t in self.profile.tags]
        for name in names:
            self.profile.tag(name)  # KeyError for an unknown tag
        if not bad:
            self._bad.difference_update(names)
            for name in names:
                self._window_index.pop(name, None)  # serve the current window again
            return
        self._bad.update(names)
        if self._server is None:
            return
        stamp = self._timestamp(self.behaviour.now_s)
        for name in names:
            tag = self.profile.tag(name)
            variant = ua.Variant(self._written[name], variant_type(tag))
            await self._server.write_attribute_value(
                self._nodes[name].nodeid,
                ua.DataValue(
                    variant,
                    StatusCode=ua.StatusCode(cast(ua.UInt32, StatusCodes.BadSensorFailure)),
                    SourceTimestamp=stamp,
                    ServerTimestamp=_stamp(datetime.now(UTC)),
                ),
            )

    async def excursion(self, metric: str, value: float, duration_s: float) -> None:
        self.behaviour.excursion(metric, value, duration_s)

    # -- conversions --------------------------------------------------------------------------

    def _timestamp(self, now_s: float) -> ua.DateTime:
        return _stamp(datetime.fromtimestamp(self.epoch_s + now_s, UTC))

    @staticmethod
    def _raw(tag: Tag, value: Any) -> Any:
        """Engineering value → the variable's raw value (inverse of scale and offset)."""
        if tag.type == "string":
            return "" if value is None else str(value)
        if tag.type == "bool" or (tag.type == "bitfield" and tag.bit is not None):
            return bool(value)
        raw = value
        if tag.scale != 1.0 or tag.offset != 0.0:
            raw = (float(value) - tag.offset) / tag.scale
        if tag.type in ("float32", "float64"):
            return float(raw)
        return round(raw)

    @staticmethod
    def _raw_window(tag: Tag, values: Any) -> list[float]:
        """A window of engineering values → the array variable's raw values."""
        window = np.asarray(values, dtype=np.float64)
        if tag.scale != 1.0 or tag.offset != 0.0:
            window = (window - tag.offset) / tag.scale
        return [float(v) for v in window]

    @staticmethod
    def _engineering(tag: Tag, raw: Any) -> Any:
        if tag.is_numeric and not isinstance(raw, bool) and (tag.scale != 1.0 or tag.offset != 0.0):
            return float(raw) * tag.scale + tag.offset
        return raw
