"""The OPC UA driver: one session per device, a subscription (or polling), batched reads.

In subscription mode (``opcua.subscribe``, the default) ``read()`` returns the data changes the
server sent since the previous call, each with its own source timestamp and status, plus a full
batched read of every tag on the first call after ``connect()`` and then every
``heartbeat_s`` (so unchanged values are refreshed). Tags the server refuses to monitor (an
unknown node, say) are read on every call. In polling mode every call is one batched read.

A lost session or subscription raises ``DeviceUnreachable``; ``connect()`` again builds a new
session and subscription, so a server restart is survived.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from asyncua import ua

from edge.drivers.base import Endpoint
from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.opcua import (
    VARIANT_TYPES,
    OpcUaLink,
    ReadResult,
    Subscription,
    check_node_refs,
)
from protocols.profile import Profile, Tag
from protocols.quality import REASON_DECODE, Quality
from protocols.wire import Sample, Value

log = logging.getLogger(__name__)


def engineering_value(tag: Tag, raw: object) -> Value:
    """A raw OPC UA value as the tag's plain Python value (scale and offset applied).

    Raises ValueError when the raw value cannot be the tag's type.
    """
    if isinstance(raw, ua.LocalizedText):
        raw = raw.Text
    if tag.type == "string":
        if raw is None or isinstance(raw, list | tuple | dict | bytes):
            raise ValueError(f"{raw!r} is not a string")
        return str(raw)
    if tag.type == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float):
            return raw != 0
        raise ValueError(f"{raw!r} is not a boolean")
    if isinstance(raw, bool):
        raw = int(raw)
    if not isinstance(raw, int | float):
        raise ValueError(f"{raw!r} is not a number")
    if tag.scale != 1.0 or tag.offset != 0.0:
        return float(raw) * tag.scale + tag.offset
    if isinstance(raw, float) or tag.type in ("float32", "float64"):
        return float(raw)
    return int(raw)


def sample_of(tag: Tag, result: ReadResult) -> Sample:
    """The sample of one tag from what the server reported for its node."""
    if result.quality is Quality.BAD:
        return Sample(tag.name, result.ts_ms, None, Quality.BAD, result.reason)
    try:
        value = engineering_value(tag, result.value)
    except ValueError:
        return Sample(tag.name, result.ts_ms, None, Quality.BAD, REASON_DECODE)
    return Sample.checked(tag.name, result.ts_ms, value, result.quality, result.reason)


class OpcUaDriver:
    """One OPC UA server, read through a subscription or by polling."""

    def __init__(self, profile: Profile, endpoint: Endpoint) -> None:
        if profile.protocol != "opcua":
            raise ValueError(f"{profile.model} is a {profile.protocol} profile, not opcua")
        url = endpoint.endpoint_url
        if not url or not url.startswith("opc.tcp://"):
            raise ValueError(
                f"device {endpoint.device_id}: endpoint_url must be opc.tcp://host:port[/path], "
                f"got {url!r}"
            )
        self.profile = profile
        self.endpoint = endpoint
        self.options = profile.opcua_options
        for tag in profile.tags:
            try:
                check_node_refs([tag.node or ""], self.options.namespace_uri)
            except ValueError as exc:
                raise ValueError(f"profile {profile.model}, tag {tag.name}: {exc}") from None
        self._url = url
        self._link: OpcUaLink | None = None
        self._subscription: Subscription | None = None
        self._node_of: dict[str, ua.NodeId] = {}  # tag name → node
        self._tags_of: dict[ua.NodeId, list[Tag]] = {}  # node → tags reading it
        self._polled: list[Tag] = []  # subscription mode: tags read on every call
        self._next_full_read = 0.0  # monotonic; 0 = due now
        self._last: dict[str, Sample] = {}  # subscription mode: the last sample returned per tag

    @property
    def subscribed(self) -> bool:
        """True while reads come from a subscription (false in polling mode or when refused)."""
        return self._subscription is not None

    async def connect(self) -> None:
        await self.close()
        link = OpcUaLink(
            self._url,
            timeout_s=self.options.timeout_s,
            username=self.endpoint.username,
            password=self.endpoint.password,
        )
        try:
            await link.connect()
            tags = self.profile.tags
            nodes = await link.resolve([t.node or "" for t in tags], self.options.namespace_uri)
            self._node_of = {tag.name: node for tag, node in zip(tags, nodes, strict=True)}
            self._tags_of = {}
            for tag, node in zip(tags, nodes, strict=True):
                self._tags_of.setdefault(node, []).append(tag)
            subscription = await self._subscribe(link) if self.options.subscribe else None
        except BaseException:
            await link.close()
            raise
        self._link = link
        self._subscription = subscription
        self._polled = [] if subscription is None else self._unmonitored(subscription)
        self._next_full_read = 0.0
        self._last = {}

    async def _subscribe(self, link: OpcUaLink) -> Subscription | None:
        deadbands: dict[ua.NodeId, float | None] = {}
        for node, tags in self._tags_of.items():
            raw = [_raw_deadband(t) for t in tags]
            deadbands[node] = None if None in raw else min(d for d in raw if d is not None)
        try:
            return await link.subscribe(
                list(self._tags_of),
                self.options.sampling_interval_ms,
                self.options.publishing_interval_ms,
                deadbands,
            )
        except DeviceRejected as exc:
            log.warning(
                "device %s: the server refused a subscription (%s); polling instead",
                self.endpoint.device_id, exc,
            )  # fmt: skip
            return None

    def _unmonitored(self, subscription: Subscription) -> list[Tag]:
        if subscription.rejected:
            log.info(
                "device %s: %d nodes cannot be monitored and are polled: %s",
                self.endpoint.device_id,
                len(subscription.rejected),
                ", ".join(f"{n.to_string()} ({why})" for n, why in subscription.rejected.items()),
            )
        return [tag for node in subscription.rejected for tag in self._tags_of.get(node, [])]

    async def read(self, due: frozenset[str] | None = None) -> list[Sample]:
        """Polling: a batched read of the due tags (all when None). Subscribed: the changes
        since the last call, plus a full read every heartbeat (``due`` does not apply)."""
        link = self._live_link()
        if self._subscription is None:
            tags = [t for t in self.profile.tags if due is None or t.name in due]
            return await self._read_tags(link, tags)
        # A notification equal to what was last returned for its tag is the same reading seen
        # twice (e.g. a monitored item's initial value arriving after the first full read).
        changes = [
            sample
            for result in self._subscription.drain()
            for tag in self._tags_of.get(result.node_id, [])
            if (sample := sample_of(tag, result)) != self._last.get(tag.name)
        ]
        now = time.monotonic()
        if now >= self._next_full_read:
            self._next_full_read = now + self.profile.heartbeat_s
            full = await self._read_tags(link, self.profile.tags)
            already = set(full)
            samples = [s for s in changes if s not in already] + full
        else:
            samples = changes + await self._read_tags(link, self._polled)
        for sample in samples:
            self._last[sample.metric] = sample
        return samples

    async def _read_tags(self, link: OpcUaLink, tags: Sequence[Tag]) -> list[Sample]:
        if not tags:
            return []
        results = await link.read_values([self._node_of[t.name] for t in tags])
        return [sample_of(tag, result) for tag, result in zip(tags, results, strict=True)]

    def _live_link(self) -> OpcUaLink:
        link = self._link
        if link is None:
            raise DeviceUnreachable(
                f"device {self.endpoint.device_id} ({self._url}): not connected"
            )
        if not link.connected:
            raise DeviceUnreachable(
                f"device {self.endpoint.device_id} ({self._url}): "
                f"{link.lost_reason or 'the session was lost'}"
            )
        if self._subscription is not None and self._subscription.lost is not None:
            raise DeviceUnreachable(
                f"device {self.endpoint.device_id} ({self._url}): "
                f"subscription lost ({self._subscription.lost})"
            )
        return link

    async def write(self, metric: str, value: Value) -> None:
        try:
            tag = self.profile.tag(metric)
        except KeyError:
            raise DeviceRejected(
                f"device {self.endpoint.device_id}: no tag {metric!r} in profile {self.profile.model}"
            ) from None
        if not tag.writable:
            raise DeviceRejected(
                f"device {self.endpoint.device_id}: tag {metric!r} is not writable "
                f"(set 'writable: true' in profile {self.profile.model} if the PLC allows it)"
            )
        link = self._live_link()
        raw: object = value
        scaled = tag.scale != 1.0 or tag.offset != 0.0
        if scaled and isinstance(value, int | float) and not isinstance(value, bool):
            raw = (value - tag.offset) / tag.scale
        await link.write_value(self._node_of[tag.name], raw, VARIANT_TYPES[tag.type])

    async def close(self) -> None:
        link, self._link = self._link, None
        self._subscription = None
        if link is not None:
            await link.close()


def _raw_deadband(tag: Tag) -> float | None:
    """The tag's deadband in the node's raw units (the server compares raw values)."""
    if tag.deadband is None or not tag.is_numeric:
        return None
    return tag.deadband / abs(tag.scale) if tag.scale else None
