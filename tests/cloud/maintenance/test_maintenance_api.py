"""The maintenance routes over a real database (SQLite and PostgreSQL), through TestClient; the
waveform request goes through a real Mosquitto to a subscriber standing in for the edge."""

from __future__ import annotations

import json
import queue
import warnings
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

with warnings.catch_warnings():
    # starlette 1.x asks for httpx2 and warns once, at import, when it finds only httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.api.maintenance import router
from cloud.commands import CommandPublisher
from cloud.config import CloudConfig
from cloud.ingest.writer import IngestWriter, ReceivedMessage
from cloud.maintenance.monitor import assess_all
from protocols.wire import CommandMessage, EventMessage, MetricDefinition, TopicKind
from protocols.wire.messages import Event
from tests.cloud.conftest import CODEC, Wire
from tests.cloud.maintenance.condition_kit import (
    RMS,
    SETTINGS,
    TAG,
    birth,
    machine_id,
    ts_of,
    write_pump,
)


@pytest.fixture
def plant(db_engine: Engine) -> dict[str, Any]:
    wire = Wire()
    pump = write_pump(db_engine, wire)
    return {"engine": db_engine, "wire": wire, "pump": pump}


def make_client(engine: Engine, commands: CommandPublisher | None = None) -> TestClient:
    app = create_app(engine, commands=commands)
    if not any(getattr(r, "path", "").startswith("/api/maintenance") for r in app.routes):
        app.include_router(router)  # until cloud/api/app.py includes it
    app.state.condition_settings = SETTINGS
    return TestClient(app)


@pytest.fixture
def client(plant: dict[str, Any]) -> Iterator[TestClient]:
    with make_client(plant["engine"]) as test_client:
        yield test_client


# --------------------------------------------------------------------------- classes


def test_vibration_classes_and_choosing_one_for_a_machine(client, plant):
    classes = {c["id"]: c for c in client.get("/api/maintenance/vibration-classes").json()}
    rigid = classes["iso20816_3_group2_rigid"]
    assert (rigid["a_b"], rigid["b_c"], rigid["c_d"], rigid["unit"]) == (1.4, 2.8, 4.5, "mm/s")
    assert "iso10816_1_class1" in classes

    path = f"/api/maintenance/machines/{plant['pump']}/vibration-class"
    unknown = client.put(path, json={"class_id": "iso_nonsense", "set_by": "ana"})
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("class_id: unknown vibration class 'iso_nonsense'")
    missing = client.put(path, json={"set_by": "ana"})
    assert missing.status_code == 400
    assert missing.json()["detail"].startswith("class_id")
    nowhere = client.put(
        "/api/maintenance/machines/999999/vibration-class",
        json={"class_id": "iso10816_1_class1", "set_by": "ana"},
    )
    assert nowhere.status_code == 404

    chosen = client.put(path, json={"class_id": "iso10816_1_class1", "set_by": "ana"})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["class_id"] == "iso10816_1_class1"
    again = client.put(path, json={"class_id": "iso20816_3_group2_flexible", "set_by": "bo"})
    assert (again.json()["class_id"], again.json()["set_by"]) == (
        "iso20816_3_group2_flexible",
        "bo",
    )

    # the class set through the API wins over the condition file's (group 2 rigid for pump1)
    done = assess_all(plant["engine"], ts_of(700), SETTINGS)
    (vibration,) = [a for a in done.assessments[plant["pump"]] if a.metric == RMS]
    assert vibration.class_id == "iso20816_3_group2_flexible"


# --------------------------------------------------------------------------- condition


