"""Helpers for the cloud tests: wire messages built through the real codec."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from cloud.ingest.writer import ReceivedMessage
from protocols.quality import Quality
from protocols.wire import (
    BirthMessage,
    DataMessage,
    EventMessage,
    FaultText,
    JsonCodec,
    MetricDefinition,
    Sample,
    StateRuleText,
    StatusMessage,
    Topic,
    TopicKind,
)
from protocols.wire.messages import Event

CODEC = JsonCodec()
SITE = "plant1"
EDGE = "edge1"
PRESS_STATES = {"0": "offline", "1": "idle", "2": "running", "3": "down", "4": "setup"}


class Wire:
    """Builds received messages for one edge: data with a running sequence, births, statuses."""

    def __init__(self, site: str = SITE, edge: str = EDGE) -> None:
        self.site, self.edge = site, edge
        self.session = uuid.uuid4().hex
        self._seq = itertools.count(1)

    def topic(self, kind: TopicKind, device: str | None = None) -> str:
        if device is None:
            return str(Topic.edge_topic(kind, self.site, self.edge))
        return str(Topic.device_topic(kind, self.site, self.edge, device))

    def data(
        self,
        device: str,
        samples: Sequence[tuple[str, int, Any] | tuple[str, int, Any, Quality]],
        *,
        seq: int | None = None,
        historical: bool = False,
        received_ms: int = 0,
    ) -> ReceivedMessage:
        built = tuple(
            Sample(s[0], s[1], s[2], s[3] if len(s) > 3 else Quality.GOOD)  # type: ignore[misc]
            for s in samples
        )
        message = DataMessage(
            self.session, seq if seq is not None else next(self._seq), 1_000, built, historical
        )
        return ReceivedMessage(
            self.topic(TopicKind.DATA, device), CODEC.encode(message), received_ms
        )

    def event(self, device: str, kind: str, ts_ms: int) -> ReceivedMessage:
        message = EventMessage(self.session, next(self._seq), 1_000, (Event(kind, ts_ms),))
        return ReceivedMessage(self.topic(TopicKind.EVENT, device), CODEC.encode(message), 0)

    def birth(
        self,
        device: str,
        *,
        area: str | None = "Press shop",
        line: str | None = "Line 1",
        states: dict[str, str] | None = None,
        metrics: tuple[MetricDefinition, ...] | None = None,
        fault_codes: dict[str, FaultText] | None = None,
        state_rules: tuple[StateRuleText, ...] = (),
    ) -> ReceivedMessage:
        message = BirthMessage(
            session=self.session,
            created_ms=1_000,
            profile="acme-press",
            protocol="modbus_tcp",
            metrics=metrics
            or (
                MetricDefinition("state", "uint16", "state"),
                MetricDefinition("fault", "uint16", "fault_code"),
                MetricDefinition("temperature", "float32", "temperature", unit="degC"),
                MetricDefinition("cycles", "uint32", "cycle_count"),
            ),
            state_map=dict(PRESS_STATES if states is None else states),
            ideal_cycle_time_s=2.5,
            units_per_cycle=2,
            area=area,
            line=line,
            fault_codes=fault_codes or {},
            state_rules=state_rules,
        )
        return ReceivedMessage(self.topic(TopicKind.BIRTH, device), CODEC.encode(message), 0)

    def status(self, online: bool, created_ms: int, received_ms: int) -> ReceivedMessage:
        message = StatusMessage(online, created_ms, self.session, {"buffer_depth": 3})
        return ReceivedMessage(self.topic(TopicKind.STATUS), CODEC.encode(message), received_ms)


@pytest.fixture
def wire() -> Wire:
    return Wire()
