"""KPIs and the six big losses on hand-computed figures; a line sums before it divides."""

from __future__ import annotations

import pytest

from cloud.oee.kpi import (
    REWORK_UNKNOWN,
    Quantities,
    Totals,
    compute_kpis,
    machine_totals,
    planned_run_time_s,
    quantities_from_counters,
)
from cloud.oee.losses import six_big_losses
from cloud.oee.timemodel import TimeElements

S = 1000

# The planned hour of test_oee_timemodel: PBT 3300 s, APT 2000 (60 micro), AUST 300,
# ADET 300, ADOT 300, UNKT 400, PDOT 300, one failure, one micro-stop.
HOUR = TimeElements(
    pot_ms=3600 * S, pdot_ms=300 * S, apt_ms=2000 * S, aust_ms=300 * S, adet_ms=300 * S,
    adot_ms=300 * S, unkt_ms=400 * S, micro_stop_ms=60 * S, micro_stops=1, failure_events=1,
)  # fmt: skip
# ideal cycle 10 s, 2 units per cycle -> PRI = 5 s; 300 good, 20 scrap of which 4 after a setup
PRI = planned_run_time_s(10.0, 2)
QTY = quantities_from_counters(cycles=None, good=300, scrap=20, units_per_cycle=2, startup_scrap=4)


def test_machine_kpis():
    assert PRI == 5.0
    assert (QTY.produced, QTY.good, QTY.scrap) == (320, 300, 20)
    k = compute_kpis(machine_totals(HOUR, QTY, PRI))
    assert k.availability == pytest.approx(2000 / 3300)
    assert k.effectiveness == pytest.approx(5 * 320 / 2000)  # 0.8
    assert k.quality_ratio == pytest.approx(300 / 320)  # 0.9375
    assert k.oee == pytest.approx(2000 / 3300 * 0.8 * 0.9375)  # 0.4545...
    assert k.nee == pytest.approx(2300 / 3300 * 0.8 * 0.9375)
    assert k.technical_efficiency == pytest.approx(2000 / 2300)
    assert k.setup_rate == pytest.approx(300 / 2300)
    assert k.scrap_ratio == pytest.approx(20 / 320)
    assert k.throughput_per_hour == pytest.approx(320 * 3600 / 2300)
    assert k.mtbf_s == pytest.approx(2300 / 2)  # AUPT / (FE + 1)
    assert k.mttr_s == pytest.approx(300 / 1)  # ADET / FE
    assert (k.rework_ratio, k.first_pass_yield) == (None, None)
    assert k.reasons["rework_ratio"] == REWORK_UNKNOWN
    assert k.totals.elements is HOUR  # the result carries what it came from


def test_six_big_losses_add_up_to_pbt_minus_valuable_time():
    losses = six_big_losses(machine_totals(HOUR, QTY, PRI))
    lines = dict(losses.lines())
    assert lines["equipment failure"] == 300
    assert lines["setup and adjustment"] == 300
    assert lines["idle (starved/blocked)"] == 300
    assert lines["minor stops"] == 60
    assert lines["reduced speed"] == 340  # 2000 - 5 x 320 - 60
    assert lines["faster than ideal"] == 0
    assert lines["process defects"] == 80  # 5 x (20 - 4)
    assert lines["reduced yield"] == 20  # 5 x 4
    assert lines["unknown"] == 400
    assert losses.total_s == pytest.approx(3300 - 5 * 300)  # PBT - PRI x GQ = 1800


def test_faster_than_ideal_keeps_the_sum():
    # 500 units at PRI 5 s = 2500 s of ideal time in 2000 s of APT: the ideal is too slow
    qty = quantities_from_counters(None, good=500, scrap=0, units_per_cycle=1)
    losses = six_big_losses(machine_totals(HOUR, qty, PRI))
    assert losses.reduced_speed_s == 0
    assert losses.faster_than_ideal_s == 2000 - 2500 - 60  # -560
    assert losses.total_s == pytest.approx(3300 - 5 * 500)


def test_unknowns_are_none_with_reasons():
    only_cycles = quantities_from_counters(cycles=100, good=None, scrap=None, units_per_cycle=2)
    assert only_cycles == Quantities(200, None, None, None)
    k = compute_kpis(machine_totals(HOUR, only_cycles, None))
    assert k.quality_ratio is None
    assert "quality unknown" in k.reasons["quality_ratio"]
    assert k.effectiveness is None
    assert "ideal cycle time" in k.reasons["effectiveness"]
    assert k.oee is None
    assert k.availability == pytest.approx(2000 / 3300)
    empty = compute_kpis(Totals())
    assert empty.availability is None
    assert "PBT = 0" in empty.reasons["availability"]
    assert empty.mttr_s is None
    assert empty.mtbf_s is None
    losses = six_big_losses(machine_totals(HOUR, only_cycles, None))
    assert losses.reduced_speed_s is None
    assert losses.total_s is None


def test_a_line_sums_its_machines_before_dividing():
    a = machine_totals(HOUR, QTY, PRI)
    # machine b: a full planned hour running, PRI 1 s, 3600 good units: OEE 1
    b_elements = TimeElements(pot_ms=3600 * S, apt_ms=3600 * S)
    b = machine_totals(b_elements, quantities_from_counters(None, 3600, 0, 1), 1.0)
    assert compute_kpis(b).oee == pytest.approx(1.0)
    line = compute_kpis(a + b)
    assert line.totals.machines == 2
    assert line.availability == pytest.approx(5600 / 6900)  # (2000 + 3600) / (3300 + 3600)
    assert line.effectiveness == pytest.approx((1600 + 3600) / 5600)  # sum of PRI x PQ / APT
    assert line.quality_ratio == pytest.approx(3900 / 3920)
    assert line.oee == pytest.approx(5600 / 6900 * 5200 / 5600 * 3900 / 3920)  # 0.7498
    mean_of_machines = (compute_kpis(a).oee + 1.0) / 2  # 0.7273: not the line's OEE
    assert line.oee != pytest.approx(mean_of_machines)
    assert six_big_losses(a + b).total_s == pytest.approx(6900 - (1500 + 3600))
