"""Walk an OPC UA server's address space and describe its variables (for drafting profiles).

``browse_variables`` follows hierarchical references from a root node (the Objects folder by
default) down through objects and variables, breadth first, in batched Browse and Read
requests (reads within the server's MaxNodesPerRead). Standard nodes of namespace 0 (the Server
object and its diagnostics) are not entered. Properties (HasProperty) are not variables of
their own: a variable's ``EngineeringUnits`` and ``EURange`` properties become its ``unit``
and ``eu_range``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from protocols.opcua.client import OpcUaLink

OBJECTS_FOLDER = ua.NodeId(ua.Int32(ObjectIds.ObjectsFolder))
_HAS_PROPERTY = ua.NodeId(ua.Int32(ObjectIds.HasProperty))
_UNIT_PROPERTIES = ("EngineeringUnits", "EURange")
_ACCESS_WRITE = 0x02  # AccessLevel bit CurrentWrite

# Built-in (and a few common derived) data types of namespace 0 → profile data types.
DATA_TYPES: dict[int, str] = {
    ObjectIds.Boolean: "bool",
    ObjectIds.SByte: "int16",
    ObjectIds.Byte: "uint16",
    ObjectIds.Int16: "int16",
    ObjectIds.UInt16: "uint16",
    ObjectIds.Int32: "int32",
    ObjectIds.UInt32: "uint32",
    ObjectIds.Int64: "int64",
    ObjectIds.UInt64: "uint64",
    ObjectIds.Float: "float32",
    ObjectIds.Double: "float64",
    ObjectIds.String: "string",
    ObjectIds.LocalizedText: "string",
    ObjectIds.Duration: "float64",
    ObjectIds.Counter: "uint32",
    ObjectIds.IntegerId: "uint32",
    ObjectIds.Enumeration: "int32",
}


@dataclass(frozen=True, slots=True)
class BrowsedVariable:
    """One variable found in the address space, with what a profile needs to know of it."""

    node_id: ua.NodeId
    browse_name: str
    path: tuple[str, ...]  # browse names from below the root down to the variable's parent
    data_type: ua.NodeId | None
    value_rank: int | None
    access_level: int
    description: str | None
    unit: str | None
    eu_range: tuple[float, float] | None

    @property
    def profile_type(self) -> str | None:
        """The profile data type (``float32`` ...), or None when it has no scalar equivalent."""
        if self.value_rank is not None and self.value_rank >= 0:
            return None  # an array
        if self.data_type is None or self.data_type.NamespaceIndex != 0:
            return None
        identifier = self.data_type.Identifier
        return DATA_TYPES.get(identifier) if isinstance(identifier, int) else None

    @property
    def writable(self) -> bool:
        return bool(self.access_level & _ACCESS_WRITE)


async def browse_variables(
    link: OpcUaLink,
    root: ua.NodeId | None = None,
    *,
    include_standard: bool = False,
    max_variables: int = 100_000,
) -> list[BrowsedVariable]:
    """Every variable below ``root`` (default: the Objects folder), in browse order."""
    start = root or OBJECTS_FOLDER
    mask = int(ua.NodeClass.Object) | int(ua.NodeClass.Variable)
    frontier: list[tuple[ua.NodeId, tuple[str, ...]]] = [(start, ())]
    visited = {start}
    found: list[tuple[ua.NodeId, str, tuple[str, ...]]] = []
    properties: dict[ua.NodeId, dict[str, ua.NodeId]] = {}
    while frontier and len(found) < max_variables:
        references = await link.browse([node for node, _ in frontier], mask)
        next_frontier: list[tuple[ua.NodeId, tuple[str, ...]]] = []
        for (parent, path), refs in zip(frontier, references, strict=True):
            for ref in refs:
                target = _local(ref.NodeId)
                if target is None:
                    continue
                name = ref.BrowseName.Name or target.to_string()
                if ref.ReferenceTypeId == _HAS_PROPERTY:
                    if name in _UNIT_PROPERTIES:
                        properties.setdefault(parent, {})[name] = target
                    continue
                if target in visited or (target.NamespaceIndex == 0 and not include_standard):
                    continue
                visited.add(target)
                if ref.NodeClass == ua.NodeClass.Variable:
                    found.append((target, name, path))
                next_frontier.append((target, (*path, name)))
        frontier = next_frontier
    found = found[:max_variables]
    return await _describe(link, found, properties)


def _local(expanded: ua.NodeId) -> ua.NodeId | None:
    """A reference target on this server as a plain NodeId (None for one on another server)."""
    if getattr(expanded, "ServerIndex", 0):
        return None
    return ua.NodeId(expanded.Identifier, expanded.NamespaceIndex, expanded.NodeIdType)


async def _describe(
    link: OpcUaLink,
    found: Sequence[tuple[ua.NodeId, str, tuple[str, ...]]],
    properties: dict[ua.NodeId, dict[str, ua.NodeId]],
) -> list[BrowsedVariable]:
    nodes = [node for node, _, _ in found]
    data_types = await link.read_attributes(nodes, AttributeIds.DataType)
    ranks = await link.read_attributes(nodes, AttributeIds.ValueRank)
    access = await link.read_attributes(nodes, AttributeIds.AccessLevel)
    descriptions = await link.read_attributes(nodes, AttributeIds.Description)
    wanted = [
        (node, kind, prop)
        for node in nodes
        for kind, prop in properties.get(node, {}).items()
    ]  # fmt: skip
    values = await link.read_attributes([prop for _, _, prop in wanted], AttributeIds.Value)
    units: dict[ua.NodeId, str] = {}
    ranges: dict[ua.NodeId, tuple[float, float]] = {}
    for (node, kind, _), data_value in zip(wanted, values, strict=True):
        value = _value(data_value)
        if kind == "EngineeringUnits" and isinstance(value, ua.EUInformation):
            text = value.DisplayName.Text if value.DisplayName is not None else None
            if text:
                units[node] = text
        elif kind == "EURange" and isinstance(value, ua.Range):
            low, high = float(value.Low), float(value.High)
            if math.isfinite(low) and math.isfinite(high) and low <= high:
                ranges[node] = (low, high)
    variables: list[BrowsedVariable] = []
    for index, (node, name, path) in enumerate(found):
        data_type = _value(data_types[index])
        rank = _value(ranks[index])
        level = _value(access[index])
        text = _value(descriptions[index])
        description = text.Text if isinstance(text, ua.LocalizedText) else None
        variables.append(
            BrowsedVariable(
                node_id=node,
                browse_name=name,
                path=path,
                data_type=data_type if isinstance(data_type, ua.NodeId) else None,
                value_rank=rank if isinstance(rank, int) else None,
                access_level=level if isinstance(level, int) else 0,
                description=description or None,
                unit=units.get(node),
                eu_range=ranges.get(node),
            )
        )
    return variables


def _value(data_value: ua.DataValue) -> object:
    if data_value.StatusCode is not None and not data_value.StatusCode.is_good():
        return None
    return data_value.Value.Value if data_value.Value is not None else None
