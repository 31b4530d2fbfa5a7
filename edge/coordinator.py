"""One coordinator per device connection: polls once, fans the readings out, survives failures.

On a failed poll the device's values are published once as bad (``comm:not_connected``), never
left looking fresh; the failure is logged once and the recovery once. The coordinator then backs
off exponentially with jitter, so a dead device is skipped for a while and its connect attempts
never delay its neighbours (each coordinator is its own task).

A driver that reads waveform tags (``take_windows``) hands over their windows after each read;
the coordinator turns the new ones into feature samples (and raw ``waveform`` events when asked
with ``forward_waveform``) before report by exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge.drivers.base import Driver
from edge.features import WaveformWindow
from edge.health import EdgeHealth
from edge.processors import EventDetector, ReportByException, WaveformProcessor
from protocols.clock import now_ms
from protocols.errors import FieldBusError
from protocols.profile import Profile
from protocols.quality import REASON_NOT_CONNECTED, Quality
from protocols.wire import Event, Sample

log = logging.getLogger("forgeline.edge.coordinator")

Sink = Callable[[str, list[Sample], list[Event], int], Awaitable[None]]
"""Receives (device id, samples to publish, events, values read) after each poll."""


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Exponential in the number of consecutive failures, with ±50 % jitter."""
        base = min(self.max_s, self.initial_s * 2 ** max(0, failures - 1))
        return float(base * rng.uniform(0.5, 1.5))


class ScanSchedule:
    """When each scan class of a device is next due (monotonic seconds).

    Tags are grouped by interval; a poll reads the groups that are due. A group that overran
    skips the ticks it missed rather than bursting to catch up.
    """

    def __init__(self, groups: dict[float, frozenset[str]], start: float) -> None:
        self.groups = groups
        self._next = dict.fromkeys(groups, start)

    @classmethod
    def for_profile(cls, profile: Profile, default_interval_s: float, start: float) -> ScanSchedule:
        groups: dict[float, set[str]] = {}
        for tag in profile.tags:
            interval = default_interval_s if tag.scan_class is None else profile.scan_interval(tag)
            groups.setdefault(interval, set()).add(tag.name)
        return cls({k: frozenset(v) for k, v in groups.items()}, start)

    def due(self, now: float) -> list[float]:
        """The intervals whose time has come (a millisecond early counts)."""
        return [interval for interval, at in self._next.items() if at <= now + 0.001]

    def tags(self, intervals: list[float]) -> frozenset[str] | None:
        """The tags of those intervals; None means every tag of the device."""
        if len(intervals) == len(self.groups):
            return None
        return frozenset().union(*(self.groups[i] for i in intervals))

    def done(self, intervals: list[float], now: float) -> None:
        for interval in intervals:
            at = self._next[interval] + interval
            if at < now:
                at = now + interval - (now - at) % interval
            self._next[interval] = at

    def all_due_at(self, at: float) -> None:
        """After a failure: everything is read on the next attempt."""
        self._next = dict.fromkeys(self.groups, at)

    def next_at(self) -> float:
        return min(self._next.values())


