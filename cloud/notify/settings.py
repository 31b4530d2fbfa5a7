"""Notification settings: channels (one model per ``type``), routes, retries, the UI stream.

Validated once, with the rest of ``CloudConfig`` (its ``notifications`` field). Secrets (tokens,
signing secrets, passwords, robot keys) are ``SecretStr``: they print as ``**********`` in
logs, reprs and the API. ``public_view`` gives what the API may show of a channel.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from cloud.notify.message import NotificationEvent, Priority

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
Seconds = Annotated[float, Field(gt=0, le=600)]


def _http_url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http:// or https:// URL, got {redact_url(value)!r}")
    return value


def redact_url(url: str) -> str:
    """The URL without its query, user info and fragment (tokens live there), for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    hidden = "?***" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + hidden


class RetrySettings(BaseModel):
    """Attempts and exponential backoff with jitter: the n-th retry waits about
    ``min(max_backoff_s, initial_backoff_s * 2**(n-1))``, less up to ``jitter`` of it at random."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=5, ge=1, le=100)
    initial_backoff_s: float = Field(default=2.0, gt=0, le=3600)
    max_backoff_s: float = Field(default=300.0, gt=0, le=86_400)
    jitter: float = Field(default=0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _cap_above_start(self) -> RetrySettings:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError(
                f"max_backoff_s ({self.max_backoff_s}) is below initial_backoff_s "
                f"({self.initial_backoff_s}); raise max_backoff_s"
            )
        return self


class _ChannelBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    retry: RetrySettings | None = Field(
        default=None, description="this channel's own attempts and backoff (default: retry)"
    )


class WebSocketChannelSettings(_ChannelBase):
    """Every notification as JSON to every client of ``GET /api/alarms/stream``."""

    type: Literal["websocket"] = "websocket"


class MqttChannelSettings(_ChannelBase):
    """JSON on ``forgeline/v1/{site}/_alarm`` through the cloud's own broker (``mqtt_url``)."""

    type: Literal["mqtt"] = "mqtt"
    qos: Literal[1, 2] = 1
    retain: bool = False
    timeout_s: Seconds = Field(default=5.0, description="wait this long for the broker's ack")


class WebhookChannelSettings(_ChannelBase):
    """POST of the versioned JSON body to any URL, optionally signed with HMAC-SHA256."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(repr=False)  # its query may hold a token
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # e.g. Authorization
    secret: SecretStr | None = Field(default=None, description="signs the body (HMAC-SHA256)")
    signature_header: str = "X-Forgeline-Signature"
    timeout_s: Seconds = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "url")


class DingTalkChannelSettings(_ChannelBase):
    """The DingTalk (钉钉) group custom robot: markdown, optional @mobiles, optional signing."""

    type: Literal["dingtalk"] = "dingtalk"
    access_token: SecretStr
    secret: SecretStr | None = Field(
        default=None, description='the robot\'s "加签" secret (SEC...); signs every request'
    )
    base_url: str = "https://oapi.dingtalk.com/robot/send"
    at_mobiles: tuple[str, ...] = ()
    at_all: bool = False
    timeout_s: Seconds = 10.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "base_url")


class WeComChannelSettings(_ChannelBase):
    """The WeCom (企业微信) group robot: markdown, at most 4096 bytes of UTF-8."""

    type: Literal["wecom"] = "wecom"
    key: SecretStr
    base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    mention_userids: tuple[str, ...] = Field(
        default=(), description="WeCom user ids to @ in the message (<@userid>)"
    )
    timeout_s: Seconds = 10.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, "base_url")


class EmailChannelSettings(_ChannelBase):
    """Plain-text mail over SMTP (STARTTLS, SSL or plain), optionally with a login."""

    type: Literal["email"] = "email"
    host: str = Field(min_length=1)
    port: int | None = Field(
        default=None, ge=1, le=65535, description="default: 587 starttls, 465 ssl, 25 none"
    )
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = Field(default=None, description="CA bundle (default: the system's)")
    sender: str = Field(min_length=3, description="the From address")
    to: tuple[str, ...] = Field(min_length=1)
    timeout_s: Seconds = 15.0

    @field_validator("sender", "to")
    @classmethod
    def _addresses(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for address in (value,) if isinstance(value, str) else value:
            if "@" not in address or any(c in address for c in "\r\n"):
                raise ValueError(f"{address!r} is not an e-mail address (name@domain)")
        return value

    @model_validator(mode="after")
    def _login_pair(self) -> EmailChannelSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password for the SMTP login, or neither")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "ssl": 465, "none": 25}[self.security]


ChannelSettings = Annotated[
    WebSocketChannelSettings
    | MqttChannelSettings
    | WebhookChannelSettings
    | DingTalkChannelSettings
    | WeComChannelSettings
    | EmailChannelSettings,
    Field(discriminator="type"),
]


class RouteSettings(BaseModel):
    """Which notifications go to which channels. An empty list matches anything; a route
    matches when every list it gives contains the notification's value (for ``roles``: when
    the rule addresses at least one of them) and the escalation level is within bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    priorities: tuple[Priority, ...] = ()
    events: tuple[NotificationEvent, ...] = ()
    sites: tuple[str, ...] = ()
    areas: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    min_escalation: int = Field(default=0, ge=0)
    max_escalation: int | None = Field(default=None, ge=0)
    channels: tuple[str, ...] = Field(min_length=1)
    stop: bool = Field(default=False, description="when this route matches, look no further")

    @model_validator(mode="after")
    def _bounds(self) -> RouteSettings:
        if self.max_escalation is not None and self.max_escalation < self.min_escalation:
            raise ValueError(
                f"max_escalation ({self.max_escalation}) is below min_escalation "
                f"({self.min_escalation})"
            )
        return self


