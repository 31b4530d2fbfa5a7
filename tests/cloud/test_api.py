"""The REST API over a real database (SQLite and PostgreSQL), through FastAPI's TestClient."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.config import CloudConfig
from cloud.ingest.writer import IngestWriter, ReceivedMessage
from protocols.quality import Quality


@pytest.fixture
def client(db_engine, wire):
    writer = IngestWriter(db_engine)
    writer.write([wire.birth("press1"), wire.birth("press2", area=None, line=None)])
    writer.write([
        wire.data("press1", [("state", 0, 2), ("temperature", 0, 10.0)]),
        wire.data("press1", [("temperature", 60_000, 20.0), ("temperature", 90_000, 40.0)]),
        wire.data("press1", [("state", 100_000, 3), ("fault", 100_000, 12)]),
        wire.data("press1", [("pressure", 100_000, None, Quality.BAD)]),
    ])  # fmt: skip
    writer.write([ReceivedMessage("forgeline/v1/plant1/edge1/press1/data", b"garbage", 7)])
    with TestClient(create_app(db_engine)) as test_client:
        yield test_client


def _machine(client, device):
    return next(m for m in client.get("/api/machines").json() if m["device"] == device)


def test_machines_list_current_state_and_latest_values(client):
    machines = client.get("/api/machines").json()
    assert sorted(m["device"] for m in machines) == ["press1", "press2"]
    press1 = _machine(client, "press1")
    assert (press1["site"], press1["area"], press1["line"]) == ("plant1", "Press shop", "Line 1")
    assert (press1["state"], press1["state_since_ms"], press1["fault_code"]) == (
        "down",
        100_000,
        "12",
    )
    temperature = press1["values"]["temperature"]
    assert (temperature["ts_ms"], temperature["value"], temperature["unit"]) == (
        90_000,
        40.0,
        "degC",
    )
    assert press1["values"]["pressure"]["quality"] == "bad"
    press2 = _machine(client, "press2")
    assert (press2["state"], press2["area"], press2["values"]) == (None, None, {})


def test_get_and_patch_a_machine(client):
    machine_id = _machine(client, "press2")["id"]
    assert client.get(f"/api/machines/{machine_id}").json()["device"] == "press2"
    assert client.get("/api/machines/9999").status_code == 404

    patched = client.patch(
        f"/api/machines/{machine_id}",
        json={"name": "Press 2 (Schuler)", "area": "Hall B", "line": "L7"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["area"], body["line"], body["placed_by"]) == (
        "Press 2 (Schuler)",
        "Hall B",
        "L7",
        "user",
    )
    assert client.patch(f"/api/machines/{machine_id}", json={"colour": "red"}).status_code == 422
    # a line alone keeps the area
    assert (
        client.patch(f"/api/machines/{machine_id}", json={"line": "L8"}).json()["area"] == "Hall B"
    )


def test_a_manual_placement_survives_the_next_birth(client, db_engine, wire):
    machine_id = _machine(client, "press1")["id"]
    client.patch(f"/api/machines/{machine_id}", json={"area": "Hall C", "line": "L1"})
    IngestWriter(db_engine).write([wire.birth("press1", area="Press shop", line="Line 1")])
    body = client.get(f"/api/machines/{machine_id}").json()
    assert (body["area"], body["line"]) == ("Hall C", "L1")


def test_series_raw_and_windowed(client):
    machine_id = _machine(client, "press1")["id"]
    raw = client.get(
        "/api/series",
        params={"machine": machine_id, "metric": "temperature", "start": 0, "end": 120_000},
    ).json()
    assert [s["value"] for s in raw["samples"]] == [10.0, 20.0, 40.0]
    assert raw["windows"] == []

    windowed = client.get(
        "/api/series",
        params={
            "machine": machine_id, "metric": "temperature", "window": "1m",
            "start": "1970-01-01T00:00:00Z", "end": "1970-01-01T00:02:00Z",
        },
    ).json()  # fmt: skip
    assert windowed["window_ms"] == 60_000
    assert [w["mean"] for w in windowed["windows"]] == [10.0, 30.0]

    bad = client.get("/api/series", params={"machine": machine_id, "metric": "nope"})
    assert bad.status_code == 404
    bad = client.get(
        "/api/series", params={"machine": machine_id, "metric": "temperature", "window": "-1"}
    )
    assert bad.status_code == 400
    bad = client.get(
        "/api/series", params={"machine": machine_id, "metric": "temperature", "start": "noon"}
    )
    assert bad.status_code == 400
    assert "ISO 8601" in bad.json()["detail"]


def test_state_intervals(client):
    machine_id = _machine(client, "press1")["id"]
    states = client.get(
        f"/api/machines/{machine_id}/states", params={"start": 0, "end": 200_000}
    ).json()
    assert [(s["state"], s["start_ms"], s["end_ms"]) for s in states] == [
        ("running", 0, 100_000), ("down", 100_000, None),
    ]  # fmt: skip
    later = client.get(
        f"/api/machines/{machine_id}/states", params={"start": 150_000, "end": 200_000}
    ).json()
    assert [s["state"] for s in later] == ["down"]


def test_ingest_stats_dead_letters_and_health(client):
    stats = client.get("/api/ingest/stats").json()
    assert (stats["stored_messages"], stats["stored_samples"], stats["dead_letters"]) == (4, 7, 1)
    assert stats["worker"] is None
    letters = client.get("/api/dead-letters").json()
    assert [(d["payload"], d["received_ms"]) for d in letters] == [("garbage", 7)]
    assert "not JSON" in letters[0]["error"]
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    assert client.get("/docs").status_code == 200
    assert "/api/machines" in client.get("/openapi.json").json()["paths"]


def test_app_from_a_config_owns_its_engine(db_url):
    with TestClient(create_app(CloudConfig(db_url=db_url))) as test_client:
        assert test_client.get("/api/machines").json() == []
