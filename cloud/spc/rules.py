"""Control-chart run rules: the eight Nelson rules and the four Western Electric rules (pure).

A point's position is measured in sigmas from the centre line, ``z = (x - centre) / sigma``.
The rules, as in DESIGN.md "Reference figures" (the Minitab wording):

========  =======================================================================
nelson1   1 point beyond 3σ (either side)                       — also ``we1``
nelson2   9 points in a row on the same side of the centre line
nelson3   6 points in a row steadily increasing or steadily decreasing
nelson4   14 points in a row alternating up and down
nelson5   2 of 3 points in a row beyond 2σ on the same side     — also ``we2``
nelson6   4 of 5 points in a row beyond 1σ on the same side     — also ``we3``
nelson7   15 points in a row within 1σ (either side)
nelson8   8 points in a row with none within 1σ (either side)
we4       8 points in a row on the same side of the centre line
========  =======================================================================

Conventions (the same in the batch and the streaming form):

- *Beyond* kσ is strict, ``|z| > k``; *within* 1σ is strict, ``|z| < 1``. A point exactly on a
  limit is neither: it does not count toward nelson1/5/6 and it breaks nelson7 and nelson8 runs.
- *Sides*: a point above the centre is on the upper side, below it on the lower side; a point
  exactly on the centre line is on neither and breaks a nelson2 / we4 run.
- *Trends*: each step from one point to the next goes up, down, or is a tie. Equal consecutive
  values break a trend (nelson3) and an alternation (nelson4); the tied point may start the next
  run. Six points (five steps) make a trend; fourteen points (thirteen steps) an alternation.
- nelson8 does not require points on both sides (Nelson's original wording adds "in both
  directions"); eight points all beyond +1σ also fire nelson6.
- *When a rule fires*: once at every point at which its pattern completes.
  Run rules (nelson2/3/4/7/8, we4) fire at every point that ends a qualifying run of the rule's
  length: a run of 11 points on one side fires nelson2 at its 9th, 10th and 11th point, each
  time with the 9 points of the run that end there. "k of n" rules (nelson1/5/6, we1/2/3) fire
  at a point only if that point is itself beyond the limit and at least k of the last n points
  (fewer at the start of the series) are beyond it on the same side; the points involved are
  those beyond the limit on that side. So ``2.5σ, 2.5σ, 0`` fires nelson5 once, at the second
  point with points ``(0, 1)``, and not again at the third.

``evaluate`` checks a whole series at once (vectorised with numpy); ``RuleState`` takes one
point at a time ("evaluated as data arrives") and returns the violations completing at that
point. Both give exactly the same violations, ordered by point index and then by rule in
``RULES`` order. Bad input raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["RULES", "Beyond", "Rule", "RuleSpec", "RuleState", "Run", "Violation", "evaluate"]


class Rule(StrEnum):
    """A run rule's identifier, as written in chart configuration."""

    NELSON1 = "nelson1"
    NELSON2 = "nelson2"
    NELSON3 = "nelson3"
    NELSON4 = "nelson4"
    NELSON5 = "nelson5"
    NELSON6 = "nelson6"
    NELSON7 = "nelson7"
    NELSON8 = "nelson8"
    WE1 = "we1"
    WE2 = "we2"
    WE3 = "we3"
    WE4 = "we4"


Pattern = Literal["side", "trend", "alternate", "within1", "beyond1"]
"""What each point of a run must continue: the same side, the same step, the opposite step,
inside 1σ, outside 1σ."""


@dataclass(frozen=True, slots=True)
class Run:
    """``length`` points in a row that all follow ``pattern``."""

    pattern: Pattern
    length: int


