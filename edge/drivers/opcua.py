"""The OPC UA driver: one session per device, a subscription (or polling), batched reads.

In subscription mode (``opcua.subscribe``, the default) ``read()`` returns the data changes the
server sent since the previous call, each with its own source timestamp and status, plus a full
batched read of every tag on the first call after ``connect()`` and then every
``heartbeat_s`` (so unchanged values are refreshed). Tags the server refuses to monitor (an
unknown node, say) are read on every call. In polling mode every call is one batched read of
the tags that are due.

Scan classes: in subscription mode there is one subscription per distinct interval. Tags of the
default class are sampled every ``opcua.sampling_interval_ms`` and published every
``opcua.publishing_interval_ms``; a tag of a scan class of N seconds is sampled and published
every N × 1000 ms. A node that tags of several classes read goes with the fastest.

Security: the endpoint's ``security_policy``/``security_mode`` (and ``username``/``password``)
secure the session with the edge's certificate in ``pki_dir`` (see
``protocols.opcua.security``); a server certificate must be in ``<pki_dir>/trusted/`` unless
the endpoint says ``trust_on_first_use``.

Waveform tags (a ``waveform`` block: an array variable of Float/Double holding one window of
vibration samples) do not come back from ``read()`` as samples: their reads are kept as
``WaveformWindow`` objects for ``take_windows()``, and the coordinator turns each new window
into feature samples. A value that is not a one-dimensional array of numbers gives a bad window
(``value:decode_error``).

A lost session or subscription raises ``DeviceUnreachable``; ``connect()`` again builds a new
session and subscriptions, so a server restart is survived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
from asyncua import ua

from edge.drivers.base import Endpoint
from edge.features import WaveformWindow
from protocols.errors import DeviceRejected, DeviceUnreachable
from protocols.opcua import (
    VARIANT_TYPES,
    OpcUaLink,
    ReadResult,
    Subscription,
    check_node_refs,
)
from protocols.opcua.security import SecurityModeName, SecurityPolicyName, SecuritySettings
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


def window_of(tag: Tag, result: ReadResult) -> WaveformWindow:
    """The window of one waveform tag from what the server reported for its array node."""
    if result.quality is Quality.BAD:
        return WaveformWindow(tag.name, result.ts_ms, None, Quality.BAD, result.reason)
    raw = result.value
    if not isinstance(raw, list | tuple | np.ndarray) or any(
        isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer)
        for v in raw
    ):
        return WaveformWindow(tag.name, result.ts_ms, None, Quality.BAD, REASON_DECODE)
    values = np.asarray(raw, dtype=np.float64)
    if values.ndim != 1:
        return WaveformWindow(tag.name, result.ts_ms, None, Quality.BAD, REASON_DECODE)
    if tag.scale != 1.0 or tag.offset != 0.0:
        values = values * tag.scale + tag.offset
    return WaveformWindow(tag.name, result.ts_ms, values, result.quality, result.reason)


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
        self.security = SecuritySettings(
            policy=cast(SecurityPolicyName, endpoint.security_policy),
            mode=cast(SecurityModeName, endpoint.security_mode),
            pki_dir=Path(endpoint.pki_dir) if endpoint.pki_dir else None,
            # not an Endpoint field yet: strict (False) unless a caller's Endpoint has it
            trust_on_first_use=endpoint.trust_on_first_use,
        )  # raises ValueError for a policy/mode mismatch or a secure policy without pki_dir
        self._url = url
        self._link: OpcUaLink | None = None
        self._subscriptions: dict[tuple[float, float], Subscription] = {}
        self._node_of: dict[str, ua.NodeId] = {}  # tag name → node
        self._tags_of: dict[ua.NodeId, list[Tag]] = {}  # node → tags reading it
        self._polled: list[Tag] = []  # subscription mode: tags read on every call
        self._next_full_read = 0.0  # monotonic; 0 = due now
        self._last: dict[str, Sample] = {}  # subscription mode: the last sample returned per tag
        self._windows: list[WaveformWindow] = []  # waveform reads not yet taken
        # set when a subscription has queued a change: the coordinator reads at once instead
        # of at its next poll, so a change costs the publishing interval, not a poll on top
        self.changes = asyncio.Event()

    @property
    def subscribed(self) -> bool:
        """True while reads come from subscriptions (false in polling mode or when refused)."""
        return bool(self._subscriptions)

    @property
    def subscriptions(self) -> dict[tuple[float, float], Subscription]:
        """The live subscriptions by (sampling, publishing) interval in ms."""
        return dict(self._subscriptions)

    @property
    def link(self) -> OpcUaLink | None:
        return self._link

    def intervals(self, tag: Tag) -> tuple[float, float]:
        """(sampling, publishing) interval in ms a tag is subscribed with (see the docstring)."""
        if tag.scan_class is None:
            return (
                float(self.options.sampling_interval_ms),
                float(self.options.publishing_interval_ms),
            )
        interval_ms = float(round(self.profile.scan_interval(tag) * 1000))
        return interval_ms, interval_ms

    async def connect(self) -> None:
        await self.close()
        link = OpcUaLink(
            self._url,
            timeout_s=self.endpoint.timeout_s or self.options.timeout_s,
            username=self.endpoint.username,
            password=self.endpoint.password,
            security=self.security,
        )
        try:
            await link.connect()
            tags = self.profile.tags
            nodes = await link.resolve([t.node or "" for t in tags], self.options.namespace_uri)
            self._node_of = {tag.name: node for tag, node in zip(tags, nodes, strict=True)}
            self._tags_of = {}
            for tag, node in zip(tags, nodes, strict=True):
                self._tags_of.setdefault(node, []).append(tag)
            subscriptions = await self._subscribe(link) if self.options.subscribe else {}
        except BaseException:
            await link.close()
            raise
        self._link = link
        self._subscriptions = subscriptions
        for subscription in subscriptions.values():
            subscription.arrived = self.changes
        self._polled = self._unmonitored(subscriptions)
        self._next_full_read = 0.0
        self._last = {}
        self._windows = []

    async def _subscribe(self, link: OpcUaLink) -> dict[tuple[float, float], Subscription]:
        """One subscription per distinct (sampling, publishing) interval; {} when refused."""
        groups: dict[tuple[float, float], list[ua.NodeId]] = {}
        deadbands: dict[ua.NodeId, float | None] = {}
        for node, tags in self._tags_of.items():
            raw = [_raw_deadband(t) for t in tags]
            deadbands[node] = None if None in raw else min(d for d in raw if d is not None)
            fastest = min(self.intervals(t) for t in tags)
            groups.setdefault(fastest, []).append(node)
        subscriptions: dict[tuple[float, float], Subscription] = {}
        try:
            for (sampling_ms, publishing_ms), nodes in sorted(groups.items()):
                # room for three publishing cycles of every item changing at once
                subscriptions[(sampling_ms, publishing_ms)] = await link.subscribe(
                    nodes, sampling_ms, publishing_ms, deadbands,
                    queue_maxsize=max(10_000, 3 * len(nodes)),
                )  # fmt: skip
        except DeviceRejected as exc:
            log.warning(
                "device %s: the server refused a subscription (%s); polling instead",
                self.endpoint.device_id, exc,
            )  # fmt: skip
            for subscription in subscriptions.values():
                await subscription.delete(link.timeout_s)
            return {}
        return subscriptions

    def _unmonitored(self, subscriptions: dict[tuple[float, float], Subscription]) -> list[Tag]:
        rejected = {n: why for s in subscriptions.values() for n, why in s.rejected.items()}
        if rejected:
            log.info(
                "device %s: %d nodes cannot be monitored and are polled: %s",
                self.endpoint.device_id,
                len(rejected),
                ", ".join(f"{n.to_string()} ({why})" for n, why in rejected.items()),
            )
        return [tag for node in rejected for tag in self._tags_of.get(node, [])]

    async def read(self, due: frozenset[str] | None = None) -> list[Sample]:
        """Polling: a batched read of the due tags (all when None). Subscribed: the changes
        since the last call, plus a full read every heartbeat (``due`` does not apply)."""
        link = self._live_link()
        if not self._subscriptions:
            tags = [t for t in self.profile.tags if due is None or t.name in due]
            return await self._read_tags(link, tags)
        # A notification equal to what was last returned for its tag is the same reading seen
        # twice (e.g. a monitored item's initial value arriving after the first full read).
        changes = [
            sample
            for subscription in self._subscriptions.values()
            for result in subscription.drain()
            for tag in self._tags_of.get(result.node_id, [])
            if (sample := self._sample_or_window(tag, result)) is not None
            and sample != self._last.get(tag.name)
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
        samples = [self._sample_or_window(tag, r) for tag, r in zip(tags, results, strict=True)]
        return [sample for sample in samples if sample is not None]

    def _sample_or_window(self, tag: Tag, result: ReadResult) -> Sample | None:
        """The sample of a plain tag; a waveform tag's window is kept for ``take_windows``."""
        if tag.waveform is None:
            return sample_of(tag, result)
        self._windows.append(window_of(tag, result))
        return None

    def take_windows(self) -> list[WaveformWindow]:
        """The waveform windows read since the last call, oldest first (the same window may
        come twice, from a notification and a full read: its source timestamp tells)."""
        windows, self._windows = self._windows, []
        return windows

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
        for subscription in self._subscriptions.values():
            if subscription.lost is not None:
                raise DeviceUnreachable(
                    f"device {self.endpoint.device_id} ({self._url}): "
                    f"subscription lost ({subscription.lost})"
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
        self._subscriptions = {}
        if link is not None:
            await link.close()


def _raw_deadband(tag: Tag) -> float | None:
    """The tag's deadband in the node's raw units (the server compares raw values)."""
    if tag.deadband is None or not tag.is_numeric or tag.waveform is not None:
        return None  # a waveform's deadband applies to its features, at the edge
    return tag.deadband / abs(tag.scale) if tag.scale else None
