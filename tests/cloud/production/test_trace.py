"""Lots, units, consumption and the traces over a real database (SQLite and PostgreSQL).

The machine and its series come from a birth through the real ``IngestWriter``; operations run
through the service at known times, so the per-operation parameter summaries are hand-computed.
"""

from __future__ import annotations

import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.alarms.models import Alarm
from cloud.api.app import create_app
from cloud.assets.models import Machine
from cloud.db import Base
from cloud.ingest.writer import IngestWriter
from cloud.production import service
from protocols.wire import MetricDefinition

T = 1_800_000_000_000  # a fixed epoch: every time below is T + offset
TRACE_TABLES = {"material_lot", "unit", "consumption"}
METRICS = (
    MetricDefinition("state", "uint16", "state"),
    MetricDefinition("temperature", "float32", "temperature", "degC", 20.0, 80.0),
    MetricDefinition("pressure", "float32", "process_param", "bar", 100.0, 200.0),
    MetricDefinition("cycles", "uint32", "cycle_count"),
)
# body operation window: [T+10_000, T+20_000); valve operation window: [T+30_000, T+40_000)
SAMPLES = [
    ("temperature", T + 5_000, 90.0),  # before the window
    ("temperature", T + 10_000, 50.0),  # at the start: counts
    ("temperature", T + 12_000, 85.0),  # above 80
    ("temperature", T + 15_000, 30.0),
    ("temperature", T + 19_999, 10.0),  # below 20
    ("temperature", T + 20_000, 99.0),  # at the end: excluded
    ("temperature", T + 25_000, 95.0),  # between the operations
    ("temperature", T + 35_000, 60.0),  # in the valve window
    ("pressure", T + 11_000, 150.0),
    ("pressure", T + 14_000, 250.0),  # above 200
    ("cycles", T + 11_000, 7),  # not a traced role
]


@pytest.fixture
def press(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("press1", metrics=METRICS)])
    writer.write([wire.data("press1", SAMPLES)])
    with Session(db_engine) as session:
        machine = session.scalars(select(Machine).where(Machine.device == "press1")).one()
        for offset, rule in ((15_000, "temperature-high"), (25_000, "temperature-late")):
            session.add(
                Alarm(
                    point_key=f"{rule}:press1", rule=rule, kind="limit", priority="high",
                    machine_id=machine.id, machine_name="press1", site="plant1",
                    metric="temperature", state="cleared", message=f"{rule} on press1",
                    raised_ms=T + offset, active_ms=T + offset, cleared_ms=T + offset + 500,
                    updated_ms=T + offset + 500,
                )
            )  # fmt: skip
        session.commit()
        return machine.id


def _run_order(engine, product, machine_id, start):
    """A one-step routing on the press (serialising) and its work order, started at ``start``."""
    with Session(engine) as session:
        service.upsert_product(session, product, service.ProductSpec(product, serialised=True), T)
        step = service.OperationSpec(10, "Press", machine_id=machine_id, serialises=True)
        routing = service.RoutingSpec(product, "r", (step,))
        service.upsert_routing(session, f"R-{product}", routing, T)
        spec = service.WorkOrderSpec(product, 10)
        order_id = service.upsert_work_order(session, f"WO-{product}", spec, T).id
        service.work_order_action(session, order_id, "release", T)
        service.operation_action(session, order_id, 10, "start", T + start)
        session.commit()
        return order_id


def _finish(engine, order_id, at):
    with Session(engine) as session:
        service.operation_action(session, order_id, 10, "finish", T + at)
        session.commit()


