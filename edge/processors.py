"""Per-device processing between a read and the log: report by exception, and event detection.

Report by exception compares each reading with the last **published** value (so a slow drift
still crosses the deadband eventually) and re-publishes an unchanged value after the heartbeat
period, so the cloud can tell "fresh but unchanged" from "no data". A published sample keeps the
source timestamp of the read it came from.
"""

from __future__ import annotations

from protocols.profile import COUNTER_ROLES, Profile
from protocols.quality import Quality
from protocols.wire import Event, Sample, Value

_EVENT_ROLES = frozenset(("state", "fault_code", *COUNTER_ROLES))  # roles that raise events


class ReportByException:
    """Filters one device's readings down to what is worth publishing."""

    def __init__(self, deadbands: dict[str, float | None], heartbeat_s: float) -> None:
        self._deadbands = deadbands
        self._heartbeat_ms = int(heartbeat_s * 1000)
        self._last: dict[str, Sample] = {}  # the last published sample of each metric

    @classmethod
    def for_profile(cls, profile: Profile) -> ReportByException:
        return cls({t.name: t.deadband for t in profile.tags}, profile.heartbeat_s)

    def filter(self, samples: list[Sample]) -> list[Sample]:
        out = []
        last = self._last
        for sample in samples:
            if self._worth_publishing(sample, last.get(sample.metric)):
                last[sample.metric] = sample
                out.append(sample)
        return out

    def _worth_publishing(self, sample: Sample, last: Sample | None) -> bool:
        if last is None or last.quality is not sample.quality:
            return True
        if sample.ts_ms - last.ts_ms >= self._heartbeat_ms:
            return True
        if sample.ts_ms < last.ts_ms:  # the source clock went back: say so rather than hide it
            return True
        if sample.value == last.value:
            return False
        deadband = self._deadbands.get(sample.metric)
        if not deadband:
            return True
        numeric = (
            isinstance(sample.value, int | float)
            and isinstance(last.value, int | float)
            and not isinstance(sample.value, bool)
            and not isinstance(last.value, bool)
        )
        if not numeric:
            return True
        return abs(float(sample.value) - float(last.value)) > deadband  # type: ignore[arg-type]

    def forget(self) -> None:
        """Publish everything again on the next read (after a reconnect, say)."""
        self._last.clear()


class EventDetector:
    """Turns readings into device events: state changes, faults and counter resets."""

    def __init__(self, profile: Profile) -> None:
        self._profile = profile
        self._roles = {t.name: t.role for t in profile.tags if t.role in _EVENT_ROLES}
        self._previous: dict[str, Value] = {}
        self._rollover = profile.workarounds.counter_rollover

    def detect(self, samples: list[Sample]) -> list[Event]:
        events: list[Event] = []
        if not self._roles:
            return events
        for sample in samples:
            role = self._roles.get(sample.metric)
            if role is None:
                continue
            if sample.quality is not Quality.GOOD:
                continue
            previous = self._previous.get(sample.metric)
            self._previous[sample.metric] = sample.value
            if previous is None or previous == sample.value:
                continue
            event = self._event(role, sample, previous)
            if event is not None:
                events.append(event)
        return events

    def _event(self, role: str | None, sample: Sample, previous: Value) -> Event | None:
        if role == "state":
            return Event(
                "state_change",
                sample.ts_ms,
                sample.metric,
                previous,
                sample.value,
                detail=self._profile.state_of(sample.value),
            )
        if role == "fault_code":
            kind = "fault_cleared" if sample.value in (0, None) else "fault"
            return Event(kind, sample.ts_ms, sample.metric, previous, sample.value)
        current = sample.value
        if (
            isinstance(current, int | float)
            and isinstance(previous, int | float)
            and current < previous
        ):
            wrapped = self._rollover is not None and previous > self._rollover * 0.9
            kind = "counter_rollover" if wrapped else "counter_reset"
            return Event(kind, sample.ts_ms, sample.metric, previous, current)
        return None
