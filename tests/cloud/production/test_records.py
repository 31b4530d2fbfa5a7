"""Machine counts into operations, progress and ETA, backflush, unit cycles, tests,
inspections, recall scope and the forward trace of a component, on SQLite and PostgreSQL.

The machine and its samples come through the real ``IngestWriter``; every time is T + offset,
so counts, windows and time-weighted figures are computed by hand.
"""

from __future__ import annotations

import warnings

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # starlette asks for httpx2 at import
    from fastapi.testclient import TestClient

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.api.app import create_app
from cloud.assets.models import Machine
from cloud.errors import InvalidRequest
from cloud.ingest.writer import IngestWriter
from cloud.production import backflush, counting, recall, service, trace
from cloud.production.models import OperationEvent, WorkOrder
from protocols.wire import MetricDefinition

T = 1_800_000_000_000
METRICS = (
    MetricDefinition("state", "uint16", "state"),
    MetricDefinition("cycles", "uint32", "cycle_count"),
    MetricDefinition("good", "uint32", "good_count"),
    MetricDefinition("scrap", "uint32", "scrap_count"),
    MetricDefinition("melt", "float32", "temperature", "degC", 200.0, 220.0),
)


@pytest.fixture
def cell(db_engine, wire):
    """Two machines (press1 with counters and a melt temperature, lathe1), as ingest makes them."""
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("press1", metrics=METRICS), wire.birth("lathe1", metrics=METRICS)])
    writer.write([wire.data("press1", [
        ("cycles", T - 1_000, 500), ("good", T - 1_000, 100), ("scrap", T - 1_000, 5),
        ("cycles", T + 3_000, 503), ("good", T + 3_000, 103),
        ("cycles", T + 4_000, 504), ("scrap", T + 4_000, 6),
        ("cycles", T + 6_000, 507), ("good", T + 6_000, 106),
        ("melt", T - 1_000, 210.0), ("melt", T + 2_000, 230.0), ("melt", T + 3_000, 212.0),
        ("melt", T + 20_000, 199.0), ("melt", T + 21_000, 210.0),
    ])])  # fmt: skip
    with Session(db_engine) as session:
        names = {m.device: m.id for m in session.scalars(select(Machine))}
    return writer, names


def _order(session, machines, *, product="PUMP", quantity=10, bom=()):
    service.upsert_product(session, product, service.ProductSpec(product, serialised=True), T)
    for component, _ in bom:
        service.upsert_product(session, component, service.ProductSpec(component, "kg"), T)
    if bom:
        lines = [service.BomLine(component, qty) for component, qty in bom]
        service.replace_bom(session, product, lines, T)
    steps = (
        service.OperationSpec(10, "Mould", machine_id=machines["press1"], ideal_cycle_time_s=2.0,
                              serialises=True),
        service.OperationSpec(20, "Turn", machine_id=machines["lathe1"], ideal_cycle_time_s=3.0,
                              setup_time_s=60.0),
    )  # fmt: skip
    service.upsert_routing(session, f"R-{product}", service.RoutingSpec(product, "r", steps), T)
    order = service.upsert_work_order(
        session, f"WO-{product}", service.WorkOrderSpec(product, quantity), T
    )
    service.work_order_action(session, order.id, "release", T)
    return order


def test_machine_counts_go_to_the_running_operation_and_give_progress(db_engine, cell, wire):
    writer, machines = cell
    with Session(db_engine) as session:
        order = _order(session, machines)
        service.operation_action(session, order.id, 10, "start", T, operator="A. Ortiz")
        assert counting.recount(session, T + 6_000) == 1
        operation = service.operations_of(session, order.id)[0]
        # cycles 500 → 507, good 100 → 106, scrap 5 → 6 inside [T, T+6 s)... the 6 s sample
        # is at the window's end: counted when "now" passes it
        assert (operation.machine_cycles, operation.machine_good, operation.machine_scrap) == (
            4, 3, 1,
        )  # fmt: skip
        counting.recount(session, T + 6_001)
        assert (operation.machine_cycles, operation.machine_good) == (7, 6)
        assert (order.quantity_good, order.quantity_scrap) == (0, 1)  # good: the last operation
        progress = counting.progress(session, order, T + 6_001)
        assert (progress.current_sequence, progress.current_good, progress.rate_source) == (
            10, 6, "observed",
        )  # fmt: skip
        # 6 good in 6.001 s: 4 left at ~1 s each, then setup 60 s + 10 × 3 s on the lathe
        assert progress.remaining_s == pytest.approx(4 * 6.001 / 6 + 60 + 30)
        assert progress.estimated_completion_ms == T + 6_001 + round(progress.remaining_s * 1000)
        service.operation_action(session, order.id, 10, "finish", T + 7_000)
        session.commit()
        order_id = order.id
    # the edge drains its log later: a sample measured during the operation still counts
    writer.write([wire.data("press1", [("good", T + 6_500, 108), ("cycles", T + 6_500, 509)])])
    with Session(db_engine) as session:
        counting.recount(session, T + 60_000)
        operation = service.operations_of(session, order_id)[0]
        assert (operation.machine_good, operation.good) == (8, 8)
        session.commit()


