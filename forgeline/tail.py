"""``forgeline mqtt tail``: print wire messages as they arrive, decoded and checked."""

from __future__ import annotations

import json
import queue
import sys
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from protocols.errors import WireError
from protocols.mqtt_url import parse_mqtt_url
from protocols.wire import JsonCodec, parse_topic
from protocols.wire.codec import to_dict


def describe(topic: str, payload: bytes, raw: bool = False) -> str:
    """One line: the topic, then the decoded message (or why it breaks the contract)."""
    if raw:
        return f"{topic} {payload.decode(errors='replace')}"
    try:
        message = JsonCodec().decode(parse_topic(topic).kind, payload)
    except WireError as exc:
        return f"{topic} INVALID ({exc}): {payload[:200].decode(errors='replace')}"
    return f"{topic} {json.dumps(to_dict(message), separators=(',', ':'))}"


def tail(mqtt_url: str, topics: list[str], count: int | None, raw: bool) -> int:
    url = parse_mqtt_url(mqtt_url)
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set()

    def on_connect(c: paho.Client, u: object, f: object, reason: object, p: object) -> None:
        for topic in topics:
            c.subscribe(topic, qos=1)

    client.on_connect = on_connect
    client.on_message = lambda c, u, msg: inbox.put((msg.topic, bytes(msg.payload)))
    try:
        client.connect(url.host, url.port)
    except OSError as exc:
        print(f"cannot reach the broker at {url.host}:{url.port}: {exc}", file=sys.stderr)
        return 1
    client.loop_start()
    seen = 0
    try:
        while count is None or seen < count:
            try:
                topic, payload = inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            print(describe(topic, payload, raw), flush=True)
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
        time.sleep(0.05)
    return 0
