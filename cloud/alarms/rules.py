"""Alarm rules: the pydantic model of one rule, the rules file, and how rule sets combine.

A rule names a kind (``high``, ``low``, ``high_high``, ``low_low``, ``rate_of_change``,
``stale``, ``bad_quality``, ``state_duration``, ``counter_stalled``), the machines it watches,
the metric (by name or by role), the kind's parameters, and what people need: a priority, the
roles it addresses, help text and escalation. Rules are validated once; a rules file's errors
name the file, the line and the field (``load_rules_file``).

Rule sets combine by name: the built-in set (unless switched off), then the rules file, then
rules stored through the API; a later rule replaces an earlier one of the same name, so that a
stored rule with ``enabled: false`` takes a built-in rule out of service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.notify.message import Priority
from protocols.errors import ProfileError
from protocols.yaml_lines import pin_item_problems, validate_file

Kind = Literal[
    "high", "low", "high_high", "low_low", "rate_of_change", "stale", "bad_quality",
    "state_duration", "counter_stalled",
]  # fmt: skip
KINDS: tuple[str, ...] = (
    "high", "low", "high_high", "low_low", "rate_of_change", "stale", "bad_quality",
    "state_duration", "counter_stalled",
)  # fmt: skip
LIMIT_KINDS: tuple[str, ...] = ("high", "low", "high_high", "low_low")
Role = Literal["maintenance", "quality", "production"]
CanonicalState = Literal["running", "idle", "down", "setup", "planned_stop", "offline"]
PROFILE = "profile"

# Which kind-specific fields each kind needs (and may use); every other one is refused.
_KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "high": (("limit",), ("deadband", "deadband_pct")),
    "low": (("limit",), ("deadband", "deadband_pct")),
    "high_high": (("limit",), ("deadband", "deadband_pct")),
    "low_low": (("limit",), ("deadband", "deadband_pct")),
    "rate_of_change": (("rate_per_s",), ("window_s", "direction", "deadband")),
    "stale": (("after_s",), ()),
    "bad_quality": ((), ()),
    "state_duration": (("state", "duration_s"), ()),
    "counter_stalled": (("duration_s",), ()),
}
_OPTIONAL_FIELDS = (
    "limit", "deadband", "deadband_pct", "rate_per_s", "window_s", "direction", "after_s",
    "state", "duration_s",
)  # fmt: skip
# Kinds that watch one metric (by name or role); stale may watch a whole device instead.
_NEEDS_METRIC = ("high", "low", "high_high", "low_low", "rate_of_change", "bad_quality")


class HelpText(BaseModel):
    """What the person who gets the alarm needs to know: likely cause, consequence, action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: str | None = None
    consequence: str | None = None
    action: str | None = None


