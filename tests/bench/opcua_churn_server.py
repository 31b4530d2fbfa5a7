"""An asyncua server for benchmarks: N Double variables, every one changed once a second.

Run as a subprocess by ``bench_edge_opcua.py`` (its CPU is not the edge's)::

    .venv/bin/python tests/bench/opcua_churn_server.py --variables 5000 --status status.json

The variables are ``ns=<urn:forgeline:bench>;s=v00000`` ..., 500 to a folder. asyncua's server
ignores a subscription's sampling interval (see DESIGN.md), so the server itself sets the pace:
at every whole second of the wall clock it writes a new value into every variable, with that
second as the source timestamp. Each tick's duration is recorded: ``--status`` is rewritten
after every tick with ``{"ticks", "late", "max_tick_s", "last_tick_s"}`` (a tick is late when
writing took longer than the second it had, and the server then skips the seconds it missed).
Once listening it prints ``{"url": ..., "port": ...}`` on one line to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from asyncua import Server, ua

NAMESPACE = "urn:forgeline:bench"
FOLDER_SIZE = 500


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_status(path: Path, status: dict[str, float]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


async def serve(variables: int, status_path: Path) -> None:
    server = Server()
    await server.init()
    server.set_server_name("forgeline bench churn server")
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/bench/"
    server.set_endpoint(url)
    idx = await server.register_namespace(NAMESPACE)
    root = await server.nodes.objects.add_folder(ua.NodeId("Bench", idx), "Bench")
    node_ids = []
    folder = root
    for i in range(variables):
        if i % FOLDER_SIZE == 0:  # small folders: adding to a large one gets slower and slower
            name = f"Bench.{i // FOLDER_SIZE:03d}"
            folder = await root.add_folder(ua.NodeId(name, idx), name)
        node_id = ua.NodeId(f"v{i:05d}", idx)
        await folder.add_variable(node_id, f"v{i:05d}", ua.Variant(0.0, ua.VariantType.Double))
        node_ids.append(node_id)
    await server.start()
    print(json.dumps({"url": url, "port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    status = {"ticks": 0, "late": 0, "max_tick_s": 0.0, "last_tick_s": 0.0, "changes": 0}
    tick = 0
    try:
        while not stop.is_set():
            now = time.time()
            next_second = int(now) + 1
            try:
                await asyncio.wait_for(stop.wait(), next_second - now)
                break
            except TimeoutError:
                pass
            started = time.perf_counter()
            stamp = datetime.fromtimestamp(next_second, UTC)
            tick += 1
            for i, node_id in enumerate(node_ids):
                value = ua.Variant(float(i) + (tick % 1000) / 8, ua.VariantType.Double)
                await server.write_attribute_value(
                    node_id, ua.DataValue(value, SourceTimestamp=stamp, ServerTimestamp=stamp)
                )
            took = time.perf_counter() - started
            status["ticks"] += 1
            status["changes"] += variables
            status["last_tick_s"] = took
            status["max_tick_s"] = max(status["max_tick_s"], took)
            if time.time() >= next_second + 1:
                status["late"] += 1
            write_status(status_path, status)
    finally:
        await server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variables", type=int, required=True)
    parser.add_argument("--status", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.variables, args.status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
