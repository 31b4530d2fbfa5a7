"""Health index of a machine, 100 healthy … 0 failed, from its features against its own baseline.

**Baseline.** Per feature, from the machine's own early windows (at least ``MIN_BASELINE``
finite values): the centre is the median and the spread the robust scale
``1.4826 · MAD`` (the standard deviation for Gaussian scatter), floored at
``SPREAD_FLOOR × |median|`` (and 1e-9) so that an unusually steady baseline does not turn the
smallest change into an alarm.

**One feature.** Only a rise is damage (vibration features do not get healthier by falling):
``z = max(0, (x − centre) / spread)``; the first ``Z_ALLOWED`` spreads are ordinary scatter; beyond
them the damage saturates towards 1: ``d = 1 − exp(−(z − Z_ALLOWED) / Z_SCALE)``
(z = 5 → 0.28, z = 10 → 0.69, z = 20 → 0.94).

**Combined.** The features' damages are averaged with the weights ``FEATURE_WEIGHTS`` (by the
feature's name or its suffix: ``rms`` 0.4, ``peak``, ``crest_factor``, ``kurtosis`` 0.2 each). A
feature name that ends in none of ``_peak``, ``_crest_factor``, ``_kurtosis`` is an overall
velocity RMS (the convention of the wire's ``vibration`` role), weight 0.4.

When the machine's vibration class is given, the overall RMS measured against the zone
boundaries dominates: ``D_zone = clip((rms − r₀) / (C/D − r₀), 0, 1)`` with
``r₀ = min(centre + Z_ALLOWED · spread, B/C)`` of the RMS baseline — the share of the margin from
the top of the machine's own ordinary scatter (or from B/C, for a machine that started in zone C)
to the C/D boundary that is used up; with several RMS features, the highest counts. The index is then
``100 · (1 − D_zone) · (1 − FEATURE_SHARE_WITH_ZONES · D_features)``: 0 at or past C/D whatever
the other features say, and the impulsive features (crest factor, kurtosis: early signs of a
bearing defect) can take off at most half before the RMS moves. Without a class the index is
``100 · (1 − D_features)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cloud.maintenance.zones import VibrationClass

__all__ = ["Baseline", "baseline_of", "feature_kind", "health_index"]

MIN_BASELINE = 5
MAD_TO_SIGMA = 1.4826
SPREAD_FLOOR = 0.05
Z_ALLOWED = 3.0
Z_SCALE = 6.0
FEATURE_SHARE_WITH_ZONES = 0.5
FEATURE_WEIGHTS: Mapping[str, float] = {
    "rms": 0.4,
    "peak": 0.2,
    "crest_factor": 0.2,
    "kurtosis": 0.2,
}
_NON_RMS = ("peak", "crest_factor", "kurtosis")


@dataclass(frozen=True, slots=True)
class Baseline:
    """Per feature: ``(centre, spread)`` from the machine's own early windows."""

    features: Mapping[str, tuple[float, float]]


def feature_kind(name: str) -> str:
    """``rms``, ``peak``, ``crest_factor`` or ``kurtosis``: what a feature (or metric) name holds."""
    for kind in _NON_RMS:
        if name == kind or name.endswith(f"_{kind}"):
            return kind
    return "rms"


def baseline_of(features: Mapping[str, Sequence[float]]) -> Baseline:
    """The baseline of each feature from its early values (median and floored robust scale)."""
    if not features:
        raise ValueError("baseline_of: give at least one feature's early values")
    out: dict[str, tuple[float, float]] = {}
    for name, values in features.items():
        array = np.asarray(values, dtype=np.float64)
        array = array[np.isfinite(array)]
        if array.size < MIN_BASELINE:
            raise ValueError(
                f"baseline_of: feature {name!r} has {array.size} finite values, need at least "
                f"{MIN_BASELINE}; wait for more windows before computing a baseline"
            )
        centre = float(np.median(array))
        mad = float(np.median(np.abs(array - centre)))
        spread = max(MAD_TO_SIGMA * mad, SPREAD_FLOOR * abs(centre), 1e-9)
        out[name] = (centre, spread)
    return Baseline(features=out)


def _feature_damage(value: float, centre: float, spread: float) -> float:
    z = max(0.0, (value - centre) / spread)
    return 1.0 - math.exp(-max(0.0, z - Z_ALLOWED) / Z_SCALE)


def health_index(
    latest: Mapping[str, float],
    baseline: Baseline,
    *,
    vibration_class: VibrationClass | None = None,
) -> float:
    """100 healthy … 0 failed (see the module docstring for the normalisation and weights)."""
    used = [
        name for name, value in latest.items() if name in baseline.features and math.isfinite(value)
    ]
    if not used:
        raise ValueError(
            "health_index: no feature has both a finite latest value and a baseline "
            f"(latest: {sorted(latest)}, baseline: {sorted(baseline.features)})"
        )
    weighted = 0.0
    total_weight = 0.0
    for name in used:
        weight = FEATURE_WEIGHTS[feature_kind(name)]
        centre, spread = baseline.features[name]
        weighted += weight * _feature_damage(latest[name], centre, spread)
        total_weight += weight
    feature_damage = weighted / total_weight
    rms_names = [name for name in used if feature_kind(name) == "rms"]
    if vibration_class is None or not rms_names:
        return _clamp(100.0 * (1.0 - feature_damage))
    zone_damage = max(
        _zone_damage(latest[name], *baseline.features[name], vibration_class) for name in rms_names
    )
    return _clamp(100.0 * (1.0 - zone_damage) * (1.0 - FEATURE_SHARE_WITH_ZONES * feature_damage))


def _zone_damage(rms: float, centre: float, spread: float, cls: VibrationClass) -> float:
    if rms >= cls.c_d:
        return 1.0
    start = min(centre + Z_ALLOWED * spread, cls.b_c)
    return min(max((rms - start) / (cls.c_d - start), 0.0), 1.0)


def _clamp(index: float) -> float:
    return min(max(index, 0.0), 100.0)
