"""Modbus: register codec, block planner and an async TCP link over pymodbus.

``codec`` and ``planner`` are pure (no I/O, no pymodbus); ``client`` is the only module that
talks to a device. Import the link from ``protocols.modbus.client`` so that code which only
decodes registers (the cloud, tests, tools) does not need pymodbus installed.
"""

from protocols.modbus.codec import (
    decode_many,
    decode_registers,
    decode_tag,
    encode_registers,
    encode_tag,
    set_bit,
)
from protocols.modbus.planner import Block, pdu_address, plan_blocks, split_block

__all__ = [
    "Block",
    "decode_many",
    "decode_registers",
    "decode_tag",
    "encode_registers",
    "encode_tag",
    "pdu_address",
    "plan_blocks",
    "set_bit",
    "split_block",
]
