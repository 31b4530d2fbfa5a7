"""The production routes over a real database (SQLite and PostgreSQL), through TestClient."""

from __future__ import annotations

import warnings

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.assets.models import Area, Line, Machine, Site
from cloud.production.models import BomItem, Product, Routing, RoutingOperation, WorkOrder

DAY = 86_400_000


@pytest.fixture
def plant(db_engine):
    """Two lines: line A with machines press-a and lathe-a, line B with press-b."""
    with Session(db_engine) as session:
        session.add(Site(id="plant1", name="Plant 1"))
        session.flush()
        area = Area(site_id="plant1", name="Machining")
        session.add(area)
        session.flush()
        line_a, line_b = Line(area_id=area.id, name="A"), Line(area_id=area.id, name="B")
        session.add_all([line_a, line_b])
        session.flush()
        machines = {}
        for name, line in (("press-a", line_a), ("lathe-a", line_a), ("press-b", line_b)):
            machine = Machine(
                name=name, site_id="plant1", area_id=area.id, line_id=line.id, edge="edge1",
                device=name, created_ms=0, updated_ms=0,
            )  # fmt: skip
            session.add(machine)
            session.flush()
            machines[name] = machine.id
        session.commit()
        return {"engine": db_engine, "line_a": line_a.id, "line_b": line_b.id, **machines}


@pytest.fixture
def client(plant):
    with TestClient(create_app(plant["engine"])) as test_client:
        yield test_client


def count(engine, model) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def make_valve(client, plant, routing="R-VALVE"):
    """A valve (body + seal) with a routing: machine on press-a, then finish on line A."""
    for external_id, name in (("VALVE", "Gate valve DN50"), ("BODY", "Body"), ("SEAL", "Seal")):
        assert (
            client.put(f"/api/erp/products/{external_id}", json={"name": name}).status_code == 200
        )
    bom = {"items": [{"component": "BODY", "quantity_per_unit": 1},
                     {"component": "SEAL", "quantity_per_unit": 2, "scrap_allowance_pct": 5}]}  # fmt: skip
    assert client.put("/api/erp/products/VALVE/bom", json=bom).status_code == 200
    body = {
        "product": "VALVE",
        "name": "Valve routing",
        "operations": [
            {"sequence": 10, "name": "Machine", "machine_id": plant["press-a"],
             "ideal_cycle_time_s": 30, "setup_time_s": 600},
            {"sequence": 20, "name": "Assemble", "line_id": plant["line_a"], "serialises": True},
        ],
    }  # fmt: skip
    response = client.put(f"/api/erp/routings/{routing}", json=body)
    assert response.status_code == 200, response.text


