"""Window aggregation of a sampled signal, with numpy: time-weighted, sample-and-hold.

Report-by-exception means a value is sent when it changes (or on a heartbeat), so a sample
stands for the signal from its timestamp until the next sample. Hence, for each window
``[a, b)`` (windows are aligned to multiples of ``window_ms`` since the epoch and clipped to
the query range ``[start_ms, end_ms)``):

- every sample holds its value from its timestamp until the next sample's timestamp, the last
  one until ``hold_until_ms`` (the query end, or "now" if earlier); the last sample *before*
  the window start carries into the window;
- ``mean`` is the time-weighted mean over the time covered by usable values (good or uncertain
  quality, numeric): Σ value·duration / Σ duration. Time before the first sample is not covered;
- bad-quality samples are left out of every value statistic; the time they hold is ``bad_ms``;
- ``min`` / ``max`` are over the usable values in effect during the window (the carried-in one
  included if it holds for part of the window);
- ``last`` is the value of the most recent sample at or before the window's end (the carried-in
  one included), None if that sample is bad or not numeric;
- ``count`` is the number of samples (any quality) whose timestamp lies in the window;
- ``valued_ms`` / ``bad_ms`` are the durations held by usable and by bad samples.

Booleans are stored as 0/1, so their mean is the fraction of time they were true.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt

from cloud.timeseries.store import AGGREGATES, WindowAggregate

MAX_WINDOWS = 100_000


def window_bounds(start_ms: int, end_ms: int, window_ms: int) -> list[tuple[int, int]]:
    """Epoch-aligned windows covering ``[start_ms, end_ms)``, clipped to it."""
    if window_ms <= 0:
        raise ValueError(f"window must be a positive number of milliseconds, got {window_ms}")
    if end_ms <= start_ms:
        return []
    first = start_ms - start_ms % window_ms
    count = (end_ms - first + window_ms - 1) // window_ms
    if count > MAX_WINDOWS:
        raise ValueError(
            f"{count} windows of {window_ms} ms in the range; ask for at most {MAX_WINDOWS} "
            "(use a larger window or a shorter range)"
        )
    return [(max(a, start_ms), min(a + window_ms, end_ms)) for a in range(first, end_ms, window_ms)]


def aggregate_windows(
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.int16] | npt.NDArray[np.int64],
    windows: list[tuple[int, int]],
    hold_until_ms: int,
    aggregates: Collection[str] = AGGREGATES,
) -> list[WindowAggregate]:
    """Aggregate a signal over windows (semantics in the module docstring).

    ``ts`` must be sorted and may start with the last sample before the first window.
    ``values`` holds NaN where a sample has no numeric value; ``quality`` 2 is bad.
    """
    unknown = set(aggregates) - set(AGGREGATES)
    if unknown:
        raise ValueError(f"unknown aggregates {sorted(unknown)}; choose from {list(AGGREGATES)}")
    n = len(ts)
    ts = np.asarray(ts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    bad = np.asarray(quality, dtype=np.int64) >= 2
    usable = ~bad & ~np.isnan(values)
    # Each sample holds until the next one (the last until hold_until_ms).
    hold_end = np.empty(n, dtype=np.int64)
    if n:
        hold_end[:-1] = ts[1:]
        hold_end[-1] = max(hold_until_ms, int(ts[-1]))
    out: list[WindowAggregate] = []
    for a, b in windows:
        first_in = int(np.searchsorted(ts, a, side="left"))
        stop = int(np.searchsorted(ts, b, side="left"))  # samples with ts < b
        lo = max(first_in - 1, 0)  # include the carried-in sample
        seg_ts = ts[lo:stop]
        seg_start = np.maximum(seg_ts, a)
        seg_end = np.minimum(hold_end[lo:stop], b)
        dt = np.clip(seg_end - seg_start, 0, None)
        seg_usable = usable[lo:stop]
        seg_vals = values[lo:stop]
        valued_dt = np.where(seg_usable, dt, 0)
        valued_ms = int(valued_dt.sum())
        bad_ms = int(np.where(bad[lo:stop], dt, 0).sum())
        in_effect = seg_usable & ((dt > 0) | (seg_ts >= a))
        mean = min_v = max_v = last = None
        count = None
        if "mean" in aggregates and valued_ms > 0:
            mean = float(np.sum(np.where(seg_usable, seg_vals, 0.0) * valued_dt) / valued_ms)
        if in_effect.any():
            chosen = seg_vals[in_effect]
            if "min" in aggregates:
                min_v = float(chosen.min())
            if "max" in aggregates:
                max_v = float(chosen.max())
        if "last" in aggregates and stop > 0 and usable[stop - 1]:
            last = float(values[stop - 1])
        if "count" in aggregates:
            count = stop - first_in
        out.append(WindowAggregate(a, b, mean, min_v, max_v, last, count, valued_ms, bad_ms))
    return out
