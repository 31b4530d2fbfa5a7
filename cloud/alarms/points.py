"""Alarm points: which rule watches which metric of which machine, with its limit (pure).

An alarm point is one rule applied to one machine and one metric (``None`` for a rule that
watches the whole device or the machine's state). ``bind`` expands the effective rules over
the machines and series the database knows; limits come from, in order: the machine's
override (``alarm_limit``), the rule's number, or, with ``limit: profile``, the series'
engineering limits from the device birth (``ts_series.low_limit`` / ``high_limit``, which
exist for ``high`` and ``low``; ``high_high`` / ``low_low`` take ``profile`` limits only from
overrides). A limit kind with no limit gives no point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cloud.alarms.kinds import PointContext
from cloud.alarms.rules import LIMIT_KINDS, PROFILE, AlarmRule, RuleEntry

STATE_ROLE = "state"


@dataclass(frozen=True, slots=True)
class MachineInfo:
    """A machine as alarms need it: identity, placement names, profile and state map."""

    id: int
    name: str
    site: str
    area: str | None
    line: str | None
    edge: str
    device: str
    profile: str | None = None
    state_map: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One metric of a device: role, unit and engineering limits from its birth."""

    metric: str
    role: str
    unit: str | None = None
    low_limit: float | None = None
    high_limit: float | None = None


@dataclass(frozen=True, slots=True)
class LimitOverride:
    """Per-machine limits of one metric (None: not overridden)."""

    low_low: float | None = None
    low: float | None = None
    high: float | None = None
    high_high: float | None = None


DeviceKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything ``bind`` needs, loaded from the database by ``cloud.alarms.catalog``."""

    machines: Mapping[DeviceKey, MachineInfo]
    series: Mapping[DeviceKey, Mapping[str, SeriesInfo]]
    overrides: Mapping[tuple[int, str], LimitOverride]
    rules: tuple[RuleEntry, ...]


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One alarm point: its key, rule, machine, metric and resolved context."""

    key: str
    rule: AlarmRule
    machine: MachineInfo
    metric: str | None
    context: PointContext

    @property
    def unit(self) -> str | None:
        return self.context.unit


def point_key(rule: str, machine_id: int, metric: str | None) -> str:
    """``rule/machine_id/metric`` (``*`` for a device-wide or state point)."""
    return f"{rule}/{machine_id}/{metric or '*'}"


def resolve_limit(
    rule: AlarmRule, series: SeriesInfo | None, override: LimitOverride | None
) -> float | None:
    """The limit of a limit-kind point; see the module docstring for the order."""
    if rule.kind not in LIMIT_KINDS:
        return None
    overridden = getattr(override, rule.kind) if override is not None else None
    if overridden is not None:
        return float(overridden)
    if rule.limit is not None and rule.limit != PROFILE:
        return float(rule.limit)
    if rule.limit == PROFILE and series is not None:
        if rule.kind == "high":
            return series.high_limit
        if rule.kind == "low":
            return series.low_limit
    return None


def resolve_deadband(rule: AlarmRule, series: SeriesInfo | None, limit: float | None) -> float:
    """``deadband`` as given, or ``deadband_pct`` of the engineering span (high − low limit),
    or of the limit's magnitude when the span is unknown."""
    if rule.deadband_pct is None:
        return rule.deadband
    span: float | None = None
    if series is not None and series.low_limit is not None and series.high_limit is not None:
        span = series.high_limit - series.low_limit
    if span is None or span <= 0:
        span = abs(limit) if limit is not None else 0.0
    return span * rule.deadband_pct / 100


def _watched(rule: AlarmRule, series: Mapping[str, SeriesInfo]) -> list[SeriesInfo]:
    roles = rule.metric_roles
    return [
        s
        for name, s in sorted(series.items())
        if (rule.metric and name in rule.metric) or (roles and s.role in roles)
    ]


def state_metric(series: Mapping[str, SeriesInfo]) -> str | None:
    """The metric carrying the machine's state code, if the device has one."""
    for name, info in sorted(series.items()):
        if info.role == STATE_ROLE:
            return name
    return None


def _points_of(
    rule: AlarmRule,
    machine: MachineInfo,
    series: Mapping[str, SeriesInfo],
    overrides: Mapping[tuple[int, str], LimitOverride],
) -> Iterable[PointSpec]:
    if rule.kind == "state_duration" or rule.watches_device:
        metric = state_metric(series) if rule.kind == "state_duration" else None
        yield PointSpec(point_key(rule.name, machine.id, metric), rule, machine, metric,
                        PointContext())  # fmt: skip
        return
    for info in _watched(rule, series):
        override = overrides.get((machine.id, info.metric))
        limit = resolve_limit(rule, info, override)
        if rule.kind in LIMIT_KINDS and limit is None:
            continue
        context = PointContext(
            limit=limit, deadband=resolve_deadband(rule, info, limit), unit=info.unit
        )
        yield PointSpec(point_key(rule.name, machine.id, info.metric), rule, machine,
                        info.metric, context)  # fmt: skip


def bind(catalog: Catalog) -> dict[str, PointSpec]:
    """Every alarm point of the enabled rules, by key."""
    points: dict[str, PointSpec] = {}
    for entry in catalog.rules:
        rule = entry.rule
        if not rule.enabled:
            continue
        for device_key, machine in sorted(catalog.machines.items()):
            if not rule.machines.matches(
                machine.id, machine.edge, machine.device, machine.profile, machine.line
            ):
                continue
            series = catalog.series.get(device_key, {})
            for spec in _points_of(rule, machine, series, catalog.overrides):
                points[spec.key] = spec
    return points
