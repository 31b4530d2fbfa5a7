"""A stand-in for the cloud in edge benchmarks: acknowledges every data and event message seen.

Run as a subprocess (its CPU is not the edge's)::

    .venv/bin/python tests/bench/ack_stand_in.py --port PORT

It subscribes to every device's ``data`` and ``event`` topic (QoS 1), reads the session and
sequence number from the head of each payload, and every 100 ms publishes one acknowledgement
per edge with the ranges seen since the previous one, as the cloud does once it has stored
them. It stores nothing, so the edge's log is emptied as fast as the broker delivers and the
edge's benchmark measures the edge, not a database. It prints ``ready`` once subscribed and
a count of messages seen every 5 s to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from protocols.wire import AckMessage, JsonCodec, Topic, TopicKind

_HEAD = re.compile(rb'"session":"([^"]+)","seq":(\d+)')


def ranges_of(seqs: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted inclusive ranges covering ``seqs``."""
    out: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return tuple((a, b) for a, b in out)


class Acker:
    def __init__(self, host: str, port: int) -> None:
        self.seen = 0
        self._lock = threading.Lock()
        # (site, edge) → session → seqs seen since the last ack
        self._pending: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self._codec = JsonCodec()
        self._ready = threading.Event()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="forgeline-bench-acker",
            clean_session=True,
        )
        client.max_inflight_messages_set(1000)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.connect(host, port, keepalive=30)
        self.client = client

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([("forgeline/v1/+/+/+/data", 1), ("forgeline/v1/+/+/+/event", 1)])
        self._ready.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        head = _HEAD.search(msg.payload, 0, 400)
        if head is not None:
            session, seq = head.group(1).decode(), int(head.group(2))
        else:
            body = json.loads(msg.payload)
            session, seq = body["session"], int(body["seq"])
        with self._lock:
            self._pending[(parts[2], parts[3])][session].append(seq)
            self.seen += 1

    def ack_once(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: defaultdict(list))
        now = time.time_ns() // 1_000_000
        for (site, edge), sessions in pending.items():
            ack = AckMessage(now, {s: ranges_of(seqs) for s, seqs in sessions.items()})
            topic = str(Topic.edge_topic(TopicKind.ACK, site, edge))
            self.client.publish(topic, self._codec.encode(ack), qos=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    acker = Acker(args.host, args.port)
    acker.client.loop_start()
    if not acker._ready.wait(10):
        print("ack stand-in: no connection to the broker", file=sys.stderr, flush=True)
        return 1
    print("ready", flush=True)
    last_report = time.monotonic()
    while not stop.wait(0.1):
        acker.ack_once()
        if time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            print(f"ack stand-in: {acker.seen} messages seen", file=sys.stderr, flush=True)
    acker.ack_once()
    acker.client.loop_stop()
    acker.client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
