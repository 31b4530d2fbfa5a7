"""The ISO 22400-2 time model: canonical machine states → time elements over planned time (pure).

Every millisecond of planned operating time (POT, from the shift calendar) lands in exactly one
element, so ``APT + AUST + ADET + ADOT + UNKT == PBT`` and ``PBT + PDOT == POT``:

==============  =========  ===========================================================
state           element    meaning
==============  =========  ===========================================================
running         APT        actual production time
setup           AUST       actual unit setup time
down            ADET       actual unit delay time (malfunctions)
idle            ADOT       actual unit down time (available, not executing: starved, blocked)
planned_stop    PDOT       planned down time (taken out of PBT)
offline, none   UNKT       unknown: no data, bad quality, unknown code (a loss, never running)
==============  =========  ===========================================================

A *stop* is a run of adjacent intervals in the same state ``down`` or ``idle``. A stop shorter
than the micro-stop threshold stays in APT (performance loss, counted in ``micro_stop_ms``);
longer ones are availability losses (ADET, ADOT). Whether a stop is micro depends on its whole
length, never on the window, so the caller passes intervals reaching at least the threshold
beyond both ends of the window. A failure event (for MTBF/MTTR) is a ``down`` stop at or above
the threshold that *starts* inside planned time of the window, so that summing periods never
counts one twice. Time outside the planned segments is not looked at.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, fields

from cloud.oee.calendar import Segment

APT, AUST, ADET, ADOT, PDOT, UNKT = "APT", "AUST", "ADET", "ADOT", "PDOT", "UNKT"
STATE_ELEMENT: dict[str, str] = {
    "running": APT,
    "setup": AUST,
    "down": ADET,
    "idle": ADOT,
    "planned_stop": PDOT,
    "offline": UNKT,
}
"""Canonical state → ISO 22400-2 element; any other state (or no interval at all) is UNKT."""
STOP_STATES = ("down", "idle")


@dataclass(frozen=True, slots=True)
class StateSpan:
    """One closed state interval ``[start_ms, end_ms)`` (an open one is closed at "now")."""

    state: str
    start_ms: int
    end_ms: int
    fault_code: str | None = None
    is_open: bool = False
    """The machine is still in this state (``end_ms`` is "now")."""


@dataclass(frozen=True, slots=True)
class TimeElements:
    """Milliseconds per ISO 22400-2 element over a window's planned time, plus stop counts."""

    pot_ms: int = 0
    pdot_ms: int = 0
    apt_ms: int = 0
    aust_ms: int = 0
    adet_ms: int = 0
    adot_ms: int = 0
    unkt_ms: int = 0
    micro_stop_ms: int = 0
    """Part of APT: short down/idle stops (performance loss)."""
    micro_stops: int = 0
    failure_events: int = 0

    @property
    def pbt_ms(self) -> int:
        """Planned busy time: POT − PDOT."""
        return self.pot_ms - self.pdot_ms

    @property
    def aupt_ms(self) -> int:
        """Actual unit processing time: APT + AUST."""
        return self.apt_ms + self.aust_ms

    @property
    def accounted_ms(self) -> int:
        """APT + AUST + ADET + ADOT + UNKT (equals PBT by construction)."""
        return self.apt_ms + self.aust_ms + self.adet_ms + self.adot_ms + self.unkt_ms

    def __add__(self, other: TimeElements) -> TimeElements:
        return TimeElements(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(TimeElements))
        )


@dataclass(frozen=True, slots=True)
class Stop:
    """A run of adjacent ``down`` or ``idle`` intervals, and whether it is a micro-stop."""

    state: str
    start_ms: int
    end_ms: int
    micro: bool

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def find_stops(spans: Sequence[StateSpan], micro_stop_ms: int) -> list[Stop]:
    """Stops in ``spans`` (sorted by start): adjacent same-state down/idle spans merged."""
    out: list[Stop] = []
    run: list[StateSpan] = []

    def close() -> None:
        if run:
            length = run[-1].end_ms - run[0].start_ms
            out.append(Stop(run[0].state, run[0].start_ms, run[-1].end_ms, length < micro_stop_ms))
            run.clear()

    for span in spans:
        if span.state in STOP_STATES:
            if run and (run[-1].state != span.state or run[-1].end_ms != span.start_ms):
                close()
            run.append(span)
        else:
            close()
    close()
    return out


