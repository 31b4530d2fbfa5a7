"""Request and response bodies of the alarm API (``cloud/api/alarms.py``)."""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.alarms.rules import AlarmRule, HelpText


class AlarmEventOut(BaseModel):
    """One transition of an alarm's history."""

    id: int
    alarm_id: int
    event: str
    state: str = Field(description="the alarm's state after the transition")
    ts_ms: int
    value: float | None
    limit: float | None
    message: str
    actor: str | None
    comment: str | None
    escalation_level: int
    shelved_until_ms: int | None
    late: bool = Field(description="decided on replayed backlog, told late")
    suppressed: bool = Field(description="the point was shelved: recorded, nobody told")
    notify: str = Field(description="sent | pending | suppressed")


class AlarmOut(BaseModel):
    """An alarm (one occurrence at one alarm point, from raise to clear)."""

    id: int
    point_key: str
    rule: str
    kind: str
    priority: str
    state: str = Field(description="active_unack | active_ack | rtn_unack | cleared")
    machine_id: int
    machine: str
    site: str
    area: str | None
    line: str | None
    metric: str | None
    unit: str | None
    value: float | None
    limit: float | None
    message: str
    raised_ms: int
    active_ms: int
    returned_ms: int | None
    acked_ms: int | None
    acked_by: str | None
    ack_comment: str | None
    cleared_ms: int | None
    activations: int
    escalation_level: int
    late: bool
    shelved_until_ms: int | None
    shelved_by: str | None
    roles: list[str]
    help: HelpText


class AlarmDetailOut(AlarmOut):
    history: list[AlarmEventOut]


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=128)
    comment: str | None = Field(default=None, max_length=2000)


class ShelveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=128)
    comment: str | None = Field(default=None, max_length=2000)
    for_s: float | None = Field(default=None, gt=0, description="shelve for this many seconds")
    until: str | None = Field(default=None, description="or until this time (ISO 8601 or ms)")

    @model_validator(mode="after")
    def _one_expiry(self) -> ShelveIn:
        if (self.for_s is None) == (self.until is None):
            raise ValueError("give either for_s (seconds) or until (a time), not both or neither")
        return self


class UnshelveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=128)
    comment: str | None = Field(default=None, max_length=2000)


class RuleOut(BaseModel):
    """A rule of the effective set and where it comes from: builtin, file or api."""

    name: str
    source: str
    rule: AlarmRule
    updated_ms: int | None = None
    updated_by: str | None = None


class LimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low_low: float | None = None
    low: float | None = None
    high: float | None = None
    high_high: float | None = None
    user: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _ordered(self) -> LimitIn:
        given = [
            (name, value)
            for name in ("low_low", "low", "high", "high_high")
            if (value := getattr(self, name)) is not None
        ]
        for (lower, a), (upper, b) in itertools.pairwise(given):
            if a >= b:
                raise ValueError(f"{lower} ({a}) must be below {upper} ({b})")
        return self


class LimitOut(BaseModel):
    machine_id: int
    metric: str
    low_low: float | None
    low: float | None
    high: float | None
    high_high: float | None
    updated_ms: int
    updated_by: str | None
