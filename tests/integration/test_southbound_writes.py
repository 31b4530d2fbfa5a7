"""Southbound writes from the cloud API through MQTT to a simulated PLC, checked and audited."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from typing import Any

import pytest
from plant_harness import PlantRun

from forgeline.processes import wait_for

pytestmark = [pytest.mark.integration]


def _post(plant: PlantRun, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        plant.api + path, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_writes_are_checked_carried_out_audited_and_reported(plant: PlantRun) -> None:
    plant.start_sim()
    plant.start_cloud()
    plant.start_edge()
    plant.wait_stored(1)
    wait_for(lambda: any(m["device"] == "cnc-01" for m in plant.get("/api/machines")), 30,
             "cnc-01 registered from its birth")  # fmt: skip
    cnc = next(m for m in plant.get("/api/machines") if m["device"] == "cnc-01")

    status, ok = _post(plant, f"/api/machines/{cnc['id']}/write",
                       {"metric": "feed_override", "value": 85, "user": "maria.lopez"})  # fmt: skip
    assert status == 202
    _, too_high = _post(plant, f"/api/machines/{cnc['id']}/write",
                        {"metric": "feed_override", "value": 180, "user": "maria.lopez"})  # fmt: skip
    _, read_only = _post(plant, f"/api/machines/{cnc['id']}/write",
                         {"metric": "spindle_speed", "value": 100.0, "user": "maria.lopez"})  # fmt: skip

    def results() -> dict[str, str]:
        events = plant.get(f"/api/machines/{cnc['id']}/events?kind=write_result")
        return {e["detail"].split("(command ")[1].split(" ")[0]: e["detail"] for e in events}

    wait_for(lambda: len(results()) == 3, 30, "three write_result events stored")
    outcome = results()
    assert outcome[ok["command_id"]].startswith("ok: written")
    assert outcome[too_high["command_id"]].startswith("rejected: 180 is above the high limit 150")
    assert outcome[read_only["command_id"]].startswith(
        "rejected: tag 'spindle_speed' is not writable"
    )
    assert all("by maria.lopez" in detail for detail in outcome.values())

    # the PLC holds the new value, and the edge reads it back
    def feed_override() -> object:
        machine = plant.get(f"/api/machines/{cnc['id']}")
        return machine["values"]["feed_override"]["value"]

    wait_for(lambda: feed_override() == 85, 30, "feed_override read back as 85")

    # the edge's audit says who asked what, when, and what came of it
    audit = sqlite3.connect(plant.edge_data / "audit.sqlite")
    rows = audit.execute(
        "SELECT command_id, user, device, metric, value, result FROM write_audit"
    ).fetchall()
    audit.close()
    assert sorted((r[3], r[4], r[5]) for r in rows) == [
        ("feed_override", "180", "rejected"),
        ("feed_override", "85", "ok"),
        ("spindle_speed", "100.0", "rejected"),
    ]
    assert {r[1] for r in rows} == {"maria.lopez"}
    assert plant.stop_edge() == 0, plant.logs_tail()
