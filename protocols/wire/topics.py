"""MQTT topics of wire contract v1, built and parsed in one place.

forgeline/v1/{site}/{edge}/status            retained; birth, and death through the MQTT will
forgeline/v1/{site}/{edge}/{device}/birth    retained; metric definitions
forgeline/v1/{site}/{edge}/{device}/data     a batch of samples
forgeline/v1/{site}/{edge}/{device}/event    state changes, counter resets, link changes
forgeline/v1/{site}/{edge}/cmd               down: commands to the edge
forgeline/v1/{site}/{edge}/ack               down: sequence ranges the cloud has stored
forgeline/v1/_cloud/{worker}/presence        retained; a cloud worker's presence, with a will
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocols.errors import WireError

ROOT = "forgeline"
VERSION_LEVEL = "v1"
PREFIX = f"{ROOT}/{VERSION_LEVEL}"
CLOUD_SITE = "_cloud"

# An id is one topic level: no wildcards, separators or leading '$' / '_' (reserved for us).
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class TopicKind(StrEnum):
    STATUS = "status"
    BIRTH = "birth"
    DATA = "data"
    EVENT = "event"
    CMD = "cmd"
    ACK = "ack"
    PRESENCE = "presence"


_EDGE_LEVEL = {TopicKind.STATUS, TopicKind.CMD, TopicKind.ACK}
_DEVICE_LEVEL = {TopicKind.BIRTH, TopicKind.DATA, TopicKind.EVENT}


def check_id(kind: str, value: str) -> str:
    """Return ``value`` if it can stand as one topic level, else raise WireError saying why."""
    if not _ID.match(value):
        raise WireError(
            f"{kind} id {value!r} cannot be a topic level: use 1-64 characters from "
            "A-Z a-z 0-9 _ . : - starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic. ``device`` is set for device-level kinds; ``edge`` is the worker id for presence."""

    kind: TopicKind
    site: str
    edge: str
    device: str | None = None

    def __str__(self) -> str:
        if self.kind is TopicKind.PRESENCE:
            return f"{PREFIX}/{CLOUD_SITE}/{self.edge}/presence"
        if self.kind in _DEVICE_LEVEL:
            return f"{PREFIX}/{self.site}/{self.edge}/{self.device}/{self.kind.value}"
        return f"{PREFIX}/{self.site}/{self.edge}/{self.kind.value}"

    @classmethod
    def edge_topic(cls, kind: TopicKind, site: str, edge: str) -> Topic:
        if kind not in _EDGE_LEVEL:
            raise WireError(f"{kind} is a device-level topic; use device_topic()")
        return cls(kind, check_id("site", site), check_id("edge", edge))

    @classmethod
    def device_topic(cls, kind: TopicKind, site: str, edge: str, device: str) -> Topic:
        if kind not in _DEVICE_LEVEL:
            raise WireError(f"{kind} is an edge-level topic; use edge_topic()")
        return cls(kind, check_id("site", site), check_id("edge", edge), check_id("device", device))

    @classmethod
    def presence(cls, worker: str) -> Topic:
        return cls(TopicKind.PRESENCE, CLOUD_SITE, check_id("worker", worker))


def parse_topic(topic: str) -> Topic:
    """Parse a v1 topic; raise WireError naming the topic if it is not one."""
    levels = topic.split("/")
    if len(levels) < 5 or levels[0] != ROOT:
        raise WireError(f"topic {topic!r} is not a forgeline topic (expected {PREFIX}/...)")
    if levels[1] != VERSION_LEVEL:
        raise WireError(f"topic {topic!r} has version level {levels[1]!r}; this side speaks v1")
    try:
        if len(levels) == 5 and levels[2] == CLOUD_SITE and levels[4] == "presence":
            return Topic.presence(levels[3])
        if len(levels) == 5:
            return Topic.edge_topic(TopicKind(levels[4]), levels[2], levels[3])
        if len(levels) == 6:
            return Topic.device_topic(TopicKind(levels[5]), levels[2], levels[3], levels[4])
    except ValueError as exc:  # unknown kind
        raise WireError(f"topic {topic!r}: unknown message kind ({exc})") from exc
    raise WireError(f"topic {topic!r} has {len(levels)} levels; v1 topics have 5 or 6")


def subscription(site: str = "+", edge: str = "+", kind: TopicKind | str = "+") -> str:
    """A subscription filter for device-level messages, e.g. ``forgeline/v1/+/+/+/data``."""
    return f"{PREFIX}/{site}/{edge}/+/{kind}"


def edge_subscription(site: str = "+", edge: str = "+", kind: TopicKind | str = "+") -> str:
    """A subscription filter for edge-level messages, e.g. ``forgeline/v1/+/+/status``."""
    return f"{PREFIX}/{site}/{edge}/{kind}"


def alarm_topic(site: str) -> str:
    """``forgeline/v1/{site}/_alarm``: alarm notifications published by the cloud (JSON, QoS 1).

    The leading underscore keeps it apart from every edge's topics (an edge id cannot start
    with ``_``).
    """
    return f"{PREFIX}/{check_id('site', site)}/_alarm"
