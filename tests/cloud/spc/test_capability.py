"""Process capability (Cp, Cpk, Pp, Ppk) against a published example and hand-derived ones.

Published example: Montgomery, *Introduction to Statistical Quality Control*, section 6.2
(piston rings, specification 74.000 ± 0.05 mm): σ̂ = R̄/d2 = 0.023/2.326 = 0.0099 and
Cp = 0.10 / (6 · 0.0099) = 1.68. The data are in ``test_charts``.
"""

from __future__ import annotations

import math

import pytest

from cloud.spc.capability import capability
from tests.cloud.spc.piston_rings import PISTON_RINGS_PHASE_I

PISTON_RINGS = [value for subgroup in PISTON_RINGS_PHASE_I for value in subgroup]


def test_piston_rings_cp_from_r_bar_matches_montgomery() -> None:
    result = capability(PISTON_RINGS, lsl=73.95, usl=74.05, within="range", subgroup_size=5)
    # The book rounds R̄ to 0.023 and σ̂ to 0.0099 (Cp 1.68); the unrounded R̄ = 0.02284 gives
    # σ̂ = 0.00982 and Cp = 1.697. Both agree within the book's rounding (±0.02).
    assert result.cp is not None
    assert abs(result.cp - 1.68) <= 0.02
    assert round(result.sigma_within, 4) == 0.0098
    assert result.points_used == 125
    assert result.within_method == "range"
    # Cpk: the mean 74.00126 is nearer the USL: (74.05 − 74.00126) / (3 · 0.009819) = 1.655.
    assert result.cpk == pytest.approx((74.05 - result.mean) / (3 * result.sigma_within))
    assert result.cpk == pytest.approx(1.655, abs=5e-4)


def test_piston_rings_pp_ppk_use_the_overall_sample_standard_deviation() -> None:
    result = capability(PISTON_RINGS, lsl=73.95, usl=74.05, within="std_dev", subgroup_size=5)
    # s̄/c4 = 0.009279 / 0.9400 = 0.009871 (within); overall s (ddof = 1) of all 125 = 0.010134,
    # so Pp = 0.10 / (6 · 0.010134) = 1.645 and Ppk = (74.05 − 74.00126) / (3 · 0.010134) = 1.603.
    assert result.sigma_within == pytest.approx(0.009871, abs=5e-6)
    assert result.sigma_overall == pytest.approx(0.010134, abs=5e-6)
    assert result.pp == pytest.approx(0.10 / (6 * result.sigma_overall))
    assert result.pp == pytest.approx(1.645, abs=5e-4)
    assert result.ppk == pytest.approx((74.05 - result.mean) / (3 * result.sigma_overall))
    assert result.ppk == pytest.approx(1.603, abs=5e-4)


def test_moving_range_within_sigma_by_hand() -> None:
    # x = 9 11 10 12 8: x̄ = 10; MR = 2 1 2 4, MR̄ = 2.25, σ_within = 2.25/1.128 = 1.994681;
    # deviations −1 1 0 2 −2, Σd² = 10, s = √(10/4) = 1.581139.
    # LSL 4, USL 16: Cp = 12/(6·1.994681) = 1.002667, Cpk = 6/(3·1.994681) = 1.002667,
    # Pp = 12/(6·1.581139) = 1.264911 = Ppk.
    result = capability([9, 11, 10, 12, 8], lsl=4, usl=16)
    assert result.sigma_within == pytest.approx(1.994681, abs=1e-6)
    assert result.sigma_overall == pytest.approx(1.581139, abs=1e-6)
    assert result.cp == pytest.approx(1.002667, abs=1e-6)
    assert result.cpk == pytest.approx(1.002667, abs=1e-6)
    assert result.pp == pytest.approx(1.264911, abs=1e-6)
    assert result.ppk == pytest.approx(1.264911, abs=1e-6)
    assert result.points_used == 5


def test_one_sided_upper_spec() -> None:
    # Only USL 16 (same data): Cp, Pp undefined; Cpk = 6/(3·1.994681) = 1.002667,
    # Ppk = 6/(3·1.581139) = 1.264911.
    result = capability([9, 11, 10, 12, 8], usl=16)
    assert result.cp is None
    assert result.pp is None
    assert result.cpk == pytest.approx(1.002667, abs=1e-6)
    assert result.ppk == pytest.approx(1.264911, abs=1e-6)


def test_one_sided_lower_spec() -> None:
    # Only LSL 7: Cpk = (10 − 7)/(3·1.994681) = 0.501333, Ppk = 3/(3·1.581139) = 0.632456.
    result = capability([9, 11, 10, 12, 8], lsl=7)
    assert result.cp is None
    assert result.pp is None
    assert result.cpk == pytest.approx(0.501333, abs=1e-6)
    assert result.ppk == pytest.approx(0.632456, abs=1e-6)


def test_trailing_values_that_do_not_fill_a_subgroup_are_not_used() -> None:
    # 7 values in subgroups of 3: the 7th is left out; σ_within = R̄/d2 = ((3−1)+(6−4))/2 / 1.693.
    result = capability([1, 2, 3, 4, 5, 6, 100], lsl=0, usl=10, within="range", subgroup_size=3)
    assert result.points_used == 6
    assert result.mean == pytest.approx(3.5)
    assert result.sigma_within == pytest.approx(2 / 1.693)


def test_histogram_covers_data_and_spec_limits() -> None:
    result = capability(PISTON_RINGS, lsl=73.95, usl=74.05, bins=10)
    edges, counts = result.histogram.edges, result.histogram.counts
    assert len(edges) == len(counts) + 1 == 11
    assert sum(counts) == 125
    assert edges[0] == pytest.approx(73.95)
    assert edges[-1] == pytest.approx(74.05)


def test_no_variation_gives_infinite_capability_with_the_sign_of_the_distance() -> None:
    assert capability([5.0, 5.0, 5.0], lsl=4, usl=6).cpk == math.inf
    assert capability([7.0, 7.0, 7.0], lsl=4, usl=6).cpk == -math.inf


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"values": [], "lsl": 1.0, "usl": 2.0}, "values"),
        ({"values": [1.0], "lsl": 0.0, "usl": 2.0}, "values"),
        ({"values": [1.0, float("nan")], "lsl": 0.0, "usl": 2.0}, "values"),
        ({"values": [1.0, 2.0], "lsl": 2.0, "usl": 2.0}, "usl"),
        ({"values": [1.0, 2.0], "lsl": 3.0, "usl": 2.0}, "usl"),
        ({"values": [1.0, 2.0]}, "usl"),
        ({"values": [1.0, 2.0], "lsl": float("inf")}, "lsl"),
        (
            {"values": [1.0, 2.0], "usl": 3.0, "within": "range", "subgroup_size": 1},
            "subgroup_size",
        ),
        ({"values": [1.0, 2.0], "usl": 3.0, "within": "range", "subgroup_size": 3}, "values"),
        ({"values": [1.0, 2.0], "usl": 3.0, "within": "median"}, "within"),
        ({"values": [1.0] * 22, "usl": 3.0, "within": "range", "subgroup_size": 11}, "n"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        capability(**kwargs)  # type: ignore[arg-type]
