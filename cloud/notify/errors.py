"""The exception tree of notification delivery.

CloudError
└── NotifyError              anything ``cloud.notify`` raises on purpose
    ├── NotifyConfigError    a channel or route setting that cannot work (names which, and why)
    └── DeliveryError        one attempt on one channel failed; ``retryable`` says whether
                             another attempt later can help (a timeout, HTTP 5xx, "send too
                             fast") or not (a refused token, a bad address, a message too big)
"""

from __future__ import annotations

from cloud.errors import CloudError


class NotifyError(CloudError):
    """Base of every error raised on purpose by ``cloud.notify``."""


class NotifyConfigError(NotifyError, ValueError):
    """A notification setting that cannot work; the message names the channel or route."""


class DeliveryError(NotifyError):
    """One delivery attempt failed; the message says where (channel, redacted URL) and why."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
