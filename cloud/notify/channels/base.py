"""The channel interface: ``render`` a notification, ``send`` what was rendered, raise on failure.

A channel is built from its settings by the registry (``cloud.notify.channels.registry``) with a
``ChannelContext``; ``start()`` opens what must stay open (the MQTT connection), ``close()``
releases it. ``send`` raises ``DeliveryError`` whose ``retryable`` tells the dispatcher whether
to try again; it never retries by itself. Channels are used by one dispatcher thread at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from cloud.notify.message import Notification
from cloud.notify.render import RenderContext
from cloud.notify.settings import public_view
from protocols.clock import now_ms

if TYPE_CHECKING:
    from cloud.notify.stream import AlarmBroadcaster
    from protocols.mqtt_url import MqttUrl

Rendered = TypeVar("Rendered")


@dataclass(frozen=True)
class ChannelContext:
    """What channels need from the process around them."""

    render: RenderContext = field(default_factory=RenderContext)
    mqtt: MqttUrl | None = None  # the cloud's broker (``CloudConfig.mqtt``)
    mqtt_client_id: str = "forgeline-cloud-notify"
    mqtt_ca_file: str | None = None
    broadcaster: AlarmBroadcaster | None = None  # the WebSocket stream's hub
    clock_ms: Callable[[], int] = now_ms  # the wall clock (DingTalk signs with it)


class Channel(ABC, Generic[Rendered]):
    """One configured channel. ``name`` is its key in the settings; ``type`` its kind."""

    type: ClassVar[str]

    def __init__(self, name: str, settings: Any, context: ChannelContext) -> None:
        self.name = name
        self.settings: BaseModel = settings
        self.context = context

    @property
    def where(self) -> str:
        """How errors name this channel: ``dingtalk channel 'maintenance'``."""
        return f"{self.type} channel {self.name!r}"

    @abstractmethod
    def render(self, notification: Notification) -> Rendered:
        """What would be sent for ``notification`` (pure; raises ``DeliveryError`` if it cannot
        be rendered, e.g. a site that cannot be a topic level)."""

    @abstractmethod
    def send(self, rendered: Rendered) -> None:
        """Send once; return when the far side accepted it, else raise ``DeliveryError``."""

    def deliver(self, notification: Notification) -> None:
        self.send(self.render(notification))

    def start(self) -> None:
        """Open long-lived connections (returns at once; connecting may go on in the background)."""

    def close(self) -> None:
        """Release what ``start`` opened."""

    def describe(self) -> dict[str, Any]:
        """The settings the API may show (secrets masked)."""
        return public_view(self.settings)
