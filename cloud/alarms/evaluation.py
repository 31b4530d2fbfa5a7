"""The alarm points in memory: readings and time in, condition changes out (no I/O).

``Evaluation`` holds one ``Condition`` per alarm point and routes each stored sample to the
points that watch its series (and, for the machine's state tag, to the points that watch the
machine's canonical state). Samples are evaluated in source-time order; per series, a sample
not newer than the last one evaluated is ignored. Replayed backlog (``historical``) is
evaluated too and its changes are marked late; a point fed by backlog advances its timers only
with its own samples, not with the clock, until a live sample arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from cloud.alarms.condition import Change, Condition, Reading, has_timer
from cloud.alarms.kinds import EVALUATORS
from cloud.alarms.kinds.base import OnReading
from cloud.alarms.points import DeviceKey, MachineInfo, PointSpec, SeriesInfo, state_metric
from cloud.alarms.transitions import PointChange
from cloud.machine_state.derive import Reading as StateReading
from cloud.machine_state.derive import canonical_state, raw_code
from protocols.wire import Topic
from protocols.wire.codec import DataRows

_QUALITY = {"good": 0, "uncertain": 1, "bad": 2}
SeriesKey = tuple[str, str, str]
OUT_OF_SERVICE = "out of service (its rule was disabled, changed or removed)"


@dataclass(slots=True)
class Point:
    """One alarm point's spec and its evaluated condition."""

    spec: PointSpec
    condition: Condition
    historical: bool = False
    on_reading: OnReading = field(init=False)

    def __post_init__(self) -> None:
        self.on_reading = EVALUATORS[self.spec.rule.kind].on_reading


def to_reading(ts_ms: int, value: object, quality: str | int) -> Reading:
    """A wire sample as a reading: numbers (and booleans) as floats, strings as text."""
    code = quality if isinstance(quality, int) else _QUALITY.get(quality, 2)
    if isinstance(value, bool | int | float):
        return Reading(ts_ms, float(value), code)
    if isinstance(value, str):
        return Reading(ts_ms, None, code, value)
    return Reading(ts_ms, None, code)


def message_of(spec: PointSpec, change: Change, late: bool) -> str:
    """Word a change for people: ``Press 1 temperature 192.4 °C above its high limit 190 °C``."""
    words = EVALUATORS[spec.rule.kind].describe(spec.rule, change, spec.unit)
    subject = spec.machine.name if spec.metric is None else f"{spec.machine.name} {spec.metric}"
    if spec.rule.kind == "state_duration" or spec.rule.watches_device:
        subject = spec.machine.name
    return f"{'late: ' if late else ''}{subject} {words}"