class DeviceCoordinator:
    """Polls one device on a fixed schedule and hands what is worth publishing to the sink."""

    def __init__(
        self,
        device_id: str,
        profile: Profile,
        driver: Driver,
        sink: Sink,
        health: EdgeHealth,
        *,
        poll_interval_s: float | None = None,
        connect_timeout_s: float = 3.0,
        backoff: Backoff | None = None,
        seed: int | None = None,
    ) -> None:
        self.device_id = device_id
        self.profile = profile
        self.driver = driver
        self.poll_interval_s = poll_interval_s or profile.poll_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff or Backoff()
        self._sink = sink
        self._health = health
        self._rbe = ReportByException.for_profile(profile)
        self._events = EventDetector(profile)
        self._waveforms = WaveformProcessor(profile)
        self._rng = random.Random(seed)
        self._connected = False
        self._failures = 0
        self._down_since_ms: int | None = None

    def forward_waveform(self, tag: str, windows: int) -> None:
        """Publish the next ``windows`` raw windows of a waveform tag as ``waveform`` events.

        Raises KeyError for a tag that is not a waveform tag of this device and ValueError for
        a count outside 1..60."""
        self._waveforms.forward(tag, windows)

    @property
    def read_timeout_s(self) -> float:
        return max(self.connect_timeout_s, self.poll_interval_s * 2)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; never raises for a device failure.

        A driver with pushed changes (``changes``) is read as soon as they arrive, while it is
        connected; a device that failed waits out its backoff whatever arrives.
        """
        schedule = ScanSchedule.for_profile(self.profile, self.poll_interval_s, time.monotonic())
        changes: asyncio.Event | None = getattr(self.driver, "changes", None)
        try:
            while not stop.is_set():
                intervals = schedule.due(time.monotonic())
                pushed = changes is not None and changes.is_set()
                if changes is not None:
                    changes.clear()
                if intervals or (pushed and self._connected):
                    due = schedule.tags(intervals) if intervals else frozenset()
                    if await self._poll_once(due):
                        if intervals:
                            schedule.done(intervals, time.monotonic())
                    else:
                        delay = self.backoff.delay(self._failures, self._rng)
                        schedule.all_due_at(time.monotonic() + delay)
                wake = changes if self._connected else None
                await _wait(stop, wake, schedule.next_at() - time.monotonic())
        finally:
            await self.driver.close()

    async def _poll_once(self, due: frozenset[str] | None = None) -> bool:
        started = time.monotonic()
        try:
            if not self._connected:
                await asyncio.wait_for(self.driver.connect(), self.connect_timeout_s)
                self._connected = True
            samples = await asyncio.wait_for(self.driver.read(due), self.read_timeout_s)
        except (FieldBusError, TimeoutError, OSError) as exc:
            await self._failed(exc)
            return False
        feature_samples, waveform_events = self._waveforms.process(self._take_windows())
        samples += feature_samples
        round_trip = time.monotonic() - started
        self._health.read_ok(self.device_id, round_trip, len(samples))
        events: list[Event] = []
        if self._down_since_ms is not None:
            down_for = (now_ms() - self._down_since_ms) / 1000
            log.info(
                "device recovered: device=%s protocol=%s down_for_s=%.1f",
                self.device_id, self.profile.protocol, down_for,
            )  # fmt: skip
            events.append(Event("link_up", now_ms(), detail=f"down for {down_for:.1f} s"))
            self._down_since_ms = None
        self._failures = 0
        events += self._events.detect(samples)
        events += waveform_events
        await self._sink(self.device_id, self._rbe.filter(samples), events, len(samples))
        return True

    async def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        self._health.read_failed(self.device_id)
        if self._connected:
            self._connected = False
            await self.driver.close()
        if self._down_since_ms is not None:
            return  # logged and marked bad already
        now = now_ms()
        self._down_since_ms = now
        log.warning(
            "device not answering: device=%s protocol=%s error=%s; its values are marked bad, "
            "retrying with backoff up to %.0f s (check the PLC's power, cable and address)",
            self.device_id, self.profile.protocol, _describe(exc, self.read_timeout_s), self.backoff.max_s,
        )  # fmt: skip
        self._take_windows()  # a window read before the failure is not news any more
        bad = [
            Sample(t.name, now, None, Quality.BAD, REASON_NOT_CONNECTED)
            for t in self.profile.tags
            if t.waveform is None
        ] + self._waveforms.bad(now, REASON_NOT_CONNECTED)
        event = Event("link_down", now, detail=_describe(exc, self.read_timeout_s))
        await self._sink(self.device_id, self._rbe.filter(bad), [event], 0)

    def _take_windows(self) -> list[WaveformWindow]:
        take: Callable[[], list[WaveformWindow]] | None = getattr(self.driver, "take_windows", None)
        return take() if take is not None else []


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no answer within {timeout_s:.1f} s"
    return str(exc) or type(exc).__name__


async def _sleep_or_stop(stop: asyncio.Event, delay: float) -> None:
    if delay <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)


async def _wait(stop: asyncio.Event, changes: asyncio.Event | None, delay: float) -> None:
    """Until ``delay`` is over, ``stop`` is set, or ``changes`` (if given) is set."""
    if changes is None:
        await _sleep_or_stop(stop, delay)
        return
    if delay <= 0 or changes.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(changes.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
