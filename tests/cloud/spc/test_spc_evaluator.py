"""The SPC evaluator over a real database (SQLite and PostgreSQL), fed through the real ingest
writer: phase II points, rule violations, alarms that open and return, restarts and replays.

The data is Montgomery's piston-ring example: phase I (25 subgroups of 5) is the baseline;
phase II (samples 26..40) drifts upward. Against the baseline's X̄ limits the subgroup means of
phase II have z = 1.67 0.21 −2.06 0.53 −0.88 1.35 0.99 −0.79 2.26 2.58 0.62 3.49 4.18 5.04
2.63 (σ = R̄/d2 = 0.009819, σ_X̄ = σ/√5), so by the Nelson rules: nelson5 at subgroup 9 (2.26,
2.58), nelson1 at 11, 12 and 13 (Montgomery's three out-of-control samples 37..39), nelson5 at
11..14 and nelson6 at 12..14.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.alarms.models import Alarm, AlarmEvent
from cloud.spc import service
from cloud.spc.config import ChartSpec
from cloud.spc.evaluator import SpcEvaluator, alarm_key, evaluate_pending
from cloud.spc.models import SpcPoint, SpcViolation
from cloud.spc.rules import evaluate
from tests.cloud.spc.conftest import Lathe, T
from tests.cloud.spc.piston_rings import PISTON_RINGS_PHASE_I, PISTON_RINGS_PHASE_II

BASELINE_END = T + 125_000
# (rule, subgroup index in phase II, indices of the points involved)
EXPECTED = [
    ("nelson5", 9, [8, 9]),
    ("nelson1", 11, [11]), ("nelson5", 11, [9, 11]),
    ("nelson1", 12, [12]), ("nelson5", 12, [11, 12]), ("nelson6", 12, [8, 9, 11, 12]),
    ("nelson1", 13, [13]), ("nelson5", 13, [11, 12, 13]), ("nelson6", 13, [9, 11, 12, 13]),
    ("nelson5", 14, [12, 13, 14]), ("nelson6", 14, [11, 12, 13, 14]),
]  # fmt: skip
IN_CONTROL = PISTON_RINGS_PHASE_I[1]  # mean 74.0006: z = −0.15


def _flat(groups):
    return [value for group in groups for value in group]


def _point_ts(index: int) -> int:
    """The time of phase II subgroup ``index``: its fifth sample (1 s apart after the baseline)."""
    return BASELINE_END + (5 * index + 4) * 1_000


def _chart_with_limits(lathe: Lathe, *, alarm: bool = True, **fields) -> int:
    lathe.feed(lathe.bores(T, _flat(PISTON_RINGS_PHASE_I)))
    spec = ChartSpec(name="bore xbar", machine_id=lathe.machine_id, metric="bore",
                     chart_type="xbar_r", subgroup_size=5, lsl=73.95, usl=74.05, alarm=alarm,
                     alarm_priority="high", **fields)  # fmt: skip
    with Session(lathe.engine) as session:
        chart = service.create_chart(session, spec, "qe", T)
        service.set_limits(session, chart.id, T, BASELINE_END, set_by="qe", now=T + 130_000)
        session.commit()
        return chart.id


def _phase2(lathe: Lathe, first: int, groups) -> list:
    return lathe.feed(lathe.bores(BASELINE_END + 5 * first * 1_000, _flat(groups)))


def _violations(engine, chart_id):
    with Session(engine) as session:
        rows = session.scalars(
            select(SpcViolation)
            .where(SpcViolation.chart_id == chart_id)
            .order_by(SpcViolation.ts_ms, SpcViolation.rule)
        ).all()
        return [(v.rule, v.ts_ms, [p["ts_ms"] for p in v.points], v.alarm_id) for v in rows]


def _expected(until: int) -> list:
    order = {f"nelson{i}": i for i in range(1, 9)}
    rows = [(rule, _point_ts(i), [_point_ts(j) for j in pts]) for rule, i, pts in EXPECTED
            if i <= until]  # fmt: skip
    return sorted(rows, key=lambda r: (r[1], r[0], order[r[0]]))


def _alarm_history(engine, chart_id):
    with Session(engine) as session:
        alarm = session.scalars(select(Alarm).where(Alarm.point_key == alarm_key(chart_id))).one()
        events = session.execute(
            select(AlarmEvent.event, AlarmEvent.state, AlarmEvent.ts_ms, AlarmEvent.notify)
            .where(AlarmEvent.alarm_id == alarm.id)
            .order_by(AlarmEvent.id)
        ).all()
        return alarm, [tuple(e) for e in events]


@pytest.fixture
def evaluators(db_engine):
    started: list[SpcEvaluator] = []

    def make() -> SpcEvaluator:
        evaluator = SpcEvaluator(db_engine)
        evaluator.start()
        started.append(evaluator)
        return evaluator

    yield make
    for evaluator in started:
        evaluator.stop()


def _observe(evaluator: SpcEvaluator, results) -> None:
    for result in results:
        evaluator.observe(result)
    assert evaluator.flush()


def test_violations_are_recorded_and_raise_and_return_the_charts_alarm(
    db_engine, lathe, evaluators
):
    chart_id = _chart_with_limits(lathe)
    evaluator = evaluators()
    _observe(evaluator, _phase2(lathe, 0, PISTON_RINGS_PHASE_II[:10]))

    assert [(r, ts, pts) for r, ts, pts, _ in _violations(db_engine, chart_id)] == _expected(9)
    alarm, events = _alarm_history(db_engine, chart_id)
    assert (alarm.state, alarm.kind, alarm.rule, alarm.priority, alarm.metric, alarm.unit) == (
        "active_unack", "spc_rule", "spc.bore xbar", "high", "bore", "mm",
    )  # fmt: skip
    assert alarm.raised_ms == _point_ts(9)
    assert "nelson5" in alarm.message
    assert events == [("raised", "active_unack", _point_ts(9), "pending")]

    # subgroup 10 is clean (the alarm returns), 11..14 fire again, the extra one is clean
    _observe(evaluator, _phase2(lathe, 10, [*PISTON_RINGS_PHASE_II[10:], IN_CONTROL]))
    found = _violations(db_engine, chart_id)
    assert [(r, ts, pts) for r, ts, pts, _ in found] == _expected(14)
    assert {alarm_id for *_, alarm_id in found} == {alarm.id}
    alarm, events = _alarm_history(db_engine, chart_id)
    assert [(e, s, ts) for e, s, ts, _ in events] == [
        ("raised", "active_unack", _point_ts(9)),
        ("returned_to_normal", "rtn_unack", _point_ts(10)),
        ("raised", "active_unack", _point_ts(11)),
        ("returned_to_normal", "rtn_unack", _point_ts(15)),
    ]
    assert (alarm.state, alarm.activations, alarm.returned_ms) == ("rtn_unack", 2, _point_ts(15))
    with Session(db_engine) as session:
        points = session.scalars(
            select(SpcPoint).where(SpcPoint.chart_id == chart_id).order_by(SpcPoint.ts_ms)
        ).all()
    assert [p.ts_ms for p in points] == [_point_ts(i) for i in range(16)]
    assert points[13].statistic == pytest.approx(74.0234)  # Montgomery's sample 39
    assert [p.violations for p in points][9:] == [1, 0, 2, 3, 3, 2, 0]
    counters = evaluator.counters.snapshot()
    assert (counters["points"], counters["violations"], counters["errors"]) == (16, 11, 0)
    assert (counters["alarms_raised"], counters["alarms_returned"]) == (2, 2)


def test_a_restarted_evaluator_continues_its_runs_without_duplicates(db_engine, lathe, evaluators):
    chart_id = _chart_with_limits(lathe)
    first = evaluators()
    early = _phase2(lathe, 0, PISTON_RINGS_PHASE_II[:10])
    _observe(first, early)
    first.stop()

    second = evaluators()  # primed from the stored points: nelson6 at 12 needs points 8 and 9
    late = _phase2(lathe, 10, PISTON_RINGS_PHASE_II[10:])
    _observe(second, late)
    _observe(second, early + late)  # a replay changes nothing
    assert [outcome.points for outcome in evaluate_pending(db_engine)] == [0]

    found = [(r, ts, pts) for r, ts, pts, _ in _violations(db_engine, chart_id)]
    assert found == _expected(14)
    # the streaming result equals the batch rules over all the stored points
    with Session(db_engine) as session:
        z = session.scalars(
            select(SpcPoint.z).where(SpcPoint.chart_id == chart_id).order_by(SpcPoint.ts_ms)
        ).all()
    batch = [(str(v.rule), v.index) for v in evaluate(z, 0.0, 1.0, [f"nelson{i}" for i in
                                                                   range(1, 9)])]  # fmt: skip
    assert sorted(batch) == sorted((rule, i) for rule, i, _ in EXPECTED)
    alarm, events = _alarm_history(db_engine, chart_id)
    assert [e for e, *_ in events] == ["raised", "returned_to_normal", "raised"]
    assert alarm.state == "active_unack"


def test_evaluate_pending_forms_windows_by_time_and_waits_for_the_window_to_close(db_engine, lathe):
    # by time: 10 s windows, the first 3 samples of each; 4 samples per window, 2.5 s apart
    lathe.feed([("bore", T + i * 2_500, 74.0 + (0.004 if i % 2 else -0.004)) for i in range(40)])
    spec = ChartSpec(name="bore by time", machine_id=lathe.machine_id, metric="bore",
                     chart_type="xbar_s", subgroup_size=3, subgroup_window_s=10)  # fmt: skip
    with Session(db_engine) as session:
        chart = service.create_chart(session, spec, "qe", T)
        limits = service.set_limits(session, chart.id, T, T + 100_000, set_by="qe", now=T)
        session.commit()
        session.refresh(limits)
        chart_id = chart.id
    # first 3 of each window: −, +, − → mean 73.99867, s = 0.004619
    assert limits.centre == pytest.approx(74.0 - 0.004 / 3)
    assert (limits.subgroups_used, limits.points_used) == (10, 30)
    # phase II: window [T+100 s, T+110 s) gets 3 samples; it closes only when T+110 s arrives
    lathe.feed([("bore", T + 100_000 + i * 1_000, 74.05) for i in range(3)])
    assert evaluate_pending(db_engine)[0].points == 0
    lathe.feed([("bore", T + 110_000, 74.0)])
    [outcome] = evaluate_pending(db_engine, [chart_id])
    assert (outcome.points, outcome.violations, outcome.alarms_raised) == (1, 1, 0)
    assert _violations(db_engine, chart_id) == [("nelson1", T + 100_000, [T + 100_000], None)]


def test_a_failing_chart_is_counted_and_logged_once_and_the_others_go_on(
    db_engine, lathe, evaluators, caplog
):
    chart_id = _chart_with_limits(lathe, alarm=False)
    broken = ChartSpec(name="scrap p", machine_id=lathe.machine_id, chart_type="p",
                       subgroup_window_s=60, metric="no_such_counter")  # fmt: skip
    with Session(db_engine) as session:
        broken_id = service.create_chart(session, broken, "qe", T).id
        # limits stored directly: the counter it names is gone (e.g. a new profile dropped it)
        from cloud.spc.models import SpcLimits

        session.add(SpcLimits(chart_id=broken_id, centre=0.02, ucl=0.1, lcl=0.0, sigma=0.02,
                              sample_size=50, baseline_from_ms=T, baseline_to_ms=T + 1,
                              excluded=[], subgroups_used=20, points_used=1000, set_by="qe",
                              set_ms=T))  # fmt: skip
        session.commit()
    evaluator = evaluators()
    with caplog.at_level(logging.ERROR, logger="cloud.spc.evaluator"):
        for group in range(3):
            _observe(evaluator, _phase2(lathe, group, PISTON_RINGS_PHASE_II[group : group + 1]))
    counters = evaluator.counters.snapshot()
    assert counters["errors"] == 4  # the catch-up pass at start, then three batches
    assert counters["points"] == 3  # the good chart went on
    logged = [r for r in caplog.records if f"chart {broken_id} failed" in r.getMessage()]
    assert len(logged) == 1
    with Session(db_engine) as session:
        stored = session.scalar(select(func.count()).where(SpcPoint.chart_id == chart_id))
    assert stored == 3


def test_p_chart_counts_scrap_per_window_from_the_counters(db_engine, lathe):
    # one minute windows; each window makes 100 parts; scrap 2 per window in the baseline
    samples = []
    good = scrap = 0
    for minute in range(20):
        for step in range(4):  # counters every 15 s
            good += 24 if step < 2 else 25
            scrap += 1 if step in (1, 3) else 0
            ts = T + minute * 60_000 + step * 15_000 + 5_000
            samples += [("parts_good", ts, good), ("parts_scrap", ts, scrap)]
    lathe.feed(samples)
    spec = ChartSpec(name="scrap p", machine_id=lathe.machine_id, chart_type="p",
                     subgroup_window_s=60, alarm=True)  # fmt: skip
    with Session(db_engine) as session:
        chart = service.create_chart(session, spec, "qe", T)
        limits = service.set_limits(session, chart.id, T, T + 20 * 60_000, set_by="qe", now=T)
        session.commit()
        session.refresh(limits)
        chart_id = chart.id
    # the first sample is the counters' baseline: window 0 counts 3 readings (74 good, 2 scrap)
    assert limits.subgroups_used == 20
    assert limits.centre == pytest.approx(40 / (76 + 19 * 100))
    # phase II: a window with 12 scrap of 100
    phase2 = []
    for step in range(4):
        good += 22
        scrap += 3
        ts = T + 20 * 60_000 + step * 15_000 + 5_000
        phase2 += [("parts_good", ts, good), ("parts_scrap", ts, scrap)]
    phase2 += [("parts_good", T + 21 * 60_000 + 5_000, good)]  # closes the window
    lathe.feed(phase2)
    [outcome] = evaluate_pending(db_engine, [chart_id])
    assert (outcome.points, outcome.alarms_raised) == (1, 1)
    with Session(db_engine) as session:
        point = session.scalars(select(SpcPoint).where(SpcPoint.chart_id == chart_id)).one()
    assert (point.ts_ms, point.sample_size, point.statistic) == (T + 20 * 60_000, 100.0, 0.12)
    assert [r for r, *_ in _violations(db_engine, chart_id)] == ["nelson1"]


def test_a_chart_added_while_running_is_evaluated_after_a_reload(db_engine, lathe, evaluators):
    evaluator = evaluators()  # no charts yet
    chart_id = _chart_with_limits(lathe)
    evaluator.reload()
    _observe(evaluator, _phase2(lathe, 0, PISTON_RINGS_PHASE_II[:10]))
    assert evaluator.counters.snapshot()["charts"] == 1
    assert [r for r, *_ in _violations(db_engine, chart_id)] == ["nelson5"]
