"""One machine's serial tag, counters and parameters, read sample by sample (no I/O).

``SerialTrack.feed`` turns the samples of one data message into what they call for: a
``SerialShown`` when the serial tag changes to a new unit, a ``CycleCounted`` when the cycle
counter goes up (the unit shown before the serial changed at that moment is done, with the
verdict the good/scrap counters give and the latest value of each process parameter). The
unit binder (``cloud.production.binder``) carries these out against the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cloud.production.records import TestValueSpec
from protocols.wire.codec import SampleRow


@dataclass(frozen=True, slots=True)
class Parameter:
    """A process parameter of a machine, with the limits its test values are judged against."""

    metric: str
    unit: str | None
    low_limit: float | None
    high_limit: float | None


@dataclass(frozen=True, slots=True)
class MachineTags:
    """What the binder reads from one machine: its serial tag, counters and parameters."""

    machine_id: int
    name: str
    profile: str | None
    edge: str
    device: str
    serial: str  # the metric with role unit_serial
    counters: dict[str, str]  # role -> metric
    parameters: dict[str, Parameter]  # metric -> parameter


@dataclass(frozen=True, slots=True)
class SerialShown:
    """The machine started working on unit ``serial`` at ``ts``."""

    serial: str
    ts: int


@dataclass(frozen=True, slots=True)
class CycleCounted:
    """The cycle counter incremented at ``ts``: unit ``serial`` (shown before) is done.

    ``passed``: True when good_count incremented at the same moment, False when scrap_count
    did, None when the counters do not tell (judge the values)."""

    serial: str | None
    ts: int
    passed: bool | None
    values: tuple[TestValueSpec, ...]


Action = SerialShown | CycleCounted


def serial_text(value: object) -> str | None:
    """A sample value as a serial: text, or a whole number (some PLCs count serials in a DINT)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


@dataclass
class SerialTrack:
    """One machine's serial, counters and latest parameter values, fed sample by sample.

    Plain values: ``feed`` answers what the samples call for, in time order. A sample older
    than the last one of its metric is late (out of order) and ignored.
    """

    tags: MachineTags
    serial: str | None = None
    serial_ts: int | None = None
    previous: str | None = None  # the serial shown before ``serial``
    counts: dict[str, float] = field(default_factory=dict)  # role -> last value
    increments: dict[str, int] = field(default_factory=dict)  # role -> ts of the last increment
    values: dict[str, float | None] = field(default_factory=dict)  # parameter metric -> value
    last_ts: dict[str, int] = field(default_factory=dict)  # metric -> newest sample ts

    def prime(self, metric: str, ts: int, value: object, good: bool) -> None:
        """Start from a stored latest value (no action: it was seen before)."""
        self.last_ts[metric] = ts
        roles = {m: r for r, m in self.tags.counters.items()}
        if metric == self.tags.serial:
            self.serial, self.serial_ts = (serial_text(value) if good else None), ts
        elif metric in roles and good and _number(value) is not None:
            self.counts[roles[metric]] = _number(value)  # type: ignore[assignment]
        elif metric in self.tags.parameters:
            self.values[metric] = _number(value) if good else None

    def feed(self, rows: Iterable[SampleRow]) -> list[Action]:
        """The samples of one data message → what they call for, in time order."""
        mine = [r for r in rows if self._wanted(r)]
        mine.sort(key=lambda r: r[1])
        actions: list[Action] = []
        start = 0
        while start < len(mine):
            ts = mine[start][1]
            end = start
            while end < len(mine) and mine[end][1] == ts:
                end += 1
            actions += self._moment(ts, mine[start:end])
            start = end
        return actions

    def _wanted(self, row: SampleRow) -> bool:
        metric = row[0]
        tags = self.tags
        if (
            metric != tags.serial
            and metric not in tags.parameters
            and metric not in tags.counters.values()
        ):
            return False
        last = self.last_ts.get(metric)
        return last is None or row[1] >= last

    def _moment(self, ts: int, rows: list[SampleRow]) -> list[Action]:
        roles = {m: r for r, m in self.tags.counters.items()}
        shown: str | None = None
        cycle_done = False
        for metric, _ts, value, quality, _reason in rows:
            self.last_ts[metric] = ts
            good = quality == "good"
            if metric in self.tags.parameters:
                self.values[metric] = _number(value) if good else None
            elif metric in roles:
                counted = self._count(roles[metric], ts, _number(value) if good else None)
                cycle_done = cycle_done or (counted and roles[metric] == "cycle_count")
            elif good:
                text = serial_text(value)
                if text is not None and text != self.serial:
                    shown = text
        actions: list[Action] = []
        if cycle_done:
            # The unit done is the one shown before the serial changed at this moment (in this
            # message, or in an earlier one carrying the same timestamp).
            done = self.serial if shown is not None or self.serial_ts != ts else self.previous
            actions.append(CycleCounted(done, ts, self._verdict(ts), self._test_values()))
        if shown is not None:
            self.previous, self.serial, self.serial_ts = self.serial, shown, ts
            actions.append(SerialShown(shown, ts))
        return actions

    def _count(self, role: str, ts: int, value: float | None) -> bool:
        """Take a counter's value; True when it went up (a drop is a reset, not a count)."""
        if value is None:
            return False
        before = self.counts.get(role)
        self.counts[role] = value
        if before is not None and value > before:
            self.increments[role] = ts
            return True
        return False

    def _verdict(self, ts: int) -> bool | None:
        if self.increments.get("good_count") == ts:
            return True
        if self.increments.get("scrap_count") == ts:
            return False
        return None

    def _test_values(self) -> tuple[TestValueSpec, ...]:
        return tuple(
            TestValueSpec(p.metric, self.values.get(p.metric), p.unit, p.low_limit, p.high_limit)
            for p in sorted(self.tags.parameters.values(), key=lambda p: p.metric)
        )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


__all__ = [
    "Action",
    "CycleCounted",
    "MachineTags",
    "Parameter",
    "SerialShown",
    "SerialTrack",
    "serial_text",
]
