"""Machine state from rules over tags, for machines without a state tag: a pure function.

A profile's ``state_rules`` (carried by the device birth) say, in order, which canonical state
the machine is in while a condition holds, e.g. ``down`` while ``fault_code != 0``, ``running``
while ``spindle_speed > 0 and door_closed``, and a last rule without a condition as the
fallback. At every timestamp where one of the named tags has a sample, each tag's latest
reading is held and the rules are tried in order: the first that holds gives the state. When a
rule cannot be decided because a tag it needs has no good value, the state is unknown
(``offline``), because a later rule must not win by default over an undecidable earlier one.

The result is a stream of synthetic ``Reading`` objects whose code is ``rule<i>`` (the rule
that matched), so ``derive_intervals`` and the state map do the rest.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloud.machine_state.derive import BAD_QUALITY, Reading
from protocols.expr import Condition, Scalar, compile_condition


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A state rule ready to evaluate: its state, and its condition (None: the fallback)."""

    state: str
    condition: Condition | None

    @property
    def names(self) -> frozenset[str]:
        return self.condition.names if self.condition is not None else frozenset()


def compile_rules(rules: Sequence[Mapping[str, str | None]]) -> list[CompiledRule]:
    """Rules as stored on the machine (``[{"state": ..., "when": ...}]``), compiled."""
    out = []
    for rule in rules:
        when = rule.get("when")
        out.append(CompiledRule(str(rule["state"]), compile_condition(when) if when else None))
    return out


def rule_code(index: int) -> str:
    return f"rule{index}"


def rule_state_map(rules: Sequence[CompiledRule]) -> dict[str, str]:
    """The state map of the synthetic codes: ``rule<i>`` → the rule's state."""
    return {rule_code(i): rule.state for i, rule in enumerate(rules)}


def _value(reading: Reading) -> Scalar | None:
    if reading.quality >= BAD_QUALITY:
        return None
    return reading.text if reading.text is not None else reading.value


def evaluate_rules(
    rules: Sequence[CompiledRule], values: Mapping[str, Scalar | None]
) -> int | None:
    """The index of the first rule that holds; None if none holds or one cannot be decided."""
    for i, rule in enumerate(rules):
        if rule.condition is None:
            return i
        verdict = rule.condition.evaluate(values)
        if verdict is None:
            return None
        if verdict:
            return i
    return None


def rule_readings(
    readings: Mapping[str, Sequence[Reading]],
    rules: Sequence[CompiledRule],
    from_ms: int | None = None,
) -> list[Reading]:
    """One synthetic state reading per timestamp (at or after ``from_ms``) of any named tag.

    ``readings`` holds each tag's readings sorted by time; a reading before ``from_ms`` only
    supplies the value held at ``from_ms``.
    """
    times = sorted(
        {r.ts_ms for series in readings.values() for r in series}
        if from_ms is None
        else {r.ts_ms for series in readings.values() for r in series if r.ts_ms >= from_ms}
    )
    stamps = {metric: [r.ts_ms for r in series] for metric, series in readings.items()}
    out: list[Reading] = []
    for ts in times:
        values: dict[str, Scalar | None] = {}
        for metric, series in readings.items():
            i = bisect.bisect_right(stamps[metric], ts) - 1
            values[metric] = _value(series[i]) if i >= 0 else None
        matched = evaluate_rules(rules, values)
        if matched is None:
            out.append(Reading(ts, None, BAD_QUALITY))
        else:
            out.append(Reading(ts, None, 0, rule_code(matched)))
    return out
