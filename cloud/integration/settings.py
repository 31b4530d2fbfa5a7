"""Settings of the ERP webhook delivery thread: the ``erp_webhooks:`` block of the cloud config.

Pydantic only, so that the cloud config can hold it without importing the delivery machinery.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebhookDeliverySettings(BaseModel):
    """How the delivery thread polls, waits and retries (the ``erp_webhooks:`` block)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_s: float = Field(default=1.0, gt=0, le=300, description="look for due rows this often")
    timeout_s: float = Field(default=10.0, gt=0, le=300, description="one POST's timeout")
    initial_backoff_s: float = Field(default=5.0, gt=0, description="wait after the 1st failure")
    max_backoff_s: float = Field(default=600.0, gt=0, description="longest wait between tries")
    max_attempts: int = Field(default=12, ge=1, le=1000, description="then the row is failed")
    batch_max: int = Field(default=100, ge=1, le=10_000, description="due rows read at once")
    db_retry_max_s: float = Field(default=30.0, gt=0, description="longest wait for the DB")

    def backoff_ms(self, failed_attempts: int) -> int:
        """The wait after the ``failed_attempts``-th failure in a row (1-based)."""
        seconds = self.initial_backoff_s * 2.0 ** (failed_attempts - 1)
        return round(min(self.max_backoff_s, seconds) * 1000)
