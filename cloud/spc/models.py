"""SPC tables: control charts (machine × metric × product), their frozen limits, the points the
evaluator plotted, and the rule violations it found.

A chart's current limits are its newest ``spc_limits`` row; older rows stay as history.
``spc_point`` holds one row per phase II subgroup with its standardised value ``z`` (the
evaluator's state after a restart is primed from the last points); ``spc_violation`` is unique
on (chart, rule, time) so a replayed batch records nothing twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base, BigId

CHART_TYPES = ("xbar_r", "xbar_s", "i_mr", "p", "np", "c", "u")
VARIABLES_TYPES = ("xbar_r", "xbar_s", "i_mr")
ATTRIBUTES_TYPES = ("p", "np", "c", "u")


class SpcChart(Base):
    """A control chart of one machine's metric (or scrap counter), optionally for one product."""

    __tablename__ = "spc_chart"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machine.id", ondelete="CASCADE"), index=True
    )
    # variables charts: the measured metric; attributes charts: the scrap counter's metric
    # (None: the machine's series with role scrap_count)
    metric: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id", ondelete="CASCADE"))
    chart_type: Mapped[str] = mapped_column(String(8))
    subgroup_size: Mapped[int | None] = mapped_column(Integer)
    subgroup_window_s: Mapped[int | None] = mapped_column(Integer)
    rules: Mapped[list[str]] = mapped_column(JSON)
    lsl: Mapped[float | None] = mapped_column(Double)
    target: Mapped[float | None] = mapped_column(Double)
    usl: Mapped[float | None] = mapped_column(Double)
    alarm: Mapped[bool] = mapped_column(Boolean)
    alarm_priority: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(128))


class SpcLimits(Base):
    """Phase I limits frozen for a chart: who set them, when, from which baseline."""

    __tablename__ = "spc_limits"
    __table_args__ = (Index("ix_spc_limits_chart_id_set_ms", "chart_id", "set_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chart_id: Mapped[int] = mapped_column(ForeignKey("spc_chart.id", ondelete="CASCADE"))
    centre: Mapped[float] = mapped_column(Double)
    ucl: Mapped[float] = mapped_column(Double)
    lcl: Mapped[float] = mapped_column(Double)
    # variables: σ within (R̄/d2, s̄/c4, MR̄/1.128); attributes: σ of the statistic at sample_size
    sigma: Mapped[float] = mapped_column(Double)
    dispersion_centre: Mapped[float | None] = mapped_column(Double)
    dispersion_ucl: Mapped[float | None] = mapped_column(Double)
    dispersion_lcl: Mapped[float | None] = mapped_column(Double)
    # variables: n of a subgroup; attributes: the mean units per window of the baseline
    sample_size: Mapped[float] = mapped_column(Double)
    baseline_from_ms: Mapped[int] = mapped_column(BigInteger)
    baseline_to_ms: Mapped[int] = mapped_column(BigInteger)
    excluded: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    subgroups_used: Mapped[int] = mapped_column(Integer)
    points_used: Mapped[int] = mapped_column(Integer)
    set_by: Mapped[str] = mapped_column(String(128))
    set_ms: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)


class SpcPoint(Base):
    """One phase II subgroup as plotted: its statistic, dispersion and z against its limits."""

    __tablename__ = "spc_point"
    __table_args__ = (UniqueConstraint("chart_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chart_id: Mapped[int] = mapped_column(ForeignKey("spc_chart.id", ondelete="CASCADE"))
    limits_id: Mapped[int] = mapped_column(ForeignKey("spc_limits.id", ondelete="CASCADE"))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    """The point's time: its last sample (by count) or its window's start (by time)."""
    last_sample_ms: Mapped[int] = mapped_column(BigInteger)
    """Where the next subgroup starts: samples after this (by count) or the next window."""
    statistic: Mapped[float] = mapped_column(Double)
    dispersion: Mapped[float | None] = mapped_column(Double)
    sample_size: Mapped[float] = mapped_column(Double)
    z: Mapped[float] = mapped_column(Double)
    violations: Mapped[int] = mapped_column(Integer)
    recorded_ms: Mapped[int] = mapped_column(BigInteger)


class SpcViolation(Base):
    """A run rule that fired at a point: the rule, the points involved, the alarm it raised."""

    __tablename__ = "spc_violation"
    __table_args__ = (
        UniqueConstraint("chart_id", "rule", "ts_ms"),
        Index("ix_spc_violation_chart_id_ts_ms", "chart_id", "ts_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chart_id: Mapped[int] = mapped_column(ForeignKey("spc_chart.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(16))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[list[dict[str, float]]] = mapped_column(JSON)
    statistic: Mapped[float] = mapped_column(Double)
    alarm_id: Mapped[int | None] = mapped_column(BigInteger)
    recorded_ms: Mapped[int] = mapped_column(BigInteger)


__all__ = [
    "ATTRIBUTES_TYPES",
    "CHART_TYPES",
    "VARIABLES_TYPES",
    "SpcChart",
    "SpcLimits",
    "SpcPoint",
    "SpcViolation",
]
