"""Condition-monitoring features of one vibration waveform window: RMS, peak, crest factor, kurtosis.

The edge publishes these four numbers per window instead of the window itself, as metrics named
``f"{tag}_{suffix}"`` for each suffix in :data:`FEATURE_SUFFIXES` (role ``vibration``; ``rms`` and
``peak`` in the tag's unit, ``crest_factor`` and ``kurtosis`` without unit).

- ``rms`` is ``sqrt(mean(x²))`` about zero, so a velocity window gives the overall velocity RMS
  that ISO 20816 zones are drawn for.
- ``crest_factor`` is ``peak / rms`` (√2 for a sine; 0 for an all-zero window).
- ``kurtosis`` is Pearson's fourth standardised moment about the mean, ``m4 / m2²`` (3 for
  Gaussian noise, 1.5 for a sine; not the excess kurtosis). Impacts from a bearing defect raise it.
  A window without any spread (constant) has no defined kurtosis: it is reported as 0.

:class:`WaveformError` (a ``ValueError``) is raised for a window that cannot give features (empty,
not one-dimensional, or holding NaN/infinity); the caller turns it into bad-quality samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocols.profile import WAVEFORM_FEATURES
from protocols.quality import Quality

__all__ = [
    "FEATURE_SUFFIXES",
    "WaveformError",
    "WaveformWindow",
    "WindowFeatures",
    "feature_metric",
    "window_features",
]

FEATURE_SUFFIXES: tuple[str, ...] = WAVEFORM_FEATURES  # ("rms", "peak", "crest_factor", "kurtosis")


class WaveformError(ValueError):
    """A waveform window from which no features can be computed; the message says why."""


@dataclass(frozen=True, slots=True)
class WaveformWindow:
    """One read of a waveform tag as a driver delivers it: the window, its time and quality.

    ``values`` are engineering values (scale and offset applied), or None when the read was
    bad; ``ts_ms`` is the window's source timestamp, which tells a new window from one seen before.
    """

    tag: str
    ts_ms: int
    values: npt.NDArray[np.float64] | None
    quality: Quality = Quality.GOOD
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """The features of one window, in the tag's unit where they have one."""

    rms: float  # sqrt(mean(x^2)), the tag's unit
    peak: float  # max |x|
    crest_factor: float  # peak / rms (0 for an all-zero window)
    kurtosis: float  # fourth standardised moment (Pearson; 3.0 for a Gaussian), not excess

    def value(self, suffix: str) -> float:
        """The feature named by one of :data:`FEATURE_SUFFIXES`."""
        if suffix not in FEATURE_SUFFIXES:
            raise KeyError(
                f"unknown waveform feature {suffix!r}; known: {', '.join(FEATURE_SUFFIXES)}"
            )
        return float(getattr(self, suffix))


def feature_metric(tag: str, suffix: str) -> str:
    """The published metric name of one feature of a waveform tag."""
    return f"{tag}_{suffix}"


def window_features(samples: npt.ArrayLike) -> WindowFeatures:
    """Compute the features of one window of samples (any real numeric sequence)."""
    try:
        window = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise WaveformError(f"waveform window is not a sequence of numbers: {exc}") from exc
    if window.ndim != 1:
        raise WaveformError(f"waveform window must be one-dimensional, got shape {window.shape}")
    if window.size == 0:
        raise WaveformError("waveform window is empty")
    if not np.all(np.isfinite(window)):
        bad = int(np.count_nonzero(~np.isfinite(window)))
        raise WaveformError(f"waveform window holds {bad} NaN/infinite value(s) of {window.size}")
    rms = math.sqrt(float(np.mean(np.square(window))))
    peak = float(np.max(np.abs(window)))
    crest = peak / rms if rms > 0.0 else 0.0
    centred = window - float(np.mean(window))
    m2 = float(np.mean(np.square(centred)))
    m4 = float(np.mean(np.square(np.square(centred))))
    kurtosis = m4 / (m2 * m2) if m2 > 0.0 else 0.0
    return WindowFeatures(rms=rms, peak=peak, crest_factor=crest, kurtosis=kurtosis)
