"""The edge's health figures: per-device link state and read statistics, buffer depth and age.

Kept in plain counters (published on the status topic) and mirrored into a Prometheus registry
of the agent's own (never the global one), served over HTTP when ``metrics_port`` is set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(slots=True)
class DeviceHealth:
    link_up: bool | None = None  # None until the first poll
    last_round_trip_s: float | None = None
    reads: int = 0
    read_errors: int = 0
    samples_read: int = 0
    samples_published: int = 0
    last_read_ms: int | None = None
    rate_window: list[tuple[float, int]] = field(default_factory=list)

    def samples_per_s(self, now: float, span_s: float = 10.0) -> float:
        """Samples published per second over the last ``span_s`` seconds."""
        recent = [(t, n) for t, n in self.rate_window if now - t <= span_s]
        self.rate_window = recent
        if not recent:
            return 0.0
        return sum(n for _, n in recent) / span_s


class EdgeHealth:
    """The agent's figures, for the status topic, Prometheus and the demo's live view."""

    def __init__(self, device_ids: list[str]) -> None:
        self.devices = {d: DeviceHealth() for d in device_ids}
        self.buffer_messages = 0
        self.buffer_bytes = 0
        self.buffer_oldest_ms: int | None = None
        self.mqtt_connected = False
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._link = Gauge("forgeline_edge_link_up", "1 while the device answers", ["device"], registry=r)  # fmt: skip
        self._rtt = Gauge("forgeline_edge_read_round_trip_seconds", "last poll's round trip", ["device"], registry=r)  # fmt: skip
        self._errors = Counter("forgeline_edge_read_errors", "failed polls", ["device"], registry=r)
        self._read = Counter("forgeline_edge_samples_read", "values read", ["device"], registry=r)
        self._published = Counter("forgeline_edge_samples_published", "samples logged for sending", ["device"], registry=r)  # fmt: skip
        self._depth = Gauge("forgeline_edge_buffer_messages", "messages not yet acknowledged", registry=r)  # fmt: skip
        self._bytes = Gauge("forgeline_edge_buffer_bytes", "bytes not yet acknowledged", registry=r)
        self._age = Gauge("forgeline_edge_buffer_oldest_age_seconds", "age of the oldest unacknowledged message", registry=r)  # fmt: skip
        for device in device_ids:  # every series exists from the start, so increase() sees all
            self._errors.labels(device)
            self._read.labels(device)
            self._published.labels(device)
        self._mqtt = Gauge("forgeline_edge_mqtt_connected", "1 while connected to the broker", registry=r)  # fmt: skip

    def read_ok(self, device: str, round_trip_s: float, samples: int) -> None:
        h = self.devices[device]
        h.link_up, h.last_round_trip_s = True, round_trip_s
        h.reads += 1
        h.samples_read += samples
        h.last_read_ms = time.time_ns() // 1_000_000
        self._link.labels(device).set(1)
        self._rtt.labels(device).set(round_trip_s)
        self._read.labels(device).inc(samples)

    def read_failed(self, device: str) -> None:
        h = self.devices[device]
        h.link_up = False
        h.read_errors += 1
        self._link.labels(device).set(0)
        self._errors.labels(device).inc()

    def published(self, device: str, samples: int) -> None:
        h = self.devices[device]
        h.samples_published += samples
        h.rate_window.append((time.monotonic(), samples))
        self._published.labels(device).inc(samples)

    def buffer(self, messages: int, size: int, oldest_ms: int | None) -> None:
        self.buffer_messages, self.buffer_bytes, self.buffer_oldest_ms = messages, size, oldest_ms
        self._depth.set(messages)
        self._bytes.set(size)
        now_ms = time.time_ns() // 1_000_000
        self._age.set(0 if oldest_ms is None else (now_ms - oldest_ms) / 1000)

    def mqtt(self, connected: bool) -> None:
        self.mqtt_connected = connected
        self._mqtt.set(1 if connected else 0)

    def summary(self) -> dict[str, float | int | str | None]:
        """Flat figures for the status message's ``health`` object."""
        now = time.monotonic()
        out: dict[str, float | int | str | None] = {
            "buffer_messages": self.buffer_messages,
            "buffer_bytes": self.buffer_bytes,
            "buffer_oldest_ms": self.buffer_oldest_ms,
            "clock_ms": time.time_ns() // 1_000_000,
        }
        for device, h in self.devices.items():
            out[f"{device}.link_up"] = None if h.link_up is None else int(h.link_up)
            out[f"{device}.read_errors"] = h.read_errors
            out[f"{device}.round_trip_ms"] = (
                None if h.last_round_trip_s is None else round(h.last_round_trip_s * 1000, 2)
            )
            out[f"{device}.samples_per_s"] = round(h.samples_per_s(now), 2)
            out[f"{device}.samples_read"] = h.samples_read
            out[f"{device}.reads"] = h.reads
        return out
