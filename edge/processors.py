"""Per-device processing between a read and the log: report by exception, and event detection.

Report by exception compares each reading with the last **published** value (so a slow drift
still crosses the deadband eventually) and re-publishes an unchanged value after the heartbeat
period, so the cloud can tell "fresh but unchanged" from "no data". A published sample keeps the
source timestamp of the read it came from.

Waveform tags are turned into feature samples before that: each new window (a new source
timestamp) gives one sample per feature (``{tag}_{feature}``), with the window's timestamp and
quality; a bad read, a window shorter than declared or one with NaN/infinities gives bad-quality
feature samples with the reason. Raw windows go out as ``waveform`` events when the profile says
``forward_raw`` or a ``forward_waveform`` command asked for the next N.
"""

from __future__ import annotations

import json

import numpy as np

from edge.features import WaveformError, WaveformWindow, window_features
from protocols.profile import COUNTER_ROLES, Profile, Tag
from protocols.quality import Quality
from protocols.wire import Event, Sample, Value

_EVENT_ROLES = frozenset(("state", "fault_code", *COUNTER_ROLES))  # roles that raise events
_FEATURES_IN_TAG_UNIT = frozenset(("rms", "peak"))  # a waveform tag's deadband applies to these
REASON_SHORT_WINDOW = "waveform:short_window"
REASON_BAD_WINDOW = "waveform:not_finite"
MAX_FORWARD_WINDOWS = 60


class ReportByException:
    """Filters one device's readings down to what is worth publishing."""

    def __init__(self, deadbands: dict[str, float | None], heartbeat_s: float) -> None:
        self._deadbands = deadbands
        self._heartbeat_ms = int(heartbeat_s * 1000)
        self._last: dict[str, Sample] = {}  # the last published sample of each metric

    @classmethod
    def for_profile(cls, profile: Profile) -> ReportByException:
        deadbands: dict[str, float | None] = {}
        for tag in profile.tags:
            if tag.waveform is None:
                deadbands[tag.name] = tag.deadband
                continue
            for feature in tag.waveform.features:
                in_unit = feature in _FEATURES_IN_TAG_UNIT
                deadbands[f"{tag.name}_{feature}"] = tag.deadband if in_unit else None
        return cls(deadbands, profile.heartbeat_s)

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


class WaveformProcessor:
    """Turns one device's waveform windows into feature samples and, on request, raw events."""

    def __init__(self, profile: Profile) -> None:
        self._tags = {t.name: t for t in profile.tags if t.waveform is not None}
        self._last_ts: dict[str, int] = {}  # source timestamp of the last window handled per tag
        self._to_forward: dict[str, int] = {}  # raw windows still asked for, per tag

    @property
    def tags(self) -> frozenset[str]:
        """The device's waveform tags."""
        return frozenset(self._tags)

    def forward(self, tag: str, windows: int) -> None:
        """Publish the next ``windows`` good windows of ``tag`` raw (added to any still owed)."""
        if tag not in self._tags:
            raise KeyError(f"{tag!r} is not a waveform tag (have: {sorted(self._tags)})")
        if not 1 <= windows <= MAX_FORWARD_WINDOWS:
            raise ValueError(f"windows must be 1..{MAX_FORWARD_WINDOWS}, got {windows}")
        owed = self._to_forward.get(tag, 0) + windows
        self._to_forward[tag] = min(owed, MAX_FORWARD_WINDOWS)

    def pending(self, tag: str) -> int:
        """How many raw windows of ``tag`` are still to be published."""
        return self._to_forward.get(tag, 0)

    def process(self, windows: list[WaveformWindow]) -> tuple[list[Sample], list[Event]]:
        """Feature samples for every new window, and waveform events for those to forward."""
        samples: list[Sample] = []
        events: list[Event] = []
        for window in windows:
            tag = self._tags.get(window.tag)
            if tag is None or tag.waveform is None:
                continue
            good = window.quality is not Quality.BAD
            if good and self._last_ts.get(tag.name) == window.ts_ms:
                continue  # the same window again (a notification and a full read)
            if good:
                self._last_ts[tag.name] = window.ts_ms
            feature_samples = _feature_samples(tag, window)
            samples += feature_samples
            if feature_samples[0].quality is not Quality.BAD and self._forwarding(tag):
                events.append(_waveform_event(tag, window))
        return samples, events

    def bad(self, ts_ms: int, reason: str) -> list[Sample]:
        """Bad-quality feature samples of every waveform tag (the device is not answering)."""
        self._last_ts.clear()
        return [
            Sample(name, ts_ms, None, Quality.BAD, reason)
            for tag in self._tags.values()
            for name in tag.metric_names
        ]

    def _forwarding(self, tag: Tag) -> bool:
        assert tag.waveform is not None
        owed = self._to_forward.get(tag.name, 0)
        if owed:
            self._to_forward[tag.name] = owed - 1
        return owed > 0 or tag.waveform.forward_raw


def _feature_samples(tag: Tag, window: WaveformWindow) -> list[Sample]:
    waveform = tag.waveform
    assert waveform is not None
    names = [f"{tag.name}_{feature}" for feature in waveform.features]
    values = window.values
    reason = window.reason
    if window.quality is Quality.BAD or values is None:
        return [Sample(n, window.ts_ms, None, Quality.BAD, reason) for n in names]
    if values.size < waveform.samples:
        reason = f"{REASON_SHORT_WINDOW}:{values.size}/{waveform.samples}"
        return [Sample(n, window.ts_ms, None, Quality.BAD, reason) for n in names]
    try:
        features = window_features(values)
    except WaveformError:
        return [Sample(n, window.ts_ms, None, Quality.BAD, REASON_BAD_WINDOW) for n in names]
    return [
        Sample.checked(name, window.ts_ms, features.value(feature), window.quality, reason)
        for name, feature in zip(names, waveform.features, strict=True)
    ]


def _waveform_event(tag: Tag, window: WaveformWindow) -> Event:
    """A raw window as a ``waveform`` event: compact JSON of its rate, unit and samples."""
    assert tag.waveform is not None
    assert window.values is not None
    values = window.values
    if tag.type == "float32" and tag.scale == 1.0 and tag.offset == 0.0:
        # the shortest text that gives back the same float32 (about half the bytes)
        listed = [float(str(v)) for v in values.astype(np.float32)]
    else:
        listed = [float(v) for v in values]
    detail = json.dumps(
        {"sample_rate_hz": tag.waveform.sample_rate_hz, "unit": tag.unit, "samples": listed},
        separators=(",", ":"),
    )
    return Event("waveform", window.ts_ms, tag.name, detail=detail)
