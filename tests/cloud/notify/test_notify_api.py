"""The notifications API over a real database with a running dispatcher: deliveries, channels
(secrets masked), test sends, and the WebSocket stream (TestClient, and a real uvicorn server
for a slow client)."""

from __future__ import annotations

import random
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import uvicorn
from websockets.sync.client import connect

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # starlette's TestClient asks for httpx2
    from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from cloud.api.app import create_app
from cloud.config import CloudConfig
from cloud.notify.dispatcher import build_dispatcher
from forgeline.processes import free_port
from tests.cloud.notify.notify_kit import EXAMPLE, dead_url, golden, pretty, wait_until

SECRETS = ("q-s3cret", "hdr-s3cret", "tok-s3cret", "SECs3cret", "smtp-s3cret")


def notifications(hook_url: str, robot_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "channels": {
            "ui": {"type": "websocket"},
            "hook": {"type": "webhook", "url": f"{hook_url}/hook?token=q-s3cret",
                     "headers": {"Authorization": "Bearer hdr-s3cret"}},
            "maintenance": {"type": "dingtalk", "access_token": "tok-s3cret",
                            "secret": "SECs3cret", "base_url": f"{robot_url}/robot/send"},
            "mail": {"type": "email", "host": "127.0.0.1", "port": free_port(),
                     "security": "none", "username": "alarms", "password": "smtp-s3cret",
                     "sender": "alarms@plant1.example", "to": ["lead@plant1.example"]},
            "dead": {"type": "webhook", "url": dead_url()},
        },
        "routes": [{"channels": ["ui", "hook"]}],
        "retry": {"max_attempts": 1},
        "drain_s": 0.5,
        "timezone": "Asia/Shanghai",
        "alarm_link": "https://mom.plant.local/alarms/{alarm_id}",
        **extra,
    }  # fmt: skip


@pytest.fixture
def notifier(db_engine, http_server) -> Iterator[Any]:
    server = http_server()
    config = CloudConfig(notifications=notifications(server.url, server.url))
    built = build_dispatcher(config, db_engine, rng=random.Random(1))
    built.server = server  # the recording server behind "hook" and "maintenance"
    built.start()
    yield built
    built.stop()


@pytest.fixture
def client(db_engine, notifier) -> Iterator[TestClient]:
    with TestClient(create_app(db_engine, notifier=notifier)) as test_client:
        yield test_client


def test_channels_are_listed_with_counters_and_no_secret(client):
    response = client.get("/api/notifications/channels")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["running"] is True
    assert [c["name"] for c in body["channels"]] == ["ui", "hook", "maintenance", "mail", "dead"]
    channels = {c["name"]: c for c in body["channels"]}
    assert channels["hook"]["settings"]["url"].endswith("/hook?***")
    assert channels["hook"]["settings"]["headers"] == {"Authorization": "***"}
    assert channels["maintenance"]["settings"]["access_token"] == "**********"
    assert channels["mail"]["counters"]["sent"] == 0
    for secret in SECRETS:
        assert secret not in response.text


def test_a_test_send_reports_success_or_the_error_and_is_recorded(client, notifier):
    sent = client.post("/api/notifications/test", json={"channel": "maintenance"})
    assert sent.status_code == 200, sent.text
    assert (sent.json()["status"], sent.json()["attempts"]) == ("sent", 1)
    (request,) = notifier.server.wait_for(1)
    assert request.path == "/robot/send"
    assert "Test notification from forgeline" in request.json()["markdown"]["text"]

    failed = client.post("/api/notifications/test", json={"channel": "dead", "priority": "high"})
    assert failed.status_code == 502
    assert "cannot reach the server" in failed.json()["detail"]["error"]

    assert client.post("/api/notifications/test", json={"channel": "nope"}).status_code == 404

    rows = client.get("/api/notifications/deliveries", params={"alarm_id": 0}).json()
    assert {(r["channel"], r["status"]) for r in rows} == {
        ("maintenance", "sent"),
        ("dead", "failed"),
    }


def test_deliveries_filter_by_status_channel_and_alarm(client, notifier):
    notifier.submit(EXAMPLE)
    notifier.submit(replace(EXAMPLE, alarm_id=43))
    client.post("/api/notifications/test", json={"channel": "dead"})
    assert notifier.wait_idle(10)

    every = client.get("/api/notifications/deliveries").json()
    assert len(every) == 5  # alarms 42 and 43 to ui and hook, and the failed test
    assert every[0]["id"] > every[-1]["id"]  # newest first
    failed = client.get("/api/notifications/deliveries", params={"status": "failed"}).json()
    assert [(r["channel"], r["alarm_id"]) for r in failed] == [("dead", 0)]
    assert "cannot reach the server" in failed[0]["last_error"]
    hook = client.get("/api/notifications/deliveries", params={"channel": "hook"}).json()
    assert sorted(r["alarm_id"] for r in hook) == [42, 43]
    alarm = client.get("/api/notifications/deliveries", params={"alarm_id": 42}).json()
    assert sorted(r["channel"] for r in alarm) == ["hook", "ui"]
    assert {r["status"] for r in alarm} == {"sent"}
    assert client.get("/api/notifications/deliveries", params={"status": "lost"}).status_code == 422


def test_the_stream_sends_every_notification_as_json(client, notifier):
    with (
        client.websocket_connect("/api/alarms/stream") as first,
        client.websocket_connect("/api/alarms/stream") as second,
    ):
        notifier.submit(EXAMPLE)
        received = first.receive_json()
        assert second.receive_json() == received
    golden("websocket.json", pretty(received))


def test_without_a_dispatcher_the_api_says_so(db_engine):
    with TestClient(create_app(db_engine)) as bare:
        assert bare.get("/api/notifications/channels").status_code == 503
        assert bare.get("/api/notifications/deliveries").json() == []
        with (
            bare.websocket_connect("/api/alarms/stream") as ws,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            ws.receive_text()
        assert closed.value.code == 1011


class ApiServer:
    """The API on a real uvicorn server (own thread, free port)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, what="uvicorn to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_a_slow_client_is_dropped_and_never_holds_up_the_others(db_engine, http_server):
    server = http_server()
    config = CloudConfig(
        notifications=notifications(
            server.url, server.url, stream={"max_pending": 8, "send_timeout_s": 1.0}
        )
    )
    notifier = build_dispatcher(config, db_engine)
    notifier.start()
    api = ApiServer(create_app(db_engine, notifier=notifier))
    url = f"ws://127.0.0.1:{api.port}/api/alarms/stream"
    try:
        # The slow client reads nothing: its library buffers one message, then TCP fills up.
        with (
            connect(url, max_queue=1, compression=None, close_timeout=1) as slow,
            connect(url, compression=None) as fast,
        ):
            stream = notifier.broadcaster
            wait_until(lambda: stream.snapshot()["clients"] == 2, what="two clients")
            started = time.monotonic()
            filler = "x" * 65_536
            for index in range(400):  # 400 × 64 KiB = 25 MiB: far beyond the socket buffers
                stream.publish(f"{index}:{filler}")
                assert fast.recv(timeout=5).startswith(f"{index}:")
                if stream.snapshot()["dropped_slow"]:
                    break
            assert stream.snapshot()["dropped_slow"] == 1
            wait_until(lambda: stream.snapshot()["clients"] == 1, what="the slow client to go")
            assert time.monotonic() - started < 30

            notifier.submit(EXAMPLE)  # the fast client still gets notifications
            assert '"alarm_id":42' in fast.recv(timeout=5)
            assert slow is not None
    finally:
        api.stop()
        notifier.stop()