def test_backward_and_forward_trace_through_three_levels(db_engine, press):
    with Session(db_engine) as session:
        service.upsert_product(session, "STEEL", service.ProductSpec("Steel bar", "kg"), T)
        service.upsert_product(session, "GREASE", service.ProductSpec("Grease", "g"), T)
        session.commit()
    with TestClient(create_app(db_engine)) as client:
        for lot, product in (("L-STEEL", "STEEL"), ("L-GREASE", "GREASE")):
            response = client.put(
                f"/api/erp/lots/{lot}",
                json={"product": product, "quantity": 500, "supplier": "Acme",
                      "supplier_lot": "HEAT-42"},
            )  # fmt: skip
            assert response.status_code == 200, response.text

        body_order = _run_order(db_engine, "BODY", press, 10_000)
        units = f"/api/work-orders/{body_order}/operations/10/units"
        assert client.post(units, json={"serial": "B-1", "at_ms": T + 10_000}).status_code == 201
        again = client.post(units, json={"serial": "B-1", "at_ms": T + 10_000})
        assert (again.status_code, again.json()["created"]) == (200, False)
        consume = {"unit": "B-1", "lot": "L-STEEL", "quantity": 2.5}
        assert client.post("/api/consumption", json=consume).status_code == 201
        _finish(db_engine, body_order, 20_000)

        valve_order = _run_order(db_engine, "VALVE", press, 30_000)
        units = f"/api/work-orders/{valve_order}/operations/10/units"
        assert client.post(units, json={"serial": "V-1", "at_ms": T + 30_000}).status_code == 201
        assert client.post(units.replace(str(valve_order), str(body_order)),
                           json={"serial": "V-1"}).status_code == 400  # fmt: skip
        for consume in (
            {"unit": "V-1", "component": "B-1"},
            {"operation": {"work_order_id": valve_order, "sequence": 10}, "lot": "L-GREASE",
             "quantity": 12},
        ):  # fmt: skip
            assert client.post("/api/consumption", json=consume).status_code == 201
        _finish(db_engine, valve_order, 40_000)

        valve = client.get("/api/trace/units/V-1").json()
        assert (valve["serial"], valve["product"], valve["work_order"]) == (
            "V-1",
            "VALVE",
            "WO-VALVE",
        )
        [valve_op] = valve["operations"]
        assert (valve_op["machine"], valve_op["state"]) == ("press1", "finished")
        assert (valve_op["started_ms"], valve_op["finished_ms"]) == (T + 30_000, T + 40_000)
        # V-1's own cycle: scanned at 30 s, closed when the operation finished at 40 s
        assert (valve_op["window"], valve_op["window_start_ms"], valve_op["window_end_ms"]) == (
            "unit_cycle", T + 30_000, T + 40_000,
        )  # fmt: skip
        summary = {p["metric"]: p for p in valve_op["parameters"]}
        assert set(summary) == {"pressure", "temperature"}
        temperature = summary["temperature"]  # 95 carried in for 5 s, then 60 for 5 s
        assert (temperature["count"], temperature["min"], temperature["max"]) == (1, 60.0, 95.0)
        assert temperature["mean"] == pytest.approx(77.5)
        assert (temperature["out_of_limits"], temperature["time_out_of_limits_ms"]) == (0, 5_000)
        pressure = summary["pressure"]  # no sample in the window: 250 holds from 14 s
        assert (pressure["count"], pressure["min"], pressure["mean"]) == (0, 250.0, 250.0)
        assert pressure["time_out_of_limits_ms"] == 10_000
        assert pressure["series_url"] == (
            f"/api/series?machine={press}&metric=pressure&start={T + 30_000}&end={T + 40_000}"
        )
        assert valve_op["alarms"] == []
        assert [(lot["lot"], lot["quantity"], lot["via_operation"], lot["source"])
                for lot in valve["lots"]] == [("L-GREASE", 12.0, 10, "scan")]  # fmt: skip

        [body] = valve["components"]
        assert (body["serial"], body["work_order"], body["components"]) == ("B-1", "WO-BODY", [])
        assert [(lot["lot"], lot["supplier_lot"], lot["quantity"], lot["via_operation"])
                for lot in body["lots"]] == [("L-STEEL", "HEAT-42", 2.5, None)]  # fmt: skip
        [body_op] = body["operations"]
        summary = {p["metric"]: p for p in body_op["parameters"]}
        temperature = summary["temperature"]
        assert (temperature["count"], temperature["min"], temperature["max"]) == (4, 10.0, 85.0)
        # time-weighted: 50 for 2 s, 85 for 3 s, 30 for 4.999 s, 10 for 1 ms
        assert temperature["mean"] == pytest.approx((50 * 2000 + 85 * 3000 + 30 * 4999 + 10) / 1e4)
        assert (temperature["out_of_limits"], temperature["time_out_of_limits_ms"]) == (2, 3_001)
        pressure = summary["pressure"]  # nothing before 11 s: 150 for 3 s, then 250 for 6 s
        assert (pressure["count"], pressure["min"], pressure["max"]) == (2, 150.0, 250.0)
        assert pressure["mean"] == pytest.approx((150 * 3000 + 250 * 6000) / 9000)
        assert (pressure["out_of_limits"], pressure["time_out_of_limits_ms"]) == (1, 6_000)
        assert [a["rule"] for a in body_op["alarms"]] == ["temperature-high"]

        steel = client.get("/api/trace/lots/L-STEEL").json()
        assert [(u["serial"], u["work_order"], u["depth"]) for u in steel["units"]] == [
            ("B-1", "WO-BODY", 1), ("V-1", "WO-VALVE", 2),
        ]  # fmt: skip
        assert steel["work_orders"] == ["WO-BODY", "WO-VALVE"]
        grease = client.get("/api/trace/lots/L-GREASE").json()
        assert ([u["serial"] for u in grease["units"]], grease["work_orders"]) == (
            ["V-1"], ["WO-VALVE"],
        )  # fmt: skip
        assert client.get("/api/trace/units/NOPE").status_code == 404
        assert client.get("/api/trace/lots/NOPE").status_code == 404


def test_consumption_needs_one_consumer_and_one_consumed(db_engine, press):
    with TestClient(create_app(db_engine)) as client:
        for body, field in (
            ({"lot": "L"}, "unit"),
            ({"unit": "U", "lot": "L", "component": "C"}, "lot"),
            ({"unit": "U", "lot": "L"}, "unit"),
            ({"unit": "U", "lot": "L", "quantity": 0}, "quantity"),
        ):
            response = client.post("/api/consumption", json=body)
            assert response.status_code == 400, response.text
            assert response.json()["detail"].startswith(f"{field}:")


def test_migration_matches_the_models(db_engine):
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    touched = [
        part for item in diff for part in (item if isinstance(item, list) else [item])
        if TRACE_TABLES & {getattr(getattr(v, "table", None), "name", None) for v in part[1:]}
        | {getattr(v, "name", None) for v in part[1:]} | {v for v in part[1:] if isinstance(v, str)}
    ]  # fmt: skip
    assert touched == []
