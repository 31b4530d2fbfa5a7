"""The six big losses in seconds, plus idle and unknown time, from a window's totals (pure).

=====================  ==========================================================
line                   seconds
=====================  ==========================================================
equipment failure      ADET (down stops at or above the micro-stop threshold)
setup and adjustment   AUST
idle (starved/blocked) ADOT (idle stops at or above the threshold)
minor stops            micro-stop time (short down/idle stops, inside APT)
reduced speed          APT − PRI×PQ − minor stops, not below 0
faster than ideal      the same when negative (≤ 0): the ideal cycle time is too long
process defects        PRI × (SQ − startup scrap)
reduced yield          PRI × startup scrap: scrap counted in the first N minutes after
                       a setup ended (an approximation of start-up losses)
unknown                UNKT (no data, bad quality, unknown state code)
=====================  ==========================================================

The lines add up to PBT − PRI × GQ (the time that did not become good units at the ideal
rate): the test suite checks it. Lines that need the ideal cycle time or the scrap count are
None when it is unknown, and ``reasons`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.oee.kpi import Totals


@dataclass(frozen=True, slots=True)
class Losses:
    pbt_s: float
    valuable_s: float | None
    """PRI × GQ: the time good units would have taken at the ideal rate."""
    equipment_failure_s: float
    setup_adjustment_s: float
    idle_s: float
    minor_stops_s: float
    reduced_speed_s: float | None
    faster_than_ideal_s: float | None
    process_defects_s: float | None
    reduced_yield_s: float | None
    unknown_s: float
    reasons: dict[str, str]

    def lines(self) -> list[tuple[str, float | None]]:
        """(name, seconds) in display order."""
        return [
            ("equipment failure", self.equipment_failure_s),
            ("setup and adjustment", self.setup_adjustment_s),
            ("idle (starved/blocked)", self.idle_s),
            ("minor stops", self.minor_stops_s),
            ("reduced speed", self.reduced_speed_s),
            ("faster than ideal", self.faster_than_ideal_s),
            ("process defects", self.process_defects_s),
            ("reduced yield", self.reduced_yield_s),
            ("unknown", self.unknown_s),
        ]

    @property
    def total_s(self) -> float | None:
        values = [v for _, v in self.lines()]
        return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def six_big_losses(totals: Totals) -> Losses:
    """The loss lines of ``totals`` (one machine, or a sum over machines and periods)."""
    e = totals.elements
    reasons: dict[str, str] = {}
    apt, micro = e.apt_ms / 1000, e.micro_stop_ms / 1000
    speed: float | None = None
    faster: float | None = None
    if totals.ideal_produced_s is None:
        reasons["reduced_speed_s"] = "needs the ideal cycle time and a produced quantity"
    else:
        gap = apt - totals.ideal_produced_s - micro
        speed, faster = max(gap, 0.0), min(gap, 0.0)
    defects: float | None = None
    yield_loss: float | None = None
    if totals.ideal_produced_s is None or totals.ideal_good_s is None:
        reasons["process_defects_s"] = "needs the ideal cycle time and the good or scrap count"
    else:
        yield_loss = totals.ideal_startup_scrap_s or 0.0
        defects = totals.ideal_produced_s - totals.ideal_good_s - yield_loss
    if totals.ideal_startup_scrap_s is None and "process_defects_s" not in reasons:
        reasons["reduced_yield_s"] = "no scrap counter: start-up scrap is not separated"
    return Losses(
        pbt_s=e.pbt_ms / 1000,
        valuable_s=totals.ideal_good_s,
        equipment_failure_s=e.adet_ms / 1000,
        setup_adjustment_s=e.aust_ms / 1000,
        idle_s=e.adot_ms / 1000,
        minor_stops_s=micro,
        reduced_speed_s=speed,
        faster_than_ideal_s=faster,
        process_defects_s=defects,
        reduced_yield_s=yield_loss,
        unknown_s=e.unkt_ms / 1000,
        reasons=reasons,
    )
