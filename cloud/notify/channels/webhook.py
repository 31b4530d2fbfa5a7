"""The generic webhook: POST the versioned JSON body, optionally signed with HMAC-SHA256.

With a ``secret`` the request carries ``<signature_header>: sha256=<hex>``, the hex HMAC-SHA256
of the exact body bytes keyed with the secret; the receiver recomputes it over the raw body and
compares in constant time. Any 2xx is success.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import ClassVar

from cloud.notify.channels.base import Channel, ChannelContext
from cloud.notify.channels.http import post_json
from cloud.notify.message import Notification
from cloud.notify.render import notification_body
from cloud.notify.settings import WebhookChannelSettings, redact_url


def body_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body keyed with secret>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode_body(notification: Notification, channel: Channel[bytes]) -> bytes:
    """The JSON body as UTF-8 bytes (compact, non-ASCII kept as is)."""
    body = notification_body(notification, channel.context.render)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookChannel(Channel[bytes]):
    type: ClassVar[str] = "webhook"

    def __init__(self, name: str, settings: WebhookChannelSettings, context: ChannelContext):
        super().__init__(name, settings, context)
        self.config = settings

    @property
    def where(self) -> str:
        return f"webhook channel {self.name!r} ({redact_url(self.config.url)})"

    def render(self, notification: Notification) -> bytes:
        return encode_body(notification, self)

    def send(self, rendered: bytes) -> None:
        headers = dict(self.config.headers)
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            headers[self.config.signature_header] = body_signature(secret, rendered)
        post_json(
            self.config.url,
            rendered,
            headers=headers,
            timeout_s=self.config.timeout_s,
            where=self.where,
        )
