"""The in-process hub of the WebSocket stream: publish from any thread, never wait for a client.

Each connected client gets a ``StreamClient``: a buffer that ``publish`` fills (from the
dispatcher's thread) and the client's WebSocket task empties (on the server's event loop).
A client more than ``max_pending`` messages behind is dropped: its buffer is discarded and its
socket closed, and the others never notice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class StreamCounters:
    clients: int = 0
    connected_total: int = 0
    published: int = 0
    dropped_slow: int = 0


class StreamClient:
    """One client's buffer; ``offer`` from any thread, ``next`` on the client's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending: int, peer: str) -> None:
        self.peer = peer
        self._loop = loop
        self._max_pending = max_pending
        self._pending: deque[str] = deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self.dropped_reason: str | None = None

    @property
    def dropped(self) -> bool:
        return self.dropped_reason is not None

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the client's loop is closed: it is gone
            with self._lock:
                self.dropped_reason = self.dropped_reason or "its event loop is closed"

    def offer(self, text: str) -> bool:
        """Queue ``text``; False (and the client dropped) when it is already too far behind."""
        with self._lock:
            if self.dropped_reason is not None:
                return False
            if len(self._pending) >= self._max_pending:
                self.dropped_reason = f"more than {self._max_pending} messages behind"
                self._pending.clear()
            else:
                self._pending.append(text)
        self._wake()
        return self.dropped_reason is None

    def drop(self, reason: str) -> None:
        with self._lock:
            self.dropped_reason = self.dropped_reason or reason
            self._pending.clear()
        self._wake()

    async def next(self) -> str | None:
        """The next message for this client, or None once it has been dropped."""
        while True:
            with self._lock:
                if self.dropped_reason is not None:
                    return None
                if self._pending:
                    return self._pending.popleft()
            await self._ready.wait()
            self._ready.clear()


class AlarmBroadcaster:
    """Fans every published text out to the connected clients' buffers."""

    def __init__(self, max_pending: int = 256, send_timeout_s: float = 5.0) -> None:
        self.max_pending = max_pending
        self.send_timeout_s = send_timeout_s
        self.counters = StreamCounters()
        self._clients: set[StreamClient] = set()
        self._lock = threading.Lock()

    def subscribe(self, loop: asyncio.AbstractEventLoop, peer: str = "?") -> StreamClient:
        client = StreamClient(loop, self.max_pending, peer)
        with self._lock:
            self._clients.add(client)
            self.counters.clients = len(self._clients)
            self.counters.connected_total += 1
        return client

    def unsubscribe(self, client: StreamClient) -> None:
        with self._lock:
            self._clients.discard(client)
            self.counters.clients = len(self._clients)

    def publish(self, text: str) -> int:
        """Offer ``text`` to every client; return how many took it. Never blocks on a client."""
        with self._lock:
            clients = list(self._clients)
            self.counters.published += 1
        taken = 0
        for client in clients:
            was_dropped = client.dropped
            if client.offer(text):
                taken += 1
            elif not was_dropped:
                self.note_dropped(client)
        return taken

    def note_dropped(self, client: StreamClient) -> None:
        with self._lock:
            self.counters.dropped_slow += 1
        log.warning("alarm stream: dropped client %s (%s)", client.peer, client.dropped_reason)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            c = self.counters
            return {
                "clients": c.clients,
                "connected_total": c.connected_total,
                "published": c.published,
                "dropped_slow": c.dropped_slow,
            }
