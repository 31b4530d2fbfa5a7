"""Node-id parsing and resolution, StatusCode mapping and write coercion (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asyncua import ua

from protocols.errors import CodecError, DeviceRejected
from protocols.opcua import (
    UnknownNamespace,
    check_node_refs,
    coerce_for_variant,
    epoch_ms,
    parse_node_ref,
    resolve_refs,
    result_from_data_value,
    status_name,
    status_quality,
)
from protocols.quality import Quality

NAMESPACES = ["http://opcfoundation.org/UA/", "urn:other", "urn:forgeline:test"]
URL = "opc.tcp://plc:4840/"


@pytest.mark.parametrize(
    ("text", "namespace_uri", "expected"),
    [
        ("ns=5;s=Press.Temp", None, "ns=5;s=Press.Temp"),
        ("i=2258", "urn:forgeline:test", "i=2258"),
        ("s=Press.Temp", "urn:forgeline:test", "ns=2;s=Press.Temp"),
        ("nsu=urn:other;i=1001", None, "ns=1;i=1001"),
        ("s=A;B=C", "urn:forgeline:test", "ns=2;s=A;B=C"),
        (" ns=2 ; i=7 ", None, "ns=2;i=7"),
    ],
)
def test_node_ids_resolve_through_the_namespace_array(
    text: str, namespace_uri: str | None, expected: str
) -> None:
    refs = check_node_refs([text], namespace_uri)
    (node_id,) = resolve_refs(refs, namespace_uri, NAMESPACES, URL)
    assert node_id.to_string() == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Press.Temp", "not key=value"),
        ("ns=x;s=Temp", "ns must be an integer"),
        ("ns=2", "no identifier"),
        ("q=1", "unknown key"),
        ("ns=1;nsu=urn:x;s=T", "not both"),
        ("i=abc", "i=abc"),
    ],
)
def test_malformed_node_ids_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_node_ref(text)


def test_a_relative_node_id_needs_a_namespace_uri() -> None:
    with pytest.raises(ValueError, match=r"opcua\.namespace_uri"):
        check_node_refs(["s=Press.Temp"], None)


def test_an_unknown_namespace_uri_names_the_uri_and_endpoint() -> None:
    refs = check_node_refs(["s=Press.Temp"], "urn:nowhere")
    with pytest.raises(UnknownNamespace, match="urn:nowhere") as caught:
        resolve_refs(refs, "urn:nowhere", NAMESPACES, URL)
    assert isinstance(caught.value, DeviceRejected)
    assert URL in str(caught.value)


@pytest.mark.parametrize(
    ("code", "name", "quality"),
    [
        (ua.StatusCodes.Good, "Good", Quality.GOOD),
        (ua.StatusCodes.UncertainLastUsableValue, "UncertainLastUsableValue", Quality.UNCERTAIN),
        (ua.StatusCodes.BadNodeIdUnknown, "BadNodeIdUnknown", Quality.BAD),
        (ua.StatusCodes.BadSensorFailure | 0x0400, "BadSensorFailure", Quality.BAD),  # info bits
        (ua.StatusCodes.GoodClamped, "GoodClamped", Quality.GOOD),
    ],
)
def test_status_codes_map_to_quality_by_severity(code: int, name: str, quality: Quality) -> None:
    assert status_name(code) == name
    assert status_quality(code) is quality


def test_timestamps_fall_back_from_source_to_server_to_local() -> None:
    node = ua.NodeId("X", 2)
    source = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    server = datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC)
    variant = ua.Variant(1.0, ua.VariantType.Double)

    both = result_from_data_value(
        node, ua.DataValue(variant, SourceTimestamp=source, ServerTimestamp=server), 5
    )
    assert (both.ts_ms, both.ts_origin) == (1704164645678, "source")
    only_server = result_from_data_value(node, ua.DataValue(variant, ServerTimestamp=server), 5)
    assert (only_server.ts_ms, only_server.ts_origin) == (1704164646000, "server")
    neither = result_from_data_value(node, ua.DataValue(variant), 5)
    assert (neither.ts_ms, neither.ts_origin) == (5, "local")
    assert epoch_ms(datetime(1601, 1, 1, tzinfo=UTC)) is None  # OPC UA's "no time"


def test_a_bad_status_drops_the_value_and_gives_a_reason() -> None:
    bad = ua.DataValue(
        ua.Variant(3.0, ua.VariantType.Double),
        StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure),
    )
    result = result_from_data_value(ua.NodeId("X", 2), bad, 1)
    assert result.value is None
    assert result.quality is Quality.BAD
    assert result.reason == "opcua:BadSensorFailure"


@pytest.mark.parametrize(
    ("value", "variant_type", "expected"),
    [
        (12.6, ua.VariantType.Int16, 13),
        (7, ua.VariantType.Double, 7.0),
        (1, ua.VariantType.Boolean, True),
        ("R-1", ua.VariantType.String, "R-1"),
        (65535, ua.VariantType.UInt16, 65535),
    ],
)
def test_values_are_coerced_for_their_variant_type(
    value: object, variant_type: ua.VariantType, expected: object
) -> None:
    coerced = coerce_for_variant(value, variant_type)
    assert coerced == expected
    assert type(coerced) is type(expected)


@pytest.mark.parametrize(
    ("value", "variant_type"),
    [
        (40000, ua.VariantType.Int16),
        (-1, ua.VariantType.UInt32),
        (float("nan"), ua.VariantType.Int32),
        ("12", ua.VariantType.Double),
        (True, ua.VariantType.Double),
        (2, ua.VariantType.Boolean),
        (5, ua.VariantType.String),
    ],
)
def test_values_that_do_not_fit_raise_codec_error(
    value: object, variant_type: ua.VariantType
) -> None:
    with pytest.raises(CodecError):
        coerce_for_variant(value, variant_type)
