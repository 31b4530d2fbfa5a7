"""A real asyncua server for OPC UA tests: a "Press" object with variables of several types.

Shared by tests/protocols/opcua and tests/edge/drivers (imported as
``tests.protocols.opcua.opcua_server``). The server binds a port the OS picks; ``restart()``
builds a fresh server (no sessions, no subscriptions) on the same port, like a PLC reboot.
With ``max_nodes_per_read`` it advertises that operation limit and enforces it (asyncua does
not), answering a larger Read with BadTooManyOperations.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError

NAMESPACE = "urn:forgeline:test"
OTHER_NAMESPACE = "urn:forgeline:other"  # registered first, so the test namespace is not ns=2
DRIFT_SOURCE_TIME = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
DRIFT_SOURCE_MS = 1704164645678

# name → (initial value, variant type, writable)
VARIABLES: dict[str, tuple[Any, ua.VariantType, bool]] = {
    "Temp": (21.5, ua.VariantType.Double, False),
    "Pressure": (3.5, ua.VariantType.Float, False),
    "Count": (-7, ua.VariantType.Int32, False),
    "Total": (123456, ua.VariantType.UInt32, False),
    "Running": (True, ua.VariantType.Boolean, False),
    "Recipe": ("R-100", ua.VariantType.String, False),
    "Fault": (0.0, ua.VariantType.Double, False),  # BadSensorFailure
    "Drift": (1.25, ua.VariantType.Double, False),  # UncertainLastUsableValue, fixed source time
    "Nan": (math.nan, ua.VariantType.Double, False),
    "Setpoint": (50.0, ua.VariantType.Double, True),
    "Speed": (100, ua.VariantType.Int16, True),
}


class OpcUaTestServer:
    """An in-process asyncua server on 127.0.0.1 for one test module or test."""

    def __init__(
        self,
        port: int = 0,
        max_nodes_per_read: int | None = None,
        refuse_deadband_filters: bool = False,
    ) -> None:
        self.port = port
        self.max_nodes_per_read = max_nodes_per_read
        self.refuse_deadband_filters = refuse_deadband_filters
        self.reads: list[list[str]] = []  # node ids of each client Read touching our namespace
        self.namespace_index = 0
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/forgeline/"

    @property
    def running(self) -> bool:
        return self._server is not None

    def node_id(self, name: str) -> ua.NodeId:
        return ua.NodeId(f"Press.{name}", self.namespace_index)

    def profile_node(self, name: str) -> str:
        """The namespace-relative node id a profile writes for a variable."""
        return f"s=Press.{name}"

    async def start(self) -> OpcUaTestServer:
        server = Server()
        await server.init()
        self._server = server
        server.set_endpoint(self.url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        await server.register_namespace(OTHER_NAMESPACE)
        self.namespace_index = await server.register_namespace(NAMESPACE)
        press = await server.nodes.objects.add_object(
            ua.NodeId("Press", self.namespace_index), "Press"
        )
        for name, (value, variant_type, writable) in VARIABLES.items():
            node = await press.add_variable(self.node_id(name), name, value, variant_type)
            if writable:
                await node.set_writable()
        await self._set_status("Fault", ua.StatusCodes.BadSensorFailure)
        await self._set_status("Drift", ua.StatusCodes.UncertainLastUsableValue, DRIFT_SOURCE_TIME)
        if self.max_nodes_per_read is not None:
            limit = server.get_node(
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead
            )
            await limit.write_value(ua.Variant(self.max_nodes_per_read, ua.VariantType.UInt32))
        server.subscribe_server_callback(CallbackType.PreRead, self._pre_read)
        if self.refuse_deadband_filters:
            _refuse_deadband_filters(server)
        await server.start()
        if self.port == 0:
            self.port = server.bserver.port  # type: ignore[union-attr]
        return self

    async def _set_status(self, name: str, code: int, source_time: datetime | None = None) -> None:
        value, variant_type, _ = VARIABLES[name]
        data_value = ua.DataValue(
            ua.Variant(value, variant_type),
            StatusCode=ua.StatusCode(code),
            SourceTimestamp=source_time,
        )
        await self._node(name).write_value(data_value)

    def _node(self, name: str) -> Any:
        assert self._server is not None, "the test server is not running"
        return self._server.get_node(self.node_id(name))

    def _pre_read(self, event: ServerItemCallback, _dispatcher: object) -> None:
        if not event.is_external:
            return
        node_ids = [rv.NodeId for rv in event.request_params.NodesToRead]
        if any(n.NamespaceIndex == self.namespace_index for n in node_ids):
            self.reads.append([n.to_string() for n in node_ids])
        if self.max_nodes_per_read is not None and len(node_ids) > self.max_nodes_per_read:
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    async def restart(self) -> OpcUaTestServer:
        """Stop, then start a fresh server on the same port (sessions and subscriptions gone)."""
        await self.stop()
        return await self.start()

    async def set_value(self, name: str, value: Any) -> None:
        """Write a variable from the server side (as the PLC program would)."""
        _, variant_type, _ = VARIABLES[name]
        await self._node(name).write_value(ua.Variant(value, variant_type))

    async def value(self, name: str) -> Any:
        return await self._node(name).read_value()


def _refuse_deadband_filters(server: Server) -> None:
    """Make the server answer deadband filters with BadMonitoredItemFilterUnsupported."""
    service = server.iserver.subscription_service
    create = service.create_monitored_items

    def wants_deadband(item: ua.MonitoredItemCreateRequest) -> bool:
        # The decoded filter is not always the class ua.DataChangeFilter names: go by its fields.
        deadband_type = getattr(item.RequestedParameters.Filter, "DeadbandType", 0)
        return bool(deadband_type != ua.DeadbandType.None_)

    async def refusing(params: ua.CreateMonitoredItemsParameters) -> list[Any]:
        accepted = [item for item in params.ItemsToCreate if not wants_deadband(item)]
        created = iter(
            await create(
                ua.CreateMonitoredItemsParameters(
                    SubscriptionId=params.SubscriptionId,
                    TimestampsToReturn=params.TimestampsToReturn,
                    ItemsToCreate=accepted,
                )
            )
            if accepted
            else []
        )
        refused = ua.MonitoredItemCreateResult(
            StatusCode=ua.StatusCode(ua.StatusCodes.BadMonitoredItemFilterUnsupported)
        )
        return [refused if wants_deadband(item) else next(created) for item in params.ItemsToCreate]

    service.create_monitored_items = refusing  # type: ignore[method-assign]
