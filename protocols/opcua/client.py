"""An OPC UA link to one server: batched reads within the server's limits, subscriptions, writes.

``OpcUaLink`` wraps asyncua's ``Client`` without reconnecting on its own: a lost connection
surfaces as ``DeviceUnreachable`` (naming the endpoint) and the caller decides when to
``connect()`` again, which builds a fresh session. Every service call is bounded by
``timeout_s``. With ``SecuritySettings`` (``security``) the session is signed, or signed and
encrypted, with the application certificate of a PKI folder, and the server's certificate must
be trusted first. Errors follow ``protocols.errors``:

    DeviceUnreachable   refused, timed out, the session or socket dropped
    DeviceRejected      the server answered with a bad StatusCode for the whole service call,
    │                   or refused the login or the security asked for (the message says which)
    ├── UnknownNamespace      a namespace URI the server does not have (see ``nodes``)
    └── UntrustedCertificate  the server's certificate is not in the trusted folder (``security``)
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeNotif
from asyncua.common.subscription import Subscription as UaSubscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from protocols.clock import now_ms
from protocols.errors import DeviceRejected, DeviceUnreachable, FieldBusError
from protocols.opcua.nodes import check_node_refs, resolve_refs
from protocols.opcua.security import (
    SecuritySettings,
    UntrustedCertificate,
    check_server_certificate,
    describe_endpoint,
    ensure_own_certificate,
    first_certificate,
    message_mode,
    policy_class,
    policy_uri,
)
from protocols.opcua.values import (
    ReadResult,
    coerce_for_variant,
    result_from_data_value,
    status_name,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Service results that mean "the link is gone", not "the server refused this request".
_LINK_STATUSES = frozenset({
    "BadTimeout", "BadCommunicationError", "BadConnectionClosed", "BadConnectionRejected",
    "BadDisconnect", "BadServerHalted", "BadShutdown", "BadServerNotConnected",
    "BadSecureChannelClosed", "BadSecureChannelIdInvalid", "BadSessionClosed",
    "BadSessionIdInvalid", "BadSessionNotActivated", "BadNoCommunication", "BadTcpInternalError",
    "BadRequestTimeout",
})  # fmt: skip
# Monitored-item results that mean "not with this filter": the item is created without one.
_FILTER_REFUSED = frozenset({
    "BadMonitoredItemFilterUnsupported", "BadFilterNotAllowed", "BadDeadbandFilterInvalid",
    "BadMonitoredItemFilterInvalid",
})  # fmt: skip
_MAX_NODES_PER_READ = ua.NodeId(
    ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
)
_MAX_MONITORED_ITEMS_PER_CALL = ua.NodeId(
    ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall)
)
_LOGIN_HINTS = {
    "BadUserAccessDenied": "wrong username or password, or the user may not log in",
    "BadIdentityTokenRejected": (
        "the server does not accept this kind of login (anonymous, or username and password): "
        "set username and password as the server requires"
    ),
    "BadIdentityTokenInvalid": "the server could not read the login: check username and password",
    "BadSecurityPolicyRejected": "the server refuses this security policy",
    "BadSecurityModeRejected": "the server refuses this security mode",
}
_NAMESPACE_ARRAY = ua.NodeId(ua.Int32(ObjectIds.Server_NamespaceArray))
_HIERARCHICAL_REFERENCES = ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences))
_BROWSE_BATCH = 100  # nodes per Browse request
_SESSION_TIMEOUT_MS = 60_000
_KEEPALIVE_MS = 10_000  # the server says "still here" at least this often

ResultCallback = Callable[[ReadResult], None]
StatusCallback = Callable[[str], None]


def _batches(items: Sequence[_T], size: int | None) -> list[Sequence[_T]]:
    if not items:
        return []
    if size is None or size <= 0:
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]


def _limit(data_value: ua.DataValue) -> int | None:
    """An operation limit as read from the server: 0, absent or unreadable mean no limit."""
    if data_value.StatusCode is not None and not data_value.StatusCode.is_good():
        return None
    value = data_value.Value.Value if data_value.Value is not None else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _offered(endpoints: Iterable[ua.EndpointDescription]) -> str:
    return ", ".join(dict.fromkeys(describe_endpoint(e) for e in endpoints)) or "nothing"


class Subscription:
    """One OPC UA subscription: data changes arrive as ReadResults, in a queue or a callback.

    ``lost`` becomes the StatusCode name (``BadShutdown``, ``BadTimeout`` ...) once the server
    or the link ends the subscription; the owner should then reconnect and subscribe again.
    """

    def __init__(
        self,
        endpoint_url: str,
        on_result: ResultCallback | None = None,
        on_status: StatusCallback | None = None,
        queue_maxsize: int = 10_000,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.queue: asyncio.Queue[ReadResult] = asyncio.Queue(maxsize=queue_maxsize)
        self.node_ids: list[ua.NodeId] = []  # monitored
        self.rejected: dict[ua.NodeId, str] = {}  # node → why the server refused to monitor it
        self.unfiltered: set[ua.NodeId] = set()  # monitored without the deadband asked for
        self.lost: str | None = None
        self.dropped = 0  # notifications dropped because the queue was full
        self.notifications = 0  # data changes received
        self.sampling_interval_ms: float | None = None  # requested for every monitored item
        self.publishing_interval_ms: float | None = None  # as the server revised it
        self._on_result = on_result
        self._on_status = on_status
        # set (when the owner gives one) each time a result is queued, so that a consumer can
        # wait for changes instead of looking at the queue on a timer
        self.arrived: asyncio.Event | None = None
        self._node_of_handle: dict[int, ua.NodeId] = {}
        self._next_handle = 1
        self._ua: UaSubscription | None = None

    # -- consumer side

    def drain(self) -> list[ReadResult]:
        """Everything received since the last drain, oldest first (never blocks)."""
        results: list[ReadResult] = []
        while True:
            try:
                results.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                return results

    async def next_result(self, timeout_s: float) -> ReadResult | None:
        """The next notification, or None if none arrives within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def delete(self, timeout_s: float = 2.0) -> None:
        """Delete the subscription on the server (best effort; never raises)."""
        ua_sub, self._ua = self._ua, None
        if self.lost is None:
            self.lost = "Deleted"
        if ua_sub is None:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await ua_sub.delete()
        except Exception as exc:  # noqa: BLE001 - deleting is best effort by contract
            log.debug("deleting subscription on %s failed: %r", self.endpoint_url, exc)

    # -- asyncua side

    def datachange_notification(self, node: object, val: object, data: DataChangeNotif) -> None:
        """asyncua handler: one monitored item changed."""
        item = data.monitored_item
        node_id = self._node_of_handle.get(int(item.ClientHandle))
        if node_id is None or item.Value is None:
            return
        self.notifications += 1
        self._deliver(result_from_data_value(node_id, item.Value, now_ms()))

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        """asyncua handler: the subscription's status changed (server shutdown, timeout ...)."""
        code = int(status.Status.value) if status.Status is not None else 0
        name = status_name(code)
        if code & 0x8000_0000 or name == "GoodSubscriptionTransferred":
            self._mark_lost(name)
        else:
            log.info("subscription on %s reports %s", self.endpoint_url, name)

    def _mark_lost(self, reason: str) -> None:
        if self.lost is not None:
            return
        self.lost = reason
        log.info("subscription on %s lost: %s", self.endpoint_url, reason)
        if self._on_status is not None:
            try:
                self._on_status(reason)
            except Exception:
                log.exception("status callback of the subscription on %s failed", self.endpoint_url)

    def _deliver(self, result: ReadResult) -> None:
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:
                log.exception("result callback of the subscription on %s failed", self.endpoint_url)
            return
        if self.queue.full():
            self.queue.get_nowait()  # keep the newest: drop the oldest
            self.dropped += 1
        self.queue.put_nowait(result)
        if self.arrived is not None:
            self.arrived.set()

    def _request(
        self, node_id: ua.NodeId, sampling_interval_ms: float, deadband: float | None
    ) -> ua.MonitoredItemCreateRequest:
        handle = self._next_handle
        self._next_handle += 1
        self._node_of_handle[handle] = node_id
        parameters = ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=float(sampling_interval_ms),
            QueueSize=10,
            DiscardOldest=True,
        )
        if deadband is not None:
            parameters.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=ua.DeadbandType.Absolute,
                DeadbandValue=float(deadband),
            )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=parameters,
        )


