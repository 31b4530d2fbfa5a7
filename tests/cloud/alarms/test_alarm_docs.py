"""The rule examples of docs/alarms.md and deploy/alarm-rules.sample.yaml are valid rules."""

from __future__ import annotations

import re
from pathlib import Path

from cloud.alarms.rules import KINDS, load_rules_file
from cloud.config import CloudConfig

ROOT = Path(__file__).resolve().parents[3]


def _rule_blocks(text: str) -> list[str]:
    return [b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if b.startswith("rules:")]


def test_every_rules_example_in_the_docs_loads(tmp_path):
    blocks = _rule_blocks((ROOT / "docs" / "alarms.md").read_text())
    kinds = set()
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        kinds |= {rule.kind for rule in load_rules_file(path)}
    assert kinds == set(KINDS)  # an example of every kind


def test_the_sample_rules_file_loads_and_shows_every_kind():
    rules = load_rules_file(ROOT / "deploy" / "alarm-rules.sample.yaml")
    assert {rule.kind for rule in rules} == set(KINDS)


def test_the_docs_configuration_example_is_valid(tmp_path):
    text = (ROOT / "docs" / "alarms.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
                 if b.startswith("alarm_rules_file"))  # fmt: skip
    import yaml

    config = CloudConfig.model_validate(yaml.safe_load(block))
    assert (config.alarm_tick_s, config.operator_position) == (1.0, "line")


def test_build_alarm_engine_reads_the_rules_file_named_in_the_config(tmp_path):
    import pytest

    from cloud.alarms.engine import build_alarm_engine
    from cloud.db import create_engine_for
    from protocols.errors import ProfileError
    from tests.cloud.alarms.conftest import CollectingNotifier

    engine = create_engine_for(f"sqlite:///{tmp_path / 'f.db'}")  # not connected: no I/O yet
    config = CloudConfig(alarm_rules_file=ROOT / "deploy" / "alarm-rules.sample.yaml",
                         alarm_builtin_rules=False, alarm_tick_s=0.5, operator_position="area")  # fmt: skip
    alarms = build_alarm_engine(config, engine, CollectingNotifier())
    assert len(alarms.file_rules) == 10
    assert (alarms.builtin, alarms.tick_s, alarms.operator_position) == (False, 0.5, "area")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    kind: hot\n")
    with pytest.raises(ProfileError, match=r"broken.yaml:3: rules\[0\].kind"):
        build_alarm_engine(config.model_copy(update={"alarm_rules_file": broken}), engine,
                           CollectingNotifier())  # fmt: skip
    engine.dispose()