def test_pauses_and_operators_and_one_operation_per_machine(db_engine, cell):
    _, machines = cell
    with Session(db_engine) as session:
        order = _order(session, machines)
        other = _order(session, machines, product="VALVE")
        service.operation_action(session, order.id, 10, "start", T, operator="A. Ortiz")
        with pytest.raises(InvalidRequest, match=r"machine_id: machine .* is running operation 10"):
            service.operation_action(session, other.id, 10, "start", T + 1)
        service.operation_action(session, order.id, 10, "pause", T + 1_000, reason="no resin")
        service.operation_action(session, order.id, 10, "resume", T + 4_000, operator="B. Lim")
        service.operation_action(session, order.id, 10, "finish", T + 10_000, operator="B. Lim")
        operation = service.operations_of(session, order.id)[0]
        assert (operation.paused_ms, operation.operator) == (3_000, "B. Lim")
        events = [(e.action, e.operator, e.reason) for e in session.scalars(
            select(OperationEvent).order_by(OperationEvent.ms))]  # fmt: skip
        assert events == [
            ("start", "A. Ortiz", None), ("pause", None, "no resin"), ("resume", "B. Lim", None),
            ("finish", "B. Lim", None),
        ]  # fmt: skip


def test_backflush_books_the_bom_from_staged_lots_oldest_first(db_engine, cell):
    _, machines = cell
    with Session(db_engine) as session:
        order = _order(session, machines, bom=(("RESIN", 2.0),))
        for lot, quantity in (("L-OLD", 10.0), ("L-NEW", 100.0)):
            trace.upsert_lot(session, lot, trace.LotSpec("RESIN", quantity), T)
        service.upsert_product(session, "OTHER", service.ProductSpec("x"), T)
        trace.upsert_lot(session, "L-OTHER", trace.LotSpec("OTHER", 1.0), T)
        with pytest.raises(InvalidRequest, match="lot: 'L-OTHER' is not of a component"):
            backflush.stage_lot(session, order, "L-OTHER", T)
        backflush.stage_lot(session, order, "L-OLD", T)
        service.operation_action(session, order.id, 10, "start", T)
        # 6 good + 1 scrap by T+6.001 s: 7 × 2 kg = 14 kg, 10 from the old lot; 4 short
        counting.recount(session, T + 6_001)
        [balance] = backflush.backflush(session, order, T + 6_001)
        assert (balance.required, balance.backflushed, balance.shortage) == (14.0, 10.0, 4.0)
        backflush.stage_lot(session, order, "L-NEW", T + 7_000)
        [balance] = backflush.backflush(session, order, T + 7_000)
        assert (balance.backflushed, balance.shortage) == (14.0, 0.0)
        # idempotent: nothing more is booked for the same output
        [balance] = backflush.backflush(session, order, T + 8_000)
        assert balance.backflushed == 14.0
        service.operation_action(session, order.id, 10, "report", T + 8_000, scrap=1,
                                 reason="flash")  # fmt: skip
        session.commit()
        trace.register_unit(session, order.id, 10, "P-1", T + 8_500)
        session.commit()
        lots = trace.backward_trace(session, "P-1", T + 9_000).lots
        assert [(lot.lot, lot.quantity, lot.source) for lot in lots] == [
            ("L-OLD", 10.0, "backflush"), ("L-NEW", 4.0, "backflush"), ("L-NEW", 2.0, "backflush"),
        ]  # fmt: skip


