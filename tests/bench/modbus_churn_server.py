"""A pymodbus TCP server for benchmarks whose float32 holding registers change on every read.

Run as a subprocess by the edge benchmarks, so that its CPU is not counted with the edge's::

    .venv/bin/python tests/bench/modbus_churn_server.py --registers 1000 [--servers K]

It serves unit 1 with ``--registers`` holding registers from PDU address 0 (float32 ABCD, two
registers a value). Before every read is answered, the read registers are overwritten from the
next of ``FRAMES`` precomputed images, and two consecutive images differ in every value, so a
client sees each value change from one read to the next. With ``--servers K`` it starts K
servers on K ports in one process (one event loop). Once all listen it prints one JSON line,
``{"ports": [...]}``, to stdout, and it serves until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import sys

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

FRAMES = 8


def float32_words(value: float) -> tuple[int, int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


def build_frames(registers: int) -> list[list[int]]:
    """FRAMES register images; value i of frame k is ``i + k / 8``, exact in float32."""
    frames = []
    for k in range(FRAMES):
        image: list[int] = []
        for i in range(registers // 2):
            image.extend(float32_words(float(i % 4096) + k / 8))
        image.extend([0] * (registers - len(image)))
        frames.append(image)
    return frames


class ChurningImage:
    """The ``action`` hook of a SimDevice: each read gets the next image for its address."""

    def __init__(self, frames: list[list[int]]) -> None:
        self.frames = frames
        self.reads: dict[int, int] = {}

    async def action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None or function_code not in (3, 4):
            return None
        n = self.reads.get(address, 0)
        self.reads[address] = n + 1
        frame = self.frames[n % FRAMES]
        offset = address - start_address
        registers[offset : offset + count] = frame[address : address + count]
        return None


async def serve(registers: int, servers: int) -> None:
    frames = build_frames(registers)
    started: list[ModbusTcpServer] = []
    ports: list[int] = []
    for _ in range(servers):
        device = SimDevice(
            id=1,
            simdata=(
                [SimData(65520, values=[False] * 16, datatype=DataType.BITS)],
                [SimData(65520, values=[False] * 16, datatype=DataType.BITS)],
                [SimData(0, values=list(frames[0]), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(frames[0]), datatype=DataType.REGISTERS)],
            ),
            action=ChurningImage(frames).action,
        )
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        sockets = getattr(server.transport, "sockets", None) or []
        ports.append(int(sockets[0].getsockname()[1]))
        started.append(server)
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in started:
        await server.shutdown()  # type: ignore[no-untyped-call]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registers", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(serve(args.registers, args.servers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
