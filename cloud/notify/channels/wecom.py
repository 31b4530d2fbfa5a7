"""The WeCom (企业微信) group robot webhook: markdown of at most 4096 bytes of UTF-8.

POST ``{"msgtype": "markdown", "markdown": {"content": ...}}`` to ``<base_url>?key=<key>``. A
longer message is cut at a character boundary and marked as cut (WeCom would refuse it with
errcode 40058). A reply with ``errcode`` other than 0 is a failure.
"""

from __future__ import annotations

import json
from typing import ClassVar
from urllib.parse import urlencode

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.channels.http import post_json
from cloud.notify.channels.robot import check_robot_reply
from cloud.notify.message import Notification
from cloud.notify.render import markdown
from cloud.notify.settings import WeComChannelSettings

MAX_CONTENT_BYTES = 4096
CUT_MARK = "\n\n…(cut)"
RETRYABLE_ERRCODES = {-1: "WeCom is busy", 45009: "sending too fast: 20 messages a minute"}
HINTS = {93000: "the webhook key is not valid: copy the robot's webhook URL again"}


def fit_utf8(text: str, limit: int, mark: str = CUT_MARK) -> str:
    """``text`` if it fits in ``limit`` bytes of UTF-8, else its longest prefix plus ``mark``."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    room = limit - len(mark.encode("utf-8"))
    return encoded[:room].decode("utf-8", errors="ignore") + mark


class WeComChannel(Channel[bytes]):
    type: ClassVar[str] = "wecom"

    def __init__(self, name: str, settings: WeComChannelSettings, context: ChannelContext):
        super().__init__(name, settings, context)
        self.config = settings

    def render(self, notification: Notification) -> bytes:
        mentions = ""
        if self.config.mention_userids:
            mentions = "\n\n" + " ".join(f"<@{user}>" for user in self.config.mention_userids)
        room = MAX_CONTENT_BYTES - len(mentions.encode("utf-8"))
        content = fit_utf8(markdown(notification, self.context.render), room) + mentions
        body = {"msgtype": "markdown", "markdown": {"content": content}}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, rendered: bytes) -> None:
        url = f"{self.config.base_url}?{urlencode({'key': self.config.key.get_secret_value()})}"
        reply = post_json(
            url, rendered, headers={}, timeout_s=self.config.timeout_s, where=self.where
        )
        check_robot_reply(reply, where=self.where, retryable=RETRYABLE_ERRCODES, hints=HINTS)
