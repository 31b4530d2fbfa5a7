"""Block planning: merge a profile's tags into as few Modbus read requests as the device allows.

Tags are grouped per table (holding, input, coil, discrete), sorted by address, and merged while
the next tag starts at most ``max_gap`` unmapped registers after the current block and the
block stays within the per-read limit (``max_registers_per_read``, ``max_bits_per_read``; Modbus
itself allows 125 registers and 2000 bits). A tag never straddles two blocks; tags that share a
register (bits of one word) share a block. ``split_block`` halves a block by tags, so that a
driver can isolate the register a PLC rejects.

Addresses in a profile are zero-based PDU addresses unless the profile says ``one_based``
(register 1 is PDU address 0). A profile that cannot be planned raises ``ProfileError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocols.errors import ProfileError
from protocols.profile import ModbusOptions, Table, Tag, Workarounds

__all__ = [
    "MAX_BITS_PER_READ",
    "MAX_REGISTERS_PER_READ",
    "Block",
    "pdu_address",
    "plan_blocks",
    "split_block",
]

MAX_REGISTERS_PER_READ = 125  # FC03 / FC04
MAX_BITS_PER_READ = 2000  # FC01 / FC02
_TABLE_ORDER: tuple[Table, ...] = ("holding", "input", "coil", "discrete")
_PLAN_SOURCE = "modbus block plan"


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers (or bits) of ``table`` from PDU address ``start``.

    ``address_base`` is what is subtracted from a tag's profile address to get its PDU address
    (1 for one-based profiles), so the block can locate its tags without the profile.
    """

    table: Table
    start: int
    count: int
    tags: tuple[Tag, ...]
    address_base: int = 0

    @property
    def end(self) -> int:
        """The PDU address just past the block."""
        return self.start + self.count

    @property
    def is_bits(self) -> bool:
        return self.table in ("coil", "discrete")

    def offset(self, tag: Tag) -> int:
        """Where ``tag`` starts inside the block's registers (or bits)."""
        return _require_address(tag) - self.address_base - self.start

    def slice(self, tag: Tag, values: Sequence[int]) -> Sequence[int]:
        """The registers (or bits) of ``tag`` among the block's ``values``."""
        first = self.offset(tag)
        return values[first : first + tag.register_count]


def _require_address(tag: Tag) -> int:
    if tag.table is None or tag.address is None:
        raise ProfileError(
            _PLAN_SOURCE, [(None, f"tags.{tag.name}", "a Modbus tag needs 'table' and 'address'")]
        )
    return tag.address


def pdu_address(tag: Tag, options: ModbusOptions) -> int:
    """The zero-based PDU address of a tag's first register (or bit)."""
    address = _require_address(tag)
    if options.addressing == "one_based":
        if address == 0:
            raise ProfileError(
                _PLAN_SOURCE,
                [(None, f"tags.{tag.name}.address",
                  "address 0 does not exist in a one_based profile (the first register is 1)")],
            )  # fmt: skip
        return address - 1
    return address


def _limit(table: Table, options: ModbusOptions) -> int:
    if table in ("coil", "discrete"):
        return min(options.max_bits_per_read, MAX_BITS_PER_READ)
    return min(options.max_registers_per_read, MAX_REGISTERS_PER_READ)


def plan_blocks(
    tags: Sequence[Tag],
    options: ModbusOptions,
    workarounds: Workarounds | None = None,
) -> list[Block]:
    """Plan the read requests that cover every tag exactly once.

    Blocks come table by table (holding, input, coil, discrete), by ascending address.
    ``workarounds.single_register_reads`` merges nothing: one block per register, except where
    tags overlap (a float32 spans two registers; the driver then reads it register by register).
    """
    single = workarounds is not None and workarounds.single_register_reads
    max_gap = -1 if single else options.max_gap
    base = 1 if options.addressing == "one_based" else 0
    by_table: dict[Table, list[tuple[int, Tag]]] = {}
    problems: list[tuple[int | None, str, str]] = []
    for tag in tags:
        start = pdu_address(tag, options)
        assert tag.table is not None  # checked by pdu_address
        limit = _limit(tag.table, options)
        if tag.register_count > limit:
            problems.append(
                (None, f"tags.{tag.name}",
                 f"spans {tag.register_count} registers, more than one read may fetch ({limit})")
            )  # fmt: skip
        elif start + tag.register_count > 65536:
            problems.append((None, f"tags.{tag.name}.address", "runs past PDU address 65535"))
        by_table.setdefault(tag.table, []).append((start, tag))
    if problems:
        raise ProfileError(_PLAN_SOURCE, problems)

    blocks: list[Block] = []
    for table in _TABLE_ORDER:
        entries = sorted(by_table.get(table, []), key=lambda e: (e[0], e[1].register_count))
        limit = _limit(table, options)
        current: list[Tag] = []
        block_start = block_end = 0
        for start, tag in entries:
            end = start + tag.register_count
            gap = start - block_end
            if current and gap <= max_gap and max(end, block_end) - block_start <= limit:
                current.append(tag)
                block_end = max(block_end, end)
                continue
            if current:
                blocks.append(
                    Block(table, block_start, block_end - block_start, tuple(current), base)
                )
            current, block_start, block_end = [tag], start, end
        if current:
            blocks.append(Block(table, block_start, block_end - block_start, tuple(current), base))
    return blocks


def split_block(block: Block) -> tuple[Block, Block] | None:
    """Halve a block by its tags (in address order); ``None`` if it holds a single tag.

    Each half spans just its own tags, so the unmapped gap between them is no longer read.
    """
    if len(block.tags) < 2:
        return None
    ordered = sorted(block.tags, key=lambda t: (block.offset(t), t.register_count))
    middle = len(ordered) // 2
    return _spanning(block, ordered[:middle]), _spanning(block, ordered[middle:])


def _spanning(block: Block, tags: Sequence[Tag]) -> Block:
    start = min(block.start + block.offset(t) for t in tags)
    end = max(block.start + block.offset(t) + t.register_count for t in tags)
    return Block(block.table, start, end - start, tuple(tags), block.address_base)
