"""The SPC evaluator: phase II control charts evaluated as data arrives, violations as alarms.

For each enabled chart with frozen limits, ``evaluate_chart`` forms the subgroups that have
completed since the chart's last plotted point (its *cursor*), judges each against the current
limits, stores it (``spc_point``), pushes its ``z`` into the chart's streaming ``RuleState``
and stores every violation it completes (``spc_violation``, unique on chart, rule and time).
A subgroup by count completes with its n-th sample after the cursor; a window (by time, and
every attributes chart) completes when a sample of the metric (or of a counter) past its end
is stored. Phase II starts at the end of the limits' baseline. Samples that arrive older than
the cursor (a late backlog) are not evaluated any more.

Alarms: with ``alarm: true``, a point that completes a violation raises the chart's alarm
(``cloud.alarms.external.raise_signal``, point key ``spc:<chart id>``, kind ``spc_rule``) in the
same transaction; the next point that completes none returns it to normal.

Restarts: the rule state is primed from the last 15 stored points under the current limits
(the longest run rule needs 15), so a restarted evaluator continues where the last one
stopped, and a replayed subgroup is not stored twice (unique keys, ``ON CONFLICT DO NOTHING``).
New limits start a fresh rule state.

Threads: ``SpcEvaluator.observe`` runs in the ingest writer thread and only offers the batch
to a bounded queue (``BatchHandoff``). The evaluator thread evaluates the charts of the
machines the batch carried data for, one transaction per chart. A chart that fails (e.g. the
database is down, or its machine lost its counters) is counted and logged once per chart and
streak, never raised into ingest. ``evaluate_pending`` does one pass without the thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from cloud.alarms.external import SignalPoint, raise_signal, return_signal
from cloud.alarms.models import Alarm
from cloud.assets.models import Machine
from cloud.counters import Counters
from cloud.db import dialect_insert, table_of, writer_engine
from cloud.ingest.handoff import BatchConsumer
from cloud.ingest.writer import BatchResult
from cloud.spc import subgroups as sg
from cloud.spc.models import ATTRIBUTES_TYPES, SpcChart, SpcLimits, SpcPoint, SpcViolation
from cloud.spc.rules import RULES, Rule, RuleState
from cloud.timeseries.models import TsSeries
from protocols.clock import now_ms as clock_ms

log = logging.getLogger(__name__)

PRIME_POINTS = 15  # the longest run rule (nelson7) looks back 15 points
KIND = "spc_rule"
_points = table_of(SpcPoint)
_violations = table_of(SpcViolation)


def alarm_key(chart_id: int) -> str:
    """The alarm point of a chart: at most one open alarm per chart."""
    return f"spc:{chart_id}"


@dataclass
class ChartState:
    """A chart's streaming rule state under one set of limits, and its recent points."""

    limits_id: int
    rules: RuleState
    recent: deque[tuple[int, float]]  # (ts_ms, statistic) by rule-state index, newest last
    last_ts: int | None
    last_statistic: float | None
    in_violation: bool

    def involved(self, indices: Iterable[int]) -> list[dict[str, float]]:
        first = self.rules.count - len(self.recent)
        return [
            {"ts_ms": self.recent[i - first][0], "value": self.recent[i - first][1]}
            for i in indices
            if i >= first
        ]


@dataclass(frozen=True, slots=True)
class ChartOutcome:
    """What one pass over one chart did."""

    chart_id: int
    points: int = 0
    violations: int = 0
    alarms_raised: int = 0
    alarms_returned: int = 0


def prime_state(session: Session, chart: SpcChart, limits: SpcLimits) -> ChartState:
    """The rule state after the chart's last stored points under ``limits``."""
    last = session.execute(
        select(SpcPoint.ts_ms, SpcPoint.statistic, SpcPoint.violations)
        .where(SpcPoint.chart_id == chart.id)
        .order_by(SpcPoint.ts_ms.desc())
        .limit(1)
    ).first()
    rows = session.execute(
        select(SpcPoint.ts_ms, SpcPoint.statistic, SpcPoint.z)
        .where(SpcPoint.chart_id == chart.id, SpcPoint.limits_id == limits.id)
        .order_by(SpcPoint.ts_ms.desc())
        .limit(PRIME_POINTS)
    ).all()
    rules = RuleState(0.0, 1.0, chart.rules)
    recent: deque[tuple[int, float]] = deque(maxlen=PRIME_POINTS)
    for ts_ms, statistic, z in reversed(rows):
        rules.push(z)
        recent.append((int(ts_ms), float(statistic)))
    return ChartState(
        limits_id=limits.id,
        rules=rules,
        recent=recent,
        last_ts=None if last is None else int(last.ts_ms),
        last_statistic=None if last is None else float(last.statistic),
        in_violation=last is not None and last.violations > 0,
    )


