"""Register codec: known vectors per type and order, scaling, errors, and round-trip properties."""

from __future__ import annotations

import math
import struct
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import CodecError
from protocols.modbus.codec import (
    WORD_ORDERS,
    decode_many,
    decode_registers,
    decode_tag,
    encode_registers,
    encode_tag,
    set_bit,
)
from protocols.profile import Tag

# 123456.0 as float32 is 0x47F12000: the reference vector of DESIGN.md, in all four orders.
FLOAT_123456 = {
    "ABCD": [0x47F1, 0x2000],
    "CDAB": [0x2000, 0x47F1],
    "BADC": [0xF147, 0x0020],
    "DCBA": [0x0020, 0xF147],
}


@pytest.mark.parametrize(("order", "registers"), FLOAT_123456.items())
def test_float32_reference_vector_in_every_order(order, registers):
    assert decode_registers(registers, "float32", order) == 123456.0
    assert encode_registers(123456.0, "float32", order) == registers


@pytest.mark.parametrize(
    ("data_type", "order", "registers", "value"),
    [
        ("int16", "ABCD", [0xFFFE], -2),
        ("int16", "DCBA", [0xFFFE], -2),  # 16-bit values ignore the word order
        ("uint16", "ABCD", [0xFFFE], 65534),
        ("int32", "ABCD", [0xFFFF, 0xFFFF], -1),
        ("int32", "ABCD", [0x0001, 0xE240], 123456),
        ("int32", "CDAB", [0xE240, 0x0001], 123456),
        ("uint32", "ABCD", [0x1234, 0x5678], 0x12345678),
        ("uint32", "CDAB", [0x5678, 0x1234], 0x12345678),
        ("uint32", "BADC", [0x3412, 0x7856], 0x12345678),
        ("uint32", "DCBA", [0x7856, 0x3412], 0x12345678),
        ("uint64", "ABCD", [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
        ("uint64", "CDAB", [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
        ("uint64", "BADC", [0x0201, 0x0403, 0x0605, 0x0807], 0x0102030405060708),
        ("uint64", "DCBA", [0x0807, 0x0605, 0x0403, 0x0201], 0x0102030405060708),
        ("int64", "ABCD", [0xFFFF, 0xFFFF, 0xFFFF, 0xFF85], -123),
        ("float64", "ABCD", [0x4093, 0x4A45, 0x6D5C, 0xFAAD], 1234.5678),
        ("float64", "DCBA", [0xADFA, 0x5C6D, 0x454A, 0x9340], 1234.5678),
        ("float32", "ABCD", [0xBF80, 0x0000], -1.0),
        ("bitfield", "ABCD", [0x8001], 0x8001),
    ],
)
def test_known_vectors(data_type, order, registers, value):
    assert decode_registers(registers, data_type, order) == value
    assert encode_registers(value, data_type, order) == registers


def test_bits_of_a_register():
    word = 0b1000_0000_0010_0100
    assert decode_registers([word], "bool", bit=2) is True
    assert decode_registers([word], "bool", bit=3) is False
    assert decode_registers([word], "bitfield", bit=15) is True
    assert decode_registers([word], "bitfield", bit=0) is False
    assert set_bit(word, 0, True) == word | 1
    assert set_bit(word, 15, False) == 0b0000_0000_0010_0100
    assert set_bit(word, 2, True) == word


def test_coil_values_decode_as_bools():
    assert decode_registers([True], "bool") is True
    assert decode_registers([0], "bool") is False
    assert encode_registers(True, "bool") == [1]


def test_string_high_byte_first_trailing_nuls_and_spaces_dropped():
    registers = [0x4142, 0x4344, 0x4520, 0x0000]  # "ABCDE \0\0"
    assert decode_registers(registers, "string") == "ABCDE"
    assert encode_registers("ABCDE", "string", length=4) == [0x4142, 0x4344, 0x4500, 0x0000]
    assert encode_registers("ABC", "string") == [0x4142, 0x4300]


@pytest.mark.parametrize(
    ("registers", "data_type", "message"),
    [
        ([1], "float32", "float32 needs 2 registers, got 1"),
        ([1, 2, 3], "uint32", "uint32 needs 2 registers, got 3"),
        ([1, 2], "int16", "int16 needs 1 register, got 2"),
        ([1], "decimal", "unknown Modbus data type 'decimal'"),
        ([70000], "uint16", "not a 16-bit value"),
        ([0xC3A9], "string", "non-ASCII"),
        ([], "string", "at least 1 register"),
    ],
)
def test_decode_errors_say_what_is_wrong(registers, data_type, message):
    with pytest.raises(CodecError, match=message):
        decode_registers(registers, data_type)


@pytest.mark.parametrize(
    ("value", "data_type", "kwargs", "message"),
    [
        (70000, "uint16", {}, "out of range for uint16"),
        (-1, "uint32", {}, "out of range for uint32"),
        (1.5, "int16", {}, "whole number"),
        ("12", "int16", {}, "needs a number"),
        (True, "int32", {}, "needs a number"),
        (1e39, "float32", {}, "too large for float32"),
        ("TOO LONG", "string", {"length": 2}, "does not fit 2 registers"),
        ("é", "string", {}, "non-ASCII"),
        (2, "bool", {}, "True/False"),
    ],
)
def test_encode_errors_say_what_is_wrong(value, data_type, kwargs, message):
    with pytest.raises(CodecError, match=message):
        encode_registers(value, data_type, **kwargs)


def test_unknown_order_is_an_error():
    with pytest.raises(CodecError, match="unknown word order"):
        decode_registers([1, 2], "uint32", "BACD")  # type: ignore[arg-type]


def _tag(**fields) -> Tag:
    return Tag.model_validate({"name": "t", "table": "holding", "address": 0, **fields})


def test_decode_tag_scales_to_float_and_leaves_unscaled_values_alone():
    temperature = _tag(type="int16", scale=0.1, offset=-40.0)
    value = decode_tag(temperature, [0x0384], "ABCD")  # 900 raw
    assert isinstance(value, float)
    assert value == pytest.approx(50.0)
    counter = _tag(type="uint32")
    assert decode_tag(counter, [0x0001, 0x0000], "ABCD") == 65536
    assert isinstance(decode_tag(counter, [0, 1], "ABCD"), int)
    flag = _tag(type="bool", bit=3)
    assert decode_tag(flag, [0b1000], "ABCD") is True


def test_encode_tag_inverts_scaling_and_rounds():
    temperature = _tag(type="int16", scale=0.1, offset=-40.0)
    assert encode_tag(temperature, 50.0, "ABCD") == [900]
    assert encode_tag(temperature, 50.04, "ABCD") == [900]
    assert encode_tag(temperature, -50.0, "ABCD") == [(-100) & 0xFFFF]
    pressure = _tag(type="float32", scale=2.0)
    assert encode_tag(pressure, 246912.0, "CDAB") == FLOAT_123456["CDAB"]


def test_encode_tag_out_of_range_is_an_error_not_a_clamp():
    temperature = _tag(type="int16", scale=0.1)
    with pytest.raises(CodecError, match=r"tag t: value 4000\.0: 40000 is out of range for int16"):
        encode_tag(temperature, 4000.0, "ABCD")
    with pytest.raises(CodecError, match="not a finite number"):
        encode_tag(temperature, math.inf, "ABCD")


def test_encode_tag_refuses_a_bit_of_a_register():
    with pytest.raises(CodecError, match="set_bit"):
        encode_tag(_tag(type="bool", bit=4), True, "ABCD")


def test_decode_tag_error_names_the_tag():
    with pytest.raises(CodecError, match="tag t: float32 needs 2 registers"):
        decode_tag(_tag(type="float32"), [1], "ABCD")


@pytest.mark.parametrize("order", WORD_ORDERS)
def test_decode_many_matches_the_scalar_path(order):
    values = [123456.0, -1.5, 0.0, 3.25]
    registers = [r for v in values for r in encode_registers(v, "float32", order)]
    decoded = decode_many(registers, "float32", order)
    assert decoded.dtype == np.float32
    assert decoded.tolist() == values
    wide = [r for v in (1, -2, 2**40) for r in encode_registers(v, "int64", order)]
    assert decode_many(wide, "int64", order).tolist() == [1, -2, 2**40]


def test_decode_many_needs_whole_values():
    with pytest.raises(CodecError, match="not a whole number of float32"):
        decode_many([1, 2, 3], "float32")


# --- properties: encode → decode returns the value, for every type and order ------------------

_INT_BOUNDS = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "bitfield": (0, 2**16 - 1),
}
orders = st.sampled_from(WORD_ORDERS)


@given(data=st.data(), data_type=st.sampled_from(sorted(_INT_BOUNDS)), order=orders)
def test_integers_round_trip(data, data_type, order):
    low, high = _INT_BOUNDS[data_type]
    value = data.draw(st.integers(low, high))
    assert decode_registers(encode_registers(value, data_type, order), data_type, order) == value


@given(value=st.floats(width=32, allow_nan=False), order=orders)
def test_float32_round_trips(value, order):
    assert decode_registers(encode_registers(value, "float32", order), "float32", order) == value


@given(value=st.floats(allow_nan=False), order=orders)
def test_float64_round_trips(value, order):
    assert decode_registers(encode_registers(value, "float64", order), "float64", order) == value


@given(order=orders)
def test_nan_round_trips_as_nan(order):
    for data_type in ("float32", "float64"):
        decoded = decode_registers(encode_registers(math.nan, data_type, order), data_type, order)
        assert isinstance(decoded, float)
        assert math.isnan(decoded)


@given(value=st.booleans(), order=orders)
def test_bool_round_trips(value, order):
    assert decode_registers(encode_registers(value, "bool", order), "bool", order) is value


@given(word=st.integers(0, 0xFFFF), bit=st.integers(0, 15), value=st.booleans())
def test_set_bit_changes_that_bit_only(word, bit, value):
    new_word = set_bit(word, bit, value)
    assert decode_registers([new_word], "bool", bit=bit) is value
    assert new_word & ~(1 << bit) == word & ~(1 << bit)


@given(
    text=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    spare=st.integers(0, 3),
    order=orders,
)
def test_strings_round_trip(text, spare, order):
    length = max(1, (len(text) + 1) // 2) + spare
    registers = encode_registers(text, "string", order, length=length)
    assert len(registers) == length
    assert decode_registers(registers, "string", order) == text


@given(
    raw=st.integers(-(2**15), 2**15 - 1),
    scale=st.sampled_from([0.1, 0.01, 2.0, 10.0, -0.5]),
    offset=st.sampled_from([0.0, -40.0, 273.15]),
    order=orders,
)
def test_scaled_tags_round_trip(raw, scale, offset, order):
    tag = _tag(type="int16", scale=scale, offset=offset)
    value = decode_tag(tag, [raw & 0xFFFF], order)
    assert encode_tag(tag, value, order) == [raw & 0xFFFF]


@given(registers=st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2), order=orders)
def test_decoding_any_32_bit_registers_and_encoding_back_is_identity(registers, order):
    value = decode_registers(registers, "uint32", order)
    assert encode_registers(value, "uint32", order) == registers
    as_float = struct.unpack(">f", struct.pack(">I", value))[0]
    assert decode_registers(registers, "float32", order) == as_float or math.isnan(as_float)


def test_package_exports_what_it_lists():
    import protocols.modbus as package

    public = {
        name
        for name, member in vars(package).items()
        if not name.startswith("_") and not isinstance(member, types.ModuleType)
    }
    assert sorted(package.__all__) == sorted(public)
