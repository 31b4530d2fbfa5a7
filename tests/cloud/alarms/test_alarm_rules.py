"""Alarm rules: validation per kind, the rules file with file/line/field errors, combining, binding."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud.alarms.builtin import builtin_rules
from cloud.alarms.lifecycle import next_escalation_ms, on_acknowledge, on_activate, on_return
from cloud.alarms.models import ACTIVE_ACK, ACTIVE_UNACK, CLEARED, RTN_UNACK
from cloud.alarms.points import (
    Catalog,
    LimitOverride,
    MachineInfo,
    SeriesInfo,
    bind,
    resolve_deadband,
)
from cloud.alarms.rules import (
    SOURCE_BUILTIN,
    SOURCE_FILE,
    SOURCE_STORED,
    AlarmRule,
    combine_rules,
    load_rules_file,
)
from protocols.errors import ProfileError

RULES_YAML = """\
rules:
  - name: nozzle_high
    kind: high
    metric: nozzle_temperature
    limit: profile
    deadband: 2
    on_delay_s: 5
    priority: high
    roles: [maintenance, quality]
    help:
      cause: Heater band controller stuck on
      consequence: Burnt material, scrap
      action: Check heater band relay
    escalation_delay_s: 600
    escalation_levels: 2
  - name: press_down
    kind: state_duration
    state: down
    duration_s: 600
    machines: {lines: [Line 1]}