def _cursor(session: Session, chart: SpcChart) -> int | None:
    """``last_sample_ms`` of the chart's last point (any limits), None before the first."""
    found = session.scalar(
        select(SpcPoint.last_sample_ms)
        .where(SpcPoint.chart_id == chart.id)
        .order_by(SpcPoint.ts_ms.desc())
        .limit(1)
    )
    return None if found is None else int(found)


def pending_subgroups(session: Session, chart: SpcChart, limits: SpcLimits) -> list[sg.RawSubgroup]:
    """The subgroups completed since the chart's cursor (or since the end of the baseline)."""
    cursor = _cursor(session, chart)
    if chart.chart_type in ATTRIBUTES_TYPES:
        ids = [i for i in sg.counter_ids(session, chart) if i is not None]
        newest = sg.latest_ts(session, ids)
        start = limits.baseline_to_ms if cursor is None else cursor + 1
        return [] if newest is None else sg.read_windows(session, chart, start, newest)
    found = sg.series_id(session, chart, metric=chart.metric)
    newest = None if found is None else sg.latest_ts(session, [found])
    if newest is None:
        return []
    if cursor is None:
        samples = sg.read_values(session, chart, limits.baseline_to_ms, newest + 1)
    else:
        samples = sg.read_values(session, chart, cursor, newest + 1, after=True)
    if chart.subgroup_window_s is not None:
        window_ms = int(chart.subgroup_window_s) * 1000
        first = -(-limits.baseline_to_ms // window_ms) * window_ms
        samples = [(ts, v) for ts, v in samples if ts >= first]
    return sg.variables_subgroups(chart, samples, newest)


def _signal(chart: SpcChart, unit: str | None) -> SignalPoint:
    what = chart.metric or "scrap"
    return SignalPoint(
        key=alarm_key(chart.id), rule=f"spc.{chart.name}", kind=KIND,
        priority=chart.alarm_priority,  # type: ignore[arg-type]  # validated by ChartSpec
        machine_id=chart.machine_id, metric=chart.metric, unit=unit,
        cause=f"The process behind {what} has changed (a run rule of its control chart fired).",
        consequence="Parts may drift out of specification before any single one is rejected.",
        action=f"Look at SPC chart {chart.name!r}, find the assignable cause, and note it.",
    )  # fmt: skip


def evaluate_chart(
    session: Session, chart: SpcChart, *, now_ms: int, state: ChartState | None = None
) -> tuple[ChartOutcome, ChartState | None]:
    """One pass over one chart (the caller commits); the rule state to keep for the next."""
    limits = session.scalars(
        select(SpcLimits)
        .where(SpcLimits.chart_id == chart.id)
        .order_by(SpcLimits.set_ms.desc(), SpcLimits.id.desc())
        .limit(1)
    ).first()
    if limits is None or not chart.enabled:
        return ChartOutcome(chart.id), None
    groups = pending_subgroups(session, chart, limits)
    if not groups:
        return ChartOutcome(chart.id), state
    last_ts = session.scalar(
        select(SpcPoint.ts_ms).where(SpcPoint.chart_id == chart.id)
        .order_by(SpcPoint.ts_ms.desc()).limit(1)
    )  # fmt: skip
    if state is None or state.limits_id != limits.id or state.last_ts != last_ts:
        state = prime_state(session, chart, limits)
    previous = state.last_statistic if chart.chart_type == "i_mr" else None
    points = sg.plot(chart.chart_type, groups, limits, previous)
    unit = None
    if chart.alarm and chart.metric is not None:
        machine = session.get(Machine, chart.machine_id)
        if machine is not None:
            unit = _unit(session, machine, chart.metric)
    conn = session.connection()
    stored_before = set(
        conn.execute(
            select(SpcPoint.ts_ms).where(
                SpcPoint.chart_id == chart.id,
                SpcPoint.ts_ms >= points[0].ts_ms,
                SpcPoint.ts_ms <= points[-1].ts_ms,
            )
        ).scalars()
    )
    open_alarm = _open_alarm(conn, chart.id) if chart.alarm and state.in_violation else None
    counts = {"points": 0, "violations": 0, "alarms_raised": 0, "alarms_returned": 0}
    point_rows: list[dict[str, Any]] = []
    violation_rows: list[dict[str, Any]] = []
    for point in points:
        assert point.z is not None  # plotted against limits
        fired = state.rules.push(point.z)
        state.recent.append((point.ts_ms, point.statistic))
        state.last_ts, state.last_statistic = point.ts_ms, point.statistic
        if point.ts_ms in stored_before:  # another evaluator stored this point first
            state.in_violation = bool(fired)
            continue
        if fired and chart.alarm and (not state.in_violation or open_alarm is None):
            open_alarm, raised = _raise(conn, chart, unit, point, [str(v.rule) for v in fired],
                                        now_ms)  # fmt: skip
            counts["alarms_raised"] += raised
        elif not fired and chart.alarm and state.in_violation:
            return_signal(
                conn, alarm_key(chart.id), ts_ms=point.ts_ms, value=point.statistic,
                message=f"SPC chart {chart.name!r}: back in control ({point.statistic:.6g})",
                now_ms=now_ms,
            )  # fmt: skip
            open_alarm = None
            counts["alarms_returned"] += 1
        point_rows.append(
            {"chart_id": chart.id, "limits_id": limits.id, "ts_ms": point.ts_ms,
             "last_sample_ms": point.last_sample_ms, "statistic": point.statistic,
             "dispersion": point.dispersion, "sample_size": point.sample_size, "z": point.z,
             "violations": len(fired), "recorded_ms": now_ms}
        )  # fmt: skip
        violation_rows.extend(
            {"chart_id": chart.id, "rule": str(violation.rule), "ts_ms": point.ts_ms,
             "points": state.involved(violation.points), "statistic": point.statistic,
             "alarm_id": open_alarm if chart.alarm else None, "recorded_ms": now_ms}
            for violation in fired
        )  # fmt: skip
        state.in_violation = bool(fired)
    if point_rows:  # two statements for the whole pass, not two per point
        conn.execute(
            dialect_insert(conn, _points).on_conflict_do_nothing(
                index_elements=["chart_id", "ts_ms"]
            ),
            point_rows,
        )
    if violation_rows:
        conn.execute(
            dialect_insert(conn, _violations).on_conflict_do_nothing(
                index_elements=["chart_id", "rule", "ts_ms"]
            ),
            violation_rows,
        )
    counts["points"], counts["violations"] = len(point_rows), len(violation_rows)
    return ChartOutcome(chart.id, **counts), state


def _unit(session: Session, machine: Machine, metric: str) -> str | None:
    return session.scalar(
        select(TsSeries.unit).where(
            TsSeries.edge == machine.edge, TsSeries.device == machine.device,
            TsSeries.metric == metric,
        )
    )  # fmt: skip


def _open_alarm(conn: Connection, chart_id: int) -> int | None:
    found = conn.execute(select(Alarm.id).where(Alarm.open_key == alarm_key(chart_id))).scalar()
    return None if found is None else int(found)


def _raise(
    conn: Connection, chart: SpcChart, unit: str | None, point: sg.PlottedPoint, rules: list[str],
    now_ms: int,
) -> tuple[int | None, bool]:  # fmt: skip
    """Raise the chart's alarm; (its id, whether this raised it rather than finding it active)."""
    words = "; ".join(f"{rule}: {RULES[Rule(rule)].description}" for rule in rules)
    side = point.ucl if (point.z or 0.0) > 0 else point.lcl
    alarm_id = raise_signal(
        conn, _signal(chart, unit), ts_ms=point.ts_ms, value=point.statistic, limit=side,
        message=f"SPC chart {chart.name!r}: {words} (point {point.statistic:.6g})",
        now_ms=now_ms,
    )  # fmt: skip
    if alarm_id is not None:
        return alarm_id, True
    return _open_alarm(conn, chart.id), False


def enabled_charts(session: Session, chart_ids: Iterable[int] | None = None) -> list[SpcChart]:
    """Enabled charts (optionally only these), with at least one set of limits."""
    query = select(SpcChart).where(
        SpcChart.enabled.is_(True),
        SpcChart.id.in_(select(SpcLimits.chart_id).distinct()),
    )
    if chart_ids is not None:
        query = query.where(SpcChart.id.in_(list(chart_ids)))
    return list(session.scalars(query.order_by(SpcChart.id)))


def evaluate_pending(
    engine: Engine, chart_ids: Iterable[int] | None = None, *, now_ms: int | None = None
) -> list[ChartOutcome]:
    """One pass over the enabled charts (or ``chart_ids``) without the thread, each in its own
    transaction; a failing chart raises (the thread, unlike this, logs and goes on)."""
    writer = writer_engine(engine)
    with Session(engine) as session:
        ids = [chart.id for chart in enabled_charts(session, chart_ids)]
    outcomes = []
    for chart_id in ids:
        with Session(writer, expire_on_commit=False) as session:
            chart = session.get(SpcChart, chart_id)
            if chart is None:
                continue
            outcome, _state = evaluate_chart(
                session, chart, now_ms=clock_ms() if now_ms is None else now_ms
            )
            session.commit()
            outcomes.append(outcome)
    return outcomes


# --- the thread ------------------------------------------------------------------------------


@dataclass
class EvaluatorCounters(Counters):
    """What the evaluator has done since it started (read with ``snapshot()``)."""

    batches: int = 0
    passes: int = 0
    points: int = 0
    violations: int = 0
    alarms_raised: int = 0
    alarms_returned: int = 0
    dropped_batches: int = 0
    errors: int = 0
    refreshes: int = 0
    charts: int = 0


class SpcEvaluator(BatchConsumer):
    """Control charts evaluated as data arrives: ``start()``, ``observe(batch)``, ``stop()``."""

    def __init__(self, engine: Engine, *, refresh_s: float = 30.0, queue_max: int = 10_000) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self.counters = EvaluatorCounters()
        super().__init__(
            self.counters, "SPC evaluator: the evaluator",
            "their control charts are evaluated at the next batch of the same machine",
            thread_name="spc-evaluator", queue_max=queue_max,
        )  # fmt: skip
        self._writer = writer_engine(engine)
        self._charts: dict[tuple[str, str], list[int]] = {}
        self._states: dict[int, ChartState] = {}
        self._failing: set[int] = set()
        self._last_refresh = 0.0

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Load the charts, then start the thread (it evaluates what is pending first)."""
        self.refresh()
        self._start_thread()
        self._queue.put(True)  # catch up with what arrived while we were down
        log.info("SPC evaluator: %d charts with limits", self.counters.charts)

    def reload(self) -> None:
        """Reload the charts at the next step (after charts or limits changed)."""
        self._last_refresh = 0.0
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(True)

    def refresh(self) -> None:
        """Reload the enabled charts with limits, by the (edge, device) of their machine."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(SpcChart.id, Machine.edge, Machine.device)
                .join(Machine, Machine.id == SpcChart.machine_id)
                .where(SpcChart.id.in_([c.id for c in enabled_charts(session)]))
            ).all()
        charts: dict[tuple[str, str], list[int]] = {}
        for chart_id, edge, device in rows:
            charts.setdefault((edge, device), []).append(int(chart_id))
        self._charts = charts
        kept = {chart_id for ids in charts.values() for chart_id in ids}
        self._states = {k: v for k, v in self._states.items() if k in kept}
        self._last_refresh = time.monotonic()
        self.counters.bump("refreshes")
        self.counters.charts = len(kept)

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.refresh_s)
            except queue.Empty:
                item = False
            if item is None:
                return
            if time.monotonic() - self._last_refresh >= self.refresh_s:
                self._guarded_refresh()
            if isinstance(item, BatchResult):
                self._on_batch(item)
            elif item is True:
                self._evaluate(id_ for ids in self._charts.values() for id_ in ids)
            elif isinstance(item, threading.Event):
                item.set()

    def _guarded_refresh(self) -> None:
        try:
            self.refresh()
        except Exception:  # the evaluator thread must outlive any failure
            self.counters.bump("errors")
            log.exception("SPC evaluator: reloading the charts failed; trying again later")
            self._last_refresh = time.monotonic()

    def _on_batch(self, result: BatchResult) -> None:
        self._handoff.caught_up()
        self.counters.bump("batches")
        if result.births:
            self._guarded_refresh()
        devices = {(topic.edge, topic.device or "") for topic, _rows in result.stored_data}
        self._evaluate(id_ for device in devices for id_ in self._charts.get(device, ()))

    def _evaluate(self, chart_ids: Iterable[int]) -> None:
        for chart_id in sorted(set(chart_ids)):
            try:
                self._evaluate_one(chart_id)
            except Exception:  # one chart's failure must not stop the others, nor ingest
                self.counters.bump("errors")
                self._states.pop(chart_id, None)
                if chart_id not in self._failing:
                    log.exception(
                        "SPC evaluator: chart %d failed; it is retried with the next batch of "
                        "its machine (further failures are counted, not logged)", chart_id,
                    )  # fmt: skip
                self._failing.add(chart_id)
                continue
            if chart_id in self._failing:
                self._failing.discard(chart_id)
                log.info("SPC evaluator: chart %d is evaluated again", chart_id)

    def _evaluate_one(self, chart_id: int) -> None:
        with Session(self._writer, expire_on_commit=False) as session:
            chart = session.get(SpcChart, chart_id)
            if chart is None:
                self._states.pop(chart_id, None)
                return
            outcome, state = evaluate_chart(
                session, chart, now_ms=clock_ms(), state=self._states.get(chart_id)
            )
            session.commit()
        if state is None:
            self._states.pop(chart_id, None)
        else:
            self._states[chart_id] = state
        self.counters.bump("passes")
        for name in ("points", "violations", "alarms_raised", "alarms_returned"):
            self.counters.bump(name, getattr(outcome, name))


__all__ = [
    "ChartOutcome",
    "ChartState",
    "EvaluatorCounters",
    "SpcEvaluator",
    "alarm_key",
    "enabled_charts",
    "evaluate_chart",
    "evaluate_pending",
    "pending_subgroups",
    "prime_state",
]
