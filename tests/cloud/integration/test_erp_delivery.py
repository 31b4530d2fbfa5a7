"""The delivery thread against real ERP servers on loopback (SQLite and PostgreSQL).

Most tests drive ``run_once()`` with a settable clock, so the backoff schedule is checked to the
millisecond without waiting for it; the thread itself runs in the tests of several processes
and of a database that is not there yet.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.db import create_engine_for, migrate
from cloud.integration.delivery import WebhookDelivery, WebhookDeliverySettings, sign_body
from cloud.integration.events import enqueue_operation_completed
from cloud.integration.models import ErpDelivery, ErpWebhook
from forgeline.processes import free_port
from protocols.clock import now_ms
from tests.cloud.integration.erp_kit import (
    SECRET,
    Clock,
    TestClient,
    add_endpoint,
    attempts,
    client_for,
    dead_url,
    delivery,
    integration_app,
    one_step_order,
    operation_of,
    wait_until,
)

T = 1_800_000_000_000
SETTINGS = WebhookDeliverySettings(initial_backoff_s=5, max_backoff_s=600, max_attempts=12)


def queue_operation_event(engine, order_id: int, now: int, times: int = 1) -> list[int]:
    """Enqueue ``operation.completed`` of the order's operation 10; the delivery ids."""
    with Session(engine) as session:
        operation = operation_of(session, order_id, 10)
        rows = [
            row
            for _ in range(times)
            for row in enqueue_operation_completed(session, operation, now)
        ]
        session.commit()
        return [row.id for row in rows]


def by_endpoint(engine, ids: list[int]) -> dict[str, int]:
    return {delivery(engine, delivery_id).endpoint: delivery_id for delivery_id in ids}


def test_delivered_on_2xx_with_a_valid_signature(db_engine, plant, erp_server):
    signed, plain = erp_server(), erp_server(secret=None)
    add_endpoint(db_engine, "erp-signed", signed.url)
    add_endpoint(db_engine, "erp-plain", plain.url, secret=None)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    ids = by_endpoint(db_engine, queue_operation_event(db_engine, order_id, T + 60_000))
    clock = Clock(T + 60_000)

    assert WebhookDelivery(db_engine, SETTINGS, clock_ms=clock).run_once() == 2

    (request,) = signed.wait_for(1)
    row = delivery(db_engine, ids["erp-signed"])
    assert request.signature_valid is True  # the ERP recomputed the HMAC over the raw body
    assert request.headers["X-Forgeline-Signature"] == sign_body(SECRET, row.body.encode())
    assert request.body == row.body.encode("utf-8")  # the stored bytes, exactly
    assert request.path == "/erp/hooks?token=t0ken"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["X-Forgeline-Event"] == "operation.completed"
    assert request.headers["X-Forgeline-Event-Id"] == row.event_id == request.json()["event_id"]
    assert request.json()["operation"]["good"] == 5
    assert (row.state, row.attempts, row.last_status, row.last_error) == (
        "delivered", 1, 200, None,
    )  # fmt: skip
    assert row.delivered_ms == T + 60_000
    [attempt] = attempts(db_engine, row.id)
    assert (attempt.attempt, attempt.ms, attempt.http_status, attempt.error) == (
        1, T + 60_000, 200, None,
    )  # fmt: skip

    (unsigned,) = plain.wait_for(1)
    assert "X-Forgeline-Signature" not in unsigned.headers
    assert unsigned.json()["event_id"] == request.json()["event_id"]  # one event, one id
    assert delivery(db_engine, ids["erp-plain"]).state == "delivered"


def test_a_wrong_secret_is_not_delivered(db_engine, plant, erp_server):
    erp = erp_server(secret="the-erp-expects-another-secret")
    add_endpoint(db_engine, "erp", erp.url)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    [delivery_id] = queue_operation_event(db_engine, order_id, T + 60_000)

    WebhookDelivery(db_engine, SETTINGS, clock_ms=Clock(T + 60_000)).run_once()

    assert erp.wait_for(1)[0].signature_valid is False
    row = delivery(db_engine, delivery_id)
    assert (row.state, row.last_status) == ("pending", 401)
    assert row.last_error.startswith("HTTP 401 Unauthorized")


