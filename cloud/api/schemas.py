"""Response and request bodies of the REST API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LatestOut(BaseModel):
    series_id: int
    metric: str
    unit: str | None
    role: str
    ts_ms: int
    value: float | None
    text_value: str | None
    quality: str
    reason: str | None


class MachineOut(BaseModel):
    id: int
    name: str
    site: str
    area: str | None
    line: str | None
    edge: str
    device: str
    profile: str | None
    protocol: str | None
    ideal_cycle_time_s: float | None
    units_per_cycle: int
    placed_by: str
    state: str | None = Field(description="current canonical state, None if never derived")
    state_since_ms: int | None
    fault_code: str | None
    values: dict[str, LatestOut]


class MachinePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=128)
    area: str | None = Field(default=None, min_length=1, max_length=128)
    line: str | None = Field(default=None, min_length=1, max_length=128)


class StateIntervalOut(BaseModel):
    state: str
    raw_code: str | None
    fault_code: str | None
    start_ms: int
    end_ms: int | None


class WindowOut(BaseModel):
    start_ms: int
    end_ms: int
    mean: float | None
    min: float | None
    max: float | None
    last: float | None
    count: int | None
    valued_ms: int
    bad_ms: int


class SampleOut(BaseModel):
    ts_ms: int
    value: float | None
    text_value: str | None
    quality: str
    reason: str | None


class SeriesOut(BaseModel):
    series_id: int
    machine_id: int
    metric: str
    unit: str | None
    start_ms: int
    end_ms: int
    window_ms: int | None
    samples: list[SampleOut]
    windows: list[WindowOut]


class DeadLetterOut(BaseModel):
    id: int
    topic: str
    payload: str = Field(description="the payload as text (undecodable bytes replaced)")
    error: str
    received_ms: int
    edge: str | None
    session: str | None
    seq: int | None


class IngestStatsOut(BaseModel):
    received: int = Field(description="messages this process's worker received (0 without one)")
    duplicates: int = Field(description="re-sent messages dropped by this process's worker")
    duplicate_samples_by_device: dict[str, int]
    last_batch_lag_ms: int | None = Field(description="receive → stored delay of the last batch")
    db_errors: int
    worker: dict[str, Any] | None = Field(description="all counters of this process's worker")
    stored_messages: int
    stored_samples: int
    dead_letters: int
    series: int
    edges: list[dict[str, Any]]
