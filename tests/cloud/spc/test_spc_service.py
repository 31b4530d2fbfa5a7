"""SPC service functions over a real database (SQLite and PostgreSQL): charts, phase I limits
from stored samples (Montgomery's piston rings as the published check), exclusions, product
filtering, the chart view, capability and the limits the parameter chart shows."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import InvalidRequest, NotFound
from cloud.production import service as production
from cloud.spc import service
from cloud.spc.capability import capability
from cloud.spc.config import ChartSpec
from cloud.spc.evaluator import evaluate_pending
from cloud.spc.models import SpcLimits, SpcPoint
from tests.cloud.spc.conftest import Lathe, T
from tests.cloud.spc.piston_rings import PISTON_RINGS_PHASE_I, PISTON_RINGS_PHASE_II

RINGS = [value for group in PISTON_RINGS_PHASE_I for value in group]
BASELINE_END = T + 125_000


def _spec(lathe: Lathe, **fields) -> ChartSpec:
    values = {"name": "bore xbar", "machine_id": lathe.machine_id, "metric": "bore",
              "chart_type": "xbar_r", "subgroup_size": 5, "lsl": 73.95, "usl": 74.05}  # fmt: skip
    return ChartSpec(**(values | fields))


@pytest.fixture
def session(db_engine):
    with Session(db_engine, expire_on_commit=False) as db_session:
        yield db_session


@pytest.fixture
def rings(lathe: Lathe) -> Lathe:
    """The lathe with Montgomery's phase I rings stored, 1 s apart from T."""
    lathe.feed(lathe.bores(T, RINGS))
    return lathe


def test_charts_are_created_listed_updated_and_deleted(session, lathe):
    chart = service.create_chart(session, _spec(lathe, rules="western_electric"), "qe", T)
    assert (chart.rules, chart.alarm, chart.alarm_priority, chart.enabled) == (
        ["we1", "we2", "we3", "we4"], False, "medium", True,
    )  # fmt: skip
    by_name = service.create_chart(
        session, _spec(lathe, name="bore i", machine_id=None, machine="ring-lathe",
                       chart_type="i_mr", subgroup_size=None), None, T,
    )  # fmt: skip
    assert (by_name.machine_id, by_name.subgroup_size, by_name.rules[0]) == (
        lathe.machine_id, 1, "nelson1",
    )  # fmt: skip
    assert [c.name for c in service.list_charts(session)] == ["bore i", "bore xbar"]
    assert service.list_charts(session, lathe.machine_id + 1) == []

    updated = service.update_chart(session, chart.id, _spec(lathe, usl=74.04), "lead", T + 1)
    assert (updated.usl, updated.updated_by, updated.created_by) == (74.04, "lead", "qe")
    service.delete_chart(session, by_name.id)
    with pytest.raises(NotFound, match="no SPC chart"):
        service.get_chart(session, by_name.id)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"machine_id": None, "machine": "nope"}, "machine"),
        ({"machine_id": 999}, "machine_id"),
        ({"product": "NOPE"}, "product"),
    ],
)
def test_unknown_references_name_the_field(session, lathe, fields, field):
    with pytest.raises(InvalidRequest, match=f"^{field}:"):
        service.create_chart(session, _spec(lathe, **fields), "qe", T)


def test_a_chart_name_is_unique(session, lathe):
    service.create_chart(session, _spec(lathe), "qe", T)
    with pytest.raises(InvalidRequest, match=r"^name: chart .* is already named 'bore xbar'"):
        service.create_chart(session, _spec(lathe), "qe", T)


def test_phase_i_limits_from_stored_samples_match_montgomery(session, rings):
    chart = service.create_chart(session, _spec(rings), "qe", T)
    limits = service.set_limits(
        session, chart.id, T, BASELINE_END, set_by="Li Wei", note="first run", now=T + 200_000
    )
    assert round(limits.centre, 3) == 74.001
    assert round(limits.ucl, 3) == 74.014
    assert round(limits.lcl, 3) == 73.988
    assert round(limits.dispersion_centre, 3) == 0.023
    assert limits.dispersion_lcl == 0.0
    assert limits.sigma == pytest.approx(limits.dispersion_centre / 2.326)
    assert (limits.subgroups_used, limits.points_used, limits.sample_size) == (25, 125, 5.0)
    assert (limits.set_by, limits.set_ms, limits.note, limits.excluded) == (
        "Li Wei", T + 200_000, "first run", [],
    )  # fmt: skip


