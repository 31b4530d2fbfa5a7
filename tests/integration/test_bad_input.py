"""The cloud process against hostile traffic: duplicates, malformed and unknown-version payloads."""

from __future__ import annotations

import json
import queue
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from plant_harness import PlantRun

from forgeline.processes import wait_for
from protocols.wire import AckMessage, DataMessage, JsonCodec, Sample, TopicKind

pytestmark = [pytest.mark.integration]

DATA = "forgeline/v1/test-plant/edge-9/cnc-77/data"
ACK = "forgeline/v1/test-plant/edge-9/ack"


def test_duplicates_stored_once_bad_payloads_dead_lettered_and_the_worker_goes_on(
    plant: PlantRun,
) -> None:
    plant.start_cloud()
    codec = JsonCodec()
    acks: queue.Queue[AckMessage] = queue.Queue()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: acks.put(codec.decode(TopicKind.ACK, m.payload))  # type: ignore[arg-type]
    client.connect("127.0.0.1", int(plant.mqtt_url.rsplit(":", 1)[1]))
    client.subscribe(ACK, qos=1)
    client.loop_start()
    try:
        session = str(uuid.uuid4())

        def data(seq: int, n: int) -> bytes:
            samples = tuple(
                Sample("spindle_speed", 1_700_000_000_000 + i, float(i)) for i in range(n)
            )
            return codec.encode(DataMessage(session, seq, 1_700_000_000_000, samples))

        client.publish(DATA, data(1, 5), qos=1).wait_for_publish(5)
        client.publish(DATA, data(1, 5), qos=1).wait_for_publish(5)  # the same message again
        client.publish(DATA, b"{not json", qos=1).wait_for_publish(5)
        unknown = json.loads(data(2, 3))
        unknown["v"] = 99
        client.publish(DATA, json.dumps(unknown).encode(), qos=1).wait_for_publish(5)
        client.publish(DATA, data(3, 4), qos=1).wait_for_publish(5)  # the worker goes on

        acked: set[int] = set()

        def all_acked() -> bool:
            while not acks.empty():
                ack = acks.get_nowait()
                for first, last in ack.ranges.get(session, ()):
                    acked.update(range(first, last + 1))
            return acked >= {1, 2, 3}

        wait_for(all_acked, 20, "seq 1-3 acknowledged (seq 2 dead-lettered with a valid envelope)")
        assert plant.stored_samples() == 5 + 4
        letters = plant.get("/api/dead-letters")
        errors = " | ".join(str(letter) for letter in letters)
        assert len(letters) == 2, errors
        assert "JSON" in errors
        assert "version 99" in errors
        stats = plant.get("/api/ingest/stats")
        assert stats["dead_letters"] == 2, stats
        assert stats["duplicates"] >= 1, stats
    finally:
        client.loop_stop()
        client.disconnect()
