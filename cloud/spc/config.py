"""Control-chart definitions: the pydantic model of one chart, and the YAML file of charts.

One ``ChartSpec`` is what the API's POST/PUT body and each entry of the charts file hold. The
machine is given by name (``machine``, as in the ``machine`` table) or by id (``machine_id``);
the product by its ERP external id (``product``). ``rules`` is a list of rule names
(``nelson1`` .. ``nelson8``, ``we1`` .. ``we4``) or one of the named sets ``nelson`` (the
default) and ``western_electric``. Which subgrouping fields a chart needs depends on its type:

- ``xbar_r`` (``subgroup_size`` 2..10), ``xbar_s`` (``subgroup_size`` ≥ 2), ``i_mr``
  (``subgroup_size`` 1, the default): consecutive samples by count, or, with
  ``subgroup_window_s``, the first ``subgroup_size`` samples of each window;
- ``p``, ``np``, ``c``, ``u``: ``subgroup_window_s`` (the counts of each window) and no
  ``subgroup_size``.

``load_charts_file`` validates a file; errors name the file, the line and the field
(``protocols.errors.ProfileError``). Resolving names and storing is ``service.load_charts``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.notify.message import Priority
from cloud.spc.constants import MAX_N
from cloud.spc.rules import RULES
from protocols.errors import ProfileError
from protocols.yaml_lines import pin_item_problems, validate_file

ChartType = Literal["xbar_r", "xbar_s", "i_mr", "p", "np", "c", "u"]
RULE_SETS: dict[str, tuple[str, ...]] = {
    "nelson": tuple(f"nelson{i}" for i in range(1, 9)),
    "western_electric": ("we1", "we2", "we3", "we4"),
}
DEFAULT_RULES = RULE_SETS["nelson"]


def expand_rules(rules: str | list[str] | tuple[str, ...]) -> list[str]:
    """A named set or a list of rule names → the rule names, each once, in ``RULES`` order."""
    if isinstance(rules, str):
        if rules not in RULE_SETS:
            raise ValueError(
                f"unknown rule set {rules!r}; give {' or '.join(RULE_SETS)}, or a list of rules"
            )
        return list(RULE_SETS[rules])
    known = [str(rule) for rule in RULES]
    unknown = [rule for rule in rules if rule not in known]
    if unknown:
        raise ValueError(f"unknown rule {unknown[0]!r}; known rules: {', '.join(known)}")
    if not rules:
        raise ValueError("give at least one rule (or the set 'nelson' / 'western_electric')")
    return [rule for rule in known if rule in rules]


class ChartSpec(BaseModel):
    """One control chart as configured (YAML entry or API body)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    machine: str | None = Field(default=None, min_length=1, description="machine name")
    machine_id: int | None = Field(default=None, description="or the machine's id")
    metric: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="variables: the measured metric; attributes: the scrap counter "
        "(default: the machine's scrap_count series)",
    )  # fmt: skip
    product: str | None = Field(
        default=None, min_length=1, description="product external id: count only its samples"
    )
    chart_type: ChartType
    subgroup_size: int | None = Field(default=None, ge=1, le=1000)
    subgroup_window_s: int | None = Field(default=None, ge=1, le=31 * 86_400)
    rules: list[str] | str = Field(default_factory=lambda: list(DEFAULT_RULES))
    lsl: float | None = None
    target: float | None = None
    usl: float | None = None
    alarm: bool = False
    alarm_priority: Priority = "medium"
    enabled: bool = True

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str] | str) -> list[str]:
        return expand_rules(rules)

    @model_validator(mode="after")
    def _consistent(self) -> ChartSpec:
        problems: list[str] = []
        if (self.machine is None) == (self.machine_id is None):
            problems.append("machine: give the machine's name (machine) or its id (machine_id)")
        if self.chart_type in ("p", "np", "c", "u"):
            if self.subgroup_window_s is None:
                problems.append(
                    f"subgroup_window_s: a {self.chart_type} chart counts scrap per window, "
                    "so give the window in seconds"
                )
            if self.subgroup_size is not None:
                problems.append(
                    f"subgroup_size: a {self.chart_type} chart's subgroup is its window, so leave "
                    "subgroup_size out"
                )
        else:
            problems.extend(self._variables_problems())
        if self.lsl is not None and self.usl is not None and self.usl <= self.lsl:
            problems.append(f"usl: {self.usl} must be above lsl {self.lsl}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _variables_problems(self) -> list[str]:
        if self.metric is None:
            return [f"metric: a {self.chart_type} chart needs the metric it measures"]
        size = self.subgroup_size
        if self.chart_type == "i_mr":
            if size not in (None, 1):
                return [
                    "subgroup_size: an i_mr chart plots individual values: give 1 or leave it out"
                ]
            self.subgroup_size = 1
        elif size is None:
            return [f"subgroup_size: a {self.chart_type} chart needs its subgroup size"]
        elif self.chart_type == "xbar_r" and not 2 <= size <= MAX_N:
            return [f"subgroup_size: an xbar_r chart needs 2..{MAX_N} (use xbar_s above)"]
        elif self.chart_type == "xbar_s" and size < 2:
            return ["subgroup_size: an xbar_s chart needs subgroups of at least 2"]
        return []

    @property
    def rule_names(self) -> list[str]:
        """The expanded rule names (the validator has expanded a named set)."""
        return expand_rules(self.rules)


class ChartsFile(BaseModel):
    """The charts file: ``charts:``, a list of chart definitions with unique names."""

    model_config = ConfigDict(extra="forbid")

    charts: list[ChartSpec]

    @model_validator(mode="after")
    def _unique_names(self) -> ChartsFile:
        seen: dict[str, int] = {}
        for index, chart in enumerate(self.charts):
            if chart.name in seen:
                raise ValueError(
                    f"charts[{index}].name: {chart.name!r} is already the name of "
                    f"charts[{seen[chart.name]}] (chart names are unique)"
                )
            seen[chart.name] = index
        return self


def load_charts_file(path: str | Path) -> tuple[ChartSpec, ...]:
    """The charts of a YAML file; a ``ProfileError`` names the file, line and field of a mistake."""
    path = Path(path)
    try:
        return tuple(validate_file(ChartsFile, path).charts)
    except ProfileError as error:
        raise pin_item_problems(error, path, "charts") from None


__all__ = [
    "DEFAULT_RULES",
    "RULE_SETS",
    "ChartSpec",
    "ChartType",
    "ChartsFile",
    "expand_rules",
    "load_charts_file",
]