def test_excluded_subgroups_by_index_or_time_are_left_out_and_stored(session, rings):
    spike = [74.2, 74.3, 74.1, 74.25, 74.15]  # a 26th subgroup with an assignable cause
    rings.feed(rings.bores(BASELINE_END, spike))
    chart = service.create_chart(session, _spec(rings), "qe", T)
    window = (T, BASELINE_END + 5_000)
    polluted = service.set_limits(session, chart.id, *window, set_by="qe", now=T + 1)
    by_index = service.set_limits(session, chart.id, *window, [25], "qe", now=T + 2)
    spike_ts = BASELINE_END + 4_000
    by_time = service.set_limits(session, chart.id, *window, set_by="qe", exclude_ts=[spike_ts],
                                 now=T + 3)  # fmt: skip
    assert polluted.ucl > 74.02
    assert (round(by_index.ucl, 3), by_index.subgroups_used) == (74.014, 25)
    assert by_index.excluded == by_time.excluded == [{"index": 25, "ts_ms": spike_ts}]
    assert by_time.centre == by_index.centre
    history = service.limits_history(session, chart.id)
    assert [h.id for h in history] == [by_time.id, by_index.id, polluted.id]
    assert service.current_limits(session, chart.id).id == by_time.id


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exclude": [25]}, r"^exclude: 25 is not a subgroup of the baseline \(0..24\)"),
        ({"exclude_ts": [T]}, "^exclude_ts: no point of the baseline is at"),
        ({"exclude": list(range(25))}, "^exclude: exclude: every subgroup is excluded"),
        ({"set_by": " "}, "^set_by:"),
        ({"baseline_to_ms": T}, "^baseline_to_ms: the baseline must end"),
        ({"baseline_to_ms": T + 5_000}, "^baseline_from_ms: the baseline holds 1 subgroup"),
    ],
)
def test_bad_phase_i_requests_name_the_field(session, rings, kwargs, message):
    chart = service.create_chart(session, _spec(rings), "qe", T)
    arguments = {"baseline_from_ms": T, "baseline_to_ms": BASELINE_END, "set_by": "qe"} | kwargs
    with pytest.raises(InvalidRequest, match=message):
        service.set_limits(session, chart.id, now=T, **arguments)


def test_a_baseline_without_variation_is_refused(session, lathe):
    lathe.feed(lathe.bores(T, [74.0] * 20))
    chart = service.create_chart(session, _spec(lathe), "qe", T)
    with pytest.raises(InvalidRequest, match="shows no variation"):
        service.set_limits(session, chart.id, T, T + 20_000, set_by="qe", now=T)


def test_changing_what_a_chart_measures_drops_its_limits(session, rings):
    chart = service.create_chart(session, _spec(rings), "qe", T)
    service.set_limits(session, chart.id, T, BASELINE_END, set_by="qe", now=T)
    service.update_chart(session, chart.id, _spec(rings, alarm=True), "qe", T + 1)
    assert service.current_limits(session, chart.id) is not None  # an alarm flag: kept
    service.update_chart(session, chart.id, _spec(rings, subgroup_size=4), "qe", T + 2)
    assert service.current_limits(session, chart.id) is None


def test_a_product_chart_counts_only_samples_taken_while_its_product_ran(session, rings):
    # VALVE runs on the lathe from the 6th to the 16th second only: subgroups 1 and 2
    production.upsert_product(session, "VALVE", production.ProductSpec("Valve"), T)
    step = production.OperationSpec(10, "Bore", machine_id=rings.machine_id)
    production.upsert_routing(session, "R-V", production.RoutingSpec("VALVE", "r", (step,)), T)
    order = production.upsert_work_order(session, "WO-1", production.WorkOrderSpec("VALVE", 5), T)
    production.work_order_action(session, order.id, "release", T)
    production.operation_action(session, order.id, 10, "start", T + 5_000)
    production.operation_action(session, order.id, 10, "finish", T + 15_000)
    session.commit()
    chart = service.create_chart(session, _spec(rings, product="VALVE"), "qe", T)
    limits = service.set_limits(session, chart.id, T, BASELINE_END, set_by="qe", now=T)
    assert limits.subgroups_used == 2
    both = PISTON_RINGS_PHASE_I[1] + PISTON_RINGS_PHASE_I[2]
    assert limits.centre == pytest.approx(sum(both) / 10)


