"""The DingTalk (钉钉) group custom robot webhook, with the optional signing ("加签").

POST ``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles", "isAtAll"}}``
to ``<base_url>?access_token=<token>``; with a secret also ``&timestamp=<ms>&sign=<sign>``
where ``sign`` is base64(HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>")), URL-encoded.
DingTalk refuses a timestamp more than an hour off its clock, so each attempt signs afresh.
A reply with ``errcode`` other than 0 is a failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import ClassVar
from urllib.parse import urlencode

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.channels.http import post_json
from cloud.notify.channels.robot import check_robot_reply
from cloud.notify.message import Notification
from cloud.notify.render import markdown, subject
from cloud.notify.settings import DingTalkChannelSettings

# errcodes a later attempt can cure (the robot allows 20 messages a minute)
RETRYABLE_ERRCODES = {-1: "DingTalk is busy", 130101: "sending too fast: 20 messages a minute"}
HINTS = {
    310000: "the robot's security settings refused it: check the secret (加签), the keywords "
    "(自定义关键词) or the IP allow-list",
}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}")), before URL-encoding."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingTalkChannel(Channel[bytes]):
    type: ClassVar[str] = "dingtalk"

    def __init__(self, name: str, settings: DingTalkChannelSettings, context: ChannelContext):
        super().__init__(name, settings, context)
        self.config = settings

    def render(self, notification: Notification) -> bytes:
        text = markdown(notification, self.context.render)
        if self.config.at_mobiles:
            # DingTalk only notifies the @mobiles that also appear in the text.
            text += "\n\n" + " ".join(f"@{mobile}" for mobile in self.config.at_mobiles)
        body = {
            "msgtype": "markdown",
            "markdown": {"title": subject(notification, self.context.render), "text": text},
            "at": {"atMobiles": list(self.config.at_mobiles), "isAtAll": self.config.at_all},
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def url(self) -> str:
        """The URL of one attempt: token, and a fresh timestamp and signature if signing."""
        query = {"access_token": self.config.access_token.get_secret_value()}
        if self.config.secret is not None:
            timestamp = self.context.clock_ms()
            query["timestamp"] = str(timestamp)
            query["sign"] = dingtalk_sign(self.config.secret.get_secret_value(), timestamp)
        return f"{self.config.base_url}?{urlencode(query)}"

    def send(self, rendered: bytes) -> None:
        reply = post_json(
            self.url(), rendered, headers={}, timeout_s=self.config.timeout_s, where=self.where
        )
        check_robot_reply(reply, where=self.where, retryable=RETRYABLE_ERRCODES, hints=HINTS)
