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
