"""Real protocol servers loaded with a golden case's raw device contents (no codec, no behaviour).

``RawModbusServer`` serves 16-bit words and bits exactly as a case's ``input.yaml`` writes them
(a pymodbus 3.16 ``SimDevice``); ``RawOpcUaServer`` serves one variable per profile tag holding
the raw value, status and source timestamp the case gives (an asyncua ``Server``). Both bind a
port the OS picks on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.profile import Profile
from simulators.modbus_server import contiguous_runs
from simulators.opcua_server import node_id, variant_type

MODBUS_TABLES = ("coil", "discrete", "holding", "input")  # SimDevice's simdata order
_BIT_TABLES = ("coil", "discrete")
_PARKED_BITS = 65520  # an empty bit table still needs a block: park it far from any tag


def _table_blocks(table: str, words: Mapping[int, int | bool], strict_map: bool) -> list[SimData]:
    """The datastore blocks of one table (PDU addresses → raw words or bits)."""
    bits = table in _BIT_TABLES
    datatype = DataType.BITS if bits else DataType.REGISTERS
    if not words:
        if bits:
            return [SimData(_PARKED_BITS, values=[False] * 16, datatype=datatype)]
        return [SimData(0, datatype=DataType.INVALID)]
    addresses = sorted(words)
    # strict: only the listed addresses exist (a read touching any other answers exception 2);
    # lenient: one block from the lowest to the highest listed address, unlisted ones read 0.
    runs = contiguous_runs(addresses) if strict_map else [(addresses[0], addresses[-1])]
    blocks = []
    for first, last in runs:
        if bits:
            values: list[Any] = [bool(words.get(a, False)) for a in range(first, last + 1)]
        else:
            values = [int(words.get(a, 0)) for a in range(first, last + 1)]
        blocks.append(SimData(first, values=values, datatype=datatype))
    return blocks


@dataclass
class RawModbusServer:
    """A pymodbus TCP server whose tables hold the given raw words and bits (PDU addresses)."""

    tables: Mapping[str, Mapping[int, int | bool]]
    strict_map: bool = False
    unit_id: int = 1
    port: int = 0
    _server: ModbusTcpServer | None = None

    async def start(self) -> None:
        unknown = set(self.tables) - set(MODBUS_TABLES)
        if unknown:
            raise ValueError(f"unknown Modbus tables {sorted(unknown)}; use {MODBUS_TABLES}")
        coil, discrete, holding, input_ = (
            _table_blocks(table, self.tables.get(table, {}), self.strict_map)
            for table in MODBUS_TABLES
        )
        simdata = (coil, discrete, holding, input_)
        device = SimDevice(self.unit_id, simdata=simdata)
        self._server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await self._server.serve_forever(background=True)
        sockets = getattr(self._server.transport, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class RawNode:
    """What one OPC UA variable holds: the raw value, its status code and its source time."""

    value: Any
    variant: ua.VariantType
    status: str = "Good"
    source_time: datetime | None = None


class RawOpcUaServer:
    """An asyncua server with the profile's namespace and one variable per tag node id."""

    def __init__(self, profile: Profile, nodes: Mapping[str, RawNode]) -> None:
        if profile.protocol != "opcua":
            raise ValueError(f"profile {profile.model} is {profile.protocol}, not opcua")
        self.profile = profile
        self.nodes = dict(nodes)
        self.namespace_uri = profile.opcua_options.namespace_uri or f"urn:golden:{profile.model}"
        self.port = 0
        self._server: Server | None = None

    @property
    def endpoint_url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/golden/"

    async def start(self) -> None:
        server = Server()
        await server.init()
        self._server = server
        server.set_endpoint(self.endpoint_url)  # port 0: the OS picks one at start
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        index = await server.register_namespace(self.namespace_uri)
        device = await server.nodes.objects.add_object(
            ua.NodeId(cast(ua.String, self.profile.model), cast(ua.Int16, index)),
            ua.QualifiedName(self.profile.model, index),
        )
        by_node = {tag.node: tag for tag in self.profile.tags}
        for text, raw in self.nodes.items():
            tag = by_node.get(text)
            if tag is None:
                raise ValueError(f"node {text!r} is not a node of profile {self.profile.model}")
            variant = ua.Variant(raw.value, raw.variant)
            node = await device.add_variable(
                node_id(tag, index),
                ua.QualifiedName(tag.name, index),
                variant,
                varianttype=raw.variant,
            )
            code = getattr(StatusCodes, raw.status)
            await server.write_attribute_value(
                node.nodeid,
                ua.DataValue(
                    variant,
                    StatusCode=ua.StatusCode(code),
                    SourceTimestamp=cast(ua.DateTime, raw.source_time),
                ),
            )
        await server.start()
        self.port = int(server.bserver.port)  # type: ignore[union-attr]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()


def default_variant(profile: Profile, node_text: str) -> ua.VariantType:
    """The variant type a node of this profile holds unless a case says otherwise."""
    for tag in profile.tags:
        if tag.node == node_text:
            return variant_type(tag)
    raise ValueError(f"node {node_text!r} is not a node of profile {profile.model}")
