"""The MQTT wire contract: topics, message types and their codec (schema version 1)."""

from protocols.wire.codec import JsonCodec, WireCodec
from protocols.wire.messages import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    AckMessage,
    BirthMessage,
    CommandMessage,
    DataMessage,
    Event,
    EventMessage,
    FaultText,
    Message,
    MetricDefinition,
    PresenceMessage,
    Sample,
    StateRuleText,
    StatusMessage,
    Value,
)
from protocols.wire.topics import Topic, TopicKind, parse_topic

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "AckMessage",
    "BirthMessage",
    "CommandMessage",
    "DataMessage",
    "Event",
    "EventMessage",
    "FaultText",
    "JsonCodec",
    "Message",
    "MetricDefinition",
    "PresenceMessage",
    "Sample",
    "StateRuleText",
    "StatusMessage",
    "Topic",
    "TopicKind",
    "Value",
    "WireCodec",
    "parse_topic",
]