class StreamSettings(BaseModel):
    """Limits of the WebSocket stream: a client that falls this far behind is dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pending: int = Field(default=256, ge=1, le=100_000)
    send_timeout_s: Seconds = 5.0


def _default_channels() -> dict[str, Any]:
    return {"ui": WebSocketChannelSettings()}


def _default_routes() -> tuple[RouteSettings, ...]:
    return (RouteSettings(channels=("ui",)),)


_LINK_FIELDS = {"alarm_id", "machine_id", "site"}


class NotificationSettings(BaseModel):
    """Channels by name, routes over them, and how delivery retries (``cloud.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[str, ChannelSettings] = Field(default_factory=_default_channels)
    routes: tuple[RouteSettings, ...] = Field(default_factory=_default_routes)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    intake_max: int = Field(
        default=10_000, ge=1, le=1_000_000, description="notifications waiting to be routed"
    )
    queue_max_per_channel: int = Field(
        default=1000, ge=1, le=1_000_000, description="jobs waiting or retrying per channel"
    )
    stream: StreamSettings = Field(default_factory=StreamSettings)
    alarm_link: str | None = Field(
        default=None,
        description="link in messages, e.g. https://mom.plant.local/alarms/{alarm_id} "
        "(fields: alarm_id, machine_id, site)",
    )
    timezone: str = Field(default="UTC", description="IANA zone for times in messages")
    drain_s: Seconds = Field(default=5.0, description="on stop, keep delivering this long")

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(
                    f"channel name {name!r}: use 1-64 characters from A-Z a-z 0-9 _ . : - "
                    "starting with a letter or digit"
                )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {value!r} is not an IANA zone name (e.g. Asia/Shanghai, UTC)"
            ) from None
        return value

    @field_validator("alarm_link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = names - _LINK_FIELDS
        if unknown:
            raise ValueError(
                f"alarm_link uses {sorted(unknown)}; it may use {{alarm_id}}, {{machine_id}} "
                "and {site}"
            )
        return _http_url(value, "alarm_link")

    @model_validator(mode="after")
    def _routes_name_channels(self) -> NotificationSettings:
        for index, route in enumerate(self.routes):
            missing = [name for name in route.channels if name not in self.channels]
            if missing:
                label = route.name or f"routes[{index}]"
                raise ValueError(
                    f"route {label!r} names channels {missing} that are not configured; "
                    f"configured: {sorted(self.channels)}"
                )
        return self

    def retry_for(self, channel: str) -> RetrySettings:
        """The retry settings of one channel: its own, else the global ones."""
        return self.channels[channel].retry or self.retry


def public_view(settings: BaseModel) -> dict[str, Any]:
    """What the API may show of a channel's settings: secrets masked, URL queries and header
    values hidden."""
    view: dict[str, Any] = settings.model_dump(mode="json", exclude_none=True)
    for key in ("url", "base_url"):
        if isinstance(view.get(key), str):
            view[key] = redact_url(view[key])
    if isinstance(view.get("headers"), dict):
        view["headers"] = dict.fromkeys(view["headers"], "***")
    return view