def put_order(client, external_id, **fields):
    body = {"product": "VALVE", "quantity_ordered": 100, **fields}
    response = client.put(f"/api/erp/work-orders/{external_id}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_erp_upserts_are_idempotent_by_external_id(client, plant):
    engine = plant["engine"]
    make_valve(client, plant)
    make_valve(client, plant)
    assert (count(engine, Product), count(engine, BomItem)) == (3, 2)
    assert (count(engine, Routing), count(engine, RoutingOperation)) == (1, 2)

    first = client.put("/api/erp/products/VALVE", json={"name": "Valve", "serialised": True})
    again = client.put("/api/erp/products/VALVE", json={"name": "Valve v2", "serialised": True})
    assert first.json()["id"] == again.json()["id"]
    assert (again.json()["name"], again.json()["serialised"]) == ("Valve v2", True)
    assert count(engine, Product) == 3

    bom = client.put("/api/erp/products/VALVE/bom", json={"items": [
        {"component": "SEAL", "quantity_per_unit": 3}]})  # fmt: skip
    assert [item["quantity_per_unit"] for item in bom.json()] == [3]
    assert count(engine, BomItem) == 1

    order = put_order(client, "WO-1", priority=5)
    updated = put_order(client, "WO-1", quantity_ordered=250, due_ms=5 * DAY)
    assert updated["id"] == order["id"]
    assert (updated["quantity_ordered"], updated["due_ms"], updated["state"]) == (
        250, 5 * DAY, "planned",
    )  # fmt: skip
    assert count(engine, WorkOrder) == 1


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/erp/products/P", {"name": ""}, "name"),
        ("/api/erp/products/P", {}, "name"),
        ("/api/erp/work-orders/W", {"product": "VALVE", "quantity_ordered": 0}, "quantity_ordered"),
        ("/api/erp/work-orders/W", {"product": "NOPE", "quantity_ordered": 1}, "product"),
        ("/api/erp/products/VALVE/bom", {"items": [{"component": "VALVE", "quantity_per_unit": 1}]},
         "items[0].component"),
        ("/api/erp/products/VALVE/bom", {"items": [{"component": "BODY", "quantity_per_unit": -1}]},
         "items.0.quantity_per_unit"),
        ("/api/erp/routings/R", {"product": "VALVE", "name": "r", "operations": [
            {"sequence": 10, "name": "x"}]}, "operations[0]"),
        ("/api/erp/routings/R", {"product": "VALVE", "name": "r", "operations": [
            {"sequence": 10, "name": "x", "line_id": 999}]}, "operations[0].line_id"),
    ],
)  # fmt: skip
def test_bad_erp_input_answers_400_naming_the_field(client, plant, path, body, field):
    make_valve(client, plant)
    response = client.put(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{field}:")


def test_a_bom_cycle_is_refused(client, plant):
    make_valve(client, plant)
    response = client.put("/api/erp/products/BODY/bom", json={"items": [
        {"component": "VALVE", "quantity_per_unit": 1}]})  # fmt: skip
    assert response.status_code == 400
    assert "cycle" in response.json()["detail"]


def test_a_work_order_runs_through_its_lifecycle(client, plant):
    make_valve(client, plant)
    order_id = put_order(client, "WO-1")["id"]
    released = client.post(f"/api/work-orders/{order_id}/release").json()
    assert released["state"] == "released"
    assert [(op["sequence"], op["state"]) for op in released["operations"]] == [
        (10, "ready"), (20, "pending"),
    ]  # fmt: skip
    ops = f"/api/work-orders/{order_id}/operations"
    started = client.post(f"{ops}/10/start", json={})
    assert (started.json()["state"], started.json()["machine_id"]) == ("running", plant["press-a"])
    assert client.get(f"/api/work-orders/{order_id}").json()["state"] == "running"
    no_reason = client.post(f"{ops}/10/report", json={"good": 98, "scrap": 2})
    assert (no_reason.status_code, no_reason.json()["detail"][:7]) == (400, "reason:")
    reported = client.post(
        f"{ops}/10/report",
        json={"good": 98, "scrap": 2, "reason": "short shot", "operator": "A. Ortiz"},
    )
    assert (reported.json()["good"], reported.json()["scrap"]) == (98, 2)
    assert client.post(f"{ops}/10/pause").json()["state"] == "paused"
    assert client.post(f"{ops}/10/resume").json()["state"] == "running"
    assert client.post(f"{ops}/10/finish").json()["state"] == "finished"
    assert client.post(f"{ops}/20/start", json={"machine_id": plant["lathe-a"]}).status_code == 200
    client.post(f"{ops}/20/report", json={"good": 97, "rework": 1})
    client.post(f"{ops}/20/finish")
    order = client.get(f"/api/work-orders/{order_id}").json()
    assert (order["quantity_good"], order["quantity_scrap"], order["quantity_rework"]) == (97, 2, 1)
    for action, state in (("hold", "held"), ("resume", "running"), ("complete", "completed"),
                          ("close", "closed")):  # fmt: skip
        response = client.post(f"/api/work-orders/{order_id}/{action}")
        assert response.json()["state"] == state, response.text
    assert [o["external_id"] for o in client.get("/api/work-orders?state=closed").json()] == [
        "WO-1"
    ]
    assert client.get("/api/work-orders?state=running").json() == []


def test_illegal_transitions_answer_409_with_the_message(client, plant):
    make_valve(client, plant)
    order_id = put_order(client, "WO-9")["id"]
    response = client.post(f"/api/work-orders/{order_id}/complete")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "work order WO-9 is planned: cannot complete; allowed actions: release, abort"
    )
    client.post(f"/api/work-orders/{order_id}/release")
    ops = f"/api/work-orders/{order_id}/operations"
    response = client.post(f"{ops}/20/start", json={"machine_id": plant["lathe-a"]})
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "operation 20 of work order WO-9 is pending: cannot start; allowed actions: ready"
    )
    client.post(f"{ops}/10/start")
    client.post(f"/api/work-orders/{order_id}/hold")
    response = client.post(f"{ops}/10/report", json={"good": 1})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("work order WO-9 is held: cannot report operation")
    client.post(f"/api/work-orders/{order_id}/abort")
    response = client.put(
        "/api/erp/work-orders/WO-9", json={"product": "VALVE", "quantity_ordered": 5}
    )
    assert response.status_code == 409
    assert client.post(f"/api/work-orders/{order_id}/bogus").status_code == 400
    assert client.post("/api/work-orders/999/release").status_code == 404


def test_dispatch_lists_a_lines_operations_by_priority_then_due_date(client, plant):
    make_valve(client, plant)
    orders = {
        "WO-LATE": put_order(client, "WO-LATE", priority=100, due_ms=9 * DAY),
        "WO-SOON": put_order(client, "WO-SOON", priority=100, due_ms=2 * DAY),
        "WO-URGENT": put_order(client, "WO-URGENT", priority=1, due_ms=20 * DAY),
        "WO-NODUE": put_order(client, "WO-NODUE", priority=100),
        "WO-PLANNED": put_order(client, "WO-PLANNED", priority=0),
    }
    for name, order in orders.items():
        if name != "WO-PLANNED":
            client.post(f"/api/work-orders/{order['id']}/release")
    ops = f"/api/work-orders/{orders['WO-SOON']['id']}/operations"
    client.post(f"{ops}/10/start")
    client.post(f"{ops}/10/finish")

    dispatch = client.get(f"/api/work-centres/{plant['line_a']}/dispatch").json()
    assert [(entry["work_order"], entry["sequence"], entry["state"]) for entry in dispatch] == [
        ("WO-URGENT", 10, "ready"),
        ("WO-SOON", 20, "ready"),
        ("WO-LATE", 10, "ready"),
        ("WO-NODUE", 10, "ready"),
    ]
    assert client.get(f"/api/work-centres/{plant['line_b']}/dispatch").json() == []
    assert client.get("/api/work-centres/999/dispatch").status_code == 404
