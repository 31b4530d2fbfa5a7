"""The time-series store interface and the values that cross it.

One narrow interface, ``TimeSeriesStore``: write a batch of points (inside the caller's
transaction when given a connection), query a range raw or in aggregation windows, and read the
latest value of series. Series are identified by the integer id of their ``ts_series`` row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection

from protocols.quality import Quality

QUALITY_CODE: dict[Quality, int] = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}
QUALITY_NAME: dict[int, str] = {code: q.value for q, code in QUALITY_CODE.items()}
BAD = QUALITY_CODE[Quality.BAD]

AGGREGATES: tuple[str, ...] = ("mean", "min", "max", "last", "count")


@dataclass(frozen=True, slots=True)
class Point:
    """One sample bound to its series. ``value`` is None for strings (``text_value``) and bad reads."""

    series_id: int
    ts_ms: int
    value: float | None
    quality: int = 0
    text_value: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The newest sample of a series by source time."""

    series_id: int
    ts_ms: int
    value: float | None
    text_value: str | None
    quality: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class WindowAggregate:
    """Aggregates of one window ``[start_ms, end_ms)``; see ``cloud.timeseries.aggregate``.

    Fields not asked for are None. ``valued_ms`` is the time covered by usable values,
    ``bad_ms`` the time covered by bad-quality samples.
    """

    start_ms: int
    end_ms: int
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    last: float | None = None
    count: int | None = None
    valued_ms: int = 0
    bad_ms: int = 0


@dataclass(frozen=True, slots=True)
class RawSample:
    ts_ms: int
    value: float | None
    text_value: str | None
    quality: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class RangeResult:
    """Either raw ``samples`` (no window asked for) or aggregation ``windows``."""

    series_id: int
    start_ms: int
    end_ms: int
    window_ms: int | None
    samples: list[RawSample] = field(default_factory=list)
    windows: list[WindowAggregate] = field(default_factory=list)


class TimeSeriesStore(Protocol):
    """What ingest, the API and the analytics need from a time-series backend."""

    def write_batch(self, points: Sequence[Point], conn: Connection | None = None) -> int:
        """Append points and advance the latest values; returns the number written.

        With ``conn`` the write joins that connection's open transaction.
        """
        ...

    def range_query(
        self,
        series_id: int,
        start_ms: int,
        end_ms: int,
        window_ms: int | None,
        aggregates: Collection[str] = AGGREGATES,
    ) -> RangeResult:
        """Samples in ``[start_ms, end_ms)``: raw if ``window_ms`` is None, else aggregated."""
        ...

    def latest(self, series_ids: Iterable[int]) -> dict[int, LatestValue]:
        """The latest value of each series that has one."""
        ...
