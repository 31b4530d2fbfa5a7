"""The WebSocket stream for the UI: the JSON body to every client of ``/api/alarms/stream``.

Sending hands the text to the in-process ``AlarmBroadcaster`` and never waits for a client;
each client has its own bounded buffer and is dropped when it falls behind.
"""

from __future__ import annotations

import json
from typing import ClassVar

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.errors import NotifyConfigError
from cloud.notify.message import Notification
from cloud.notify.render import notification_body
from cloud.notify.settings import WebSocketChannelSettings


class WebSocketChannel(Channel[str]):
    type: ClassVar[str] = "websocket"

    def __init__(self, name: str, settings: WebSocketChannelSettings, context: ChannelContext):
        super().__init__(name, settings, context)
        if context.broadcaster is None:
            raise NotifyConfigError(f"websocket channel {name!r}: no stream to publish to")
        self.broadcaster = context.broadcaster

    def render(self, notification: Notification) -> str:
        body = notification_body(notification, self.context.render)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def send(self, rendered: str) -> None:
        self.broadcaster.publish(rendered)