class Evaluation:
    """Every alarm point of one engine, with the routing of samples to them."""

    def __init__(self) -> None:
        self.points: dict[str, Point] = {}
        self.machines: dict[DeviceKey, MachineInfo] = {}
        self.machine_state: dict[int, Reading] = {}
        self.last_ts: dict[SeriesKey, int] = {}
        self.latest: dict[DeviceKey, dict[str, Reading]] = {}  # newest sample seen
        self._by_series: dict[SeriesKey, list[Point]] = {}
        self._by_device: dict[DeviceKey, list[Point]] = {}
        self._by_machine_state: dict[int, list[Point]] = {}
        self._state_metric: dict[DeviceKey, str] = {}
        # points whose on- or off-delay is running: the engine lets time pass for these often,
        # so that a delay fires when it runs out and not at the next (slower) tick
        self.timed: dict[str, Point] = {}
        self.ignored_old = 0
        self.evaluated = 0

    # ------------------------------------------------------------------ binding

    def rebind(
        self,
        specs: Mapping[str, PointSpec],
        machines: Mapping[DeviceKey, MachineInfo],
        series: Mapping[DeviceKey, Mapping[str, SeriesInfo]],
        active_keys: set[str],
        now_ms: int,
    ) -> tuple[list[PointChange], list[Point]]:
        """Take a new set of points.

        A point whose spec is unchanged keeps its condition; one whose rule changed but kept
        its kind (a new limit, delay, priority ...) keeps it too and is re-seeded, so the new
        limit applies to the held value at once. An active point that is gone (rule disabled
        or removed, machine moved out of the selection) or changed its kind returns to normal
        as out of service. Returns those returns and the points to ``seed``.
        """
        changes: list[PointChange] = []
        for key, point in self.points.items():
            kept = specs.get(key)
            if point.condition.active and (kept is None or kept.rule.kind != point.spec.rule.kind):
                change = Change("return", now_ms, None, None, OUT_OF_SERVICE)
                message = f"{point.spec.machine.name} {point.spec.rule.name}: {OUT_OF_SERVICE}"
                changes.append(PointChange(point.spec, change, message))
        fresh: list[Point] = []
        points: dict[str, Point] = {}
        for key, spec in specs.items():
            held = self.points.get(key)
            if held is not None and held.spec == spec:
                points[key] = held
                continue
            if held is not None and held.spec.rule.kind == spec.rule.kind:
                point = Point(spec, held.condition, held.historical)
            else:
                point = Point(spec, Condition(active=key in active_keys))
            points[key] = point
            fresh.append(point)
        self.points = points
        self.timed = {key: p for key, p in points.items() if has_timer(p.condition)}
        self.machines = dict(machines)
        self._state_metric = {
            dk: metric for dk, s in series.items() if (metric := state_metric(s)) is not None
        }
        self._index()
        return changes, fresh

    def _index(self) -> None:
        self._by_series, self._by_device, self._by_machine_state = {}, {}, {}
        for point in self.points.values():
            spec = point.spec
            machine = spec.machine
            device = (machine.edge, machine.device)
            if EVALUATORS[spec.rule.kind].on_state is not None:
                self._by_machine_state.setdefault(machine.id, []).append(point)
            if spec.rule.kind == "state_duration":
                continue
            if spec.metric is None:
                self._by_device.setdefault(device, []).append(point)
            else:
                self._by_series.setdefault((*device, spec.metric), []).append(point)

    def machines_without_state_tag(self) -> list[int]:
        """Machines with state-fed points but no state tag: fed from their state intervals."""
        tagged = {m.id for dk, m in self.machines.items() if dk in self._state_metric}
        return sorted(mid for mid in self._by_machine_state if mid not in tagged)

    def prime(
        self, latest: Mapping[SeriesKey, Reading], open_states: Mapping[int, Reading]
    ) -> None:
        """What the database held when the engine started: newest samples, machine states.

        Samples stored before the engine started reach it only this way; later ones come
        through the stream, which is why later refreshes seed from memory, not the database.
        """
        for (edge, device, metric), reading in latest.items():
            self._remember(edge, device, metric, reading.ts_ms, reading)
            held = self.last_ts.get((edge, device, metric))
            if held is None or reading.ts_ms > held:
                self.last_ts[(edge, device, metric)] = reading.ts_ms
        for machine_id, state in open_states.items():
            self.machine_state.setdefault(machine_id, state)

    def _remember(
        self, edge: str, device: str, metric: str, ts_ms: int, reading: Reading | None
    ) -> None:
        metrics = self.latest.setdefault((edge, device), {})
        held = metrics.get(metric)
        if held is None or ts_ms > held.ts_ms:
            metrics[metric] = reading if reading is not None else Reading(ts_ms, None)

    def seed(self, fresh: Iterable[Point]) -> list[PointChange]:
        """Feed new or changed points the newest sample of their series and the machine state."""
        changes: list[PointChange] = []
        for point in fresh:
            spec = point.spec
            evaluator = EVALUATORS[spec.rule.kind]
            if evaluator.on_state is not None:
                state = self.machine_state.get(spec.machine.id)
                if state is not None:
                    changes += self._apply(point, evaluator.on_state, state, False)
            if spec.rule.kind == "state_duration":
                continue
            metrics = self.latest.get((spec.machine.edge, spec.machine.device), {})
            readings = list(metrics.values()) if spec.metric is None else [
                r for r in (metrics.get(spec.metric),) if r is not None
            ]  # fmt: skip
            if readings:
                newest = max(readings, key=lambda r: r.ts_ms)
                changes += self._apply(point, evaluator.on_reading, newest, False)
        return changes

    # ------------------------------------------------------------------ evaluation

    def _apply(
        self, point: Point, step: OnReading, reading: Reading, late: bool
    ) -> list[PointChange]:
        outcome = step(point.spec.rule, point.condition, reading, point.spec.context)
        point.condition = outcome.condition
        point.historical = late
        self._track(point)
        if not outcome.changes:
            return []
        return [
            PointChange(point.spec, change, message_of(point.spec, change, late), late)
            for change in outcome.changes
        ]

    def on_stored(self, stored: Iterable[tuple[Topic, DataRows]]) -> list[PointChange]:
        """Evaluate the samples of stored data messages in source-time order.

        Device-wide points (stale device) only need the newest sample of their device in the
        batch, and get just that one.
        """
        flat: list[tuple[int, SeriesKey, Reading, bool]] = []
        newest: dict[DeviceKey, tuple[Reading, bool]] = {}
        by_series, state_metric = self._by_series, self._state_metric
        for topic, rows in stored:
            device = (topic.edge, topic.device or "")
            if device not in self.machines:
                continue
            late = rows.historical
            latest = self.latest.setdefault(device, {})
            state = state_metric.get(device)
            top: Reading | None = None
            for metric, ts_ms, value, quality, _reason in rows.samples:
                reading = to_reading(ts_ms, value, quality)
                held = latest.get(metric)
                if held is None or ts_ms > held.ts_ms:
                    latest[metric] = reading
                if top is None or ts_ms > top.ts_ms:
                    top = reading
                key = (topic.edge, device[1], metric)
                if key in by_series or metric == state:
                    flat.append((ts_ms, key, reading, late))
            if top is not None and device in self._by_device:
                held_top = newest.get(device)
                if held_top is None or top.ts_ms > held_top[0].ts_ms:
                    newest[device] = (top, late)
        flat.sort(key=lambda s: s[0])
        changes: list[PointChange] = []
        last_ts = self.last_ts
        for ts_ms, key, reading, late in flat:
            last = last_ts.get(key)
            if last is not None and ts_ms <= last:
                self.ignored_old += 1
                continue
            last_ts[key] = ts_ms
            self.evaluated += 1
            for point in by_series.get(key, ()):
                spec = point.spec
                outcome = point.on_reading(spec.rule, point.condition, reading, spec.context)
                point.condition = outcome.condition
                point.historical = late
                self._track(point)
                if outcome.changes:
                    changes += [
                        PointChange(spec, change, message_of(spec, change, late), late)
                        for change in outcome.changes
                    ]
            device = (key[0], key[1])
            if state_metric.get(device) == key[2]:
                changes += self._on_state_sample(self.machines[device], reading, late)
        for device, (reading, late) in newest.items():
            for point in self._by_device.get(device, ()):
                changes += self._apply(point, point.on_reading, reading, late)
        return changes

    def _on_state_sample(
        self, machine: MachineInfo, reading: Reading, late: bool
    ) -> list[PointChange]:
        code = raw_code(StateReading(reading.ts_ms, reading.value, reading.quality, reading.text))
        state = canonical_state(code, reading.quality, machine.state_map)
        return self.on_machine_state(machine.id, Reading(reading.ts_ms, None, 0, state), late)

    def on_machine_state(
        self, machine_id: int, state: Reading, late: bool = False
    ) -> list[PointChange]:
        """The machine's canonical state (``state.text``) from ``state.ts_ms``, if it changed."""
        held = self.machine_state.get(machine_id)
        if held is not None and (held.text == state.text or state.ts_ms < held.ts_ms):
            return []
        self.machine_state[machine_id] = state
        changes: list[PointChange] = []
        for point in self._by_machine_state.get(machine_id, ()):
            on_state = EVALUATORS[point.spec.rule.kind].on_state
            if on_state is not None:
                changes += self._apply(point, on_state, state, late)
        return changes

    def _track(self, point: Point) -> None:
        if has_timer(point.condition) and not point.historical:
            self.timed[point.spec.key] = point
        else:
            self.timed.pop(point.spec.key, None)

    def on_timers(self, now_ms: int, edges_online: Mapping[str, bool]) -> list[PointChange]:
        """``on_tick`` for the points whose on- or off-delay is running, and no others."""
        return self.on_tick(now_ms, edges_online, list(self.timed.values()))

    def on_tick(
        self,
        now_ms: int,
        edges_online: Mapping[str, bool],
        points: Iterable[Point] | None = None,
    ) -> list[PointChange]:
        """Let time pass for every live point: delays, stale data, durations, stalled counters."""
        changes: list[PointChange] = []
        for point in self.points.values() if points is None else points:
            if point.historical:
                continue
            spec = point.spec
            context = spec.context
            if spec.rule.kind == "stale":
                context = replace(context, edge_online=edges_online.get(spec.machine.edge, True))
            outcome = EVALUATORS[spec.rule.kind].on_time(
                spec.rule, point.condition, now_ms, context
            )
            if outcome.condition is not point.condition:
                point.condition = outcome.condition
                self._track(point)
            for change in outcome.changes:
                changes.append(PointChange(spec, change, message_of(spec, change, False)))
        return changes

    def reconcile(self, active_keys: set[str], busy: set[str]) -> int:
        """Align each point's ``active`` with the database (other workers may have moved it).

        Points in ``busy`` (changes not yet stored) are left alone. Returns how many changed.
        """
        moved = 0
        for key, point in self.points.items():
            if key in busy or point.historical:
                continue
            in_db = key in active_keys
            if point.condition.active != in_db:
                point.condition = replace(
                    point.condition, active=in_db, pending_since_ms=None, clearing_since_ms=None
                )
                self._track(point)
                moved += 1
        return moved