class MachineSelector(BaseModel):
    """Which machines a rule watches: every criterion given must match (empty: all machines)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    machine_ids: tuple[int, ...] = ()
    devices: tuple[str, ...] = Field(default=(), description='"edge/device" of each machine')
    profiles: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()

    @field_validator("devices")
    @classmethod
    def _edge_slash_device(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item.count("/") != 1 or "" in item.split("/"):
                raise ValueError(f"{item!r}: write each device as edge/device, e.g. edge1/press1")
        return value

    def matches(
        self, machine_id: int, edge: str, device: str, profile: str | None, line: str | None
    ) -> bool:
        return (
            (not self.machine_ids or machine_id in self.machine_ids)
            and (not self.devices or f"{edge}/{device}" in self.devices)
            and (not self.profiles or profile in self.profiles)
            and (not self.lines or line in self.lines)
        )


class AlarmRule(BaseModel):
    """One alarm rule; see ``docs/alarms.md`` for every kind with an example."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    kind: Kind
    machines: MachineSelector = MachineSelector()
    metric: tuple[str, ...] = Field(default=(), description="metric name(s) to watch")
    metric_role: tuple[str, ...] = Field(
        default=(), description="or every metric with one of these roles, e.g. process_param"
    )
    limit: float | Literal["profile"] | None = None
    deadband: float = Field(default=0.0, ge=0)
    deadband_pct: float | None = Field(default=None, ge=0, le=100)
    on_delay_s: float = Field(default=0.0, ge=0)
    off_delay_s: float = Field(default=0.0, ge=0)
    rate_per_s: float | None = Field(default=None, gt=0)
    window_s: float = Field(default=60.0, gt=0)
    direction: Literal["rising", "falling", "both"] = "both"
    after_s: float | None = Field(default=None, gt=0)
    state: CanonicalState | None = None
    duration_s: float | None = Field(default=None, gt=0)
    priority: Priority = "medium"
    roles: tuple[Role, ...] = ("maintenance",)
    help: HelpText = HelpText()
    escalation_delay_s: float | None = Field(default=None, gt=0)
    escalation_levels: int = Field(default=1, ge=1, le=10)
    enabled: bool = True
    description: str | None = None

    @field_validator("metric", "metric_role", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fits_its_kind(self) -> AlarmRule:
        needed, allowed = _KIND_FIELDS[self.kind]
        given = self.model_fields_set
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: a {self.kind} rule needs it ({_hint(name)})")
        for name in _OPTIONAL_FIELDS:
            if name in needed or name in allowed or name not in given:
                continue
            if getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(f"{name}: not used by a {self.kind} rule; remove it")
        if self.metric and self.metric_role:
            raise ValueError("metric: give either metric or metric_role, not both")
        if self.kind in _NEEDS_METRIC and not (self.metric or self.metric_role):
            raise ValueError(
                f"metric: a {self.kind} rule watches a metric: give metric (a name) or "
                "metric_role (e.g. process_param)"
            )
        if self.kind == "state_duration" and (self.metric or self.metric_role):
            raise ValueError("metric: a state_duration rule reads the machine's state tag")
        return self

    @property
    def on_delay_ms(self) -> int:
        return round(self.on_delay_s * 1000)

    @property
    def off_delay_ms(self) -> int:
        return round(self.off_delay_s * 1000)

    @property
    def metric_roles(self) -> tuple[str, ...]:
        """The roles whose metrics this rule watches (counter_stalled: cycle_count by default)."""
        if self.kind == "counter_stalled" and not self.metric and not self.metric_role:
            return ("cycle_count",)
        return self.metric_role

    @property
    def watches_device(self) -> bool:
        """A stale rule without a metric watches the whole device (any metric counts)."""
        return self.kind == "stale" and not self.metric and not self.metric_role


def _hint(name: str) -> str:
    return {
        "limit": "a number, or 'profile' for the engineering limit of the device birth",
        "rate_per_s": "units per second, e.g. 2.5",
        "after_s": "seconds without a new sample, e.g. 300",
        "state": "one of running idle down setup planned_stop offline",
        "duration_s": "seconds, e.g. 600",
    }.get(name, "see docs/alarms.md")


class AlarmRulesFile(BaseModel):
    """The rules file named by ``alarm_rules_file`` in the cloud config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[AlarmRule, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> AlarmRulesFile:
        seen: dict[str, int] = {}
        problems = []
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                problems.append(
                    f"rules[{i}].name: {rule.name!r} is used twice (also rules[{seen[rule.name]}])"
                )
            seen.setdefault(rule.name, i)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_rules_file(path: str | Path) -> tuple[AlarmRule, ...]:
    """The rules of a YAML file; a ``ProfileError`` names the file, line and field of a mistake."""
    try:
        return validate_file(AlarmRulesFile, path).rules
    except ProfileError as error:
        raise pin_item_problems(error, Path(path), "rules") from None


SOURCE_BUILTIN = "builtin"
SOURCE_FILE = "file"
SOURCE_STORED = "api"


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """A rule of the effective set and where it came from (builtin, file or api)."""

    rule: AlarmRule
    source: str


def combine_rules(
    builtin: Iterable[AlarmRule],
    from_file: Iterable[AlarmRule],
    stored: Mapping[str, AlarmRule],
) -> list[RuleEntry]:
    """The effective rule set by name: stored (API) over file over built-in, sorted by name."""
    by_name: dict[str, RuleEntry] = {}
    for source, rules in ((SOURCE_BUILTIN, builtin), (SOURCE_FILE, from_file)):
        for rule in rules:
            by_name[rule.name] = RuleEntry(rule, source)
    for name, rule in stored.items():
        by_name[name] = RuleEntry(rule, SOURCE_STORED)
    return [by_name[name] for name in sorted(by_name)]