def test_condition_now_and_history(client, plant):
    for hour in (300, 600, 900):
        assert assess_all(plant["engine"], ts_of(hour) + 1, SETTINGS).errors == {}
    latest = client.get("/api/maintenance/condition").json()
    by_metric = {row["metric"]: row for row in latest}
    assert set(by_metric) == {RMS, "bearing_temp"}
    assert by_metric[RMS]["assessed_ms"] == ts_of(900) + 1
    assert by_metric[RMS]["machine_name"] == "pump1"
    assert by_metric[RMS]["zone"] == "C"
    assert by_metric[RMS]["rul_low_h"] <= by_metric[RMS]["rul_h"] <= by_metric[RMS]["rul_high_h"]
    assert by_metric["bearing_temp"]["signal"] == "temperature"
    assert by_metric["bearing_temp"]["temperature_metric"] == "bearing_temp"

    path = f"/api/maintenance/machines/{plant['pump']}/condition"
    history = client.get(path, params={"from": ts_of(300), "to": ts_of(900)}).json()
    assert [(a["metric"], a["assessed_ms"]) for a in history["assessments"]] == [
        (RMS, ts_of(300) + 1), ("bearing_temp", ts_of(300) + 1),
        (RMS, ts_of(600) + 1), ("bearing_temp", ts_of(600) + 1),
    ]  # oldest first; a pass stores its vibration rows, then its temperature rows  # fmt: skip
    assert history["overall_metrics"] == [RMS]
    assert history["features"][RMS] == {
        s: f"{TAG}_{s}" for s in ("rms", "peak", "crest_factor", "kurtosis")
    }
    assert history["latest"][f"{TAG}_kurtosis"]["ts_ms"] == ts_of(999)
    assert "motor_load" not in history["latest"]  # a process parameter, not a condition metric
    everything = client.get(path).json()["assessments"]
    assert len(everything) == 6
    assert client.get(path, params={"from": "yesterday"}).status_code == 400
    assert client.get("/api/maintenance/machines/999999/condition").status_code == 404


# --------------------------------------------------------------------------- suggestions


def open_suggestions(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/api/maintenance/suggestions", params={"status": "open"})
    assert response.status_code == 200
    return response.json()


def test_suggestions_and_their_status_transitions(client, plant):
    assert assess_all(plant["engine"], ts_of(900) + 1, SETTINGS).errors == {}
    suggestions = open_suggestions(client)
    by_kind = {s["kind"]: s for s in suggestions}
    assert "vibration_zone" in by_kind
    zone = by_kind["vibration_zone"]
    assert zone["machine_id"] == plant["pump"]
    assert zone["reason"].startswith(f"pump1: {RMS} ")
    assert zone["evidence"]["zone"] == "C"
    assert client.get(f"/api/maintenance/suggestions/{zone['id']}").json() == zone
    assert client.get("/api/maintenance/suggestions/999999").status_code == 404
    bad = client.get("/api/maintenance/suggestions", params={"status": "closed"})
    assert bad.status_code == 400
    assert "status" in bad.json()["detail"]

    path = f"/api/maintenance/suggestions/{zone['id']}"
    refused = client.patch(path, json={"status": "reopened", "by": "ana"})
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("status")
    accepted = client.patch(path, json={"status": "accepted", "by": "ana", "comment": "WO 4711"})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["updated_by"]) == ("accepted", "ana")
    assert accepted.json()["comment"] == "WO 4711"
    back = client.patch(path, json={"status": "open", "by": "ana"})
    assert back.status_code == 409
    assert "accepted" in back.json()["detail"]

    # while accepted it is still the live one: a new pass updates it, makes no second one
    assert assess_all(plant["engine"], ts_of(910) + 1, SETTINGS).errors == {}
    live = [s for s in client.get("/api/maintenance/suggestions").json()
            if s["kind"] == "vibration_zone"]  # fmt: skip
    assert [s["id"] for s in live] == [zone["id"]]
    assert live[0]["status"] == "accepted"

    done = client.patch(path, json={"status": "done", "by": "bo", "comment": "bearing changed"})
    assert done.status_code == 200
    assert client.patch(path, json={"status": "dismissed", "by": "bo"}).status_code == 409
    # done frees the machine × kind: the still-worn bearing suggests a new one
    assert assess_all(plant["engine"], ts_of(920) + 1, SETTINGS).errors == {}
    newer = [s for s in open_suggestions(client) if s["kind"] == "vibration_zone"]
    assert len(newer) == 1
    assert newer[0]["id"] != zone["id"]
    dismissed = client.patch(
        f"/api/maintenance/suggestions/{newer[0]['id']}", json={"status": "dismissed", "by": "bo"}
    )
    assert dismissed.json()["status"] == "dismissed"
    assert client.patch("/api/maintenance/suggestions/999999",
                        json={"status": "done", "by": "bo"}).status_code == 404  # fmt: skip


# --------------------------------------------------------------------------- waveforms


