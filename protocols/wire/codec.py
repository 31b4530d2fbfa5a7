"""Encoding and decoding of wire messages: JSON (schema v1) behind the ``WireCodec`` interface.

Every payload is a JSON object with ``"v"`` (schema version) and ``"type"``. Decoding is strict:
anything that breaks the contract raises ``WireError`` saying which field and why, so that the
cloud can dead-letter it. ``envelope()`` reads just the session and sequence number, so that a
message whose body is broken but whose envelope is valid can still be acknowledged.

``JsonCodec.decode_data_rows()`` is the ingest hot path for data messages: the same validation,
but samples come back as plain tuples instead of ``Sample`` objects. It checks the common case
in one tight loop and hands anything unusual to the strict decoder, so every error (and every
error message) is the strict decoder's own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, get_args

from protocols.errors import UnsupportedVersion, WireError
from protocols.quality import REASON_NOT_FINITE, Quality
from protocols.wire.messages import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    AckMessage,
    BirthMessage,
    CommandMessage,
    DataMessage,
    DataType,
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
from protocols.wire.topics import TopicKind

_DATA_TYPES = frozenset(get_args(DataType))
_QUALITIES = {q.value: q for q in Quality}


class WireCodec(Protocol):
    """Turns messages into payload bytes and back. JSON v1 is the default; Sparkplug B can follow."""

    content_type: str

    def encode(self, message: Message) -> bytes: ...

    def decode(self, kind: TopicKind, payload: bytes) -> Message: ...

    def decode_data_rows(self, payload: bytes) -> DataRows:
        """``decode(TopicKind.DATA, payload)`` without ``Sample`` objects: same checks, same errors."""
        obj = _load(payload)
        rows = _fast_data_rows(obj)
        if rows is None:  # something unusual: the strict decoder raises its own error
            message = from_dict(TopicKind.DATA, obj)
            assert isinstance(message, DataMessage)
            rows = DataRows.of(message)
        return rows

    def envelope(self, payload: bytes) -> tuple[str, int] | None: ...


# --------------------------------------------------------------------------- encoding


def _sample(sample: Sample) -> dict[str, Any]:
    out: dict[str, Any] = {"m": sample.metric, "t": sample.ts_ms, "v": sample.value}
    value, quality, reason = sample.value, sample.quality, sample.reason
    if isinstance(value, float) and not math.isfinite(value):
        out["v"] = None
        quality, reason = Quality.BAD, reason or REASON_NOT_FINITE
    out["q"] = quality.value
    if reason is not None:
        out["r"] = reason
    return out


def _event(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": event.kind, "t": event.ts_ms}
    for key, value in (
        ("metric", event.metric),
        ("previous", event.previous),
        ("current", event.current),
        ("detail", event.detail),
    ):
        if value is not None:
            out[key] = value
    return out


def _metric(metric: MetricDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {"name": metric.name, "type": metric.data_type, "role": metric.role}
    for key, value in (
        ("unit", metric.unit),
        ("low", metric.low_limit),
        ("high", metric.high_limit),
        ("description", metric.description),
    ):
        if value is not None:
            out[key] = value
    return out


def to_dict(message: Message) -> dict[str, Any]:
    """The JSON object of a message (schema v1)."""
    head: dict[str, Any] = {"v": SCHEMA_VERSION}
    match message:
        case DataMessage():
            return head | {
                "type": "data",
                "session": message.session,
                "seq": message.seq,
                "created": message.created_ms,
                "historical": message.historical,
                "samples": [_sample(s) for s in message.samples],
            }
        case EventMessage():
            return head | {
                "type": "event",
                "session": message.session,
                "seq": message.seq,
                "created": message.created_ms,
                "historical": message.historical,
                "events": [_event(e) for e in message.events],
            }
        case BirthMessage():
            return head | {
                "type": "birth",
                "session": message.session,
                "created": message.created_ms,
                "profile": message.profile,
                "protocol": message.protocol,
                "metrics": [_metric(m) for m in message.metrics],
                "states": dict(message.state_map),
                "ideal_cycle_time_s": message.ideal_cycle_time_s,
                "units_per_cycle": message.units_per_cycle,
                "area": message.area,
                "line": message.line,
                "faults": {
                    code: {"reason": f.reason, "category": f.category}
                    for code, f in message.fault_codes.items()
                },
                "state_rules": [{"state": r.state, "when": r.when} for r in message.state_rules],
                "counter_rollover": message.counter_rollover,
            }
        case StatusMessage():
            return head | {
                "type": "status",
                "online": message.online,
                "created": message.created_ms,
                "session": message.session,
                "health": dict(message.health),
            }
        case AckMessage():
            return head | {
                "type": "ack",
                "created": message.created_ms,
                "ranges": {s: [list(r) for r in rs] for s, rs in message.ranges.items()},
            }
        case CommandMessage():
            return head | {
                "type": "cmd",
                "command": message.command,
                "id": message.command_id,
                "created": message.created_ms,
                "args": dict(message.args),
            }
        case PresenceMessage():
            return head | {
                "type": "presence",
                "worker": message.worker,
                "online": message.online,
                "created": message.created_ms,
            }
    raise WireError(f"cannot encode {type(message).__name__}")  # pragma: no cover


# --------------------------------------------------------------------------- decoding


class _Reader:
    """Typed access to a JSON object that names the offending field in every error."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise WireError(f"{where}: expected an object, got {type(obj).__name__}")
        self.obj: dict[str, Any] = obj
        self.where = where

    def _get(self, key: str, optional: bool) -> Any:
        if key not in self.obj or self.obj[key] is None:
            if optional:
                return None
            raise WireError(f"{self.where}.{key}: required field is missing")
        return self.obj[key]

    def integer(self, key: str, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise WireError(f"{self.where}.{key}: expected an integer, got {value!r}")
        return value

    def string(self, key: str, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and not isinstance(value, str):
            raise WireError(f"{self.where}.{key}: expected a string, got {value!r}")
        return value

    def flag(self, key: str, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and not isinstance(value, bool):
            raise WireError(f"{self.where}.{key}: expected true or false, got {value!r}")
        return value

    def number(self, key: str, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise WireError(f"{self.where}.{key}: expected a number, got {value!r}")
        return value

    def items(self, key: str) -> list[Any]:
        value = self._get(key, False)
        if not isinstance(value, list):
            raise WireError(f"{self.where}.{key}: expected a list, got {type(value).__name__}")
        return value

    def mapping(self, key: str, optional: bool = False) -> dict[str, Any]:
        value = self._get(key, optional)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise WireError(f"{self.where}.{key}: expected an object, got {type(value).__name__}")
        return value

    def value(self, key: str) -> Value:
        value = self.obj.get(key)
        if value is not None and not isinstance(value, bool | int | float | str):
            raise WireError(f"{self.where}.{key}: expected a scalar value, got {value!r}")
        return value


def _read_sample(obj: Any, where: str) -> Sample:
    r = _Reader(obj, where)
    quality_name = r.string("q")
    quality = _QUALITIES.get(quality_name)
    if quality is None:
        raise WireError(f"{where}.q: {quality_name!r} is not one of good, uncertain, bad")
    value = r.value("v")
    if isinstance(value, float) and not math.isfinite(value):
        raise WireError(f"{where}.v: non-finite numbers travel as null with bad quality")
    return Sample(r.string("m"), r.integer("t"), value, quality, r.string("r", optional=True))


def _read_event(obj: Any, where: str) -> Event:
    r = _Reader(obj, where)
    return Event(
        kind=r.string("kind"),
        ts_ms=r.integer("t"),
        metric=r.string("metric", optional=True),
        previous=r.value("previous"),
        current=r.value("current"),
        detail=r.string("detail", optional=True),
    )


def _read_metric(obj: Any, where: str) -> MetricDefinition:
    r = _Reader(obj, where)
    data_type = r.string("type")
    if data_type not in _DATA_TYPES:
        raise WireError(f"{where}.type: {data_type!r} is not one of {sorted(_DATA_TYPES)}")
    return MetricDefinition(
        name=r.string("name"),
        data_type=data_type,
        role=r.string("role"),
        unit=r.string("unit", optional=True),
        low_limit=r.number("low", optional=True),
        high_limit=r.number("high", optional=True),
        description=r.string("description", optional=True),
    )


def _read_ranges(obj: dict[str, Any], where: str) -> dict[str, tuple[tuple[int, int], ...]]:
    out: dict[str, tuple[tuple[int, int], ...]] = {}
    for session, ranges in obj.items():
        if not isinstance(ranges, list):
            raise WireError(f"{where}.{session}: expected a list of [first, last] pairs")
        pairs = []
        for i, pair in enumerate(ranges):
            ok = (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in pair)
                and pair[0] <= pair[1]
            )
            if not ok:
                raise WireError(
                    f"{where}.{session}[{i}]: expected [first, last] with first <= last"
                )
            pairs.append((pair[0], pair[1]))
        out[session] = tuple(pairs)
    return out


def _data(r: _Reader) -> DataMessage:
    samples = tuple(_read_sample(s, f"samples[{i}]") for i, s in enumerate(r.items("samples")))
    return DataMessage(
        r.string("session"), r.integer("seq"), r.integer("created"), samples, r.flag("historical")
    )


def _event_message(r: _Reader) -> EventMessage:
    events = tuple(_read_event(e, f"events[{i}]") for i, e in enumerate(r.items("events")))
    return EventMessage(
        r.string("session"), r.integer("seq"), r.integer("created"), events, r.flag("historical")
    )


def _birth(r: _Reader) -> BirthMessage:
    metrics = tuple(_read_metric(m, f"metrics[{i}]") for i, m in enumerate(r.items("metrics")))
    states = r.mapping("states", optional=True)
    if not all(isinstance(v, str) for v in states.values()):
        raise WireError("states: expected an object of raw code -> canonical state name")
    return BirthMessage(
        session=r.string("session"),
        created_ms=r.integer("created"),
        profile=r.string("profile"),
        protocol=r.string("protocol"),
        metrics=metrics,
        state_map={str(k): v for k, v in states.items()},
        ideal_cycle_time_s=r.number("ideal_cycle_time_s", optional=True),
        units_per_cycle=r.integer("units_per_cycle", optional=True) or 1,
        area=r.string("area", optional=True),
        line=r.string("line", optional=True),
        fault_codes=_read_faults(r.mapping("faults", optional=True)),
        state_rules=_read_state_rules(r),
        counter_rollover=r.integer("counter_rollover", optional=True),
    )


def _read_faults(obj: dict[str, Any]) -> dict[str, FaultText]:
    out: dict[str, FaultText] = {}
    for code, text in obj.items():
        t = _Reader(text, f"faults.{code}")
        out[str(code)] = FaultText(
            t.string("reason"), t.string("category", optional=True) or "breakdown"
        )
    return out


def _read_state_rules(r: _Reader) -> tuple[StateRuleText, ...]:
    if r.obj.get("state_rules") is None:
        return ()
    rules = r.items("state_rules")
    out: list[StateRuleText] = []
    for i, rule in enumerate(rules):
        t = _Reader(rule, f"state_rules[{i}]")
        out.append(StateRuleText(t.string("state"), t.string("when", optional=True)))
    return tuple(out)


def _status(r: _Reader) -> StatusMessage:
    return StatusMessage(
        r.flag("online"), r.integer("created"), r.string("session", optional=True),
        r.mapping("health", optional=True),
    )  # fmt: skip


def _ack(r: _Reader) -> AckMessage:
    return AckMessage(r.integer("created"), _read_ranges(r.mapping("ranges"), "ranges"))


def _command(r: _Reader) -> CommandMessage:
    return CommandMessage(
        r.string("command"), r.string("id"), r.integer("created"), r.mapping("args", True)
    )


def _presence(r: _Reader) -> PresenceMessage:
    return PresenceMessage(r.string("worker"), r.flag("online"), r.integer("created"))


_DECODERS: Mapping[TopicKind, tuple[str, Callable[[_Reader], Message]]] = {
    TopicKind.DATA: ("data", _data),
    TopicKind.EVENT: ("event", _event_message),
    TopicKind.BIRTH: ("birth", _birth),
    TopicKind.STATUS: ("status", _status),
    TopicKind.ACK: ("ack", _ack),
    TopicKind.CMD: ("cmd", _command),
    TopicKind.PRESENCE: ("presence", _presence),
}


def _load(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"payload is not JSON: {exc}") from exc


def from_dict(kind: TopicKind, obj: Any) -> Message:
    """Validate a decoded JSON object against the message type the topic promises."""
    r = _Reader(obj, "payload")
    version = r.integer("v")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            f"payload schema version {version} is not supported "
            f"(this side accepts {sorted(SUPPORTED_VERSIONS)})"
        )
    type_name, decoder = _DECODERS[kind]
    if r.string("type") != type_name:
        raise WireError(f"payload.type is {obj.get('type')!r} but the topic says {type_name!r}")
    return decoder(r)


SampleRow = tuple[str, int, Value, str, str | None]
"""A sample as ``decode_data_rows`` returns it: metric, ts_ms, value, quality, reason.

The quality is the wire's string (a ``Quality`` value; ``Quality.GOOD == "good"``): a tuple of
plain strings and numbers is one that Python's garbage collector stops tracking, which matters
when a batch holds tens of thousands of them.
"""


@dataclass(frozen=True, slots=True)
class DataRows:
    """A data message decoded for storage: its envelope and its samples as ``SampleRow`` tuples."""

    session: str
    seq: int
    created_ms: int
    historical: bool
    samples: list[SampleRow]

    @classmethod
    def of(cls, message: DataMessage) -> DataRows:
        """The rows of a decoded ``DataMessage``."""
        return cls(
            message.session, message.seq, message.created_ms, message.historical,
            [(s.metric, s.ts_ms, s.value, s.quality.value, s.reason) for s in message.samples],
        )  # fmt: skip


def _fast_data_rows(obj: Any) -> DataRows | None:
    """The rows of a well-formed data object, or None if anything needs the strict decoder.

    Accepts only what ``from_dict(TopicKind.DATA, obj)`` accepts and yields the same values;
    JSON gives exact types, so ``type(x) is int`` also tells an integer from a boolean.
    """
    if type(obj) is not dict:
        return None
    get = obj.get
    version, session, seq, created, historical, samples = (
        get("v"), get("session"), get("seq"), get("created"), get("historical"), get("samples"),
    )  # fmt: skip
    if (
        type(version) is not int
        or version not in SUPPORTED_VERSIONS
        or get("type") != "data"
        or type(session) is not str
        or type(seq) is not int
        or type(created) is not int
        or type(historical) is not bool
        or type(samples) is not list
    ):
        return None
    qualities, isfinite = _QUALITIES, math.isfinite
    rows: list[SampleRow] = []
    append = rows.append
    sample: Any
    for sample in samples:
        if type(sample) is not dict:
            return None
        try:
            metric: Any = sample["m"]
            ts_ms: Any = sample["t"]
            quality_name: Any = sample["q"]
        except KeyError:
            return None
        value: Any = sample.get("v")
        reason: Any = sample.get("r")
        if (
            type(metric) is not str
            or type(ts_ms) is not int
            or type(quality_name) is not str
            or quality_name not in qualities
        ):
            return None
        kind = type(value)
        if kind is float:
            if not isfinite(value):
                return None
        elif value is not None and kind is not int and kind is not bool and kind is not str:
            return None
        if reason is not None and type(reason) is not str:
            return None
        append((metric, ts_ms, value, quality_name, reason))
    return DataRows(session, seq, created, historical, rows)


class JsonCodec:
    """JSON payloads, schema version 1: compact, key order fixed, so a re-send is byte-identical."""

    content_type = "application/json"

    def encode(self, message: Message) -> bytes:
        return json.dumps(to_dict(message), separators=(",", ":"), allow_nan=False).encode()

    def decode(self, kind: TopicKind, payload: bytes) -> Message:
        return from_dict(kind, _load(payload))

    def decode_data_rows(self, payload: bytes) -> DataRows:
        """``decode(TopicKind.DATA, payload)`` without ``Sample`` objects: same checks, same errors."""
        obj = _load(payload)
        rows = _fast_data_rows(obj)
        if rows is None:  # something unusual: the strict decoder raises its own error
            message = from_dict(TopicKind.DATA, obj)
            assert isinstance(message, DataMessage)
            rows = DataRows.of(message)
        return rows

    def envelope(self, payload: bytes) -> tuple[str, int] | None:
        """``(session, seq)`` if the payload has a usable envelope, else None."""
        try:
            obj = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(obj, dict):
            return None
        session, seq = obj.get("session"), obj.get("seq")
        if isinstance(session, str) and isinstance(seq, int) and not isinstance(seq, bool):
            return session, seq
        return None