def test_retried_after_500_and_refused_connections_with_backoff_then_delivered(
    db_engine, plant, erp_server
):
    flaky = erp_server(statuses=[500, 503])
    later_port = free_port()  # nothing listens there yet
    add_endpoint(db_engine, "erp-flaky", flaky.url)
    add_endpoint(db_engine, "erp-down", f"http://127.0.0.1:{later_port}/erp/hooks")
    order_id = one_step_order(db_engine, plant["press-1"], T)
    ids = by_endpoint(db_engine, queue_operation_event(db_engine, order_id, T + 60_000))
    clock = Clock(T + 60_000)
    sender = WebhookDelivery(db_engine, SETTINGS, clock_ms=clock)

    assert sender.run_once() == 2  # 500 and connection refused
    for row in map(lambda i: delivery(db_engine, i), ids.values()):
        assert (row.state, row.attempts, row.next_attempt_ms) == ("pending", 1, T + 65_000)
    clock.advance(4_999)
    assert sender.run_once() == 0  # not due yet
    assert len(flaky.requests) == 1
    clock.advance(1)
    assert sender.run_once() == 2  # 503 and refused again: the next wait doubles
    assert {delivery(db_engine, i).next_attempt_ms for i in ids.values()} == {T + 75_000}
    down = erp_server(port=later_port)  # the ERP comes back
    clock.advance(10_000)
    assert sender.run_once() == 2

    flaky_log = attempts(db_engine, ids["erp-flaky"])
    assert [(a.attempt, a.ms, a.http_status) for a in flaky_log] == [
        (1, T + 60_000, 500), (2, T + 65_000, 503), (3, T + 75_000, 200),
    ]  # fmt: skip
    assert flaky_log[0].error.startswith("HTTP 500")
    down_log = attempts(db_engine, ids["erp-down"])
    assert [(a.ms, a.http_status) for a in down_log] == [
        (T + 60_000, None), (T + 65_000, None), (T + 75_000, 200),
    ]  # fmt: skip
    assert "cannot reach the ERP" in down_log[0].error
    assert all(attempt.duration_ms >= 0 for attempt in flaky_log + down_log)
    # every try sent the same bytes with the same event id
    event_ids = {request.json()["event_id"] for request in flaky.requests}
    assert len(flaky.requests) == 3
    assert event_ids == {delivery(db_engine, ids["erp-flaky"]).event_id}
    assert [request.json() for request in down.requests] == [flaky.requests[0].json()]
    for delivery_id in ids.values():
        row = delivery(db_engine, delivery_id)
        assert (row.state, row.attempts) == ("delivered", 3)


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(db_engine, plant, erp_server):
    erp = erp_server(statuses=[302])
    add_endpoint(db_engine, "erp", erp.url)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    [delivery_id] = queue_operation_event(db_engine, order_id, T + 60_000)

    WebhookDelivery(db_engine, SETTINGS, clock_ms=Clock(T + 60_000)).run_once()

    row = delivery(db_engine, delivery_id)
    assert (row.state, row.last_status) == ("pending", 302)  # urllib alone: GET, 501
    assert [request.path for request in erp.requests] == ["/erp/hooks?token=t0ken"]


def test_an_erp_that_does_not_answer_times_out_and_waits(db_engine, plant, erp_server, caplog):
    erp = erp_server()
    erp.hang()
    add_endpoint(db_engine, "erp", erp.url)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    [delivery_id] = queue_operation_event(db_engine, order_id, T + 60_000)
    settings = WebhookDeliverySettings(timeout_s=0.3, initial_backoff_s=5)

    with caplog.at_level(logging.WARNING, logger="cloud.integration.delivery"):
        WebhookDelivery(db_engine, settings, clock_ms=Clock(T + 60_000)).run_once()

    row = delivery(db_engine, delivery_id)
    assert (row.state, row.last_status, row.next_attempt_ms) == ("pending", None, T + 65_000)
    assert row.last_error == "no answer within 0.3 s"
    assert "no answer within 0.3 s" in caplog.text
    assert "t0ken" not in caplog.text  # the URL's query (tokens) stays out of the log


