"""The whole cloud process: config file, migrations, ingest through Mosquitto, the HTTP API."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid

import paho.mqtt.client as mqtt
import pytest

from cloud.config import CloudConfig, load_cloud_config
from cloud.service import CloudService, run_cloud
from protocols.errors import ProfileError
from protocols.wire import DataMessage, JsonCodec, Sample, Topic, TopicKind

pytestmark = pytest.mark.integration


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edge-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text("mqtt_url: mqtt://broker.local:1884\nshared_subscription: false\n")
    config = load_cloud_config(path, api_port=9001, db_url=None)
    assert (config.mqtt.host, config.mqtt.port, config.shared_subscription) == (
        "broker.local", 1884, False
    )  # fmt: skip
    assert config.api_port == 9001
    assert config.database_url.startswith("sqlite:///")
    assert config.client_id == "forgeline-cloud-cloud-1"

    path.write_text("mqtt_url: mqtt://ok:1883\nbatch_max_ms: -1\nmqtt_urll: x\n")
    with pytest.raises(ProfileError) as caught:
        load_cloud_config(path)
    text = str(caught.value)
    assert f"{path}:2: batch_max_ms" in text
    assert f"{path}:3: mqtt_urll: unknown field" in text
    with pytest.raises(ValueError, match="scheme must be mqtt"):
        CloudConfig(mqtt_url="http://x")


def test_cloud_service_ingests_and_serves(mosquitto, db_url, tmp_path):
    config = CloudConfig(
        mqtt_url=mosquitto.url, db_url=db_url, api_port=0, batch_max_ms=20,
        shared_subscription=True, data_dir=tmp_path,
    )  # fmt: skip
    service = CloudService(config)
    service.start()
    try:
        assert service.worker is not None
        assert service.worker.wait_connected(10)
        time.sleep(0.2)
        session = uuid.uuid4().hex
        topic = str(Topic.device_topic(TopicKind.DATA, "plant1", "edge9", "lathe1"))
        codec = JsonCodec()
        _publish(mosquitto.port, [
            (topic, codec.encode(DataMessage(session, seq, 1, (Sample("rpm", seq, 100.0),))))
            for seq in range(1, 21)
        ])  # fmt: skip
        deadline = time.monotonic() + 15
        while _get(f"{service.api_url}/api/ingest/stats")["stored_samples"] < 20:
            assert time.monotonic() < deadline, "samples did not arrive"
            time.sleep(0.05)
        stats = _get(f"{service.api_url}/api/ingest/stats")
        assert stats["worker"]["stored_messages"] == 20
        assert (stats["received"], stats["duplicates"], stats["db_errors"]) == (20, 0, 0)
        assert stats["last_batch_lag_ms"] >= 0
        assert stats["edges"][0]["edge"] == "edge9"
        assert _get(f"{service.api_url}/healthz")["mqtt_connected"] is True
    finally:
        service.stop()


def test_run_cloud_stops_on_the_stop_event(mosquitto, tmp_path):
    config = CloudConfig(mqtt_url=mosquitto.url, api_port=0, data_dir=tmp_path / "data")
    stop = threading.Event()
    thread = threading.Thread(target=run_cloud, args=(config, stop))
    thread.start()
    deadline = time.monotonic() + 15
    while not (tmp_path / "data" / "forgeline.db").exists():
        assert time.monotonic() < deadline, "run_cloud did not create its database"
        time.sleep(0.05)
    stop.set()
    thread.join(20)
    assert not thread.is_alive()
