"""OPC UA for forgeline: node ids as profiles write them, batched reads, subscriptions, writes.

Built on asyncua's client; knows nothing of edge or cloud. Errors raised here:

    ProtocolError
    ├── CodecError                 a value that does not fit the variant type of a write
    └── FieldBusError
        ├── DeviceUnreachable      refused, timed out, the session or socket dropped
        └── DeviceRejected         the server refused a whole service call (``code``: StatusCode)
            └── UnknownNamespace   a namespace URI the server does not have
"""

from protocols.opcua.client import OpcUaLink, Subscription
from protocols.opcua.nodes import (
    NodeRef,
    UnknownNamespace,
    check_node_refs,
    parse_node_ref,
    resolve_refs,
)
from protocols.opcua.values import (
    VARIANT_TYPES,
    ReadResult,
    TimestampOrigin,
    coerce_for_variant,
    epoch_ms,
    result_from_data_value,
    status_name,
    status_quality,
)

__all__ = [
    "VARIANT_TYPES",
    "NodeRef",
    "OpcUaLink",
    "ReadResult",
    "Subscription",
    "TimestampOrigin",
    "UnknownNamespace",
    "check_node_refs",
    "coerce_for_variant",
    "epoch_ms",
    "parse_node_ref",
    "resolve_refs",
    "result_from_data_value",
    "status_name",
    "status_quality",
]
