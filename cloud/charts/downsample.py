"""Downsampling of a (time, value) series for display, without hiding spikes.

Two pure functions over numpy arrays sorted by time:

``min_max(ts, values, points)``   splits the time span into ``points // 2`` equal buckets and
                                  keeps each bucket's minimum and maximum sample, in time
                                  order: a single-sample spike is a bucket's extreme, so it
                                  always survives.
``lttb(ts, values, points)``      Largest-Triangle-Three-Buckets (Steinarsson, 2013): keeps the
                                  first and last samples and, per bucket, the sample that spans
                                  the largest triangle with its neighbours: shape-preserving,
                                  exactly ``points`` samples.

Both return ``(ts, values)`` unchanged when there are no more than ``points`` samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Times = npt.NDArray[np.int64]
Values = npt.NDArray[np.float64]


def _check(ts: Times, values: Values, points: int) -> None:
    if points < 2:
        raise ValueError(f"points={points}: give at least 2")
    if ts.shape != values.shape or ts.ndim != 1:
        raise ValueError(f"ts {ts.shape} and values {values.shape} must be 1-D of equal length")


def min_max(ts: Times, values: Values, points: int) -> tuple[Times, Values]:
    """At most ``points`` samples: the min and max of each of ``points // 2`` time buckets."""
    _check(ts, values, points)
    if len(ts) <= points:
        return ts, values
    buckets = points // 2
    span = int(ts[-1]) - int(ts[0]) + 1
    bucket = (ts - ts[0]) * buckets // span
    # sort by bucket, then value: a bucket's first row is its min, its last row its max
    order = np.lexsort((values, bucket))
    starts = np.flatnonzero(np.r_[True, bucket[order][1:] != bucket[order][:-1]])
    ends = np.r_[starts[1:], len(order)] - 1
    keep = np.unique(np.concatenate((order[starts], order[ends])))  # sorted = time order
    return ts[keep], values[keep]


def lttb(ts: Times, values: Values, points: int) -> tuple[Times, Values]:
    """Exactly ``points`` samples (or all, if fewer) chosen by Largest-Triangle-Three-Buckets."""
    _check(ts, values, points)
    count = len(ts)
    if count <= points:
        return ts, values
    x = ts.astype(np.float64)
    edges = np.linspace(1, count - 1, points - 1).astype(np.int64)  # inner samples 1 .. n-2
    keep = np.empty(points, dtype=np.int64)
    keep[0], keep[-1] = 0, count - 1
    chosen = 0
    for i in range(points - 2):
        lo, hi = edges[i], edges[i + 1]
        next_lo, next_hi = hi, edges[i + 2] if i + 2 < len(edges) else count
        next_x = x[next_lo:next_hi].mean()
        next_y = values[next_lo:next_hi].mean()
        area = np.abs(
            (x[chosen] - next_x) * (values[lo:hi] - values[chosen])
            - (x[chosen] - x[lo:hi]) * (next_y - values[chosen])
        )
        chosen = int(lo + np.argmax(area))
        keep[i + 1] = chosen
    return ts[keep], values[keep]
