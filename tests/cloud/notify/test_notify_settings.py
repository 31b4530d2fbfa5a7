"""Notification settings: validation with clear errors, secrets masked, the documented examples
(deploy/cloud.sample.yaml and docs/notifications.md) valid, the delivery table as migrated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import MetaData, create_engine, inspect

from cloud.config import CloudConfig, load_cloud_config
from cloud.notify.channels.registry import CHANNEL_TYPES
from cloud.notify.models import NotificationDelivery
from cloud.notify.settings import NotificationSettings, public_view

ROOT = Path(__file__).resolve().parents[3]


def invalid(data: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        NotificationSettings.model_validate(data)
    return str(caught.value)


def test_the_default_sends_everything_to_the_ui_stream():
    settings = CloudConfig().notifications
    assert {name: c.type for name, c in settings.channels.items()} == {"ui": "websocket"}
    assert [route.channels for route in settings.routes] == [("ui",)]


def test_errors_name_what_is_wrong():
    assert "names channels ['mail'] that are not configured" in invalid(
        {"routes": [{"name": "escalations", "channels": ["mail"]}]}
    )
    assert "'sms'" in invalid({"channels": {"x": {"type": "sms"}}})
    assert "https://" in invalid({"channels": {"x": {"type": "webhook", "url": "ftp://h/x"}}})
    assert "not an e-mail address" in invalid({"channels": {"m": {
        "type": "email", "host": "smtp", "sender": "alarms", "to": ["a@b"]}}})  # fmt: skip
    assert "both username and password" in invalid({"channels": {"m": {
        "type": "email", "host": "smtp", "sender": "a@b", "to": ["c@d"], "username": "u"}}})  # fmt: skip
    assert "IANA zone" in invalid({"timezone": "Beijing"})
    assert "alarm_link uses ['machine']" in invalid({"alarm_link": "https://x/{machine}"})
    assert "max_escalation (1) is below min_escalation (2)" in invalid(
        {"routes": [{"min_escalation": 2, "max_escalation": 1, "channels": ["ui"]}]}
    )
    assert "channel name 'bad name'" in invalid({"channels": {"bad name": {"type": "websocket"}}})


def test_secrets_never_print():
    settings = NotificationSettings.model_validate({"channels": {
        "d": {"type": "dingtalk", "access_token": "tok-s3cret", "secret": "SECs3cret"},
        "w": {"type": "wecom", "key": "key-s3cret"},
        "h": {"type": "webhook", "url": "https://h/x?k=q-s3cret", "secret": "h-s3cret",
              "headers": {"X-Api-Key": "hdr-s3cret"}},
    }, "routes": []})  # fmt: skip
    shown = repr(settings) + str([public_view(c) for c in settings.channels.values()])
    for secret in ("tok-s3cret", "SECs3cret", "key-s3cret", "q-s3cret", "h-s3cret", "hdr-s3cret"):
        assert secret not in shown
    assert public_view(settings.channels["h"])["url"] == "https://h/x?***"


def test_the_registry_names_every_settings_type():
    assert set(CHANNEL_TYPES) == {"websocket", "mqtt", "webhook", "dingtalk", "wecom", "email"}
    assert {cls.type for cls in CHANNEL_TYPES.values()} == set(CHANNEL_TYPES)


def _example(text: str, start: str, end: str, strip: str = "") -> dict:
    block = text[text.index(start) + len(start) : text.index(end)]
    lines = [line.removeprefix(strip) if strip else line for line in block.splitlines()]
    return yaml.safe_load("\n".join(lines))


def test_the_sample_configs_example_of_every_channel_is_valid():
    text = (ROOT / "deploy" / "cloud.sample.yaml").read_text()
    example = _example(text, "# >>> notifications example\n", "# <<< notifications example", "# ")
    settings = NotificationSettings.model_validate(example["notifications"])
    assert {c.type for c in settings.channels.values()} == set(CHANNEL_TYPES)
    assert load_cloud_config(ROOT / "deploy" / "cloud.sample.yaml") == CloudConfig()


def test_the_docs_examples_are_valid():
    text = (ROOT / "docs" / "notifications.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        data = yaml.safe_load(block)
        NotificationSettings.model_validate(data["notifications"])


def test_the_migrated_table_matches_the_model(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            metadata = MetaData()
            NotificationDelivery.__table__.to_metadata(metadata)
            table = "notification_delivery"

            def ours(name: str | None, kind: str, parents: dict) -> bool:
                if kind == "schema":
                    return True
                return name == table if kind == "table" else parents.get("table_name") == table

            context = MigrationContext.configure(conn, opts={"include_name": ours})
            diff = compare_metadata(context, metadata)
            names = {index["name"] for index in inspect(conn).get_indexes("notification_delivery")}
    finally:
        engine.dispose()
    assert diff == []
    assert {"ix_notification_delivery_alarm_id", "ix_notification_delivery_status_id",
            "ix_notification_delivery_channel_id"} <= names  # fmt: skip
