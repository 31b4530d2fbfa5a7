"""A small plant written through the real ingest path: two presses with state and counters.

press1 (Press shop / Line 1) runs the planned hour of ``test_oee_timemodel`` (seconds after
``T0``): running 0-1200, down 1200-1260 (a 60 s micro-stop), running 1260-1800, idle
1800-2100, setup 2100-2400, down 2400-2700 with fault 12 (Spindle overload), planned_stop
2700-3000, bad-quality state 3000-3400 (offline), running from 3400 on. Its counters add 300
good units and 20 scrap in that hour, 4 of the scrap within 10 min after the setup ended
(at 2450 s). After the hour it runs on and adds 100 good units each half hour until 6 h.
press2 (Press shop / Line 2) runs from 0 to 6 h and adds 360 good units an hour (PRI 5 s →
exactly half its APT), no scrap.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.ingest.writer import IngestWriter, ReceivedMessage
from protocols.quality import Quality
from protocols.wire import BirthMessage, MetricDefinition, TopicKind
from protocols.wire.messages import FaultText
from tests.cloud.conftest import CODEC, Wire

S = 1000
HOUR = 3600 * S
T0 = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)  # Monday 00:00 UTC
STATES = {"1": "idle", "2": "running", "3": "down", "4": "setup", "5": "planned_stop"}


def birth(wire: Wire, device: str, line: str) -> ReceivedMessage:
    message = BirthMessage(
        session=wire.session,
        created_ms=1_000,
        profile="acme-press",
        protocol="modbus_tcp",
        metrics=(
            MetricDefinition("state", "uint16", "state"),
            MetricDefinition("fault", "uint16", "fault_code"),
            MetricDefinition("good", "uint32", "good_count"),
            MetricDefinition("scrap", "uint32", "scrap_count"),
        ),
        state_map=dict(STATES),
        ideal_cycle_time_s=10.0,
        units_per_cycle=2,  # PRI = 10 s / 2 = 5 s per unit
        area="Press shop",
        line=line,
        fault_codes={"12": FaultText("Spindle overload", "breakdown")},
    )
    return ReceivedMessage(wire.topic(TopicKind.BIRTH, device), CODEC.encode(message), 0)


def press1_samples() -> list[tuple]:
    def at(seconds: float) -> int:
        return T0 + int(seconds * S)

    out: list[tuple] = [
        ("state", at(0), 2), ("fault", at(0), 0), ("good", at(0), 1000), ("scrap", at(0), 50),
        ("state", at(1200), 3), ("state", at(1260), 2), ("good", at(600), 1100),
        ("scrap", at(1000), 66), ("good", at(1500), 1200), ("state", at(1800), 1),
        ("state", at(2100), 4), ("state", at(2400), 3), ("fault", at(2400), 12),
        ("scrap", at(2450), 70), ("state", at(2700), 5), ("fault", at(2700), 0),
        ("state", at(3000), None, Quality.BAD), ("state", at(3400), 2), ("good", at(3500), 1300),
    ]  # fmt: skip
    out += [("good", at(3600 + 1800 * i), 1300 + 100 * i) for i in range(1, 11)]
    return out


def press2_samples() -> list[tuple]:
    out: list[tuple] = [("state", T0, 2), ("fault", T0, 0), ("scrap", T0, 0), ("good", T0, 0)]
    # +60 good every 10 min, counted at 5, 15, ... 355 min: 36 x 60 = 2160 units in 6 h
    out += [("good", T0 + (600 * i - 300) * S, 60 * i) for i in range(1, 37)]
    return out


@pytest.fixture
def plant(db_engine):
    """The two presses written through ``IngestWriter``; returns their machine ids."""
    wire = Wire()
    writer = IngestWriter(db_engine)
    writer.write([birth(wire, "press1", "Line 1"), birth(wire, "press2", "Line 2")])
    writer.write([wire.data("press1", press1_samples()), wire.data("press2", press2_samples())])
    from sqlalchemy import text

    with db_engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT device, id FROM machine")).all())
    return {"press1": ids["press1"], "press2": ids["press2"], "engine": db_engine, "wire": wire}
