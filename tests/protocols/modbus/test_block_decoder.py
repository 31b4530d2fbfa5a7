"""Block decoder: every tag decodes exactly as ``decode_tag`` would, for any tags and registers."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import CodecError
from protocols.modbus.block_decoder import BlockDecoder
from protocols.modbus.codec import WORD_ORDERS, decode_tag
from protocols.modbus.planner import Block
from protocols.profile import REGISTER_WIDTH, Tag, WordOrder
from protocols.quality import REASON_DECODE, Quality
from protocols.wire import Sample

_NUMBERS = ("int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")
_TS = 1_700_000_000_000


def _reference(block: Block, values: list[int], default: WordOrder) -> list[Sample]:
    """What the driver produced before the block decoder: ``decode_tag`` tag by tag."""
    samples = []
    for tag in block.tags:
        try:
            value = decode_tag(tag, block.slice(tag, values), tag.order or default)
        except CodecError:
            samples.append(Sample(tag.name, _TS, None, Quality.BAD, REASON_DECODE))
            continue
        samples.append(Sample.checked(tag.name, _TS, value))
    return samples


def _key(sample: Sample) -> tuple[object, ...]:
    # repr tells -0.0 from 0.0 and keeps NaN comparable; type tells 1 from 1.0 and True.
    return (sample.metric, sample.ts_ms, type(sample.value), repr(sample.value),
            sample.quality, sample.reason)  # fmt: skip


@st.composite
def _tags(draw: st.DrawFn, index: int, base: int, span: int) -> Tag:
    data_type = draw(st.sampled_from((*_NUMBERS, *_NUMBERS, "string", "bool", "bitfield")))
    fields: dict[str, object] = {"name": f"t{index}", "type": data_type, "table": "holding"}
    width = REGISTER_WIDTH.get(data_type, 1)
    if data_type == "string":
        width = draw(st.integers(1, 4))
        fields["length"] = width
    fields["address"] = base + draw(st.integers(0, max(0, span - width)))
    fields["order"] = draw(st.none() | st.sampled_from(WORD_ORDERS))
    if data_type == "bool" or (data_type == "bitfield" and draw(st.booleans())):
        fields["bit"] = draw(st.integers(0, 15))
    if data_type in _NUMBERS and draw(st.booleans()):
        fields["scale"] = draw(st.sampled_from((1.0, 0.1, -2.5, 1e-3, 1e300)))
        fields["offset"] = draw(st.sampled_from((0.0, -40.0, 273.15, -0.0)))
    return Tag.model_validate(fields)


@st.composite
def _blocks(draw: st.DrawFn) -> tuple[Block, list[int], WordOrder]:
    base = draw(st.sampled_from((0, 1)))
    count = draw(st.integers(4, 24))
    start = draw(st.integers(0, 100))
    tags = tuple(draw(_tags(i, start + base, count)) for i in range(draw(st.integers(1, 10))))
    block = Block("holding", start, count, tags, address_base=base)
    register = st.integers(0, 0xFFFF)
    # Mostly good words; sometimes NaN/inf patterns, a value outside 16 bits, or a short read.
    word = st.one_of(register, register, register, st.sampled_from((0x7FC0, 0x7F80, 0xFF80, 0)))
    values = draw(st.lists(word, min_size=count, max_size=count))
    if draw(st.integers(0, 9)) == 0:
        values[draw(st.integers(0, count - 1))] = draw(st.sampled_from((-1, 0x10000)))
    if draw(st.integers(0, 9)) == 0:
        values = values[: draw(st.integers(0, count - 1))]
    return block, values, draw(st.sampled_from(WORD_ORDERS))


@settings(max_examples=400, deadline=None)
@given(case=_blocks())
def test_block_decoder_equals_decode_tag_for_every_tag(case):
    block, values, default = case
    decoder = BlockDecoder(block, lambda tag: tag.order or default)
    got = decoder.samples(values, _TS)
    assert [_key(s) for s in got] == [_key(s) for s in _reference(block, values, default)]


def test_known_float32_in_every_order_and_scaling():
    # 123456.0 as float32 in all four orders, back to back, and a scaled int16 after them.
    registers = [0x47F1, 0x2000, 0x2000, 0x47F1, 0xF147, 0x0020, 0x0020, 0xF147, 0xFFFF]
    floats = [
        Tag(name=f"f_{order.lower()}", type="float32", table="holding", address=2 * i, order=order)
        for i, order in enumerate(WORD_ORDERS)
    ]
    scaled = Tag(name="t", type="int16", table="holding", address=8, scale=0.5, offset=10.0)
    block = Block("holding", 0, 9, (*floats, scaled))
    samples = BlockDecoder(block, lambda tag: tag.order or "ABCD").samples(registers, _TS)
    assert [s.value for s in samples] == [123456.0] * 4 + [9.5]
    assert all(s.quality is Quality.GOOD for s in samples)


def test_nan_and_bad_register_match_the_tag_path():
    nan_tag = Tag(name="nan", type="float32", table="holding", address=0)
    int_tag = Tag(name="count", type="uint16", table="holding", address=2)
    block = Block("holding", 0, 3, (nan_tag, int_tag))
    decoder = BlockDecoder(block, lambda tag: "ABCD")
    nan, count = decoder.samples([0x7FC0, 0, 7], _TS)
    assert nan.value is None
    assert nan.quality is Quality.BAD
    assert type(count.value) is int
    assert count.value == 7
    bad = decoder.samples([0x7FC0, 0, 0x10000], _TS)
    assert bad[1].quality is Quality.BAD
    assert bad[1].reason == REASON_DECODE
    assert math.isnan(decode_tag(nan_tag, [0x7FC0, 0], "ABCD"))  # type: ignore[arg-type]


def test_coil_block_uses_the_tag_path():
    tags = tuple(Tag(name=f"c{i}", type="bool", table="coil", address=i) for i in range(3))
    block = Block("coil", 0, 3, tags)
    samples = BlockDecoder(block, lambda tag: "ABCD").samples([True, False, True], _TS)
    assert [s.value for s in samples] == [True, False, True]
