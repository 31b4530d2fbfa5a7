"""Time-based kinds through the real stream: machine state, stalled counter, stale data, quality."""

from __future__ import annotations

import pytest

from cloud.alarms.rules import AlarmRule
from protocols.quality import Quality
from tests.cloud.alarms.conftest import now_ms, wait_for

pytestmark = pytest.mark.integration


def test_machine_down_too_long_from_its_state_tag(plant_factory):
    rule = AlarmRule(name="down_long", kind="state_duration", state="down", duration_s=0.5,
                     priority="high", roles=("maintenance", "production"))  # fmt: skip
    plant = plant_factory([rule])
    plant.birth()
    t0 = now_ms()
    plant.send(plant.edge.data("press1", [("state", t0, 2)]))  # 2 = running
    plant.send(plant.edge.data("press1", [("state", t0 + 50, 3)]))  # 3 = down
    raised = wait_for(lambda: plant.notifier.of("raised"), what="down too long")[0]
    assert raised.ts_ms == t0 + 50 + 500  # entered down + duration
    assert raised.message == "press1 down for more than 0.5 s"
    assert raised.metric == "state"
    plant.send(plant.edge.data("press1", [("state", now_ms(), 1)]))  # idle
    rtn = wait_for(lambda: plant.notifier.of("returned_to_normal"), what="left down")[0]
    assert rtn.message == "press1 no longer down"


def test_counter_stalled_while_running(plant_factory):
    rule = AlarmRule(name="stuck", kind="counter_stalled", duration_s=0.6)
    plant = plant_factory([rule])
    plant.birth()
    t0 = now_ms()
    plant.send(plant.edge.data("press1", [("state", t0, 2), ("cycles", t0, 100)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="stalled")[0]
    assert raised.ts_ms == t0 + 600
    assert raised.message == "press1 cycles running but counter stuck at 100 for 0.6 s"
    plant.send(plant.edge.data("press1", [("cycles", now_ms(), 101)]))
    rtn = wait_for(lambda: plant.notifier.of("returned_to_normal"), what="moving")[0]
    assert rtn.value == 101.0


def test_stale_device_while_its_edge_is_online_but_not_after_it_went_offline(plant_factory):
    rule = AlarmRule(name="quiet", kind="stale", after_s=0.5)
    plant = plant_factory([rule])
    plant.birth()
    plant.send(plant.edge.status(True))
    t0 = now_ms()
    plant.send(plant.edge.data("press1", [("pressure", t0, 5.0)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="stale")[0]
    assert raised.ts_ms == t0 + 500
    assert raised.metric is None
    assert raised.message == "press1 no new sample for 0.5 s"
    plant.send(plant.edge.data("press1", [("temperature", now_ms(), 50.0)]))  # any metric
    wait_for(lambda: plant.notifier.of("returned_to_normal"), what="fresh data")
    plant.send(plant.edge.status(False))  # the edge says goodbye: silence is expected now
    plant.send(plant.edge.data("press1", [("temperature", now_ms(), 51.0)]))
    import time

    time.sleep(0.5 + 2 * 0.5)  # the stale time, plus a refresh of the edges' status
    assert len(plant.notifier.of("raised")) == 1


def test_bad_quality_longer_than_its_on_delay(plant_factory):
    rule = AlarmRule(name="sensor", kind="bad_quality", metric="pressure", on_delay_s=0.3)
    plant = plant_factory([rule])
    plant.birth()
    t0 = now_ms()
    plant.send(plant.edge.data("press1", [("pressure", t0, None, Quality.BAD)]))
    raised = wait_for(lambda: plant.notifier.of("raised"), what="bad quality")[0]
    assert raised.ts_ms == t0 + 300
    plant.send(plant.edge.data("press1", [("pressure", now_ms(), 4.2)]))
    wait_for(lambda: plant.notifier.of("returned_to_normal"), what="good again")
