"""Serve one simulated machine over OPC UA from its profile (asyncua server).

The server registers the profile's ``opcua.namespace_uri`` and creates, under an object named
after the device id, one variable per tag with the profile's node id (``s=Press.BarrelTemp`` is
a string id in that namespace; ``ns=..;`` ids are taken as written) and the variant type of the
tag's data type. Each ``step`` writes the behaviour's values with SourceTimestamp = simulated
time. Writable tags are writable by clients; what a client writes is handed to the behaviour,
which holds it.

Faults (coroutines, like the Modbus server's):

- ``set_unresponsive(True)`` stops the server's network side (clients lose the session and
  cannot connect); ``set_unresponsive(False)`` listens again on the same port, with the same
  address space.
- ``drop_connections()`` closes every client's socket; the server keeps listening.
- ``set_bad_quality(True, metrics)`` writes the last value again with StatusCode
  BadSensorFailure and keeps it so until switched back. Clients read a null value then: OPC UA
  Part 4 §7.7.1 says a Bad status carries no value, and asyncua's server enforces it.
- ``excursion(metric, value, duration_s)`` holds a signal outside its limits for a while.

asyncua builds the whole standard address space on ``init``: about 1.2 s of CPU per server on
our 2-core machines (in a worker thread, but bound by the GIL, so servers started together
take about 1.2 s each), which dominates start-up; the listening itself takes a few ms. Its
shelf-file cache and a pickled copy of the address space were both measured slower. ``stop``
takes up to 1 s (asyncua's server-time task sleeps 1 s between ticks).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from protocols.opcua.values import VARIANT_TYPES
from protocols.profile import Profile, Tag
from simulators.behaviour import MachineBehaviour

log = logging.getLogger(__name__)

ENDPOINT_PATH = "/forgeline/"
_BIND_ATTEMPTS = 5


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
    ) -> None:
        if profile.protocol != "opcua":
            raise ValueError(f"device {device_id}: profile {profile.model} is {profile.protocol}")
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

    @property
    def endpoint_url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{ENDPOINT_PATH}"

    @property
    def listening(self) -> bool:
        return self._running

    def endpoint(self) -> dict[str, Any]:
        """Where a client reaches this device (the shape of one endpoints-file entry)."""
        return {
            "device_id": self.device_id,
            "protocol": self.protocol,
            "host": self.host,
            "port": self.port,
            "namespace": self.namespace_uri,
            "endpoint_url": self.endpoint_url,
            "profile": self.profile.model,
        }

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the address space (slow: asyncua's init) and start listening."""
        server = Server()
        await server.init()
        server.set_server_name(f"forgeline simulator {self.device_id}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.namespace_index = await server.register_namespace(self.namespace_uri)
        await self._build_address_space(server)
        self._server = server
        await self._listen()

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
            raw = self._raw(tag, values[tag.name])
            node = await device.add_variable(
                node_id(tag, idx),
                ua.QualifiedName(tag.name, idx),
                ua.Variant(raw, vtype),
                varianttype=vtype,
            )
            if tag.description:
                await node.write_attribute(
                    AttributeIds.Description,
                    ua.DataValue(
                        ua.Variant(ua.LocalizedText(tag.description), ua.VariantType.LocalizedText)
                    ),
                )
            if tag.writable:
                await node.set_writable()
            await server.write_attribute_value(
                node.nodeid,
                ua.DataValue(ua.Variant(raw, vtype), SourceTimestamp=now, ServerTimestamp=now),
            )
            self._nodes[tag.name] = node
            self._written[tag.name] = raw

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
            raw = self._raw(tag, values[tag.name])
            variant = ua.Variant(raw, variant_type(tag))
            await self._server.write_attribute_value(
                self._nodes[tag.name].nodeid,
                ua.DataValue(variant, SourceTimestamp=stamp, ServerTimestamp=server_stamp),
            )
            self._written[tag.name] = raw

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
    def _engineering(tag: Tag, raw: Any) -> Any:
        if tag.is_numeric and not isinstance(raw, bool) and (tag.scale != 1.0 or tag.offset != 0.0):
            return float(raw) * tag.scale + tag.offset
        return raw