@dataclass(frozen=True, slots=True)
class Beyond:
    """``count`` of the last ``window`` points beyond ``limit`` σ on the same side."""

    count: int
    window: int
    limit: float


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as data: what it says in words and how it is detected."""

    description: str
    detector: Run | Beyond


RULES: Mapping[Rule, RuleSpec] = {
    Rule.NELSON1: RuleSpec("1 point beyond 3σ", Beyond(1, 1, 3.0)),
    Rule.NELSON2: RuleSpec("9 points in a row on the same side of the centre line", Run("side", 9)),
    Rule.NELSON3: RuleSpec("6 points in a row steadily increasing or decreasing", Run("trend", 6)),
    Rule.NELSON4: RuleSpec("14 points in a row alternating up and down", Run("alternate", 14)),
    Rule.NELSON5: RuleSpec("2 of 3 points beyond 2σ on the same side", Beyond(2, 3, 2.0)),
    Rule.NELSON6: RuleSpec("4 of 5 points beyond 1σ on the same side", Beyond(4, 5, 1.0)),
    Rule.NELSON7: RuleSpec("15 points in a row within 1σ (either side)", Run("within1", 15)),
    Rule.NELSON8: RuleSpec(
        "8 points in a row with none within 1σ (either side)", Run("beyond1", 8)
    ),
    Rule.WE1: RuleSpec("1 point beyond 3σ (zone A)", Beyond(1, 1, 3.0)),
    Rule.WE2: RuleSpec("2 of 3 points beyond 2σ on the same side", Beyond(2, 3, 2.0)),
    Rule.WE3: RuleSpec("4 of 5 points beyond 1σ on the same side", Beyond(4, 5, 1.0)),
    Rule.WE4: RuleSpec("8 points in a row on the same side of the centre line", Run("side", 8)),
}
_ORDER = {rule: position for position, rule in enumerate(RULES)}


@dataclass(frozen=True, slots=True)
class Violation:
    """``rule`` fired at point ``index``; ``points`` are the indices of all the points involved."""

    rule: Rule
    index: int
    points: tuple[int, ...]


# -- validation ----------------------------------------------------------------------------------


def _check_limits(centre: float, sigma: float) -> tuple[float, float]:
    try:
        centre_f, sigma_f = float(centre), float(sigma)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"centre and sigma must be numbers: {exc}") from exc
    if not math.isfinite(centre_f):
        raise ValueError(f"centre must be a finite number, got {centre!r}")
    if not (math.isfinite(sigma_f) and sigma_f > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return centre_f, sigma_f


def _check_rules(rules: Iterable[str]) -> tuple[Rule, ...]:
    """The selected rules, each once, in ``RULES`` order."""
    if isinstance(rules, str):
        raise ValueError(f"rules must be a collection of rule names, not the string {rules!r}")
    chosen: set[Rule] = set()
    for name in rules:
        try:
            chosen.add(Rule(name))
        except ValueError:
            known = ", ".join(RULES)
            raise ValueError(f"rules: unknown rule {name!r}; known rules: {known}") from None
    return tuple(sorted(chosen, key=_ORDER.__getitem__))


def _check_values(values: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    try:
        series = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"values must be a sequence of numbers: {exc}") from exc
    if series.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {series.shape}")
    bad = np.flatnonzero(~np.isfinite(series))
    if bad.size:
        first = int(bad[0])
        raise ValueError(f"values[{first}] is {series[first]!r}: every value must be finite")
    return series


# -- batch form ----------------------------------------------------------------------------------


def _run_ends(ok: npt.NDArray[np.bool_], length: int, offset: int) -> npt.NDArray[np.intp]:
    """Indices of the points ending ``length`` consecutive ``ok`` flags; flag j is point j+offset."""
    if ok.size < length:
        return np.empty(0, dtype=np.intp)
    full = sliding_window_view(ok, length).all(axis=1)
    return np.flatnonzero(full) + (length - 1 + offset)


def _batch_run(
    series: npt.NDArray[np.float64], centre: float, z: npt.NDArray[np.float64], run: Run
) -> npt.NDArray[np.intp]:
    """The indices at which a run of ``run.length`` points ends."""
    steps = np.sign(np.diff(series))  # steps[j]: from point j to point j+1
    if run.pattern == "side":
        above = _run_ends(series > centre, run.length, 0)
        below = _run_ends(series < centre, run.length, 0)
        return np.sort(np.concatenate([above, below]))
    if run.pattern == "trend":  # length - 1 equal non-zero steps
        ups = _run_ends(steps > 0, run.length - 1, 1)
        downs = _run_ends(steps < 0, run.length - 1, 1)
        return np.sort(np.concatenate([ups, downs]))
    if run.pattern == "alternate":  # length - 2 consecutive step pairs of opposite sign
        flips = steps[:-1] * steps[1:] < 0
        return _run_ends(flips, run.length - 2, 2)
    if run.pattern == "within1":
        return _run_ends(np.abs(z) < 1.0, run.length, 0)
    return _run_ends(np.abs(z) > 1.0, run.length, 0)


def _batch_beyond(z: npt.NDArray[np.float64], beyond: Beyond) -> list[tuple[int, tuple[int, ...]]]:
    """(index, points) at which ``count`` of the last ``window`` points are beyond, same side."""
    fired: list[tuple[int, tuple[int, ...]]] = []
    for side in (1.0, -1.0):
        out = side * z > beyond.limit
        padded = np.concatenate([np.zeros(beyond.window - 1, dtype=np.int64), out.astype(np.int64)])
        counts = sliding_window_view(padded, beyond.window).sum(axis=1)
        for index in np.flatnonzero(out & (counts >= beyond.count)):
            first = max(0, int(index) - beyond.window + 1)
            points = tuple(int(j) for j in np.flatnonzero(out[first : index + 1]) + first)
            fired.append((int(index), points))
    return fired


def evaluate(
    values: Sequence[float] | npt.ArrayLike, centre: float, sigma: float, rules: Iterable[str]
) -> list[Violation]:
    """Every violation of ``rules`` in the whole series ``values`` against ``centre`` ± k·``sigma``.

    Ordered by point index, then by rule in ``RULES`` order.
    """
    centre, sigma = _check_limits(centre, sigma)
    selected = _check_rules(rules)
    series = _check_values(values)
    if series.size == 0:
        return []
    z = (series - centre) / sigma
    found: list[Violation] = []
    for rule in selected:
        detector = RULES[rule].detector
        if isinstance(detector, Run):
            for end in _batch_run(series, centre, z, detector):
                points = tuple(range(int(end) - detector.length + 1, int(end) + 1))
                found.append(Violation(rule, int(end), points))
        else:
            found.extend(Violation(rule, i, pts) for i, pts in _batch_beyond(z, detector))
    found.sort(key=lambda violation: (violation.index, _ORDER[violation.rule]))
    return found


# -- streaming form ------------------------------------------------------------------------------


class RuleState:
    """The run rules evaluated as data arrives: ``push`` one point, get the violations it completes.

    Pushing a series point by point gives exactly the violations ``evaluate`` gives for it.
    """

    def __init__(self, centre: float, sigma: float, rules: Iterable[str]) -> None:
        self._centre, self._sigma = _check_limits(centre, sigma)
        self._rules = _check_rules(rules)
        windows = [d.window for r in self._rules if isinstance(d := RULES[r].detector, Beyond)]
        self._recent: deque[tuple[int, float]] = deque(maxlen=max(windows, default=1))
        self._streaks: dict[Pattern, int] = dict.fromkeys(
            ("side", "trend", "alternate", "within1", "beyond1"), 0
        )
        self._previous: float | None = None
        self._previous_step = 0
        self._previous_side = 0
        self.count = 0
        """How many points have been pushed; the next point gets this index."""

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules evaluated, in ``RULES`` order."""
        return self._rules

    def push(self, value: float) -> list[Violation]:
        """Take the next point; return the violations that complete at it (in ``RULES`` order)."""
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"value (point {self.count}) must be a number: {exc}") from exc
        if not math.isfinite(x):
            raise ValueError(f"value (point {self.count}) is {value!r}: it must be finite")
        index = self.count
        z = (x - self._centre) / self._sigma
        self._advance(x, z)
        self._recent.append((index, z))
        self.count += 1
        found: list[Violation] = []
        for rule in self._rules:
            detector = RULES[rule].detector
            if isinstance(detector, Run):
                if self._streaks[detector.pattern] >= detector.length:
                    points = tuple(range(index - detector.length + 1, index + 1))
                    found.append(Violation(rule, index, points))
            elif (points_beyond := self._beyond(z, detector)) is not None:
                found.append(Violation(rule, index, points_beyond))
        return found

    def extend(self, values: Iterable[float]) -> list[Violation]:
        """Push several points in order; the violations they complete."""
        return [violation for value in values for violation in self.push(value)]

    def _advance(self, x: float, z: float) -> None:
        """Update the length of each run pattern that ends at the new point."""
        streaks = self._streaks
        side = (x > self._centre) - (x < self._centre)
        if side == 0:
            streaks["side"] = 0
        elif side == self._previous_side:
            streaks["side"] += 1
        else:
            streaks["side"] = 1
        step = 0 if self._previous is None else (x > self._previous) - (x < self._previous)
        if step == 0:
            streaks["trend"] = streaks["alternate"] = 1
        else:
            streaks["trend"] = streaks["trend"] + 1 if step == self._previous_step else 2
            streaks["alternate"] = streaks["alternate"] + 1 if step == -self._previous_step else 2
        streaks["within1"] = streaks["within1"] + 1 if abs(z) < 1.0 else 0
        streaks["beyond1"] = streaks["beyond1"] + 1 if abs(z) > 1.0 else 0
        self._previous, self._previous_step, self._previous_side = x, step, side

    def _beyond(self, z: float, beyond: Beyond) -> tuple[int, ...] | None:
        """The points involved if the newest point completes ``beyond``, else None."""
        if abs(z) <= beyond.limit:
            return None
        side = 1.0 if z > 0 else -1.0
        window = list(self._recent)[-beyond.window :]
        points = tuple(j for j, zj in window if side * zj > beyond.limit)
        return points if len(points) >= beyond.count else None
