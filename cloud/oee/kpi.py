"""ISO 22400-2 KPIs from time elements and quantities (pure; every input travels with the result).

Formulas (times in seconds, PRI = planned run time per item = ideal cycle time / units per cycle)::

    Availability           = APT / PBT
    Effectiveness          = PRI × PQ / APT
    Quality ratio          = GQ / PQ
    OEE                    = Availability × Effectiveness × Quality ratio
    NEE                    = AUPT / PBT × Effectiveness × Quality ratio
    Technical efficiency   = APT / (APT + ADET)
    Setup rate             = AUST / AUPT
    Scrap ratio            = SQ / PQ
    Rework ratio, FPY      = RQ / PQ, GP / IP: None (rework is not recorded yet)
    Throughput rate        = PQ / AUPT, in units per hour of processing time
    MTBF                   = ΣTBF / (FE + 1) with ΣTBF = AUPT (operating time: setup and
                             production, no delays)
    MTTR                   = ΣTTR / FE with ΣTTR = ADET

A ratio whose denominator is 0 or whose inputs are unknown is None, and ``reasons`` says why.
A line or a site is aggregated by summing ``Totals`` over its machines first (time elements,
quantities and PRI × quantity) and forming the ratios afterwards: the OEE of a line is not the
mean of its machines' OEEs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cloud.oee.timemodel import TimeElements

REWORK_UNKNOWN = "rework quantity (RQ) is not recorded yet"


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


@dataclass(frozen=True, slots=True)
class Quantities:
    """Units made in a window's planned time; None where no counter tells."""

    produced: float | None = None
    good: float | None = None
    scrap: float | None = None
    startup_scrap: float | None = None
    """Scrap within the first minutes after a setup ended (part of ``scrap``)."""

    def __add__(self, other: Quantities) -> Quantities:
        return Quantities(
            *(_add(getattr(self, f.name), getattr(other, f.name)) for f in fields(Quantities))
        )


def quantities_from_counters(
    cycles: float | None,
    good: float | None,
    scrap: float | None,
    units_per_cycle: int,
    startup_scrap: float | None = None,
) -> Quantities:
    """PQ/GQ/SQ from counter increases: cycles × units per cycle only without unit counters.

    good + scrap → PQ = good + scrap; cycles + scrap → GQ = PQ − scrap; cycles + good →
    SQ = PQ − good (not below 0); cycles alone → PQ only (quality unknown).
    """
    if good is not None and scrap is not None:
        produced: float | None = good + scrap
    elif cycles is not None:
        produced = cycles * units_per_cycle
    else:
        produced = good
    if good is None and produced is not None and scrap is not None:
        good = max(produced - scrap, 0.0)
    if scrap is None and produced is not None and good is not None and cycles is not None:
        scrap = max(produced - good, 0.0)
    if scrap is not None and startup_scrap is None:
        startup_scrap = 0.0
    return Quantities(produced, good, scrap, startup_scrap)


@dataclass(frozen=True, slots=True)
class Totals:
    """What KPIs and losses are made of; sums over machines and periods with ``+``."""

    elements: TimeElements = field(default_factory=TimeElements)
    quantities: Quantities = field(default_factory=lambda: Quantities(0.0, 0.0, 0.0, 0.0))
    ideal_produced_s: float | None = 0.0
    """PRI × PQ: the time the units would have taken at the ideal cycle time."""
    ideal_good_s: float | None = 0.0
    ideal_startup_scrap_s: float | None = 0.0
    machines: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.elements + other.elements,
            self.quantities + other.quantities,
            _add(self.ideal_produced_s, other.ideal_produced_s),
            _add(self.ideal_good_s, other.ideal_good_s),
            _add(self.ideal_startup_scrap_s, other.ideal_startup_scrap_s),
            self.machines + other.machines,
        )


def planned_run_time_s(ideal_cycle_time_s: float | None, units_per_cycle: int) -> float | None:
    """PRI: seconds per unit at the ideal cycle time (None if the cycle time is not known)."""
    if ideal_cycle_time_s is None or ideal_cycle_time_s <= 0:
        return None
    return ideal_cycle_time_s / max(units_per_cycle, 1)