def test_asking_for_waveforms_without_an_mqtt_connection_is_503(client, plant):
    path = f"/api/maintenance/machines/{plant['pump']}/waveforms"
    response = client.post(path, json={"metric": TAG, "windows": 3})
    assert response.status_code == 503
    assert client.post(path, json={"metric": TAG, "windows": 61}).status_code == 400
    unknown = client.post(path, json={"metric": "spindle", "windows": 1})
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("metric: machine")
    assert RMS in unknown.json()["detail"]
    nowhere = client.post("/api/maintenance/machines/999999/waveforms", json={"metric": TAG})
    assert nowhere.status_code == 404


def test_asking_for_waveforms_sends_the_command_to_the_edge(plant, mosquitto):
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    edge = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge1-standin")
    edge.on_message = lambda _c, _u, message: received.put(message)
    subscribed: queue.Queue[bool] = queue.Queue()
    edge.on_subscribe = lambda *_args: subscribed.put(True)
    edge.connect(mosquitto.host, mosquitto.port)
    edge.loop_start()
    publisher = CommandPublisher(CloudConfig(mqtt_url=mosquitto.url, worker_id="pdm-test"))
    publisher.start()
    try:
        edge.subscribe("forgeline/v1/plant1/edge1/cmd", qos=1)
        subscribed.get(timeout=10)
        with make_client(plant["engine"], commands=publisher) as client:
            response = client.post(
                f"/api/maintenance/machines/{plant['pump']}/waveforms",
                json={"metric": TAG, "windows": 3},
            )
        assert response.status_code == 202, response.text
        message = received.get(timeout=10)
    finally:
        publisher.stop()
        edge.loop_stop()
        edge.disconnect()
    command = CODEC.decode(TopicKind.CMD, message.payload)
    assert isinstance(command, CommandMessage)
    assert command.command == "forward_waveform"
    assert command.command_id == response.json()["command_id"]
    assert command.args == {"device": "pump1", "metric": TAG, "windows": 3}


def waveform_event(wire: Wire, device: str, ts_ms: int, detail: str) -> ReceivedMessage:
    event = Event("waveform", ts_ms, TAG, detail=detail)
    message = EventMessage(wire.session, 10_000 + ts_ms % 1000, 1_000, (event,))
    return ReceivedMessage(wire.topic(TopicKind.EVENT, device), CODEC.encode(message), 0)


def test_forwarded_windows_are_decoded(client, plant):
    wire, t = plant["wire"], ts_of(999)
    window = [0.5, -1.25, 2.0, -0.75]
    good = json.dumps({"sample_rate_hz": 2560.0, "unit": "mm/s", "samples": window},
                      separators=(",", ":"))  # fmt: skip
    IngestWriter(plant["engine"]).write([
        waveform_event(wire, "pump1", t, good),
        waveform_event(wire, "pump1", t + 400, good.replace("2560.0", "1280.0")),
        waveform_event(wire, "pump1", t + 800, '{"unit": "mm/s"}'),
    ])  # fmt: skip
    path = f"/api/maintenance/machines/{plant['pump']}/waveforms"
    windows = client.get(path, params={"metric": TAG}).json()
    assert [w["ts_ms"] for w in windows] == [t + 800, t + 400, t]  # newest first
    assert windows[2]["samples"] == window
    assert (windows[2]["sample_rate_hz"], windows[2]["unit"]) == (2560.0, "mm/s")
    assert windows[1]["sample_rate_hz"] == 1280.0
    assert windows[0]["samples"] == []
    assert "sample_rate_hz" in windows[0]["problem"]
    between = client.get(path, params={"metric": TAG, "from": t, "to": t + 400}).json()
    assert [w["ts_ms"] for w in between] == [t]
    assert client.get(path, params={"metric": "other"}).json() == []
    assert client.get(path, params={"to": "soon"}).status_code == 400


def test_a_machine_without_condition_data_has_an_empty_history(client, plant):
    metrics = (MetricDefinition("spindle_vibration", "float32", "vibration", unit="mm/s"),)
    IngestWriter(plant["engine"]).write([birth(Wire(edge="edge2"), "cnc1", metrics)])
    cnc = machine_id(plant["engine"], "cnc1")
    history = client.get(f"/api/maintenance/machines/{cnc}/condition").json()
    assert history["assessments"] == []
    assert history["overall_metrics"] == ["spindle_vibration"]
    assert assess_all(plant["engine"], ts_of(10), SETTINGS).assessments.get(cnc) == []