def test_a_dead_endpoint_costs_one_attempt_per_round_and_holds_up_no_other(
    db_engine, plant, erp_server
):
    add_endpoint(db_engine, "erp-down", dead_url())
    order_id = one_step_order(db_engine, plant["press-1"], T)
    queue_operation_event(db_engine, order_id, T + 60_000, times=3)  # a backlog, due first
    erp = erp_server()
    add_endpoint(db_engine, "erp-up", erp.url)
    queue_operation_event(db_engine, order_id, T + 60_000, times=2)
    settings = WebhookDeliverySettings(batch_max=2)  # the backlog fills the first read

    assert WebhookDelivery(db_engine, settings, clock_ms=Clock(T + 60_000)).run_once() == 3

    with Session(db_engine) as session:
        rows = session.execute(
            select(ErpDelivery.endpoint, ErpDelivery.state, ErpDelivery.attempts).order_by(
                ErpDelivery.id
            )
        ).all()
    down = [(state, tries) for endpoint, state, tries in rows if endpoint == "erp-down"]
    assert down == [("pending", 1)] + [("pending", 0)] * 4  # skipped after one failure
    up = [state for endpoint, state, _ in rows if endpoint == "erp-up"]
    assert up == ["delivered", "delivered"]
    assert len(erp.wait_for(2)) == 2


