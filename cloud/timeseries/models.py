"""Tables of the SQL time-series store: series definitions, samples, the latest value and the
per-minute min/max roll-up that long-window charts read (``ts_minute``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db import Base


class TsSeries(Base):
    """One metric of one device of one edge: what its samples mean."""

    __tablename__ = "ts_series"
    __table_args__ = (UniqueConstraint("edge", "device", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    edge: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(32))
    data_type: Mapped[str] = mapped_column(String(16), default="float64")
    role: Mapped[str] = mapped_column(String(32), default="info")
    low_limit: Mapped[float | None] = mapped_column(Double)
    high_limit: Mapped[float | None] = mapped_column(Double)
    description: Mapped[str | None] = mapped_column(Text)


# Samples: no primary key and no foreign key, so that COPY appends at full speed.
# quality: 0 good, 1 uncertain, 2 bad. value is NULL for strings (text_value) and bad readings.
ts_sample = Table(
    "ts_sample",
    Base.metadata,
    Column("series_id", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("value", Double, nullable=True),
    Column("text_value", Text, nullable=True),
    Column("quality", SmallInteger, nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_ts_sample_series_id_ts", "series_id", "ts"),
)


class TsLatest(Base):
    """The newest sample of each series (by source timestamp, not by arrival)."""

    __tablename__ = "ts_latest"

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Double)
    text_value: Mapped[str | None] = mapped_column(Text)
    quality: Mapped[int] = mapped_column(SmallInteger)
    reason: Mapped[str | None] = mapped_column(Text)


class TsMinute(Base):
    """The good numeric samples of one series in one minute, rolled up: how many, and the
    smallest and largest with the earliest time each was seen (kept by ``SqlTimeSeriesStore``
    with the samples: ``cloud.timeseries.rollup``).

    ``minute_ms`` is the sample time floored to a multiple of 60,000. Only samples of quality
    good with a numeric value count: the same filter as the chart query.
    """

    __tablename__ = "ts_minute"

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    minute_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer)
    vmin: Mapped[float] = mapped_column(Double)
    vmin_ts: Mapped[int] = mapped_column(BigInteger)
    vmax: Mapped[float] = mapped_column(Double)
    vmax_ts: Mapped[int] = mapped_column(BigInteger)