def test_the_view_forms_points_from_samples_before_the_evaluator_ran(session, rings):
    chart = service.create_chart(session, _spec(rings), "qe", T)
    before = service.chart_view(session, chart.id, T, BASELINE_END)
    assert (before.source, before.limits, len(before.points)) == ("samples", None, 25)
    assert (before.points[0].z, before.violations) == (None, [])
    assert before.points[0].statistic == pytest.approx(sum(PISTON_RINGS_PHASE_I[0]) / 5)
    assert before.points[0].ts_ms == T + 4_000

    service.set_limits(session, chart.id, T, BASELINE_END, set_by="qe", now=T)
    session.commit()
    phase2 = [value for group in PISTON_RINGS_PHASE_II for value in group]
    rings.feed(rings.bores(BASELINE_END, phase2))
    window = (BASELINE_END, BASELINE_END + 75_000)
    preview = service.chart_view(session, chart.id, *window)
    assert preview.source == "samples"
    assert [p.out_of_control for p in preview.points].count(True) == 3
    assert {v.rule for v in preview.violations if not v.recorded} >= {"nelson1", "nelson5"}

    session.commit()  # end the read transaction: the evaluator writes beside it
    evaluate_pending(session.get_bind())
    evaluated = service.chart_view(session, chart.id, *window)
    assert evaluated.source == "evaluated"
    assert [p.ts_ms for p in evaluated.points] == [p.ts_ms for p in preview.points]
    assert [p.statistic for p in evaluated.points] == pytest.approx(
        [p.statistic for p in preview.points]
    )
    assert [(v.rule, v.ts_ms) for v in evaluated.violations] == [
        (v.rule, v.ts_ms) for v in preview.violations
    ]
    assert all(v.recorded for v in evaluated.violations)
    assert session.scalar(select(func.count()).select_from(SpcPoint)) == 15


def test_capability_over_the_window_uses_the_charts_within_sigma(session, rings):
    chart = service.create_chart(session, _spec(rings), "qe", T)
    found = service.chart_capability(session, chart.id, T, BASELINE_END)
    expected = capability(RINGS, lsl=73.95, usl=74.05, within="range", subgroup_size=5)
    assert found == expected
    assert found.points_used == 125
    # Montgomery: σ̂ = R̄/d2 = 0.0099, Cp = 0.1 / (6 · 0.0099) = 1.68 (from the rounded R̄
    # 0.023; the unrounded R̄ gives 1.697): equal within the book's rounding
    assert abs(found.cp - 1.68) <= 0.02


def test_capability_needs_specification_limits_and_a_variables_chart(session, rings):
    chart = service.create_chart(session, _spec(rings, lsl=None, usl=None), "qe", T)
    with pytest.raises(InvalidRequest, match=r"^usl: chart 'bore xbar' has no specification"):
        service.chart_capability(session, chart.id, T, BASELINE_END)
    p_chart = service.create_chart(
        session, ChartSpec(name="scrap", machine_id=rings.machine_id, chart_type="p",
                           subgroup_window_s=60), "qe", T,
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match=r"^chart_type: capability is for variables"):
        service.chart_capability(session, p_chart.id, T, BASELINE_END)


def test_limits_for_gives_spec_and_control_limits_of_the_right_chart(session, rings):
    assert service.limits_for(session, rings.machine_id, "bore", T) is None
    production.upsert_product(session, "VALVE", production.ProductSpec("Valve"), T)
    step = production.OperationSpec(10, "Bore", machine_id=rings.machine_id)
    production.upsert_routing(session, "R-V", production.RoutingSpec("VALVE", "r", (step,)), T)
    order = production.upsert_work_order(session, "WO-1", production.WorkOrderSpec("VALVE", 5), T)
    production.work_order_action(session, order.id, "release", T)
    production.operation_action(session, order.id, 10, "start", T + 200_000)
    general = service.create_chart(session, _spec(rings), "qe", T)
    service.create_chart(session, _spec(rings, name="valve bore", product="VALVE", lsl=73.98,
                                        usl=74.02), "qe", T)  # fmt: skip
    pending = service.limits_for(session, rings.machine_id, "bore", T + 100_000)
    assert pending[:5] == (73.95, 74.05, None, None, None)
    assert "'bore xbar'" in pending.source
    assert "no control limits" in pending.source
    limits = service.set_limits(session, general.id, T, BASELINE_END, set_by="qe", now=T)
    found = service.limits_for(session, rings.machine_id, "bore", T + 100_000)
    assert (found.lsl, found.usl, found.lcl, found.centre, found.ucl) == (
        73.95, 74.05, limits.lcl, limits.centre, limits.ucl,
    )  # fmt: skip
    assert "subgroup means (n=5)" in found.source
    assert "set by qe" in found.source
    while_valve = service.limits_for(session.connection(), rings.machine_id, "bore", T + 300_000)
    assert (while_valve.lsl, while_valve.usl, while_valve.lcl) == (73.98, 74.02, None)
    assert service.limits_for(session, rings.machine_id, "other", T) is None
    assert session.scalar(select(func.count()).select_from(SpcLimits)) == 1
