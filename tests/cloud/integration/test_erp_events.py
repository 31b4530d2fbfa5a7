"""Completion payloads and the outbox, from orders run through the real production service
(SQLite and PostgreSQL).

A valve order runs two operations: machining on press-1 (operator-reported and machine-counted
quantities, steel booked against the operation) and assembly on bench-1, which serialises valve
V-1 from body B-1 (made by its own order) and grease. Every time is T + a known offset, so
labour times are hand-computed.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.integration import events
from cloud.integration.models import ErpDelivery
from cloud.production import service, trace
from cloud.production.models import WorkOrder, WorkOrderOperation
from tests.cloud.integration.erp_kit import act, add_endpoint, one_step_order, operation_of

T = 1_800_000_000_000


def _products(session: Session) -> None:
    for external_id, name, unit_of_measure, serialised in (
        ("VALVE", "Gate valve DN50", "pcs", True),
        ("BODY", "Valve body", "pcs", True),
        ("STEEL", "Steel bar", "kg", False),
        ("GREASE", "Grease", "g", False),
    ):
        spec = service.ProductSpec(name, unit_of_measure, serialised)
        service.upsert_product(session, external_id, spec, T)
    for lot, product in (("L-STEEL", "STEEL"), ("L-GREASE", "GREASE")):
        trace.upsert_lot(session, lot, trace.LotSpec(product, 500, "Acme", "HEAT-42"), T)


def _body_b1(session: Session, press: int) -> None:
    """Body B-1, made by work order WO-BODY (a component serial for the valve)."""
    step = service.OperationSpec(10, "Cast", machine_id=press, serialises=True)
    service.upsert_routing(session, "R-BODY", service.RoutingSpec("BODY", "r", (step,)), T)
    order_id = service.upsert_work_order(session, "WO-BODY", service.WorkOrderSpec("BODY", 1), T).id
    service.work_order_action(session, order_id, "release", T)
    act(session, order_id, 10, "start", T, "dan")
    trace.register_unit(session, order_id, 10, "B-1", T + 1_000)
    act(session, order_id, 10, "finish", T + 2_000, "dan")


def _valve_order(session: Session, plant: dict[str, int]) -> int:
    steps = (
        service.OperationSpec(10, "Machine", machine_id=plant["press-1"]),
        service.OperationSpec(20, "Assemble", machine_id=plant["bench-1"], serialises=True),
    )
    service.upsert_routing(session, "R-VALVE", service.RoutingSpec("VALVE", "r", steps), T)
    order_id = service.upsert_work_order(
        session, "WO-VALVE", service.WorkOrderSpec("VALVE", 10), T
    ).id
    service.work_order_action(session, order_id, "release", T)
    return order_id


def test_operation_and_order_payloads_from_a_real_run(db_engine, plant):
    with Session(db_engine) as session:
        _products(session)
        _body_b1(session, plant["press-1"])
        order_id = _valve_order(session, plant)

        act(session, order_id, 10, "start", T + 10_000, "alice")
        act(session, order_id, 10, "report", T + 40_000, "alice", good=3, scrap=1, reason="burr")
        trace.record_consumption(
            session, quantity=12.5, now=T + 41_000, operation=(order_id, 10), lot="L-STEEL"
        )
        machined = operation_of(session, order_id, 10)
        machined.machine_good, machined.machine_scrap, machined.machine_cycles = 5, 1, 6
        act(session, order_id, 10, "pause", T + 60_000, "alice", reason="tool change")
        act(session, order_id, 10, "resume", T + 75_000, "erin")
        act(session, order_id, 10, "finish", T + 110_000, "alice")
        machining = asdict(events.operation_completed(session, machined, "ev-10", T + 110_000))

        act(session, order_id, 20, "start", T + 200_000, "bob")
        trace.register_unit(session, order_id, 20, "V-1", T + 210_000)
        trace.record_consumption(session, quantity=1, now=T + 211_000, unit="V-1", component="B-1")
        trace.record_consumption(session, quantity=3.5, now=T + 212_000, unit="V-1", lot="L-GREASE")
        act(session, order_id, 20, "report", T + 250_000, "carol", good=1)
        assembled = act(session, order_id, 20, "finish", T + 320_000, "bob")
        assembly = asdict(events.operation_completed(session, assembled, "ev-20", T + 320_000))

        order = service.work_order_action(session, order_id, "complete", T + 330_000)
        completed = events.work_order_completed(session, order, "ev-wo", T + 330_000)
        session.commit()
        rolled_up = (order.quantity_good, order.quantity_scrap, order.quantity_rework)

    steel = {
        "product": "STEEL", "unit_of_measure": "kg", "quantity": 12.5, "lot": "L-STEEL",
        "component_serial": None, "consumer_serial": None, "operation_sequence": 10,
        "source": "scan", "ms": T + 41_000,
    }  # fmt: skip
    body = {
        "product": "BODY", "unit_of_measure": "pcs", "quantity": 1.0, "lot": None,
        "component_serial": "B-1", "consumer_serial": "V-1", "operation_sequence": None,
        "source": "scan", "ms": T + 211_000,
    }  # fmt: skip
    grease = body | {
        "product": "GREASE", "unit_of_measure": "g", "quantity": 3.5, "lot": "L-GREASE",
        "component_serial": None, "ms": T + 212_000,
    }  # fmt: skip

    assert (machining["event"], machining["event_id"], machining["schema_version"]) == (
        "operation.completed", "ev-10", 1,
    )  # fmt: skip
    assert machining["occurred_ms"] == T + 110_000
    assert machining["work_order"] == {
        "id": order_id, "external_id": "WO-VALVE", "product": "VALVE", "quantity_ordered": 10,
        "state": "running",
    }  # fmt: skip
    assert machining["operation"] == {
        "sequence": 10, "name": "Machine", "machine_id": plant["press-1"], "machine": "press-1",
        "state": "finished", "started_ms": T + 10_000, "finished_ms": T + 110_000,
        "paused_s": 15.0, "labour_time_s": 85.0,  # 100 s run, paused 15 s
        "good": 8, "scrap": 2, "rework": 0,  # operators' 3 + 1 and the machine's 5 + 1
        "reported_good": 3, "reported_scrap": 1, "machine_good": 5, "machine_scrap": 1,
        "machine_cycles": 6, "operators": ["alice", "erin"],
    }  # fmt: skip
    assert machining["consumption"] == [steel]

    operation = assembly["operation"]
    assert (operation["name"], operation["machine"], operation["labour_time_s"]) == (
        "Assemble", "bench-1", 120.0,
    )  # fmt: skip
    assert (operation["good"], operation["operators"]) == (1, ["bob", "carol"])
    assert assembly["consumption"] == [body, grease]  # what V-1, made here, consumed

    order_payload = asdict(completed)
    assert order_payload["event"] == "work_order.completed"
    assert order_payload["work_order"]["state"] == "completed"
    assert (order_payload["good"], order_payload["scrap"], order_payload["rework"]) == rolled_up
    assert order_payload["labour_time_s"] == 205.0
    assert order_payload["operators"] == ["alice", "erin", "bob", "carol"]
    assert order_payload["operations"] == [machining["operation"], operation]
    assert order_payload["consumption"] == [steel, body, grease]
    assert json.loads(events.encode_body(completed)) == order_payload


def test_labour_time_is_finished_minus_started_minus_paused():
    def operation(**times: int | None) -> WorkOrderOperation:
        return WorkOrderOperation(
            **({"started_ms": 1_000, "finished_ms": 101_000, "paused_ms": 0} | times)
        )

    assert events.labour_time_s(operation()) == 100.0
    assert events.labour_time_s(operation(paused_ms=15_000)) == 85.0
    # paused at 91 s and finished without resuming: the open pause counts too
    open_pause = operation(paused_ms=15_000, paused_since_ms=91_000)
    assert (events.paused_ms_of(open_pause), events.labour_time_s(open_pause)) == (25_000, 75.0)
    assert events.labour_time_s(operation(finished_ms=None)) == 0.0


def _deliveries(engine) -> list[ErpDelivery]:
    with Session(engine) as session:
        return list(session.scalars(select(ErpDelivery).order_by(ErpDelivery.id)))


def test_enqueue_adds_one_row_per_enabled_subscribed_endpoint_in_the_callers_transaction(
    db_engine, plant
):
    order_id = one_step_order(db_engine, plant["press-1"], T, complete=True)
    add_endpoint(db_engine, "erp-all", "http://erp.example/hooks")
    add_endpoint(db_engine, "erp-orders", "http://erp.example/o", events="work_order.completed")
    add_endpoint(db_engine, "erp-off", "http://erp.example/off", enabled=False)

    with Session(db_engine) as session:
        queued = events.enqueue_operation_completed(
            session, operation_of(session, order_id, 10), T + 60_000
        )
        assert [row.endpoint for row in queued] == ["erp-all"]
        session.rollback()  # the completion was not stored: neither is its event
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).select_from(ErpDelivery)) == 0

    with Session(db_engine) as session:
        events.enqueue_operation_completed(session, operation_of(session, order_id, 10), T + 60_000)
        order = session.get(WorkOrder, order_id)
        events.enqueue_work_order_completed(session, order, T + 70_000)
        session.commit()

    rows = _deliveries(db_engine)
    assert [
        (row.event, row.endpoint, row.work_order, row.operation_sequence, row.state,
         row.attempts, row.next_attempt_ms)
        for row in rows
    ] == [
        ("operation.completed", "erp-all", "WO-1", 10, "pending", 0, T + 60_000),
        ("work_order.completed", "erp-all", "WO-1", None, "pending", 0, T + 70_000),
        ("work_order.completed", "erp-orders", "WO-1", None, "pending", 0, T + 70_000),
    ]  # fmt: skip
    # one event, one id and one body for every endpoint; another event, another id
    assert (rows[1].event_id, rows[1].body) == (rows[2].event_id, rows[2].body)
    assert rows[0].event_id != rows[1].event_id
    assert [json.loads(row.body)["event_id"] for row in rows] == [row.event_id for row in rows]
    assert json.loads(rows[0].body)["operation"]["operators"] == ["alice"]


def test_no_endpoint_no_row(db_engine, plant):
    order_id = one_step_order(db_engine, plant["press-1"], T)
    with Session(db_engine) as session:
        operation = operation_of(session, order_id, 10)
        assert events.enqueue_operation_completed(session, operation, T + 60_000) == []
        session.commit()
    assert _deliveries(db_engine) == []


def test_finishing_an_operation_and_completing_the_order_queue_their_events(db_engine, plant):
    add_endpoint(db_engine, "erp", "http://127.0.0.1:9/erp")
    one_step_order(db_engine, plant["press-1"], T, complete=True, keep_queued=True)
    with Session(db_engine) as session:
        queued = session.scalars(select(ErpDelivery).order_by(ErpDelivery.id)).all()
        assert [(row.event, row.endpoint, row.state) for row in queued] == [
            ("operation.completed", "erp", "pending"), ("work_order.completed", "erp", "pending"),
        ]  # fmt: skip
        finished = json.loads(queued[0].body)
        assert (finished["operation"]["sequence"], finished["operation"]["labour_time_s"]) == (
            10, 60.0,
        )  # fmt: skip
