"""docs/erp-integration.md stays true: its settings block is the defaults, its verifier works."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cloud.integration.delivery import WebhookDeliverySettings, sign_body

DOC = (Path(__file__).resolve().parents[3] / "docs" / "erp-integration.md").read_text()


def _block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.DOTALL)
    (found,) = [block for block in blocks if containing in block]
    return found


def test_the_settings_block_is_every_default():
    documented = yaml.safe_load(_block("yaml", "erp_webhooks:"))["erp_webhooks"]
    assert documented == WebhookDeliverySettings().model_dump()


def test_the_documented_backoff_schedule():
    settings = WebhookDeliverySettings()
    waits = [settings.backoff_ms(n) // 1000 for n in range(1, settings.max_attempts)]
    assert waits == [5, 10, 20, 40, 80, 160, 320, 600, 600, 600, 600]
    assert "5 s, 10 s, 20 s, 40 s,\n80 s, 160 s, 320 s, then 600 s, for 12 attempts" in DOC


def test_the_documented_verifier_accepts_what_forgeline_signs():
    namespace: dict[str, object] = {}
    exec(_block("python", "def signature_ok"), namespace)  # noqa: S102 - our own docs
    signature_ok = namespace["signature_ok"]
    body = '{"event":"operation.completed","quantity":12.5,"machine":"Presse 1 (冲床)"}'.encode()
    header = sign_body("a-long-random-shared-secret", body)
    assert signature_ok("a-long-random-shared-secret", body, header) is True
    assert signature_ok("another-secret-entirely", body, header) is False
    assert signature_ok("a-long-random-shared-secret", body + b" ", header) is False
