"""The explicit registry of channel types: ``type`` in the settings → the class that sends."""

from __future__ import annotations

from typing import Any

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.channels.dingtalk import DingTalkChannel
from cloud.notify.channels.email import EmailChannel
from cloud.notify.channels.mqtt import MqttChannel
from cloud.notify.channels.webhook import WebhookChannel
from cloud.notify.channels.websocket import WebSocketChannel
from cloud.notify.channels.wecom import WeComChannel
from cloud.notify.errors import NotifyConfigError

CHANNEL_TYPES: dict[str, type[Channel[Any]]] = {
    "websocket": WebSocketChannel,
    "mqtt": MqttChannel,
    "webhook": WebhookChannel,
    "dingtalk": DingTalkChannel,
    "wecom": WeComChannel,
    "email": EmailChannel,
}


def build_channel(name: str, settings: Any, context: ChannelContext) -> Channel[Any]:
    """The channel for one entry of ``notifications.channels`` (validated settings)."""
    kind = getattr(settings, "type", None)
    if kind not in CHANNEL_TYPES:
        raise NotifyConfigError(
            f"channel {name!r}: unknown type {kind!r}; known: {', '.join(CHANNEL_TYPES)}"
        )
    return CHANNEL_TYPES[kind](name, settings, context)