def test_failed_after_max_attempts_then_retried_by_hand_through_the_api(
    db_engine, plant, erp_server
):
    erp = erp_server(default=500)
    add_endpoint(db_engine, "erp", erp.url)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    start = now_ms()
    [delivery_id] = queue_operation_event(db_engine, order_id, start)
    clock = Clock(start)
    settings = WebhookDeliverySettings(initial_backoff_s=1, max_backoff_s=2, max_attempts=3)
    sender = WebhookDelivery(db_engine, settings, clock_ms=clock)

    for wait_ms in (0, 1_000, 2_000):  # 1 s, then 2 s (the cap)
        clock.advance(wait_ms)
        assert sender.run_once() == 1
    assert delivery(db_engine, delivery_id).state == "failed"
    clock.advance(3_600_000)
    assert sender.run_once() == 0  # failed rows are never picked up again

    with client_for(db_engine) as client:
        failed = client.get("/api/integration/deliveries", params={"state": "failed"}).json()
        assert [(d["id"], d["attempts"], d["last_status"]) for d in failed] == [
            (delivery_id, 3, 500)
        ]
        erp.default = 200
        retried = client.post(f"/api/integration/deliveries/{delivery_id}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["state"] == "pending"
        assert retried.json()["next_attempt_ms"] <= now_ms()
        assert sender.run_once() == 1  # due at once, with a fresh set of attempts

        detail = client.get(f"/api/integration/deliveries/{delivery_id}").json()
        assert (detail["state"], detail["attempts"], detail["last_status"]) == (
            "delivered", 4, 200,
        )  # fmt: skip
        assert [(a["attempt"], a["http_status"]) for a in detail["attempts_log"]] == [
            (1, 500), (2, 500), (3, 500), (4, 200),
        ]  # fmt: skip
        assert [a["ms"] - start for a in detail["attempts_log"][:3]] == [0, 1_000, 3_000]
        assert detail["payload"] == json.loads(erp.requests[-1].body)
        again = client.post(f"/api/integration/deliveries/{delivery_id}/retry")
        assert again.status_code == 409
        assert "delivered" in again.json()["detail"]


def test_rows_of_a_disabled_endpoint_wait_and_of_a_deleted_one_fail(db_engine, plant, erp_server):
    erp = erp_server()
    add_endpoint(db_engine, "erp", erp.url)
    add_endpoint(db_engine, "erp-gone", erp.url)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    ids = by_endpoint(db_engine, queue_operation_event(db_engine, order_id, T + 60_000))
    with Session(db_engine) as session:
        session.execute(update(ErpWebhook).where(ErpWebhook.name == "erp").values(enabled=False))
        session.execute(update(ErpWebhook).where(ErpWebhook.name == "erp-gone").values(name="x"))
        session.commit()
    sender = WebhookDelivery(db_engine, SETTINGS, clock_ms=Clock(T + 60_000))

    assert sender.run_once() == 1  # only the row whose endpoint is gone
    gone = delivery(db_engine, ids["erp-gone"])
    assert (gone.state, gone.last_error) == (
        "failed", "the webhook endpoint 'erp-gone' no longer exists; not sent",
    )  # fmt: skip
    assert delivery(db_engine, ids["erp"]).state == "pending"
    assert erp.requests == []

    with Session(db_engine) as session:
        session.execute(update(ErpWebhook).where(ErpWebhook.name == "erp").values(enabled=True))
        session.commit()
    assert sender.run_once() == 1
    assert delivery(db_engine, ids["erp"]).state == "delivered"


def test_several_delivery_threads_never_send_one_row_twice(db_engine, db_url, plant, erp_server):
    erp = erp_server()
    add_endpoint(db_engine, "erp", erp.url)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    ids = queue_operation_event(db_engine, order_id, now_ms(), times=40)
    engines = [create_engine_for(db_url) for _ in range(3)]  # three cloud processes
    senders = [
        WebhookDelivery(engine, WebhookDeliverySettings(poll_s=0.02, batch_max=5))
        for engine in engines
    ]
    try:
        for sender in senders:
            sender.start()
        requests = erp.wait_for(40)
        wait_until(
            lambda: all(delivery(db_engine, i).state == "delivered" for i in ids),
            what="every delivery delivered",
        )
        for sender in senders:
            assert sender.flush(10)
    finally:
        for sender in senders:
            sender.stop()
        for engine in engines:
            engine.dispose()

    assert len(erp.requests) == 40  # nothing more arrived while flushing
    assert len({request.json()["event_id"] for request in requests}) == 40
    assert {delivery(db_engine, i).attempts for i in ids} == {1}


def test_the_thread_outlives_a_database_that_is_not_there_yet(tmp_path, erp_server, caplog):
    url = f"sqlite:///{tmp_path / 'later.db'}"
    engine = create_engine_for(url)
    sender = WebhookDelivery(engine, WebhookDeliverySettings(poll_s=0.05, db_retry_max_s=0.1))
    erp = erp_server()
    try:
        with caplog.at_level(logging.INFO, logger="cloud.integration.delivery"):
            sender.start()
            wait_until(lambda: "the database does not answer" in caplog.text, what="the error")
            migrate(url)  # the database arrives
            add_endpoint(engine, "erp", erp.url)
            with Session(engine) as session:
                session.add(
                    ErpDelivery(
                        event_id="e" * 32, event="operation.completed", endpoint="erp",
                        work_order="WO-1", operation_sequence=10, body='{"event_id":"eee"}',
                        state="pending", attempts=0, round_start=0, next_attempt_ms=0,
                        created_ms=0, updated_ms=0,
                    )
                )  # fmt: skip
                session.commit()
            sender.wake()
            (request,) = erp.wait_for(1)
            assert sender.flush(10)
        with Session(engine) as session:
            states = session.scalars(select(ErpDelivery.state)).all()
    finally:
        sender.stop()
        engine.dispose()
    assert request.body == b'{"event_id":"eee"}'
    assert states == ["delivered"]
    assert "the database answers again" in caplog.text
    assert caplog.text.count("the database does not answer") == 1  # logged once per outage


def test_a_manual_retry_wakes_the_running_thread(db_engine, plant, erp_server):
    erp = erp_server(statuses=[500])
    add_endpoint(db_engine, "erp", erp.url)
    order_id = one_step_order(db_engine, plant["press-1"], T)
    [delivery_id] = queue_operation_event(db_engine, order_id, now_ms())
    settings = WebhookDeliverySettings(poll_s=120, max_attempts=1)  # it would look again in 2 min
    sender = WebhookDelivery(db_engine, settings)
    app = integration_app(db_engine)
    app.state.erp_webhooks = sender  # as the cloud process hands it to create_app
    try:
        sender.start()
        wait_until(lambda: delivery(db_engine, delivery_id).state == "failed", what="failed")
        with TestClient(app) as client:
            assert (
                client.post(f"/api/integration/deliveries/{delivery_id}/retry").status_code == 200
            )
        wait_until(lambda: delivery(db_engine, delivery_id).state == "delivered", what="sent")
    finally:
        sender.stop()
    assert [request.json()["event_id"] for request in erp.requests] == [
        delivery(db_engine, delivery_id).event_id
    ] * 2
