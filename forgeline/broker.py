"""The embedded MQTT broker for ``forgeline demo`` (amqtt, pure Python); production uses Mosquitto.

amqtt acknowledges ``$share`` subscriptions but delivers nothing to them, so a cloud worker run
against it must have shared subscriptions turned off (the demo does that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

log = logging.getLogger("forgeline.broker")


def broker_config(host: str, port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


async def run_broker(host: str, port: int, stop: asyncio.Event | None = None) -> None:
    """Serve MQTT on host:port until ``stop`` is set (or SIGTERM/SIGINT)."""
    from amqtt.broker import Broker

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    broker = Broker(broker_config(host, port))
    await broker.start()
    log.info("embedded broker listening: address=%s:%d (amqtt; demo use only)", host, port)
    try:
        await stop.wait()
    finally:
        await broker.shutdown()
        log.info("embedded broker stopped")
