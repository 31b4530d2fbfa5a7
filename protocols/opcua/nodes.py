"""Node ids as device profiles write them, and their resolution against a server's namespaces.

A profile names a node in one of three ways:

``ns=2;s=Press.Temp``            an explicit namespace index (valid on one server only)
``nsu=urn:acme:press;s=Temp``    an explicit namespace URI (resolved on the server at connect)
``s=Press.Temp``                 namespace-relative: the profile's ``opcua.namespace_uri``

A numeric id without ``ns=`` (``i=2258``) is a standard node of namespace 0, as in the OPC UA
specification; write ``nsu=<uri>;i=1001`` for a numeric id in a vendor namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.ua.uaerrors import UaStringParsingError

from protocols.errors import DeviceRejected

_IDENTIFIER_KEYS = ("i", "s", "g", "b")


class UnknownNamespace(DeviceRejected):
    """The server has no namespace with the URI a profile asks for."""


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A parsed profile node id: the identifier and how its namespace is named."""

    text: str
    identifier: str  # e.g. "s=Press.Temp" or "i=2258"
    namespace_index: int | None = None
    namespace_uri: str | None = None

    @property
    def is_relative(self) -> bool:
        """True when the namespace comes from the profile (no ``ns=``/``nsu=``, not numeric)."""
        return (
            self.namespace_index is None
            and self.namespace_uri is None
            and not self.identifier.startswith("i=")
        )

    def node_id(self, namespace_index: int) -> ua.NodeId:
        """The NodeId in the given namespace (ignored when the ref names its own index)."""
        index = self.namespace_index if self.namespace_index is not None else namespace_index
        return ua.NodeId.from_string(f"ns={index};{self.identifier}")


def parse_node_ref(text: str) -> NodeRef:
    """Parse a profile node id; raise ValueError saying what is wrong with it."""
    elements = text.strip().split(";")
    namespace_index: int | None = None
    namespace_uri: str | None = None
    identifier: str | None = None
    for position, element in enumerate(elements):
        if not element.strip():
            continue
        key, sep, value = element.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"node id {text!r}: {element!r} is not key=value")
        if key == "ns":
            try:
                namespace_index = int(value)
            except ValueError:
                raise ValueError(f"node id {text!r}: ns must be an integer") from None
        elif key == "nsu":
            namespace_uri = value.strip()
        elif key in _IDENTIFIER_KEYS:
            # A string identifier may contain ';': it runs to the end of the text.
            identifier = f"{key}={';'.join([value, *elements[position + 1 :]])}"
            break
        else:
            raise ValueError(f"node id {text!r}: unknown key {key!r} (use ns, nsu, i, s, g or b)")
    if identifier is None:
        raise ValueError(f"node id {text!r}: no identifier (i=, s=, g= or b=)")
    if namespace_index is not None and namespace_uri is not None:
        raise ValueError(f"node id {text!r}: give ns= or nsu=, not both")
    try:
        ua.NodeId.from_string(f"ns=0;{identifier}")
    except UaStringParsingError as exc:
        raise ValueError(f"node id {text!r}: {exc}") from None
    return NodeRef(text, identifier, namespace_index, namespace_uri)


def check_node_refs(texts: Sequence[str], namespace_uri: str | None) -> list[NodeRef]:
    """Parse profile node ids, refusing relative ones when no namespace URI is configured."""
    refs = [parse_node_ref(text) for text in texts]
    if namespace_uri is None:
        for ref in refs:
            if ref.is_relative:
                raise ValueError(
                    f"node id {ref.text!r} names no namespace: write 'nsu=<uri>;{ref.identifier}' "
                    f"or 'ns=<index>;{ref.identifier}', or set opcua.namespace_uri in the profile"
                )
    return refs


def resolve_refs(
    refs: Sequence[NodeRef],
    namespace_uri: str | None,
    namespace_array: Sequence[str],
    endpoint_url: str,
) -> list[ua.NodeId]:
    """Turn parsed refs into NodeIds through the server's namespace array."""

    def index_of(uri: str) -> int:
        try:
            return list(namespace_array).index(uri)
        except ValueError:
            raise UnknownNamespace(
                f"{endpoint_url}: the server has no namespace {uri!r} (it has: "
                f"{', '.join(namespace_array)}); check the profile's namespace URIs"
            ) from None

    node_ids: list[ua.NodeId] = []
    for ref in refs:
        if ref.namespace_index is not None:
            node_ids.append(ref.node_id(ref.namespace_index))
        elif ref.namespace_uri is not None:
            node_ids.append(ref.node_id(index_of(ref.namespace_uri)))
        elif ref.is_relative:
            assert namespace_uri is not None  # check_node_refs refused it otherwise
            node_ids.append(ref.node_id(index_of(namespace_uri)))
        else:
            node_ids.append(ref.node_id(0))
    return node_ids