class OpcUaLink:
    """A session with one OPC UA server (``opc.tcp://host:port/path``)."""

    def __init__(
        self,
        endpoint_url: str,
        timeout_s: float = 4.0,
        username: str | None = None,
        password: str | None = None,
        *,
        max_nodes_per_read: int | None = None,
        security: SecuritySettings | None = None,
    ) -> None:
        if not endpoint_url.startswith("opc.tcp://"):
            raise ValueError(
                f"an OPC UA endpoint is opc.tcp://host:port[/path], not {endpoint_url!r}"
            )
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        if max_nodes_per_read is not None and max_nodes_per_read < 1:
            raise ValueError(f"max_nodes_per_read must be at least 1, not {max_nodes_per_read}")
        self.endpoint_url = endpoint_url
        self.timeout_s = timeout_s
        self.username = username
        self.password = password
        self.security = security or SecuritySettings()
        self.application_uri: str | None = None  # this client's, from its certificate
        self.read_requests = 0  # Read service calls made by read_values
        self.lost_reason: str | None = None
        self._max_nodes_override = max_nodes_per_read
        self._server_max_nodes_per_read: int | None = None
        self._max_monitored_items_per_call: int | None = None
        self._client: Client | None = None
        self._subscriptions: list[Subscription] = []

    @property
    def connected(self) -> bool:
        """True while the session is up (false once the link was lost or closed)."""
        return (
            self._client is not None
            and self.lost_reason is None
            and self._client.uaclient.state is UaClientState.CONNECTED
        )

    @property
    def max_nodes_per_read(self) -> int | None:
        """Nodes per Read request: the override, else the server's MaxNodesPerRead (None: no limit)."""
        return self._max_nodes_override or self._server_max_nodes_per_read

    # -- session

    async def connect(self) -> None:
        """Open a new session (closing any previous one) and read the server's operation limits.

        With a secure policy the server's certificate is checked against the trusted folder
        first (``UntrustedCertificate`` otherwise), and the edge's own certificate is made on
        first use. A refused login or security setting raises ``DeviceRejected`` naming the
        endpoint, the policy and the user.
        """
        await self.close()
        client = Client(
            self.endpoint_url, timeout=self.timeout_s, watchdog_intervall=self.timeout_s
        )
        client.session_timeout = _SESSION_TIMEOUT_MS
        if self.username is not None:
            client.set_user(self.username)
        if self.password is not None:
            client.set_password(self.password)
        client.connection_lost_callback = self._connection_lost
        self.lost_reason = None
        try:
            async with asyncio.timeout(
                self.timeout_s * 2 if self.security.secure else self.timeout_s
            ):
                await self._secure(client)
                await client.connect()
        except Exception as exc:
            await self._disconnect(client)
            raise await self._connect_error(exc) from exc
        except BaseException:
            await self._disconnect(client)
            raise
        self._client = client
        try:
            limits = await self._read(
                [_MAX_NODES_PER_READ, _MAX_MONITORED_ITEMS_PER_CALL], "connect"
            )
        except BaseException:
            await self.close()
            raise
        self._server_max_nodes_per_read = _limit(limits[0])
        self._max_monitored_items_per_call = _limit(limits[1])

    async def _secure(self, client: Client) -> None:
        """Set up the client's certificate and the trusted server certificate (secure policies)."""
        security = self.security
        pki = security.pki
        if pki is None or not security.secure:
            if security.application_uri is not None:
                client.application_uri = security.application_uri
            return
        own = await asyncio.to_thread(ensure_own_certificate, pki, security.application_uri)
        client.application_uri = self.application_uri = own.application_uri
        endpoints = await client.connect_and_get_server_endpoints()
        wanted_uri, wanted_mode = policy_uri(security.policy), message_mode(security.mode)
        endpoint = next(
            (
                e
                for e in endpoints
                if e.SecurityPolicyUri == wanted_uri and e.SecurityMode == wanted_mode
            ),
            None,
        )
        if endpoint is None:
            raise DeviceRejected(
                f"{self.endpoint_url}: the server offers no {security.describe()} endpoint "
                f"(it offers: {_offered(endpoints)}); set security_policy and security_mode to "
                "one of those"
            )
        if not endpoint.ServerCertificate:
            raise DeviceRejected(
                f"{self.endpoint_url}: the {security.describe()} endpoint has no server certificate"
            )
        server_der = first_certificate(endpoint.ServerCertificate)
        await asyncio.to_thread(
            check_server_certificate, pki, server_der, self.endpoint_url,
            security.trust_on_first_use,
        )  # fmt: skip
        await client.set_security(
            policy_class(security.policy),
            str(own.certificate_path),
            str(own.private_key_path),
            server_certificate=server_der,
            mode=wanted_mode,
        )

    async def _connect_error(self, exc: Exception) -> FieldBusError:
        """A connect failure, saying with which security and login, and what to check."""
        who = f"{self.security.describe()}, " + (
            f"user {self.username!r}" if self.username is not None else "anonymous"
        )
        error = self._error("connect", exc)
        if isinstance(error, UntrustedCertificate) or not isinstance(error, DeviceRejected):
            return error
        if "No matching endpoints" in str(exc):
            offered = await self._offered_endpoints()
            return DeviceRejected(
                f"{self.endpoint_url}: the server offers no {self.security.describe()} endpoint "
                f"(it offers: {offered}); set security_policy and security_mode to one of those"
            )
        hint = None
        if isinstance(exc, UaStatusCodeError):
            name = status_name(int(exc.code))
            hint = _LOGIN_HINTS.get(name)
            if hint is None and "Certificate" in name and self.security.pki is not None:
                hint = (
                    "the server refused this client's certificate: add "
                    f"{self.security.pki.certificate_path} to the server's trusted certificates"
                )
        return DeviceRejected(f"{error} ({who}){': ' + hint if hint else ''}", code=error.code)

    async def _offered_endpoints(self) -> str:
        """What the server's endpoints offer, for an error message (best effort)."""
        probe = Client(self.endpoint_url, timeout=self.timeout_s)
        try:
            async with asyncio.timeout(self.timeout_s):
                return _offered(await probe.connect_and_get_server_endpoints())
        except Exception as exc:  # noqa: BLE001 - only decorates an error message
            log.debug("listing the endpoints of %s failed: %r", self.endpoint_url, exc)
            return "unknown"

    async def close(self) -> None:
        """Close the session and its subscriptions; never raises."""
        client, self._client = self._client, None
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription._ua = None  # the session takes its subscriptions with it
            subscription.lost = subscription.lost or "Closed"  # asked for: no status callback
        if client is not None:
            await self._disconnect(client)

    async def _disconnect(self, client: Client) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await client.disconnect()
        except Exception as exc:  # noqa: BLE001 - closing never raises, by contract
            log.debug("closing the session with %s: %r", self.endpoint_url, exc)
            client.disconnect_socket()

    async def _connection_lost(self, exc: Exception) -> None:
        self.lost_reason = f"connection lost ({exc or type(exc).__name__})"
        for subscription in self._subscriptions:
            subscription._mark_lost("BadConnectionClosed")

    # -- services

    async def namespace_array(self) -> list[str]:
        """The server's namespace URIs, by index."""
        (data_value,) = await self._read([_NAMESPACE_ARRAY], "read the namespace array")
        value = data_value.Value.Value if data_value.Value is not None else None
        if not isinstance(value, list):
            raise DeviceRejected(f"{self.endpoint_url}: the server has no readable namespace array")
        return [str(uri) for uri in value]

    async def resolve(
        self, node_ids: Sequence[str], namespace_uri: str | None = None
    ) -> list[ua.NodeId]:
        """Profile node ids → NodeIds, namespace URIs looked up in the server's namespace array.

        Raises ValueError for a malformed node id and UnknownNamespace for a URI the server lacks.
        Whether the nodes exist is not checked here: reading an unknown node gives BadNodeIdUnknown.
        """
        refs = check_node_refs(node_ids, namespace_uri)
        needs_array = any(ref.namespace_uri is not None or ref.is_relative for ref in refs)
        namespaces = await self.namespace_array() if needs_array else []
        return resolve_refs(refs, namespace_uri, namespaces, self.endpoint_url)

    async def read_values(self, node_ids: Sequence[ua.NodeId]) -> list[ReadResult]:
        """Read the Value of every node, one Read request per batch of at most max_nodes_per_read.

        Results come in the order asked; a node the server does not know yields a result with
        status BadNodeIdUnknown (and the rest of its batch is read as usual).
        """
        results: list[ReadResult] = []
        for batch in _batches(node_ids, self.max_nodes_per_read):
            self.read_requests += 1
            data_values = await self._read(batch, "read")
            local_ms = now_ms()
            results += [
                result_from_data_value(node_id, data_value, local_ms)
                for node_id, data_value in zip(batch, data_values, strict=True)
            ]
        return results

    async def _read(
        self,
        node_ids: Sequence[ua.NodeId],
        what: str,
        attribute: AttributeIds = AttributeIds.Value,
    ) -> list[ua.DataValue]:
        client = self._require_client()
        parameters = ua.ReadParameters(
            MaxAge=0,
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            NodesToRead=[
                ua.ReadValueId(NodeId=node_id, AttributeId=attribute) for node_id in node_ids
            ],
        )
        data_values = await self._service(what, client.uaclient.read(parameters))
        if len(data_values) != len(node_ids):
            raise DeviceRejected(
                f"{self.endpoint_url}: {what}: asked for {len(node_ids)} values, "
                f"got {len(data_values)}"
            )
        return data_values

    async def read_attributes(
        self, node_ids: Sequence[ua.NodeId], attribute: AttributeIds
    ) -> list[ua.DataValue]:
        """Read one attribute of every node, in batches of at most max_nodes_per_read."""
        data_values: list[ua.DataValue] = []
        for batch in _batches(node_ids, self.max_nodes_per_read):
            data_values += await self._read(batch, f"read {attribute.name}", attribute)
        return data_values

    async def browse(
        self, node_ids: Sequence[ua.NodeId], node_class_mask: int = 0
    ) -> list[list[ua.ReferenceDescription]]:
        """The forward hierarchical references of every node (BrowseNext followed to the end).

        ``node_class_mask`` limits the targets (``ua.NodeClass`` bits; 0: every class).
        """
        client = self._require_client()
        out: list[list[ua.ReferenceDescription]] = []
        for batch in _batches(node_ids, _BROWSE_BATCH):
            parameters = ua.BrowseParameters(
                View=ua.ViewDescription(),
                RequestedMaxReferencesPerNode=0,
                NodesToBrowse=[
                    ua.BrowseDescription(
                        NodeId=node_id,
                        BrowseDirection=ua.BrowseDirection.Forward,
                        ReferenceTypeId=_HIERARCHICAL_REFERENCES,
                        IncludeSubtypes=True,
                        NodeClassMask=node_class_mask,
                        ResultMask=ua.BrowseResultMask.All,
                    )
                    for node_id in batch
                ],
            )
            results = await self._service("browse", client.uaclient.browse(parameters))
            for node_id, result in zip(batch, results, strict=True):
                if not result.StatusCode.is_good():
                    log.info(
                        "%s: browsing %s: %s", self.endpoint_url, node_id.to_string(),
                        status_name(int(result.StatusCode.value)),
                    )  # fmt: skip
                references = list(result.References)
                point = result.ContinuationPoint
                while point:
                    more = await self._service(
                        "browse next",
                        client.uaclient.browse_next(
                            ua.BrowseNextParameters(
                                ReleaseContinuationPoints=False, ContinuationPoints=[point]
                            )
                        ),
                    )
                    references += list(more[0].References)
                    point = more[0].ContinuationPoint
                out.append(references)
        return out

    async def write_value(
        self, node_id: ua.NodeId, value: object, variant_type: ua.VariantType
    ) -> None:
        """Write a node's Value as ``variant_type``.

        Raises CodecError if the value does not fit the type, DeviceRejected with the
        StatusCode if the server refuses the write.
        """
        client = self._require_client()
        variant = ua.Variant(coerce_for_variant(value, variant_type), variant_type)
        # No timestamps: many servers refuse writes that carry them (BadWriteNotSupported).
        data_value = ua.DataValue(Value=variant, StatusCode=None)
        parameters = ua.WriteParameters(
            NodesToWrite=[
                ua.WriteValue(NodeId=node_id, AttributeId=AttributeIds.Value, Value=data_value)
            ]
        )
        (status,) = await self._service(
            f"write {node_id.to_string()}", client.uaclient.write(parameters)
        )
        if not status.is_good():
            raise DeviceRejected(
                f"{self.endpoint_url}: writing {value!r} to {node_id.to_string()} was refused: "
                f"{status_name(int(status.value))}",
                code=int(status.value),
            )

    async def subscribe(
        self,
        node_ids: Iterable[ua.NodeId],
        sampling_interval_ms: float,
        publishing_interval_ms: float,
        deadband: Mapping[ua.NodeId, float | None] | None = None,
        *,
        on_result: ResultCallback | None = None,
        on_status: StatusCallback | None = None,
        queue_maxsize: int = 10_000,
    ) -> Subscription:
        """Create a subscription monitoring the Value of each node.

        Where ``deadband`` gives a number for a node, its monitored item carries an absolute
        deadband DataChangeFilter; if the server refuses the filter the item is created without
        it (listed in ``unfiltered``). Nodes the server refuses to monitor at all are listed in
        ``rejected`` with the StatusCode name. Results go to ``on_result`` if given, else to the
        subscription's queue; a lost subscription calls ``on_status`` and sets ``lost``.
        """
        client = self._require_client()
        subscription = Subscription(self.endpoint_url, on_result, on_status, queue_maxsize)
        publishing = max(float(publishing_interval_ms), 1.0)
        keepalive = max(3, math.ceil(_KEEPALIVE_MS / publishing))
        parameters = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=publishing,
            RequestedLifetimeCount=keepalive * 6,
            RequestedMaxKeepAliveCount=keepalive,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        subscription._ua = await self._service(
            "create a subscription", client.create_subscription(parameters, subscription)
        )
        subscription.sampling_interval_ms = float(sampling_interval_ms)
        # asyncua modifies the subscription to what the server revised, when it revised it
        subscription.publishing_interval_ms = (
            subscription._ua.parameters.RequestedPublishingInterval
        )
        self._subscriptions.append(subscription)
        try:
            await self._monitor(
                subscription, list(dict.fromkeys(node_ids)), sampling_interval_ms, deadband or {}
            )
        except BaseException:
            await subscription.delete(self.timeout_s)
            raise
        return subscription

    async def _monitor(
        self,
        subscription: Subscription,
        node_ids: list[ua.NodeId],
        sampling_interval_ms: float,
        deadband: Mapping[ua.NodeId, float | None],
    ) -> None:
        refused_filter: list[ua.NodeId] = []
        for batch in _batches(node_ids, self._max_monitored_items_per_call):
            requests = [
                subscription._request(n, sampling_interval_ms, deadband.get(n)) for n in batch
            ]
            outcomes = await self._create_items(subscription, requests)
            for node_id, outcome in zip(batch, outcomes, strict=True):
                if outcome is None:
                    subscription.node_ids.append(node_id)
                elif outcome in _FILTER_REFUSED and deadband.get(node_id) is not None:
                    refused_filter.append(node_id)
                else:
                    subscription.rejected[node_id] = outcome
        for batch in _batches(refused_filter, self._max_monitored_items_per_call):
            requests = [subscription._request(n, sampling_interval_ms, None) for n in batch]
            outcomes = await self._create_items(subscription, requests)
            for node_id, outcome in zip(batch, outcomes, strict=True):
                if outcome is None:
                    subscription.node_ids.append(node_id)
                    subscription.unfiltered.add(node_id)
                else:
                    subscription.rejected[node_id] = outcome
        if subscription.unfiltered:
            log.info(
                "%s refused deadband filters on %d nodes; they report every change",
                self.endpoint_url, len(subscription.unfiltered),
            )  # fmt: skip

    async def _create_items(
        self, subscription: Subscription, requests: list[ua.MonitoredItemCreateRequest]
    ) -> list[str | None]:
        """Create monitored items; per item None when created, else the StatusCode name."""
        assert subscription._ua is not None
        outcomes = await self._service(
            "create monitored items", subscription._ua.create_monitored_items(requests)
        )
        return [
            status_name(int(o.value)) if isinstance(o, ua.StatusCode) else None for o in outcomes
        ]

    # -- plumbing

    def _require_client(self) -> Client:
        if self._client is None:
            raise DeviceUnreachable(f"{self.endpoint_url}: not connected")
        if not self.connected:
            raise DeviceUnreachable(
                f"{self.endpoint_url}: {self.lost_reason or 'the connection was lost'}"
            )
        return self._client

    async def _service(self, what: str, call: Awaitable[_T]) -> _T:
        """Await one service call within timeout_s, mapping failures onto protocols.errors."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except Exception as exc:
            error = self._error(what, exc)
            if isinstance(error, DeviceUnreachable):
                self.lost_reason = self.lost_reason or str(error)
            raise error from exc

    def _error(self, what: str, exc: Exception) -> FieldBusError:
        if isinstance(exc, FieldBusError):
            return exc
        if isinstance(exc, TimeoutError):
            return DeviceUnreachable(
                f"{self.endpoint_url}: no answer to {what} within {self.timeout_s:g} s"
            )
        if isinstance(exc, UaStatusCodeError):
            name = status_name(int(exc.code))
            if name in _LINK_STATUSES:
                return DeviceUnreachable(f"{self.endpoint_url}: {what} failed: {name}")
            return DeviceRejected(
                f"{self.endpoint_url}: {what} refused: {name}", code=int(exc.code)
            )
        if isinstance(exc, OSError):
            return DeviceUnreachable(
                f"{self.endpoint_url}: {what} failed: {exc or type(exc).__name__}"
            )
        if isinstance(exc, UaError):
            return DeviceRejected(f"{self.endpoint_url}: {what} failed: {exc}")
        # Anything else escaped asyncua mid-request: treat the link as broken and reconnect.
        log.warning("%s: %s failed unexpectedly", self.endpoint_url, what, exc_info=exc)
        return DeviceUnreachable(f"{self.endpoint_url}: {what} failed: {exc!r}")