def test_cycles_tests_inspections_and_recall_through_the_api(db_engine, cell):
    _, machines = cell
    with Session(db_engine) as session:
        order = _order(session, machines)
        service.operation_action(session, order.id, 10, "start", T - 500)
        session.commit()
        order_id = order.id
    with TestClient(create_app(db_engine)) as client:
        units = f"/api/work-orders/{order_id}/operations/10/units"
        for serial, at in (("P-1", T), ("P-2", T + 2_500), ("P-3", T + 10_000)):
            response = client.post(units, json={"serial": serial, "at_ms": at})
            assert response.status_code == 201, response.text
        generated = client.post(units, json={"at_ms": T + 29_000})  # no serial: one is made
        assert (generated.status_code, generated.json()["serial"]) == (201, "WO-PUMP-00004")
        # P-1's own cycle is [T, T+2.5 s): melt 210 until 2 s, then 230 (above 220) for 0.5 s
        p1 = client.get("/api/trace/units/P-1").json()
        mould = p1["operations"][0]
        assert (mould["window"], mould["window_start_ms"], mould["window_end_ms"]) == (
            "unit_cycle", T, T + 2_500,
        )  # fmt: skip
        [melt] = mould["parameters"]
        assert (melt["min"], melt["max"], melt["time_out_of_limits_ms"]) == (210.0, 230.0, 500)
        assert melt["mean"] == pytest.approx((210 * 2000 + 230 * 500) / 2500)

        test = {
            "name": "pressure test", "started_ms": T + 3_000, "finished_ms": T + 4_000,
            "values": [
                {"characteristic": "burst_bar", "value": 24.1, "unit": "bar", "low_limit": 23.5,
                 "high_limit": 24.5},
                {"characteristic": "leak", "value": 1.4, "high_limit": 1.0},
            ],
        }  # fmt: skip
        posted = client.post("/api/units/P-1/tests", json=test)
        assert (posted.status_code, posted.json()["passed"]) == (201, False)
        bad = client.post("/api/units/P-1/tests", json={**test, "values": []})
        assert (bad.status_code, bad.json()["detail"][:7]) == (400, "values:")
        inspection = {"characteristic": "surface", "attribute": "scratched", "passed": False,
                      "inspector": "Q. Chen", "note": "left flange"}  # fmt: skip
        assert client.post("/api/units/P-1/inspections", json=inspection).status_code == 201
        assert client.post("/api/units/NOPE/inspections", json=inspection).status_code == 404
        p1 = client.get("/api/trace/units/P-1").json()
        [stored] = p1["tests"]
        assert [(v["characteristic"], v["passed"]) for v in stored["values"]] == [
            ("burst_bar", True), ("leak", False),
        ]  # fmt: skip
        assert [(i["characteristic"], i["attribute"], i["inspector"]) for i in p1["inspections"]] == [
            ("surface", "scratched", "Q. Chen"),
        ]  # fmt: skip

        # melt above 220 in [T+2 s, T+3 s) and below 200 in [T+20 s, T+21 s)
        query = {"machine": machines["press1"], "metric": "melt", "start": T, "end": T + 30_000}
        scope = client.get("/api/trace/recall", params=query).json()
        assert [(e["start_ms"], e["end_ms"], e["worst"]) for e in scope["excursions"]] == [
            (T + 2_000, T + 3_000, 230.0), (T + 20_000, T + 21_000, 199.0),
        ]  # fmt: skip
        # P-1 [0, 2.5 s) and P-2 [2.5 s, 10 s) overlap the first; P-3 (open) the second
        assert [(u["serial"], u["reason"]) for u in scope["units"]] == [
            ("P-1", "cycle"),
            ("P-2", "cycle"),
            ("P-3", "cycle"),
        ]  # fmt: skip (the generated unit's cycle starts at 29 s, after the second excursion)
        narrow = client.get("/api/trace/recall", params={**query, "end": T + 15_000}).json()
        assert [u["serial"] for u in narrow["units"]] == ["P-1", "P-2"]
        wide = client.get("/api/trace/recall", params={**query, "high": 240.0, "low": 190}).json()
        assert (wide["excursions"], wide["units"]) == ([], [])


def test_recall_and_forward_trace_reach_the_assemblies_that_consumed_a_part(db_engine, cell):
    _, machines = cell
    with Session(db_engine) as session:
        part = _order(session, machines, product="IMPELLER")
        service.operation_action(session, part.id, 10, "start", T + 1_000)
        trace.register_unit(session, part.id, 10, "I-1", T + 1_500)
        service.operation_action(session, part.id, 10, "finish", T + 2_500)
        pump = _order(session, machines, product="PUMP")
        service.operation_action(session, pump.id, 10, "start", T + 30_000)
        trace.register_unit(session, pump.id, 10, "P-9", T + 30_000)
        trace.record_consumption(session, quantity=1, now=T + 31_000, unit="P-9", component="I-1")
        session.commit()
        forward = trace.forward_trace_of_unit(session, "I-1")
        assert ([(u.serial, u.depth) for u in forward.units], forward.kind) == (
            [("P-9", 1)],
            "unit",
        )
        scope = recall.recall_by_excursion(session, machines["press1"], "melt", T, T + 10_000)
        assert [(u.serial, u.reason, u.depth) for u in scope.units] == [
            ("I-1", "cycle", 0), ("P-9", "component", 1),
        ]  # fmt: skip
        assert scope.work_orders == ["WO-IMPELLER", "WO-PUMP"]
        assert session.get(WorkOrder, pump.id) is not None