@dataclass(frozen=True, slots=True)
class ClassifiedSpans:
    """Spans with each one's micro-stop flag and the stops they form, ready for many windows."""

    spans: tuple[StateSpan, ...]
    micro: tuple[bool, ...]
    ends: tuple[int, ...]
    stops: tuple[Stop, ...]
    stop_starts: tuple[int, ...]


def classify_spans(spans: Sequence[StateSpan], micro_stop_ms: int) -> ClassifiedSpans:
    """Find the stops once; ``spans`` sorted by start and disjoint."""
    stops = find_stops(spans, micro_stop_ms)
    by_start = {s.start_ms: s for s in stops}
    micro: list[bool] = []
    current: Stop | None = None
    for span in spans:
        if span.state in STOP_STATES:
            stop = by_start.get(span.start_ms)
            if stop is not None:
                current = stop
            micro.append(current is not None and current.micro)
        else:
            current = None
            micro.append(False)
    return ClassifiedSpans(
        tuple(spans),
        tuple(micro),
        tuple(s.end_ms for s in spans),
        tuple(stops),
        tuple(s.start_ms for s in stops),
    )


def elements_of(classified: ClassifiedSpans, segments: Sequence[Segment]) -> TimeElements:
    """Time elements over ``segments`` (planned time: sorted, disjoint)."""
    spans, micro_span = classified.spans, classified.micro
    totals = dict.fromkeys((APT, AUST, ADET, ADOT, PDOT, UNKT), 0)
    micro_ms = micro_stops = failures = 0
    for seg_start, seg_end in segments:
        cursor = seg_start
        k = bisect.bisect_right(classified.ends, seg_start)
        while k < len(spans) and spans[k].start_ms < seg_end:
            span = spans[k]
            begin = max(span.start_ms, cursor)
            end = min(span.end_ms, seg_end)
            if begin > cursor:
                totals[UNKT] += begin - cursor
            if end > begin:
                element = STATE_ELEMENT.get(span.state, UNKT)
                if micro_span[k]:
                    element = APT
                    micro_ms += end - begin
                totals[element] += end - begin
                cursor = end
            k += 1
        if cursor < seg_end:
            totals[UNKT] += seg_end - cursor
        lo = bisect.bisect_left(classified.stop_starts, seg_start)
        hi = bisect.bisect_left(classified.stop_starts, seg_end)
        for stop in classified.stops[lo:hi]:
            if stop.micro:
                micro_stops += 1
            elif stop.state == "down":
                failures += 1
    return TimeElements(
        pot_ms=sum(e - s for s, e in segments),
        pdot_ms=totals[PDOT],
        apt_ms=totals[APT],
        aust_ms=totals[AUST],
        adet_ms=totals[ADET],
        adot_ms=totals[ADOT],
        unkt_ms=totals[UNKT],
        micro_stop_ms=micro_ms,
        micro_stops=micro_stops,
        failure_events=failures,
    )


def time_elements(
    spans: Sequence[StateSpan], segments: Sequence[Segment], micro_stop_ms: int
) -> TimeElements:
    """Time elements over ``segments`` (planned time) from ``spans`` sorted by start."""
    return elements_of(classify_spans(spans, micro_stop_ms), segments)


def setup_ends(spans: Sequence[StateSpan]) -> list[int]:
    """The times at which a run of ``setup`` ends and the machine goes on to another state."""
    out = []
    for i, span in enumerate(spans):
        if span.state != "setup":
            continue
        nxt = spans[i + 1] if i + 1 < len(spans) else None
        if nxt is not None and (nxt.state != "setup" or nxt.start_ms != span.end_ms):
            out.append(span.end_ms)
    return out
