"""The ERP integration routes over a real database (SQLite and PostgreSQL), and the migration."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.orm import Session

import cloud.models  # noqa: F401  (every table on Base.metadata)
from cloud.db import Base
from cloud.integration.delivery import WebhookDelivery, WebhookDeliverySettings
from cloud.integration.events import enqueue_operation_completed
from cloud.integration.models import ErpWebhook
from protocols.clock import now_ms
from tests.cloud.integration.erp_kit import (
    SECRET,
    client_for,
    dead_url,
    one_step_order,
    operation_of,
)

T = 1_800_000_000_000
ERP_TABLES = {"erp_webhook", "erp_delivery", "erp_delivery_attempt"}


def test_webhooks_are_created_replaced_listed_and_deleted(db_engine):
    with client_for(db_engine) as client:
        body = {"url": "https://erp.plant.local/hooks/forgeline", "secret": SECRET}
        created = client.put("/api/integration/webhooks/sap", json=body)
        assert created.status_code == 200, created.text
        assert created.json() | {"created_ms": 0, "updated_ms": 0} == {
            "name": "sap", "url": body["url"], "has_secret": True,
            "events": ["operation.completed", "work_order.completed"], "enabled": True,
            "created_ms": 0, "updated_ms": 0,
        }  # fmt: skip
        assert SECRET not in created.text  # never shown back

        replaced = client.put(
            "/api/integration/webhooks/sap",
            json={"url": "http://10.0.0.5:8080/in", "events": ["work_order.completed"],
                  "enabled": False},
        )  # fmt: skip
        assert replaced.status_code == 200
        assert (replaced.json()["has_secret"], replaced.json()["events"]) == (
            False, ["work_order.completed"],
        )  # fmt: skip
        assert replaced.json()["created_ms"] == created.json()["created_ms"]
        client.put("/api/integration/webhooks/odoo", json={"url": "http://odoo.local/hook"})

        listed = client.get("/api/integration/webhooks").json()
        assert [(w["name"], w["enabled"]) for w in listed] == [("odoo", True), ("sap", False)]
        assert (
            client.get("/api/integration/webhooks/sap").json()["url"] == "http://10.0.0.5:8080/in"
        )

        assert client.delete("/api/integration/webhooks/sap").status_code == 204
        missing = client.get("/api/integration/webhooks/sap")
        assert (missing.status_code, missing.json()["detail"]) == (
            404, "no ERP webhook named 'sap'",
        )  # fmt: skip
        assert client.delete("/api/integration/webhooks/sap").status_code == 404


def test_bad_webhooks_are_refused_naming_the_field(db_engine):
    with client_for(db_engine) as client:
        for name, body, field in (
            ("sap", {"url": "ftp://erp.local/in"}, "url"),
            ("sap", {"url": "http://"}, "url"),
            ("sap", {"url": "http://erp.local", "secret": "short"}, "secret"),
            ("sap", {"url": "http://erp.local", "events": ["order.shipped"]}, "events.0"),
            ("sap", {"url": "http://erp.local", "events": []}, "events"),
            ("sap", {}, "url"),
            ("bad name!", {"url": "http://erp.local"}, "path.name"),
        ):
            response = client.put(f"/api/integration/webhooks/{name}", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["detail"].startswith(f"{field}: "), response.json()
        assert client.get("/api/integration/webhooks").json() == []


def test_the_delivery_log_lists_filters_and_shows_attempts(db_engine, plant):
    with client_for(db_engine) as client:
        down = {"url": dead_url(), "events": ["operation.completed"]}
        assert client.put("/api/integration/webhooks/erp-a", json=down).status_code == 200
        assert client.put("/api/integration/webhooks/erp-b", json=down).status_code == 200
        order_id = one_step_order(db_engine, plant["press-1"], T)
        with Session(db_engine) as session:
            operation = operation_of(session, order_id, 10)
            for _ in range(3):
                enqueue_operation_completed(session, operation, now_ms())
            session.commit()
        sender = WebhookDelivery(db_engine, WebhookDeliverySettings(max_attempts=1))
        assert sender.flush(30)  # every row failed: one attempt each, the ERP is down

        everything = client.get("/api/integration/deliveries").json()
        assert len(everything) == 6
        assert [d["id"] for d in everything] == sorted((d["id"] for d in everything), reverse=True)
        only_a = client.get(
            "/api/integration/deliveries", params={"endpoint": "erp-a", "state": "failed"}
        ).json()
        assert [d["endpoint"] for d in only_a] == ["erp-a"] * 3
        assert all("cannot reach the ERP" in d["last_error"] for d in only_a)
        assert client.get("/api/integration/deliveries", params={"state": "pending"}).json() == []
        page = client.get("/api/integration/deliveries", params={"limit": 2}).json()
        assert [d["id"] for d in page] == [d["id"] for d in everything[:2]]
        older = client.get(
            "/api/integration/deliveries", params={"before_id": page[-1]["id"]}
        ).json()
        assert [d["id"] for d in older] == [d["id"] for d in everything[2:]]

        detail = client.get(f"/api/integration/deliveries/{only_a[0]['id']}").json()
        assert detail["payload"]["event_id"] == detail["event_id"]
        assert detail["payload"]["work_order"]["external_id"] == "WO-1"
        [attempt] = detail["attempts_log"]
        assert (attempt["attempt"], attempt["http_status"]) == (1, None)
        assert attempt["error"] == detail["last_error"]

        bad_state = client.get("/api/integration/deliveries", params={"state": "lost"})
        assert bad_state.status_code == 400
        assert bad_state.json()["detail"].startswith("query.state: ")
        assert client.get("/api/integration/deliveries/999999").status_code == 404
        assert client.post("/api/integration/deliveries/999999/retry").status_code == 404


def test_deleting_an_endpoint_fails_its_pending_deliveries(db_engine, plant):
    with client_for(db_engine) as client:
        client.put("/api/integration/webhooks/erp", json={"url": dead_url()})
        one_step_order(db_engine, plant["press-1"], T, keep_queued=True)  # the finish queues it
        assert client.delete("/api/integration/webhooks/erp").status_code == 204
        [row] = client.get("/api/integration/deliveries", params={"endpoint": "erp"}).json()
        assert (row["state"], row["last_error"]) == (
            "failed", "not sent: the webhook endpoint 'erp' was deleted",
        )  # fmt: skip
    with Session(db_engine) as session:
        assert session.query(ErpWebhook).count() == 0


def test_migration_matches_the_models(db_engine):
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    touched = [
        part for item in diff for part in (item if isinstance(item, list) else [item])
        if ERP_TABLES & {getattr(getattr(v, "table", None), "name", None) for v in part[1:]}
        | {getattr(v, "name", None) for v in part[1:]} | {v for v in part[1:] if isinstance(v, str)}
    ]  # fmt: skip
    assert touched == []
    schema = inspect(db_engine)  # and the migration made them, with the convention's names
    assert set(schema.get_table_names()) >= ERP_TABLES
    indexes = schema.get_indexes("erp_delivery")  # PostgreSQL lists a unique's index too
    assert {i["name"] for i in indexes if not i.get("duplicates_constraint")} == {
        "ix_erp_delivery_state_next_attempt", "ix_erp_delivery_endpoint_id",
    }  # fmt: skip
    assert [u["name"] for u in schema.get_unique_constraints("erp_delivery_attempt")] == [
        "uq_erp_delivery_attempt_delivery_id_attempt"
    ]
