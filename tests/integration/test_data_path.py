"""The data path end to end through real processes, a real Mosquitto and a real database.

Every test counts exactly: what the edge published (its durable counters) against what the
cloud's database holds and what the edge still has in its log. ``lost`` must be 0. Each test
runs on SQLite and on PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import time

import pytest
from plant_harness import PlantRun, assert_no_loss

from forgeline.processes import wait_for
from protocols.wire import StatusMessage

pytestmark = [pytest.mark.integration]


def _start_all(plant: PlantRun, **sim: str) -> None:
    plant.start_sim(**sim)
    plant.start_cloud()
    plant.start_edge()
    plant.wait_stored(1)


def test_every_published_sample_is_stored_exactly_once(plant: PlantRun) -> None:
    _start_all(plant)
    time.sleep(5)
    assert plant.stop_edge() == 0, plant.logs_tail()
    report = plant.report()
    assert_no_loss(report, plant)
    assert {m["protocol"] for m in report["machines"]} == {"modbus_tcp", "opcua"}
    # births made machines, with their samples queryable through the API
    machines = {m["device"]: m for m in plant.get("/api/machines")}
    assert set(machines) == {"cnc-01", "breaker-01", "press-01"}


@pytest.mark.slow
def test_broker_killed_and_restarted_later_loses_nothing(
    plant: PlantRun, mosquitto: object
) -> None:
    _start_all(plant)
    recorder = plant.record(["forgeline/v1/+/+/+/data"])
    time.sleep(2)
    mosquitto.kill()  # type: ignore[attr-defined]
    outage_started_ms = time.time_ns() // 1_000_000
    time.sleep(11)
    outage_ended_ms = time.time_ns() // 1_000_000
    mosquitto.start()  # type: ignore[attr-defined]

    def replayed() -> bool:
        return any(m.historical for _, m in recorder.data)

    wait_for(replayed, 30, "the backlog replayed with historical: true")
    time.sleep(2)
    assert plant.stop_edge() == 0, plant.logs_tail()
    report = plant.report()
    assert_no_loss(report, plant)
    during = plant.sql(
        "SELECT COUNT(*) FROM ts_sample WHERE ts BETWEEN :a AND :b",
        a=outage_started_ms + 500, b=outage_ended_ms - 500,
    )[0][0]  # fmt: skip
    assert during > 0, "readings taken while the broker was down were not stored"
    # Historical messages are exactly those written while the edge had no broker: after the
    # outage began and before its first live message once reconnected.
    first_live_after = min(
        m.created_ms for _, m in recorder.data
        if not m.historical and m.created_ms > outage_started_ms
    )  # fmt: skip
    historical = [m for _, m in recorder.data if m.historical]
    assert historical
    assert all(outage_started_ms - 1_000 <= m.created_ms <= first_live_after for m in historical)


@pytest.mark.slow
def test_edge_killed_with_backlog_on_disk_loses_nothing(plant: PlantRun) -> None:
    _start_all(plant)
    time.sleep(2)
    plant.stop_cloud()  # no acknowledgements: the edge's log grows
    time.sleep(4)
    before = plant.report()
    assert before["totals"]["published"] > before["totals"]["stored"]
    plant.kill_edge()  # SIGKILL with an unacknowledged backlog on disk
    plant.start_cloud()
    plant.start_edge()  # same data dir: the old session's log is drained first
    time.sleep(6)
    assert plant.stop_edge() == 0, plant.logs_tail()
    report = plant.report()
    assert_no_loss(report, plant)
    sessions = plant.sql("SELECT COUNT(DISTINCT session) FROM ingest_message")[0][0]
    assert sessions == 2


@pytest.mark.slow
def test_cloud_stopped_for_30_seconds_loses_nothing(plant: PlantRun) -> None:
    _start_all(plant)
    time.sleep(2)
    plant.stop_cloud()
    time.sleep(30)
    plant.start_cloud()
    time.sleep(5)
    assert plant.stop_edge() == 0, plant.logs_tail()
    report = plant.report()
    assert_no_loss(report, plant)


@pytest.mark.slow
def test_a_dead_plc_goes_bad_without_slowing_its_neighbours(plant: PlantRun) -> None:
    # cnc-01 stops answering 15 s after the simulators start, for 10 s
    _start_all(plant, cnc_faults=", faults: [{kind: unresponsive, at_s: 15, duration_s: 10}]")
    recorder = plant.record(["forgeline/v1/+/+/status"])

    def link(status: StatusMessage) -> object:
        return status.health.get("cnc-01.link_up")

    def outage_over() -> bool:
        """Up, then down, then up again."""
        ups = [link(s) for _, s in recorder.status if s.online]
        if 1 not in ups or 0 not in ups[ups.index(1) :]:
            return False
        first_down = ups.index(0, ups.index(1))
        return 1 in ups[first_down:]

    wait_for(outage_over, 60, "cnc-01 going down and coming back (edge status)")
    online = [(t, s) for t, s in recorder.status if s.online]
    first_up = next(t for t, s in online if link(s) == 1)
    down = [t for t, s in online if link(s) == 0 and t > first_up]
    healthy = (first_up, down[0] - 0.5)
    outage = (down[0] + 0.5, down[-1])
    assert outage[1] - outage[0] >= 5, "the outage window is too short to measure"

    def rate(device: str, window: tuple[float, float]) -> float:
        """Polls per second of one device over a window, from the edge's status messages.

        Polls, not samples: an OPC UA subscription returns only what changed, so its samples
        per poll vary with the process while its polls keep the schedule.
        """
        points = [
            (float(s.health["clock_ms"] or 0), float(s.health[f"{device}.reads"] or 0))
            for t, s in online
            if window[0] <= t <= window[1]
        ]
        assert len(points) >= 3, f"too few status messages for {device} in {window}"
        (t0, n0), (t1, n1) = points[0], points[-1]
        return (n1 - n0) / ((t1 - t0) / 1000)

    for device in ("breaker-01", "press-01"):
        before, during = rate(device, healthy), rate(device, outage)
        assert during == pytest.approx(before, rel=0.10), (device, before, during)
    bad = plant.sql(
        "SELECT COUNT(*) FROM ts_sample x JOIN ts_series s ON s.id = x.series_id"
        " WHERE s.device = 'cnc-01' AND x.quality = 2 AND x.reason LIKE 'comm:%'"
    )[0][0]
    assert bad > 0, "the dead PLC's values were not marked bad"

    def recovered() -> bool:
        rows = plant.sql(
            "SELECT l.quality FROM ts_latest l JOIN ts_series s ON s.id = l.series_id"
            " WHERE s.device = 'cnc-01'"
        )
        return bool(rows) and all(q == 0 for (q,) in rows)

    wait_for(recovered, 30, "cnc-01 good again after the PLC came back")
    assert plant.stop_edge() == 0, plant.logs_tail()
    assert_no_loss(plant.report(), plant)