def machine_totals(elements: TimeElements, quantities: Quantities, pri_s: float | None) -> Totals:
    """One machine's totals; PRI × quantity is formed here, where PRI is one number."""

    def ideal(count: float | None) -> float | None:
        return None if pri_s is None or count is None else pri_s * count

    return Totals(
        elements,
        quantities,
        ideal(quantities.produced),
        ideal(quantities.good),
        ideal(quantities.startup_scrap),
        1,
    )


@dataclass(frozen=True, slots=True)
class Kpis:
    """The KPIs of one machine, line or site over a window, with every input they came from."""

    totals: Totals
    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None
    nee: float | None
    technical_efficiency: float | None
    setup_rate: float | None
    scrap_ratio: float | None
    rework_ratio: float | None
    first_pass_yield: float | None
    throughput_per_hour: float | None
    mtbf_s: float | None
    mttr_s: float | None
    reasons: dict[str, str]
    """KPI name → why it is None."""


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def compute_kpis(totals: Totals) -> Kpis:
    """Every KPI from ``totals`` (None, with a reason, where it cannot be formed)."""
    e, q = totals.elements, totals.quantities
    pbt, apt, aust, adet = e.pbt_ms / 1000, e.apt_ms / 1000, e.aust_ms / 1000, e.adet_ms / 1000
    aupt = apt + aust
    reasons: dict[str, str] = {}

    availability = _ratio(apt, pbt)
    if availability is None:
        reasons["availability"] = "no planned busy time (PBT = 0) in the window"
    effectiveness = _ratio(totals.ideal_produced_s, apt)
    if effectiveness is None:
        if q.produced is None:
            reasons["effectiveness"] = "no cycle or good/scrap counter: produced quantity unknown"
        elif totals.ideal_produced_s is None:
            reasons["effectiveness"] = "no ideal cycle time (set one per machine or in the profile)"
        else:
            reasons["effectiveness"] = "no production time (APT = 0)"
    quality = _ratio(q.good, q.produced)
    if quality is None:
        reasons["quality_ratio"] = (
            "no good or scrap counter: quality unknown"
            if q.produced is not None and q.good is None
            else "nothing produced (PQ = 0) or produced quantity unknown"
        )
    oee = None if None in (availability, effectiveness, quality) else (
        availability * effectiveness * quality  # type: ignore[operator]
    )  # fmt: skip
    if oee is None:
        reasons["oee"] = "needs availability, effectiveness and quality ratio"
    nee_base = _ratio(aupt, pbt)
    nee = None if None in (nee_base, effectiveness, quality) else (
        nee_base * effectiveness * quality  # type: ignore[operator]
    )  # fmt: skip
    if nee is None:
        reasons["nee"] = "needs PBT > 0, effectiveness and quality ratio"
    technical = _ratio(apt, apt + adet)
    if technical is None:
        reasons["technical_efficiency"] = "no production or delay time (APT + ADET = 0)"
    setup_rate = _ratio(aust, aupt)
    if setup_rate is None:
        reasons["setup_rate"] = "no processing time (AUPT = 0)"
    scrap_ratio = _ratio(q.scrap, q.produced)
    if scrap_ratio is None:
        reasons["scrap_ratio"] = "scrap quantity unknown or nothing produced"
    reasons["rework_ratio"] = REWORK_UNKNOWN
    reasons["first_pass_yield"] = REWORK_UNKNOWN
    throughput = _ratio(None if q.produced is None else q.produced * 3600, aupt)
    if throughput is None:
        reasons["throughput_per_hour"] = "produced quantity unknown or no processing time"
    mtbf = aupt / (e.failure_events + 1) if pbt > 0 else None
    if mtbf is None:
        reasons["mtbf_s"] = "no planned busy time in the window"
    mttr = adet / e.failure_events if e.failure_events else None
    if mttr is None:
        reasons["mttr_s"] = "no failure event started in the window"
    return Kpis(
        totals=totals,
        availability=availability,
        effectiveness=effectiveness,
        quality_ratio=quality,
        oee=oee,
        nee=nee,
        technical_efficiency=technical,
        setup_rate=setup_rate,
        scrap_ratio=scrap_ratio,
        rework_ratio=None,
        first_pass_yield=None,
        throughput_per_hour=throughput,
        mtbf_s=mtbf,
        mttr_s=mttr,
        reasons=reasons,
    )
