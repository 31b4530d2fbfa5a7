"""Block planner: merging rules, limits, addressing, splitting, and coverage properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProfileError
from protocols.modbus.planner import Block, pdu_address, plan_blocks, split_block
from protocols.profile import REGISTER_WIDTH, ModbusOptions, Tag, Workarounds


def _tag(name: str, address: int, type_: str = "uint16", table: str = "holding", **fields) -> Tag:
    return Tag.model_validate(
        {"name": name, "table": table, "address": address, "type": type_, **fields}
    )


def _spans(blocks: list[Block]) -> list[tuple[str, int, int, list[str]]]:
    return [(b.table, b.start, b.count, [t.name for t in b.tags]) for b in blocks]


def test_contiguous_and_near_registers_merge_far_ones_do_not():
    tags = [
        _tag("a", 0, "float32"),
        _tag("b", 2),
        _tag("c", 8),  # gap of 5 after b
        _tag("d", 30),  # gap of 21
    ]
    blocks = plan_blocks(tags, ModbusOptions(max_gap=5))
    assert _spans(blocks) == [("holding", 0, 9, ["a", "b", "c"]), ("holding", 30, 1, ["d"])]
    assert _spans(plan_blocks(tags, ModbusOptions(max_gap=4))) == [
        ("holding", 0, 3, ["a", "b"]),
        ("holding", 8, 1, ["c"]),
        ("holding", 30, 1, ["d"]),
    ]


def test_tables_are_planned_apart_and_bits_of_a_word_share_a_block():
    tags = [
        _tag("run", 10, "bool", bit=0),
        _tag("fault", 10, "bool", bit=1),
        _tag("speed", 10, "uint16", table="input"),
        _tag("lamp", 10, "bool", table="coil"),
        _tag("door", 3, "bool", table="discrete"),
    ]
    blocks = plan_blocks(tags, ModbusOptions())
    assert _spans(blocks) == [
        ("holding", 10, 1, ["run", "fault"]),
        ("input", 10, 1, ["speed"]),
        ("coil", 10, 1, ["lamp"]),
        ("discrete", 3, 1, ["door"]),
    ]


def test_register_limit_is_never_exceeded_and_no_tag_straddles():
    tags = [_tag(f"t{i}", 2 * i, "float32") for i in range(10)]  # registers 0..19
    blocks = plan_blocks(tags, ModbusOptions(max_registers_per_read=7))
    assert [(b.start, b.count) for b in blocks] == [(0, 6), (6, 6), (12, 6), (18, 2)]


def test_bit_tables_use_the_bit_limit():
    tags = [_tag(f"c{i}", i, "bool", table="coil") for i in range(2500)]
    blocks = plan_blocks(tags, ModbusOptions())
    assert [(b.start, b.count) for b in blocks] == [(0, 2000), (2000, 500)]


def test_one_based_addresses_are_shifted_and_zero_is_refused():
    options = ModbusOptions(addressing="one_based")
    blocks = plan_blocks([_tag("a", 1, "float32"), _tag("b", 3)], options)
    assert _spans(blocks) == [("holding", 0, 3, ["a", "b"])]
    assert blocks[0].offset(blocks[0].tags[1]) == 2
    assert pdu_address(_tag("b", 3), options) == 2
    with pytest.raises(ProfileError, match=r"tags\.z\.address: address 0 does not exist"):
        plan_blocks([_tag("z", 0)], options)


def test_a_tag_wider_than_one_read_is_a_profile_error():
    tags = [_tag("recipe", 0, "string", length=20)]
    with pytest.raises(ProfileError, match="spans 20 registers, more than one read may fetch"):
        plan_blocks(tags, ModbusOptions(max_registers_per_read=16))


def test_single_register_reads_merge_nothing_but_overlapping_tags():
    tags = [
        _tag("a", 0),
        _tag("b", 1),
        _tag("c", 2, "float32"),
        _tag("x", 5, "bool", bit=0),
        _tag("y", 5, "bool", bit=9),
    ]
    blocks = plan_blocks(tags, ModbusOptions(), Workarounds(single_register_reads=True))
    assert _spans(blocks) == [
        ("holding", 0, 1, ["a"]),
        ("holding", 1, 1, ["b"]),
        ("holding", 2, 2, ["c"]),
        ("holding", 5, 1, ["x", "y"]),
    ]


def test_split_block_halves_by_tags_and_drops_the_gap_between():
    tags = [_tag("a", 0), _tag("b", 1, "float32"), _tag("c", 6), _tag("d", 7)]
    (block,) = plan_blocks(tags, ModbusOptions(max_gap=8))
    halves = split_block(block)
    assert halves is not None
    assert _spans(list(halves)) == [("holding", 0, 3, ["a", "b"]), ("holding", 6, 2, ["c", "d"])]
    single = split_block(halves[0])
    assert single is not None
    assert split_block(single[0]) is None


def test_split_block_keeps_one_based_offsets():
    (block,) = plan_blocks(
        [_tag("a", 1), _tag("b", 5)], ModbusOptions(addressing="one_based", max_gap=8)
    )
    halves = split_block(block)
    assert halves is not None
    left, right = halves
    assert (left.start, right.start) == (0, 4)
    assert right.offset(right.tags[0]) == 0


# --- properties --------------------------------------------------------------------------------


@st.composite
def tag_lists(draw: st.DrawFn) -> list[Tag]:
    count = draw(st.integers(1, 40))
    tags = []
    for i in range(count):
        table = draw(st.sampled_from(["holding", "input", "coil", "discrete"]))
        address = draw(st.integers(0, 400))
        if table in ("coil", "discrete"):
            tags.append(_tag(f"t{i}", address, "bool", table=table))
            continue
        type_ = draw(st.sampled_from([*sorted(REGISTER_WIDTH), "string"]))
        fields: dict[str, object] = {}
        if type_ == "bool":
            fields["bit"] = draw(st.integers(0, 15))
        if type_ == "string":
            fields["length"] = draw(st.integers(1, 10))
        tags.append(_tag(f"t{i}", address, type_, table=table, **fields))
    return tags


options_strategy = st.builds(
    ModbusOptions,
    addressing=st.sampled_from(["zero_based", "one_based"]),
    max_gap=st.integers(0, 20),
    max_registers_per_read=st.integers(10, 125),
    max_bits_per_read=st.integers(1, 2000),
)


def _check_plan(tags: list[Tag], options: ModbusOptions, blocks: list[Block]) -> None:
    covered = [t.name for b in blocks for t in b.tags]
    assert sorted(covered) == sorted(t.name for t in tags), "every tag exactly once"
    for block in blocks:
        limit = options.max_bits_per_read if block.is_bits else options.max_registers_per_read
        assert 1 <= block.count <= limit
        spans = []
        for tag in block.tags:
            assert tag.table == block.table
            first = pdu_address(tag, options)
            assert block.start <= first
            assert first + tag.register_count <= block.end, "a tag never straddles blocks"
            spans.append((first, first + tag.register_count))
        spans.sort()
        assert spans[0][0] == block.start
        assert max(end for _, end in spans) == block.end
        reach = spans[0][1]
        for start, end in spans[1:]:
            assert start - reach <= options.max_gap, "merged gaps stay within max_gap"
            reach = max(reach, end)


@settings(max_examples=200, deadline=None)
@given(tags=tag_lists(), options=options_strategy)
def test_plans_cover_every_tag_once_within_limits(tags, options):
    if options.addressing == "one_based":
        tags = [t.model_copy(update={"address": t.address + 1}) for t in tags]
    blocks = plan_blocks(tags, options)
    _check_plan(tags, options, blocks)


@settings(max_examples=100, deadline=None)
@given(tags=tag_lists(), options=options_strategy)
def test_splitting_keeps_every_tag_exactly_once(tags, options):
    if options.addressing == "one_based":
        tags = [t.model_copy(update={"address": t.address + 1}) for t in tags]
    pending = plan_blocks(tags, options)
    done: list[Block] = []
    while pending:  # split everything down to single tags
        block = pending.pop()
        halves = split_block(block)
        if halves is None:
            assert len(block.tags) == 1
            done.append(block)
            continue
        left, right = halves
        assert left.count <= block.count
        assert right.count <= block.count
        assert len(left.tags) + len(right.tags) == len(block.tags)
        pending.extend(halves)
    _check_plan(tags, options, done)
    assert all(b.count == b.tags[0].register_count for b in done)


@settings(max_examples=100, deadline=None)
@given(tags=tag_lists())
def test_single_register_reads_never_merge_separate_registers(tags):
    blocks = plan_blocks(tags, ModbusOptions(), Workarounds(single_register_reads=True))
    _check_plan(tags, ModbusOptions(max_gap=0), blocks)
    for block in blocks:
        spans = sorted((t.address, t.address + t.register_count) for t in block.tags)
        reach = spans[0][1]
        for start, end in spans[1:]:
            assert start < reach, "only overlapping tags share a block"
            reach = max(reach, end)
