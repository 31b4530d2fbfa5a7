"""One machine's OEE inputs over any window, from its loaded history (pure).

``prepare_machine`` does the per-history work once (stops found, counter increases located in
time); ``window_totals`` then answers any window inside the loaded range cheaply, which is what
roll-ups over many hours need. A window's quantities are the counter increases observed inside
its planned time (POT); units counted outside it (breaks, off shift) are reported apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloud.oee.calendar import (
    Calendar,
    PlannedWindow,
    Segment,
    planned_segments,
    planned_windows,
)
from cloud.oee.counters import (
    CounterIncrease,
    CounterSample,
    counter_increase,
    deltas_within,
    gaps_within,
    increase_after,
    increase_within,
)
from cloud.oee.kpi import (
    Quantities,
    Totals,
    machine_totals,
    planned_run_time_s,
    quantities_from_counters,
)
from cloud.oee.timemodel import (
    ClassifiedSpans,
    StateSpan,
    TimeElements,
    classify_spans,
    elements_of,
    setup_ends,
)

COUNTER_ROLES = ("cycle_count", "good_count", "scrap_count")


@dataclass(frozen=True, slots=True)
class MachineParams:
    """What the computation needs to know about one machine."""

    machine_id: int
    calendar: Calendar
    ideal_cycle_time_s: float | None
    units_per_cycle: int = 1
    micro_stop_ms: int = 120_000
    counter_rollover: int | None = None

    @property
    def pri_s(self) -> float | None:
        return planned_run_time_s(self.ideal_cycle_time_s, self.units_per_cycle)


@dataclass(frozen=True, slots=True)
class PreparedMachine:
    params: MachineParams
    classified: ClassifiedSpans
    counters: Mapping[str, CounterIncrease]
    setup_ends: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One machine over one window: the totals and what they were made from."""

    machine_id: int
    from_ms: int
    to_ms: int
    totals: Totals
    windows: tuple[PlannedWindow, ...]
    counter_roles: tuple[str, ...]
    units_outside_planned: float
    counter_gap_ms: int
    counter_resets: int
    counter_rollovers: int

    @property
    def elements(self) -> TimeElements:
        return self.totals.elements

    @property
    def quantities(self) -> Quantities:
        return self.totals.quantities


def prepare_machine(
    params: MachineParams,
    spans: Sequence[StateSpan],
    counter_samples: Mapping[str, Sequence[CounterSample]],
    from_ms: int,
    to_ms: int,
    *,
    counter_gap_ms: int = 300_000,
) -> PreparedMachine:
    """Classify the spans and locate every counter increase in ``[from_ms, to_ms)``.

    ``spans`` should reach the micro-stop threshold beyond both ends; ``counter_samples`` by
    role should include the last good sample before ``from_ms`` (the baseline).
    """
    counters = {
        role: counter_increase(
            samples, from_ms, to_ms, rollover=params.counter_rollover, gap_after_ms=counter_gap_ms
        )
        for role, samples in counter_samples.items()
        if role in COUNTER_ROLES
    }
    return PreparedMachine(
        params,
        classify_spans(spans, params.micro_stop_ms),
        counters,
        tuple(setup_ends(spans)),
    )


def _count_in(times: Sequence[int], from_ms: int, to_ms: int) -> int:
    return sum(1 for t in times if from_ms <= t < to_ms)


def window_totals(
    prepared: PreparedMachine,
    from_ms: int,
    to_ms: int,
    *,
    reduced_yield_ms: int = 600_000,
    windows: Sequence[PlannedWindow] | None = None,
) -> WindowResult:
    """Totals of one window (inside the prepared range); ``windows`` if already computed."""
    params = prepared.params
    if windows is None:
        windows = planned_windows(params.calendar, from_ms, to_ms)
    segments: list[Segment] = planned_segments(windows, from_ms, to_ms)
    elements = elements_of(prepared.classified, segments)

    def within(role: str) -> float | None:
        counter = prepared.counters.get(role)
        return None if counter is None else increase_within(counter.deltas, segments)

    startup: float | None = None
    scrap_counter = prepared.counters.get("scrap_count")
    if scrap_counter is not None:
        planned_scrap = deltas_within(scrap_counter.deltas, segments)
        startup = increase_after(planned_scrap, prepared.setup_ends, reduced_yield_ms)
    quantities = quantities_from_counters(
        within("cycle_count"), within("good_count"), within("scrap_count"),
        params.units_per_cycle, startup,
    )  # fmt: skip
    outside = 0.0
    unit_role = "good_count" if "good_count" in prepared.counters else "cycle_count"
    if unit_role in prepared.counters:
        deltas = prepared.counters[unit_role].deltas
        in_window = increase_within(deltas, [(from_ms, to_ms)])
        planned = increase_within(deltas, segments)
        factor = params.units_per_cycle if unit_role == "cycle_count" else 1
        outside = (in_window - planned) * factor
    gaps = [gaps_within(c.gaps, from_ms, to_ms) for c in prepared.counters.values()]
    return WindowResult(
        machine_id=params.machine_id,
        from_ms=from_ms,
        to_ms=to_ms,
        totals=machine_totals(elements, quantities, params.pri_s),
        windows=tuple(windows),
        counter_roles=tuple(sorted(prepared.counters)),
        units_outside_planned=outside,
        counter_gap_ms=max((sum(e - s for s, e in g) for g in gaps), default=0),
        counter_resets=sum(
            _count_in(c.reset_times, from_ms, to_ms) for c in prepared.counters.values()
        ),
        counter_rollovers=sum(
            _count_in(c.rollover_times, from_ms, to_ms) for c in prepared.counters.values()
        ),
    )