"""


def test_a_rules_file_loads(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    nozzle, down = load_rules_file(path)
    assert (nozzle.kind, nozzle.metric, nozzle.limit, nozzle.on_delay_ms) == (
        "high", ("nozzle_temperature",), "profile", 5_000,
    )  # fmt: skip
    assert nozzle.help.action == "Check heater band relay"
    assert (down.state, down.machines.lines) == ("down", ("Line 1",))


@pytest.mark.parametrize(
    ("change", "line", "field", "words"),
    [
        # a missing field: the line of its rule
        (("    limit: profile\n", ""), 2, "rules[0].limit", "a high rule needs it"),
        (("    deadband: 2\n", "    deadband: -1\n"), 6, "rules[0].deadband", "greater than"),
        (("    priority: high\n", "    priority: urgent\n"), 8, "rules[0].priority", "'critical'"),
        (("    state: down\n", "    state: down\n    after_s: 5\n"), 19, "rules[1].after_s",
         "not used by a state_duration rule"),
        (("    metric: nozzle_temperature\n", "    metric: x\n    metric_rol: y\n"), 5,
         "rules[0].metric_rol", "unknown field"),
    ],
)  # fmt: skip
def test_rules_file_errors_name_file_line_and_field(tmp_path, change, line, field, words):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML.replace(*change))
    with pytest.raises(ProfileError) as caught:
        load_rules_file(path)
    text = str(caught.value)
    assert f"{path}:{line}: {field}" in text, text
    assert words in text, text


def test_duplicate_rule_names_are_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML.replace("name: press_down", "name: nozzle_high"))
    with pytest.raises(ProfileError, match=r"rules\[1\].name: 'nozzle_high' is used twice"):
        load_rules_file(path)


def test_kind_specific_fields():
    with pytest.raises(ValidationError, match="rate_per_s: a rate_of_change rule needs it"):
        AlarmRule(name="r", kind="rate_of_change", metric="t")
    with pytest.raises(ValidationError, match="metric: a bad_quality rule watches a metric"):
        AlarmRule(name="q", kind="bad_quality")
    with pytest.raises(ValidationError, match="either metric or metric_role"):
        AlarmRule(name="h", kind="high", metric="a", metric_role="b", limit=1)
    with pytest.raises(ValidationError, match="edge/device"):
        AlarmRule(name="s", kind="stale", after_s=5, machines={"devices": ["press1"]})
    assert AlarmRule(name="c", kind="counter_stalled", duration_s=60).metric_roles == (
        "cycle_count",
    )
    assert AlarmRule(name="s", kind="stale", after_s=5).watches_device


def test_stored_rules_replace_file_and_builtin_rules_by_name():
    builtin = builtin_rules()
    mine = AlarmRule(name="builtin_data_stale", kind="stale", after_s=60, enabled=False)
    from_file = (AlarmRule(name="builtin_machine_down", kind="state_duration", state="down",
                           duration_s=120),)  # fmt: skip
    entries = {e.rule.name: e for e in combine_rules(builtin, from_file, {mine.name: mine})}
    assert entries["builtin_data_stale"].source == SOURCE_STORED
    assert not entries["builtin_data_stale"].rule.enabled
    assert entries["builtin_machine_down"].source == SOURCE_FILE
    assert entries["builtin_limit_high"].source == SOURCE_BUILTIN


def test_lifecycle_transitions():
    assert on_activate(None).state == ACTIVE_UNACK
    assert on_activate(None).opens
    assert on_activate(RTN_UNACK).state == ACTIVE_UNACK  # re-alarm before anyone acknowledged
    assert on_activate(ACTIVE_UNACK) is None
    assert on_activate(ACTIVE_ACK) is None
    assert on_return(ACTIVE_UNACK).state == RTN_UNACK
    assert on_return(ACTIVE_ACK).state == CLEARED
    assert on_return(ACTIVE_ACK).closes
    assert on_return(RTN_UNACK) is None
    assert on_return(None) is None
    assert on_acknowledge(ACTIVE_UNACK).state == ACTIVE_ACK
    assert on_acknowledge(RTN_UNACK).state == CLEARED
    assert on_acknowledge(RTN_UNACK).closes
    assert on_acknowledge(ACTIVE_ACK) is None
    assert on_acknowledge(CLEARED) is None
    # levels: 2, delay 600 s, raised at 1 000 s: level 1 due at 1 600 s, level 2 at 2 200 s
    assert next_escalation_ms(1_000_000, 0, 600_000, 2) == 1_600_000
    assert next_escalation_ms(1_600_000, 1, 600_000, 2) == 2_200_000
    assert next_escalation_ms(2_200_000, 2, 600_000, 2) is None


PRESS = MachineInfo(1, "Press 1", "plant1", "Press shop", "Line 1", "edge1", "press1", "acme")
MILL = MachineInfo(2, "Mill 2", "plant1", "Machining", "Line 2", "edge1", "mill2", "cnc")
SERIES = {
    ("edge1", "press1"): {
        "state": SeriesInfo("state", "state"),
        "temp": SeriesInfo("temp", "temperature", "degC", 20.0, 220.0),
        "cycles": SeriesInfo("cycles", "cycle_count"),
    },
    ("edge1", "mill2"): {"spindle": SeriesInfo("spindle", "process_param", "rpm", None, 8000.0)},
}


def _catalog(rules, overrides=None):
    machines = {("edge1", "press1"): PRESS, ("edge1", "mill2"): MILL}
    entries = tuple(combine_rules(rules, (), {}))
    return Catalog(machines, SERIES, overrides or {}, entries)


def test_builtin_rules_bind_to_profile_limits():
    points = bind(_catalog(builtin_rules()))
    assert sorted(points) == [
        "builtin_data_stale/1/*",
        "builtin_data_stale/2/*",
        "builtin_limit_high/1/temp",
        "builtin_limit_high/2/spindle",
        "builtin_limit_low/1/temp",
        "builtin_machine_down/1/state",
        "builtin_machine_down/2/*",
    ]  # fmt: skip  (the mill has no low limit: no low point)
    high = points["builtin_limit_high/1/temp"]
    # deadband_pct 1 % of the span 220 - 20 = 200 degC: 2 degC
    assert (high.context.limit, high.context.deadband, high.unit) == (220.0, 2.0, "degC")
    # the mill has only a high limit: 1 % of |8000| = 80 rpm
    assert points["builtin_limit_high/2/spindle"].context.deadband == pytest.approx(80.0)


def test_selectors_and_overrides():
    rule = AlarmRule(name="hot", kind="high", metric_role="temperature", limit=200,
                     machines={"lines": ["Line 1"]})  # fmt: skip
    points = bind(_catalog((rule,)))
    assert list(points) == ["hot/1/temp"]
    assert points["hot/1/temp"].context.limit == 200.0
    overridden = bind(_catalog((rule,), {(1, "temp"): LimitOverride(high=180.0)}))
    assert overridden["hot/1/temp"].context.limit == 180.0
    off = rule.model_copy(update={"enabled": False})
    assert bind(_catalog((off,))) == {}
    by_id = AlarmRule(name="m", kind="bad_quality", metric="spindle", machines={"machine_ids": [2]})
    assert list(bind(_catalog((by_id,)))) == ["m/2/spindle"]


def test_high_high_with_profile_limit_needs_an_override():
    rule = AlarmRule(name="hh", kind="high_high", metric="temp", limit="profile")
    assert bind(_catalog((rule,))) == {}
    points = bind(_catalog((rule,), {(1, "temp"): LimitOverride(high_high=240.0)}))
    assert points["hh/1/temp"].context.limit == 240.0


def test_deadband_pct_falls_back_to_the_limit_magnitude():
    rule = AlarmRule(name="l", kind="low", metric="p", limit=-50, deadband_pct=10)
    assert resolve_deadband(rule, None, -50.0) == pytest.approx(5.0)  # 10 % of |-50|
