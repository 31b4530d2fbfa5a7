"""Southbound write checks and the audit record, on plain values and a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.writes import WriteAudit, WriteRequest, check_write
from protocols.profile import parse_profile

PROFILE = parse_profile("""
model: station
protocol: modbus_tcp
tags:
  - {name: speed, type: uint16, table: holding, address: 0, writable: true,
     limits: {low: 0, high: 150}}
  - {name: recipe, type: string, table: holding, address: 1, length: 4, writable: true}
  - {name: andon, type: bool, table: coil, address: 0, writable: true}
  - {name: temperature, type: float32, table: holding, address: 10}
""")


@pytest.mark.parametrize(
    ("metric", "value", "why"),
    [
        ("speed", 90, None),
        ("speed", 150, None),
        ("speed", 151, "151 is above the high limit 150 of 'speed'"),
        ("speed", -1, "-1 is below the low limit 0 of 'speed'"),
        ("speed", "fast", "tag 'speed' takes a number, got 'fast'"),
        ("speed", True, "tag 'speed' takes a number, got True"),
        ("recipe", "R12", None),
        ("recipe", 12, "tag 'recipe' takes a string, got 12"),
        ("andon", True, None),
        ("andon", 1, "tag 'andon' takes true or false, got 1"),
        ("temperature", 20.0, "tag 'temperature' is not writable"),
        ("pressure", 1.0, "station has no tag 'pressure'"),
    ],
)
def test_only_writable_tags_with_values_of_their_type_within_limits(
    metric: str, value: object, why: str | None
) -> None:
    reason = check_write(PROFILE, metric, value)  # type: ignore[arg-type]
    if why is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(why)


def test_audit_records_each_command_once(tmp_path: Path) -> None:
    audit = WriteAudit(tmp_path / "audit.sqlite")
    request = WriteRequest("c-1", 1_000, "maria", "cnc-01", "speed", 90)
    assert audit.begin(request, received_ms=1_050) is True
    assert audit.begin(request, received_ms=1_060) is False  # redelivered by QoS 1
    audit.finish("c-1", "ok", "written")
    audit.close()
    reopened = WriteAudit(tmp_path / "audit.sqlite")
    [record] = reopened.records()
    assert (record["command_id"], record["user"], record["metric"], record["value"]) == (
        "c-1", "maria", "speed", "90",
    )  # fmt: skip
    assert (record["result"], record["detail"], record["received_ms"]) == ("ok", "written", 1_050)
