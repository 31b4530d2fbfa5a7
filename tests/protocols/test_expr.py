"""Conditions over tag values: what they accept, what they refuse, and how unknowns behave."""

from __future__ import annotations

import pytest

from protocols.expr import ConditionError, compile_condition


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("spindle_speed > 0 and door_closed", {"spindle_speed": 1200.0, "door_closed": 1.0}, True),
        ("spindle_speed > 0 and door_closed", {"spindle_speed": 1200.0, "door_closed": 0.0}, False),
        ("spindle_speed > 0 or feed > 0", {"spindle_speed": 0.0, "feed": 5.0}, True),
        ("not door_closed", {"door_closed": False}, True),
        ("0 < pressure <= 5", {"pressure": 5.0}, True),
        ("0 < pressure <= 5", {"pressure": 5.5}, False),
        ("fault != 0", {"fault": 0}, False),
        ("temperature > -10", {"temperature": -5.0}, True),
        ("mode == 'AUTO'", {"mode": "AUTO"}, True),
        ("door_closed == true", {"door_closed": True}, True),
        ("(a > 1 or b > 1) and not c", {"a": 0, "b": 2, "c": 0}, True),
    ],
)
def test_conditions_evaluate(source: str, values: dict[str, object], expected: bool) -> None:
    assert compile_condition(source).evaluate(values) is expected  # type: ignore[arg-type]


def test_a_missing_value_makes_the_answer_unknown_unless_it_is_not_needed() -> None:
    condition = compile_condition("spindle_speed > 0 and door_closed")
    assert condition.evaluate({"spindle_speed": 100.0, "door_closed": None}) is None
    assert condition.evaluate({"spindle_speed": 100.0}) is None
    # "and" stops at the first false term: the door does not matter then
    assert condition.evaluate({"spindle_speed": 0.0, "door_closed": None}) is False


def test_a_string_compared_with_a_number_does_not_hold() -> None:
    assert compile_condition("mode > 3").evaluate({"mode": "AUTO"}) is False


def test_names_are_reported() -> None:
    assert compile_condition("a > 1 and not b or c == true").names == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("__import__('os').system('true')", "is not allowed"),
        ("speed.real > 0", "is not allowed"),
        ("speed * 2 > 0", "is not allowed"),
        ("speeds[0] > 0", "is not allowed"),
        ("speed >", "not a valid expression"),
        ("lambda: 1", "is not allowed"),
    ],
)
def test_anything_but_comparisons_and_logic_is_refused(source: str, complaint: str) -> None:
    with pytest.raises(ConditionError, match=complaint):
        compile_condition(source)


def test_unknown_tag_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ConditionError, match=r"names \['door'\].*tags: \['door_closed'"):
        compile_condition("door > 0", frozenset({"door_closed", "speed"}))
