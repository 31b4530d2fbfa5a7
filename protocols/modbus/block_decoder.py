"""Per-block decoding: turn one read's registers into every tag's sample in a single pass.

``decode_tag`` checks and packs each tag on its own; a poll of many tags spends most of its time
there. A ``BlockDecoder`` is built once per planned (or split) block: for every plain number tag
(int16 … float64, no bit, any of the four word orders) it keeps a precompiled ``struct.Struct``
and the tag's byte offset. Each read then packs the block's registers once, forward and (when a
tag needs it) word-reversed, and unpacks each number in place:

    ABCD  big-endian at the tag's offset in the forward bytes
    DCBA  little-endian at the same offset (the wire bytes are the value's bytes reversed)
    CDAB  big-endian in the word-reversed bytes (the tag's words in reverse order)
    BADC  little-endian in the word-reversed bytes

Strings, bools, bitfields, bit tags, and any read whose registers are not all 16-bit values or
do not cover the block go through ``decode_tag`` unchanged, so the results (values, types, bad
quality with ``REASON_DECODE`` on a codec error, NaN through ``Sample.checked``) are the same as
decoding each tag with ``decode_tag``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocols.errors import CodecError
from protocols.modbus.codec import WORD_ORDERS, decode_tag
from protocols.modbus.planner import Block
from protocols.profile import REGISTER_WIDTH, Tag, WordOrder
from protocols.quality import REASON_DECODE, Quality
from protocols.wire import Sample, Value

__all__ = ["BlockDecoder"]

_FORMAT: dict[str, str] = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "q", "uint64": "Q", "float32": "f", "float64": "d",
}  # fmt: skip
# order -> (byte order for struct, whether the tag is read from the word-reversed bytes)
_LAYOUT: dict[str, tuple[str, bool]] = {
    "ABCD": (">", False),
    "DCBA": ("<", False),
    "CDAB": (">", True),
    "BADC": ("<", True),
}


@dataclass(frozen=True, slots=True)
class _Fast:
    """A number tag unpacked straight from the block's bytes."""

    tag: Tag
    order: WordOrder
    unpack_from: Callable[[bytes, int], tuple[int | float]]
    start: int  # first register inside the block
    end: int  # register just past the tag
    reversed_words: bool
    scaled: bool
    scale: float
    offset: float


@dataclass(frozen=True, slots=True)
class _Slow:
    """A tag decoded by ``decode_tag`` from its slice of the block."""

    tag: Tag
    start: int
    order: WordOrder


class BlockDecoder:
    """Decodes one block's registers into a sample per tag, like ``decode_tag`` for each.

    ``order_of`` gives a tag's word order (``Profile.word_order``). Bit blocks (coils, discrete
    inputs) and tags that are not plain numbers use ``decode_tag``.
    """

    __slots__ = ("_count", "_entries", "_has_fast", "_needs_reversed", "_pack", "block")

    def __init__(self, block: Block, order_of: Callable[[Tag], WordOrder]) -> None:
        self.block = block
        self._count = block.count
        self._pack = struct.Struct(f">{block.count}H").pack
        entries: list[_Fast | _Slow] = []
        for tag in block.tags:
            start = block.offset(tag)
            order = order_of(tag)
            entries.append(_entry(tag, start, order, block))
        self._entries = tuple(entries)
        self._has_fast = any(isinstance(e, _Fast) for e in entries)
        self._needs_reversed = any(isinstance(e, _Fast) and e.reversed_words for e in entries)

    def samples(self, values: Sequence[int] | Sequence[bool], ts_ms: int) -> list[Sample]:
        """A sample per tag of the block, in the block's tag order, from one read's values."""
        count = len(values)
        forward = backward = b""
        fast = self._has_fast and count == self._count
        if fast:
            try:
                forward = self._pack(*values)
                if self._needs_reversed:
                    backward = self._pack(*reversed(values))
            except struct.error:
                fast = False  # a value outside 0..65535: decode_tag names the register
        result: list[Sample] = []
        for entry in self._entries:
            if fast and isinstance(entry, _Fast):
                if entry.reversed_words:
                    raw = entry.unpack_from(backward, 2 * (count - entry.end))[0]
                else:
                    raw = entry.unpack_from(forward, 2 * entry.start)[0]
                value: Value = float(raw) * entry.scale + entry.offset if entry.scaled else raw
                result.append(Sample.checked(entry.tag.name, ts_ms, value))
            else:
                result.append(_slow_sample(entry, values, ts_ms))
        return result


def _entry(tag: Tag, start: int, order: WordOrder, block: Block) -> _Fast | _Slow:
    code = _FORMAT.get(tag.type)
    if (
        block.is_bits
        or code is None
        or tag.bit is not None
        or order not in WORD_ORDERS
        or start < 0
        or start + REGISTER_WIDTH[tag.type] > block.count
    ):
        return _Slow(tag, start, order)
    width = REGISTER_WIDTH[tag.type]
    byte_order, reversed_words = _LAYOUT[order] if width > 1 else (">", False)
    scaled = tag.scale != 1.0 or tag.offset != 0.0
    return _Fast(
        tag=tag,
        order=order,
        unpack_from=struct.Struct(byte_order + code).unpack_from,
        start=start,
        end=start + width,
        reversed_words=reversed_words,
        scaled=scaled,
        scale=tag.scale,
        offset=tag.offset,
    )


def _slow_sample(
    entry: _Fast | _Slow, values: Sequence[int] | Sequence[bool], ts_ms: int
) -> Sample:
    tag = entry.tag
    span = values[entry.start : entry.start + tag.register_count]
    try:
        value = decode_tag(tag, span, entry.order)
    except CodecError:
        return Sample(tag.name, ts_ms, None, Quality.BAD, REASON_DECODE)
    return Sample.checked(tag.name, ts_ms, value)
