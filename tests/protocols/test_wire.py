"""The wire contract: round trips (property-based), NaN handling, versions and strict decoding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import UnsupportedVersion, WireError
from protocols.quality import Quality
from protocols.wire import (
    AckMessage,
    BirthMessage,
    CommandMessage,
    DataMessage,
    Event,
    EventMessage,
    FaultText,
    JsonCodec,
    MetricDefinition,
    PresenceMessage,
    Sample,
    StateRuleText,
    StatusMessage,
    Topic,
    TopicKind,
    parse_topic,
)

codec = JsonCodec()
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
ts = st.integers(min_value=0, max_value=2**53)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
samples = st.builds(
    Sample,
    metric=ids,
    ts_ms=ts,
    value=values,
    quality=st.sampled_from(list(Quality)),
    reason=st.one_of(st.none(), st.text(max_size=30)),
)
data_messages = st.builds(
    DataMessage,
    session=st.uuids().map(str),
    seq=st.integers(min_value=1, max_value=2**62),
    created_ms=ts,
    samples=st.lists(samples, max_size=20).map(tuple),
    historical=st.booleans(),
)
events = st.builds(
    Event, kind=ids, ts_ms=ts, metric=st.one_of(st.none(), ids), previous=values, current=values,
    detail=st.one_of(st.none(), st.text(max_size=20)),
)  # fmt: skip
event_messages = st.builds(
    EventMessage, session=st.uuids().map(str), seq=st.integers(1, 2**62), created_ms=ts,
    events=st.lists(events, max_size=5).map(tuple), historical=st.booleans(),
)  # fmt: skip
metrics = st.builds(
    MetricDefinition, name=ids, data_type=st.sampled_from(["float32", "uint16", "bool", "string"]),
    role=st.sampled_from(["state", "process_param", "info"]), unit=st.one_of(st.none(), ids),
    low_limit=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    high_limit=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    description=st.none(),
)  # fmt: skip
births = st.builds(
    BirthMessage, session=st.uuids().map(str), created_ms=ts, profile=ids,
    protocol=st.sampled_from(["modbus_tcp", "opcua"]), metrics=st.lists(metrics, max_size=5).map(tuple),
    state_map=st.dictionaries(st.integers(0, 9).map(str), st.sampled_from(["running", "idle"])),
    ideal_cycle_time_s=st.one_of(st.none(), st.floats(0.1, 1000)), units_per_cycle=st.integers(1, 8),
    area=st.one_of(st.none(), ids), line=st.one_of(st.none(), ids),
    fault_codes=st.dictionaries(
        st.integers(0, 9999).map(str),
        st.builds(FaultText, reason=st.text(min_size=1, max_size=40),
                  category=st.sampled_from(["breakdown", "tooling", "material"])),
        max_size=4,
    ),
    counter_rollover=st.one_of(st.none(), st.integers(1, 2**32)),
    state_rules=st.lists(
        st.builds(StateRuleText, state=st.sampled_from(["running", "down", "idle"]),
                  when=st.one_of(st.none(), st.just("speed > 0 and door_closed"))),
        max_size=3,
    ).map(tuple),
)  # fmt: skip
acks = st.builds(
    AckMessage, created_ms=ts,
    ranges=st.dictionaries(
        st.uuids().map(str),
        st.lists(st.tuples(st.integers(1, 100), st.integers(0, 100)).map(lambda p: (p[0], p[0] + p[1])),
                 max_size=4).map(tuple),
        max_size=3,
    ),
)  # fmt: skip

KIND = {
    DataMessage: TopicKind.DATA, EventMessage: TopicKind.EVENT, BirthMessage: TopicKind.BIRTH,
    AckMessage: TopicKind.ACK, StatusMessage: TopicKind.STATUS, CommandMessage: TopicKind.CMD,
    PresenceMessage: TopicKind.PRESENCE,
}  # fmt: skip


@given(st.one_of(data_messages, event_messages, births, acks))
def test_every_message_survives_a_round_trip_byte_identically(message: object) -> None:
    payload = codec.encode(message)  # type: ignore[arg-type]
    decoded = codec.decode(KIND[type(message)], payload)
    assert decoded == message
    assert codec.encode(decoded) == payload  # a re-send is byte-identical


def test_status_command_and_presence_round_trip() -> None:
    for message in (
        StatusMessage(True, 5, "sess", {"buffer_messages": 3, "cnc.round_trip_ms": 1.5}),
        StatusMessage(False, 6),
        CommandMessage("write", "c-1", 7, {"device": "cnc-01", "metric": "feed", "value": 1.5}),
        PresenceMessage("worker-1", True, 8),
    ):
        assert codec.decode(KIND[type(message)], codec.encode(message)) == message


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_travel_as_null_with_bad_quality(bad: float) -> None:
    message = DataMessage("s", 1, 0, (Sample("temp", 1, bad),))
    obj = json.loads(codec.encode(message))
    assert obj["samples"] == [{"m": "temp", "t": 1, "v": None, "q": "bad", "r": "value:not_finite"}]
    assert Sample.checked("temp", 1, bad) == Sample(
        "temp", 1, None, Quality.BAD, "value:not_finite"
    )


def _payload(**changes: object) -> bytes:
    obj = json.loads(codec.encode(DataMessage("s", 1, 0, (Sample("temp", 1, 2.5),))))
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "expected an object"),
        (_payload(seq="7"), "payload.seq: expected an integer"),
        (_payload(seq=True), "payload.seq: expected an integer"),
        (_payload(samples=[{"m": "x", "t": 1, "v": 1, "q": "great"}]), "samples[0].q"),
        (_payload(samples=[{"m": "x", "t": 1.5, "v": 1, "q": "good"}]), "samples[0].t"),
        (_payload(samples=[{"m": "x", "t": 1, "v": [1], "q": "good"}]), "samples[0].v"),
        (_payload(type="event"), "topic says 'data'"),
        (json.dumps({"v": 1, "type": "data"}).encode(), "required field is missing"),
    ],
)
def test_broken_payloads_name_the_field(payload: bytes, complaint: str) -> None:
    with pytest.raises(WireError) as info:
        codec.decode(TopicKind.DATA, payload)
    assert complaint in str(info.value)


def test_unknown_schema_version_is_its_own_error_but_keeps_its_envelope() -> None:
    payload = _payload(v=99)
    with pytest.raises(UnsupportedVersion, match="version 99"):
        codec.decode(TopicKind.DATA, payload)
    assert codec.envelope(payload) == ("s", 1)
    assert codec.envelope(b"garbage") is None
    assert codec.envelope(b'{"session": "s", "seq": true}') is None


def test_topics_build_and_parse() -> None:
    topic = Topic.device_topic(TopicKind.DATA, "plant-a", "edge-1", "cnc-01")
    assert str(topic) == "forgeline/v1/plant-a/edge-1/cnc-01/data"
    assert parse_topic(str(topic)) == topic
    ack = Topic.edge_topic(TopicKind.ACK, "plant-a", "edge-1")
    assert str(ack) == "forgeline/v1/plant-a/edge-1/ack"
    assert parse_topic(str(ack)) == ack
    presence = Topic.presence("cloud-1")
    assert str(presence) == "forgeline/v1/_cloud/cloud-1/presence"
    assert parse_topic(str(presence)) == presence
    for bad in ("forgeline/v2/a/b/c/data", "other/v1/a/b/status", "forgeline/v1/a/b/c/nonsense",
                "forgeline/v1/a/b", "forgeline/v1/a+/b/status"):  # fmt: skip
        with pytest.raises(WireError):
            parse_topic(bad)


@given(data_messages)
def test_the_fast_data_path_decodes_exactly_like_the_strict_one(message: DataMessage) -> None:
    from protocols.wire.codec import DataRows

    payload = codec.encode(message)
    strict = codec.decode(TopicKind.DATA, payload)
    assert isinstance(strict, DataMessage)
    assert codec.decode_data_rows(payload) == DataRows.of(strict)


@given(
    data_messages,
    st.sampled_from(["m", "t", "v", "q", "r"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=5), st.lists(st.integers(), max_size=2)),
)  # fmt: skip
def test_the_fast_data_path_rejects_what_the_strict_one_rejects_with_the_same_words(
    message: DataMessage, field: str, junk: object
) -> None:
    obj = json.loads(codec.encode(message))
    if not obj["samples"]:
        obj["samples"] = [{"m": "x", "t": 1, "v": 1.0, "q": "good"}]
    obj["samples"][0][field] = junk
    payload = json.dumps(obj).encode()
    from protocols.wire.codec import DataRows

    def outcome(decode: object) -> object:
        try:
            return decode()  # type: ignore[operator]
        except WireError as exc:
            return f"WireError: {exc}"

    strict = outcome(lambda: codec.decode(TopicKind.DATA, payload))
    fast = outcome(lambda: codec.decode_data_rows(payload))
    if isinstance(strict, DataMessage):
        assert fast == DataRows.of(strict)
    else:
        assert fast == strict
