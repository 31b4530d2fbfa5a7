"""Nelson and Western Electric run rules: each rule fires where it must and not on a near miss.

Every case runs through both forms, the whole-series ``evaluate`` and the point-by-point
``RuleState``; a property test checks that the two agree on random series.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.spc.rules import RULES, Rule, RuleState, Violation, evaluate

Engine = Callable[[Sequence[float], float, float, Sequence[str]], list[Violation]]


def _batch(values: Sequence[float], centre: float, sigma: float, rules: Sequence[str]) -> list[Violation]:  # fmt: skip
    return evaluate(values, centre, sigma, rules)


def _stream(values: Sequence[float], centre: float, sigma: float, rules: Sequence[str]) -> list[Violation]:  # fmt: skip
    state = RuleState(centre, sigma, rules)
    found: list[Violation] = []
    for value in values:
        found.extend(state.push(value))
    return found


@pytest.fixture(params=[_batch, _stream], ids=["batch", "stream"])
def engine(request: pytest.FixtureRequest) -> Engine:
    result: Engine = request.param
    return result


def _run(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


ALTERNATING_14 = [0.1, -0.1] * 7
# (rule, series in sigmas around centre 0, expected (index, points) violations)
TRIGGERS: list[tuple[str, list[float], list[tuple[int, tuple[int, ...]]]]] = [
    ("nelson1", [0.0, 0.5, 3.2, -0.5, -3.1, 2.9], [(2, (2,)), (4, (4,))]),
    ("nelson2", [-1.0, *[0.5] * 9, -0.2], [(9, _run(1, 9))]),
    ("nelson2", [*[-0.4] * 9], [(8, _run(0, 8))]),
    ("nelson3", [0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.4], [(6, _run(1, 6))]),
    ("nelson3", [0.9, 0.7, 0.5, 0.2, 0.0, -0.3, 0.5], [(5, _run(0, 5))]),
    ("nelson4", [0.2, *ALTERNATING_14], [(14, _run(1, 14))]),
    ("nelson5", [0.0, 2.1, 0.5, 2.3, 0.0], [(3, (1, 3))]),
    ("nelson5", [0.0, -2.5, -2.2, 0.0], [(2, (1, 2))]),
    ("nelson6", [1.5, 1.2, 0.0, 1.1, 1.3, 0.0], [(4, (0, 1, 3, 4))]),
    ("nelson7", [2.0, *[0.5, -0.5] * 7, 0.9, 1.5], [(15, _run(1, 15))]),
    ("nelson8", [0.0, *[1.5, -1.5] * 4, 0.2], [(8, _run(1, 8))]),
    ("we1", [0.0, -3.5, 1.0], [(1, (1,))]),
    ("we2", [2.1, 1.0, 2.6], [(2, (0, 2))]),
    ("we3", [-1.5, -1.2, -1.1, 0.5, -1.3], [(4, (0, 1, 2, 4))]),
    ("we4", [0.0, *[0.3] * 8, -0.1], [(8, _run(1, 8))]),
]

NEAR_MISSES: list[tuple[str, list[float]]] = [
    ("nelson1", [3.0, -3.0, 2.99, -2.99]),  # exactly 3σ is not beyond it
    ("nelson2", [*[0.5] * 8, -0.5, *[0.5] * 8]),  # 8 in a row, twice
    ("nelson2", [*[0.5] * 8, 0.0, *[0.5] * 8]),  # a point on the centre line breaks the run
    ("nelson3", [0.0, 0.1, 0.2, 0.3, 0.4, 0.3, 0.2]),  # 5 points up
    ("nelson3", [0.0, 0.1, 0.2, 0.2, 0.3, 0.4, 0.5]),  # a tie breaks the trend
    ("nelson4", [*[0.1, -0.1] * 6, 0.1, 0.2]),  # 13 alternating, then up twice
    ("nelson4", [*[0.1, -0.1] * 6, 0.1, 0.1, -0.1]),  # a tie breaks the alternation
    ("nelson5", [2.5, 0.0, -2.5, 0.0, 2.5]),  # beyond 2σ, but on opposite sides
    ("nelson5", [2.5, 0.0, 0.0, 2.5, 2.0]),  # 3 apart; exactly 2σ is not beyond it
    ("nelson6", [1.5, 1.2, 0.0, 1.1, -1.3, 1.4]),  # 3 of 5 on the upper side
    ("nelson6", [1.5, 1.2, 1.0, 1.1, 0.0]),  # exactly 1σ is not beyond it
    ("nelson7", [*[0.5, -0.5] * 7, 1.0]),  # 14 within, then exactly on 1σ
    ("nelson8", [*[1.5, -1.5] * 3, 1.5, 0.99]),  # 7 outside, then one inside
    ("nelson8", [*[1.5, -1.5] * 3, 1.5, 1.0]),  # exactly on 1σ is not outside it
    ("we1", [3.0, 2.5, -3.0]),
    ("we2", [2.1, 1.0, 1.9, 2.2]),
    ("we3", [-1.5, -1.2, 0.0, 0.5, -1.3, -1.4]),
    ("we4", [*[0.3] * 7, -0.3, *[0.3] * 7]),
]


@pytest.mark.parametrize(("rule", "z", "expected"), TRIGGERS)
def test_rule_fires_at_the_exact_point(
    engine: Engine, rule: str, z: list[float], expected: list[tuple[int, tuple[int, ...]]]
) -> None:
    found = engine(z, 0.0, 1.0, [rule])
    assert [(v.index, v.points) for v in found] == expected
    assert {v.rule for v in found} == {Rule(rule)}


def test_every_rule_has_a_trigger_and_a_near_miss() -> None:
    assert {rule for rule, _, _ in TRIGGERS} == set(RULES)
    assert {rule for rule, _ in NEAR_MISSES} == set(RULES)


@pytest.mark.parametrize(("rule", "z"), NEAR_MISSES)
def test_near_miss_does_not_fire(engine: Engine, rule: str, z: list[float]) -> None:
    assert engine(z, 0.0, 1.0, [rule]) == []


def test_a_long_run_fires_at_each_point_past_the_length(engine: Engine) -> None:
    found = engine([0.2] * 11, 0.0, 1.0, ["nelson2"])
    assert found == [
        Violation(Rule.NELSON2, 8, _run(0, 8)),
        Violation(Rule.NELSON2, 9, _run(1, 9)),
        Violation(Rule.NELSON2, 10, _run(2, 10)),
    ]


def test_k_of_n_fires_only_at_a_point_that_completes_it(engine: Engine) -> None:
    # the third point is inside 2σ: the pattern completed at the second point, not again
    assert engine([2.5, 2.5, 0.0], 0.0, 1.0, ["nelson5"]) == [Violation(Rule.NELSON5, 1, (0, 1))]
    assert engine([2.5, 2.5, 2.5], 0.0, 1.0, ["we2"]) == [
        Violation(Rule.WE2, 1, (0, 1)),
        Violation(Rule.WE2, 2, (0, 1, 2)),
    ]


def test_limits_in_engineering_units(engine: Engine) -> None:
    # centre 50 mm, sigma 0.5 mm: 51.6 is 3.2σ; 48.4 is -3.2σ; 51.5 is exactly 3σ
    found = engine([50.0, 51.6, 51.5, 48.4], 50.0, 0.5, ["nelson1"])
    assert [(v.index, v.points) for v in found] == [(1, (1,)), (3, (3,))]


def test_violations_ordered_by_point_then_rule_order(engine: Engine) -> None:
    z = [0.0, 3.5, 3.5]
    found = engine(z, 0.0, 1.0, ["we2", "nelson5", "we1", "nelson1", "nelson1"])
    assert [(v.index, v.rule) for v in found] == [
        (1, Rule.NELSON1),
        (1, Rule.WE1),
        (2, Rule.NELSON1),
        (2, Rule.NELSON5),
        (2, Rule.WE1),
        (2, Rule.WE2),
    ]


def test_no_rules_and_no_points_give_no_violations(engine: Engine) -> None:
    assert engine([5.0, 5.0], 0.0, 1.0, []) == []
    assert engine([], 0.0, 1.0, list(RULES)) == []


def test_rules_table() -> None:
    assert [str(rule) for rule in RULES] == [
        *(f"nelson{n}" for n in range(1, 9)),
        *(f"we{n}" for n in range(1, 5)),
    ]
    assert all(spec.description for spec in RULES.values())
    assert RULES[Rule.WE1].detector == RULES[Rule.NELSON1].detector
    assert RULES[Rule.WE2].detector == RULES[Rule.NELSON5].detector
    assert RULES[Rule.WE3].detector == RULES[Rule.NELSON6].detector


# -- the streaming form equals the batch form ---------------------------------------------------

# values on and around the limits, so that ties and boundary hits are common
_GRID = st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.0, -2.0, 2.5, -2.5, 3.0, -3.5])
_POINT = st.one_of(_GRID, st.floats(-5.0, 5.0, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(z=st.lists(_POINT, max_size=80))
def test_stream_equals_batch_on_random_series(z: list[float]) -> None:
    assert _stream(z, 0.0, 1.0, list(RULES)) == evaluate(z, 0.0, 1.0, list(RULES))


def _regime_series(rng: np.random.Generator, length: int) -> list[float]:
    """Noise with shifts, trends, alternations, quiet stretches and ties mixed in."""
    values: list[float] = []
    while len(values) < length:
        kind = rng.integers(6)
        n = int(rng.integers(3, 20))
        if kind == 0:
            values.extend(rng.normal(0.0, 1.0, n))
        elif kind == 1:
            values.extend(rng.normal(rng.choice([-1.5, 1.5]), 0.6, n))
        elif kind == 2:
            values.extend(np.linspace(-2.0, 2.0, n) * rng.choice([-1.0, 1.0]))
        elif kind == 3:
            values.extend(np.resize([0.4, -0.4], n) + rng.normal(0.0, 0.05, n))
        elif kind == 4:
            values.extend(rng.normal(0.0, 0.3, n))
        else:
            values.extend([float(rng.choice([0.0, 1.0, -2.0, 3.0]))] * n)
    return [round(v, 2) for v in values[:length]]


def test_stream_equals_batch_on_seeded_series() -> None:
    rng = np.random.default_rng(22400)
    fired: set[Rule] = set()
    for _ in range(60):
        values = [10.0 + 0.25 * z for z in _regime_series(rng, 300)]
        batch = evaluate(values, 10.0, 0.25, list(RULES))
        state = RuleState(10.0, 0.25, list(RULES))
        assert state.extend(values) == batch
        assert state.count == len(values)
        fired |= {v.rule for v in batch}
    assert fired == set(RULES)  # the comparison exercised every rule


def test_evaluate_takes_a_numpy_array() -> None:
    z = np.array([0.0, 3.5, 0.0])
    assert evaluate(z, 0.0, 1.0, ["nelson1"]) == [Violation(Rule.NELSON1, 1, (1,))]


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_sigma_is_refused(sigma: float) -> None:
    with pytest.raises(ValueError, match="sigma"):
        evaluate([1.0], 0.0, sigma, ["nelson1"])
    with pytest.raises(ValueError, match="sigma"):
        RuleState(0.0, sigma, ["nelson1"])


def test_bad_centre_is_refused() -> None:
    with pytest.raises(ValueError, match="centre"):
        evaluate([1.0], float("nan"), 1.0, ["nelson1"])
    with pytest.raises(ValueError, match="centre"):
        RuleState(float("inf"), 1.0, ["nelson1"])


@pytest.mark.parametrize("rules", [["nelson9"], ["nelson1", "WE1"], "nelson1"])
def test_unknown_rule_is_refused(rules: list[str] | str) -> None:
    with pytest.raises(ValueError, match="rules"):
        evaluate([1.0], 0.0, 1.0, rules)
    with pytest.raises(ValueError, match="rules"):
        RuleState(0.0, 1.0, rules)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match=r"values\[2\]"):
        evaluate([1.0, 2.0, float("nan")], 0.0, 1.0, ["nelson1"])
    with pytest.raises(ValueError, match="values"):
        evaluate([[1.0, 2.0]], 0.0, 1.0, ["nelson1"])
    with pytest.raises(ValueError, match="values"):
        evaluate(["high"], 0.0, 1.0, ["nelson1"])
    state = RuleState(0.0, 1.0, ["nelson1"])
    state.push(1.0)
    with pytest.raises(ValueError, match=r"value \(point 1\)"):
        state.push(float("inf"))
