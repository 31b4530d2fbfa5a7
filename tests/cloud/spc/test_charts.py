"""Control-chart constants, subgrouping, phase I limits and phase II points, against worked examples.

Published example: Montgomery, *Introduction to Statistical Quality Control*, the piston-ring
inside diameters (mm) of a forging process, 25 phase I subgroups of 5 (Table 6.3 in the 6th/7th
editions; also the ``pistonrings`` data set of the R package qcc). The book reports
x̿ = 74.001, R̄ = 0.023 and X̄ chart limits 74.014 / 73.988 (and, with the rounded R̄,
UCL(R) = 2.114 · 0.023 = 0.049). The X̄-S chart of the same data has the same X̄ limits to
three decimals. The other examples are constructed here with their answers derived by hand in
the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cloud.spc.charts import (
    c_limits,
    i_mr_limits,
    monitor_attributes,
    monitor_variables,
    np_limits,
    p_limits,
    subgroups_by_count,
    subgroups_by_time,
    u_limits,
    xbar_r_limits,
    xbar_s_limits,
)
from cloud.spc.constants import TABLE, c4, constants_for, s_factors
from tests.cloud.spc.piston_rings import PISTON_RINGS_PHASE_I, PISTON_RINGS_PHASE_II

# --- constants -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "a3", "b3", "b4"),
    [
        # Published X̄-S factors (Montgomery Appendix VI; ASTM STP 15D), to their 3 decimals.
        (2, 2.659, 0.000, 3.267),
        (3, 1.954, 0.000, 2.568),
        (5, 1.427, 0.000, 2.089),
        (6, 1.287, 0.030, 1.970),
        (7, 1.182, 0.118, 1.882),
        (10, 0.975, 0.284, 1.716),
    ],
)
def test_s_factors_derived_from_c4_match_published_tables(
    n: int, a3: float, b3: float, b4: float
) -> None:
    k = constants_for(n)
    assert (round(k.a3, 3), round(k.b3, 3), round(k.b4, 3)) == (a3, b3, b4)


def test_c4_formula_agrees_with_the_table_and_extends_past_it() -> None:
    for n, row in TABLE.items():
        assert round(c4(n), 4) == row.c4
    # Published for n = 25: c4 = 0.9896, A3 = 0.606, B3 = 0.565, B4 = 1.435.
    big = s_factors(25)
    assert (round(big.c4, 4), round(big.a3, 3), round(big.b3, 3), round(big.b4, 3)) == (
        0.9896,
        0.606,
        0.565,
        1.435,
    )


@pytest.mark.parametrize("n", [0, 1, 11, 25])
def test_constants_outside_the_table_raise_naming_n(n: int) -> None:
    with pytest.raises(ValueError, match=rf"^n: subgroup size {n} is outside"):
        constants_for(n)


# --- subgrouping ---------------------------------------------------------------------------------


def test_subgroups_by_count_keep_a_short_remainder_as_leftover() -> None:
    grouping = subgroups_by_count([1, 2, 3, 4, 5, 6, 7], 3)
    assert [g.values for g in grouping.subgroups] == [(1, 2, 3), (4, 5, 6)]
    assert [g.index for g in grouping.subgroups] == [0, 1]
    assert grouping.leftover == (7.0,)


def test_subgroups_by_time_use_each_windows_first_values_and_skip_incomplete_windows() -> None:
    samples = [
        (2_500, 9.0),  # window 2000: first of the window after sorting by time
        (100, 1.0),
        (900, 4.0),  # window 0: 4 values, the 4th in time (900) is not used
        (300, 2.0),
        (600, 3.0),
        (1_200, 5.0),  # window 1000: only 2 values → incomplete
        (1_800, 6.0),
        (2_600, 10.0),
        (2_999, 11.0),
    ]
    grouping = subgroups_by_time(samples, window_ms=1_000, size=3)
    assert [(g.window_start_ms, g.values) for g in grouping.subgroups] == [
        (0, (1.0, 2.0, 3.0)),
        (2_000, (9.0, 10.0, 11.0)),
    ]
    assert grouping.incomplete_windows == (1_000,)


def test_subgroups_by_time_align_windows_to_the_origin() -> None:
    grouping = subgroups_by_time(
        [(50, 1.0), (140, 2.0), (160, 3.0)], window_ms=100, size=1, origin_ms=50
    )
    assert [(g.window_start_ms, g.values) for g in grouping.subgroups] == [
        (50, (1.0,)),
        (150, (3.0,)),
    ]


# --- phase I: variables charts -------------------------------------------------------------------


def test_xbar_r_piston_rings_match_montgomery() -> None:
    limits = xbar_r_limits(PISTON_RINGS_PHASE_I)
    assert round(limits.location.centre, 3) == 74.001
    assert round(limits.dispersion.centre, 3) == 0.023
    assert round(limits.location.ucl, 3) == 74.014
    assert round(limits.location.lcl, 3) == 73.988
    # The book's 0.049 is D4 times the rounded R̄ (2.114 · 0.023 = 0.0486); the unrounded
    # R̄ = 0.02284 gives 0.0483. Both agree within the book's last digit.
    assert abs(limits.dispersion.ucl - 0.049) <= 0.001
    assert limits.dispersion.lcl == 0.0  # D3 = 0 for n = 5
    assert limits.sigma_within == pytest.approx(limits.dispersion.centre / 2.326)
    assert limits.used == tuple(range(25))
    assert limits.excluded == ()


def test_xbar_s_piston_rings_match_the_same_xbar_limits() -> None:
    limits = xbar_s_limits(PISTON_RINGS_PHASE_I)
    assert round(limits.location.ucl, 3) == 74.014
    assert round(limits.location.lcl, 3) == 73.988
    # s̄ computed from the data above is 0.00928; UCL(S) = B4·s̄ = 2.089 · 0.00928 = 0.0194,
    # LCL(S) = B3·s̄ = 0 for n = 5; σ = s̄/c4 = 0.00928/0.9400 = 0.00987.
    assert limits.dispersion.centre == pytest.approx(0.009279, abs=5e-6)
    assert limits.dispersion.ucl == pytest.approx(0.019383, abs=5e-6)
    assert limits.dispersion.lcl == 0.0
    assert limits.sigma_within == pytest.approx(0.009871, abs=5e-6)


def test_xbar_s_accepts_subgroups_larger_than_the_table() -> None:
    # 12 values 1..12 per subgroup: s = √13 = 3.6056 in each, so s̄ = 3.6056, UCL(S) = B4·s̄.
    subgroups = [[float(v + shift) for v in range(1, 13)] for shift in (0, 1, 2)]
    limits = xbar_s_limits(subgroups)
    assert limits.subgroup_size == 12
    k = s_factors(12)
    assert limits.dispersion.centre == pytest.approx(math.sqrt(13))
    assert limits.dispersion.ucl == pytest.approx(k.b4 * math.sqrt(13))
    assert limits.location.centre == pytest.approx(7.5)


def test_limits_accept_subgroups_from_the_subgrouping_functions() -> None:
    flat = [value for subgroup in PISTON_RINGS_PHASE_I for value in subgroup]
    grouping = subgroups_by_count(flat, 5)
    assert xbar_r_limits(grouping.subgroups) == xbar_r_limits(PISTON_RINGS_PHASE_I)
    points = monitor_variables(grouping.subgroups, xbar_s_limits(grouping.subgroups))
    assert len(points.location) == len(points.dispersion) == 25


def test_xbar_r_phase_i_exclusion_restores_the_baseline() -> None:
    # Subgroup 25 (index 25) is a gross assignable cause; excluded, the limits are the book's.
    with_spike = [*PISTON_RINGS_PHASE_I, [74.2, 74.3, 74.1, 74.25, 74.15]]
    polluted = xbar_r_limits(with_spike)
    cleaned = xbar_r_limits(with_spike, exclude=[25])
    assert polluted.location.ucl > 74.02
    assert cleaned.excluded == (25,)
    assert cleaned.used == tuple(range(25))
    assert cleaned.location == xbar_r_limits(PISTON_RINGS_PHASE_I).location


def test_xbar_r_phase_ii_flags_the_shifted_subgroups() -> None:
    limits = xbar_r_limits(PISTON_RINGS_PHASE_I)
    points = monitor_variables(PISTON_RINGS_PHASE_II, limits)
    # Subgroup means by hand: sample 37 (index 11) (74.015+74.020+74.024+74.005+74.019)/5 =
    # 74.0166, sample 38 74.0196, sample 39 74.0234: above UCL 74.0144. Sample 40 is 74.0128 and
    # samples 26..36 are at most 74.0126: inside. All ranges are below UCL(R) = 0.0483.
    assert [p.index for p in points.location if p.out_of_control] == [11, 12, 13]
    assert points.location[13].statistic == pytest.approx(74.0234)
    assert not any(p.out_of_control for p in points.dispersion)
    assert points.dispersion[0].statistic == pytest.approx(74.030 - 73.986)


def test_i_mr_limits_by_hand() -> None:
    # x = 10 12 11 13 12 14: x̄ = 72/6 = 12; MR = 2 1 2 1 2, MR̄ = 8/5 = 1.6;
    # UCL = 12 + 2.660·1.6 = 16.256, LCL = 7.744; UCL(MR) = 3.267·1.6 = 5.2272; σ = 1.6/1.128.
    limits = i_mr_limits([10, 12, 11, 13, 12, 14])
    assert limits.location.centre == pytest.approx(12.0)
    assert limits.location.ucl == pytest.approx(16.256)
    assert limits.location.lcl == pytest.approx(7.744)
    assert limits.dispersion.centre == pytest.approx(1.6)
    assert limits.dispersion.ucl == pytest.approx(5.2272)
    assert limits.dispersion.lcl == 0.0
    assert limits.sigma_within == pytest.approx(1.6 / 1.128)


def test_i_mr_exclusion_drops_the_point_and_both_of_its_moving_ranges() -> None:
    # Index 2 (50) excluded: used 10 12 _ 13 12 14 → x̄ = 61/5 = 12.2; moving ranges only
    # between used neighbours: |12−10| = 2, |12−13| = 1, |14−12| = 2 → MR̄ = 5/3.
    limits = i_mr_limits([10, 12, 50, 13, 12, 14], exclude=[2])
    assert limits.used == (0, 1, 3, 4, 5)
    assert limits.excluded == (2,)
    assert limits.location.centre == pytest.approx(12.2)
    assert limits.dispersion.centre == pytest.approx(5 / 3)
    assert limits.location.ucl == pytest.approx(12.2 + 2.660 * 5 / 3)


def test_i_mr_phase_ii_points() -> None:
    limits = i_mr_limits([10, 12, 11, 13, 12, 14])
    points = monitor_variables([12.0, 17.0, 11.0], limits)
    assert [p.out_of_control for p in points.location] == [False, True, False]
    # MR: |17−12| = 5 (inside 5.2272), |11−17| = 6 (beyond); the first point has no MR.
    assert [(p.index, p.statistic, p.out_of_control) for p in points.dispersion] == [
        (1, 5.0, False),
        (2, 6.0, True),
    ]


# --- phase I: attributes charts ------------------------------------------------------------------


def test_p_chart_with_varying_sample_sizes_has_limits_per_subgroup() -> None:
    # p̄ = (5+8+3+12)/(100+200+100+200) = 28/600 = 0.046667.
    # n = 100: 3·√(0.046667·0.953333/100) = 0.063277 → UCL 0.109944, LCL −0.0166 → 0.
    # n = 200: 3·√(0.046667·0.953333/200) = 0.044744 → UCL 0.091410, LCL 0.001923.
    limits = p_limits([5, 8, 3, 12], [100, 200, 100, 200])
    assert limits.centre == pytest.approx(28 / 600)
    small, large = limits.per_subgroup[0], limits.per_subgroup[1]
    assert small.ucl == pytest.approx(0.109944, abs=1e-6)
    assert small.lcl == 0.0
    assert large.ucl == pytest.approx(0.091410, abs=1e-6)
    assert large.lcl == pytest.approx(0.001923, abs=1e-6)
    assert limits.per_subgroup[2] == small
    assert limits.per_subgroup[3] == large


def test_p_chart_phase_ii_recomputes_limits_for_new_sample_sizes() -> None:
    limits = p_limits([5, 8, 3, 12], [100, 200, 100, 200])
    points = monitor_attributes([15, 12, 0], limits, sample_sizes=[100, 200, 200])
    # 15/100 = 0.15 > 0.109944; 12/200 = 0.06 inside; 0/200 = 0 < LCL 0.001923 (n = 200).
    assert [p.statistic for p in points] == pytest.approx([0.15, 0.06, 0.0])
    assert [p.out_of_control for p in points] == [True, False, True]


def test_p_chart_exclusion() -> None:
    # Without subgroup 1 (40 of 100): p̄ = (5+3)/(100+100) = 0.04.
    limits = p_limits([5, 40, 3], [100, 100, 100], exclude=[1])
    assert limits.centre == pytest.approx(0.04)
    assert limits.used == (0, 2)
    assert limits.excluded == (1,)


def test_np_chart_by_hand() -> None:
    # n = 50, defectives 2 4 3 3: p̄ = 12/200 = 0.06, n·p̄ = 3, 3·√(3·0.94) = 5.037857.
    limits = np_limits([2, 4, 3, 3], 50)
    only = limits.per_subgroup[0]
    assert only.centre == pytest.approx(3.0)
    assert only.ucl == pytest.approx(8.037857, abs=1e-6)
    assert only.lcl == 0.0
    points = monitor_attributes([9, 3], limits)
    assert [p.out_of_control for p in points] == [True, False]


def test_c_chart_with_an_excluded_spike() -> None:
    # Without the 30: c̄ = (3+5+4+6+2)/5 = 4, UCL = 4 + 3·2 = 10, LCL = max(0, 4 − 6) = 0.
    limits = c_limits([3, 5, 4, 6, 2, 30], exclude=[5])
    assert limits.centre == pytest.approx(4.0)
    assert limits.per_subgroup[0].ucl == pytest.approx(10.0)
    assert limits.per_subgroup[0].lcl == 0.0
    points = monitor_attributes([3, 5, 4, 6, 2, 30], limits)
    assert [p.index for p in points if p.out_of_control] == [5]


def test_u_chart_with_varying_units() -> None:
    # ū = (4+6+2+8)/(2+3+1+4) = 2; n = 1: 2 ± 3·√2 → UCL 6.242641, LCL 0 (clipped);
    # n = 4: 2 ± 3·√0.5 → UCL 4.121320, LCL −0.1213 → 0.
    limits = u_limits([4, 6, 2, 8], [2, 3, 1, 4])
    assert limits.centre == pytest.approx(2.0)
    assert limits.per_subgroup[2].ucl == pytest.approx(6.242641, abs=1e-6)
    assert limits.per_subgroup[3].ucl == pytest.approx(4.121320, abs=1e-6)
    assert all(lim.lcl == 0.0 for lim in limits.per_subgroup)
    points = monitor_attributes([5, 7], limits, sample_sizes=[1, 1])
    assert [p.out_of_control for p in points] == [False, True]


# --- bad input -----------------------------------------------------------------------------------


def test_xbar_r_subgroup_size_outside_the_table_names_n() -> None:
    with pytest.raises(ValueError, match=r"^n: subgroup size 11"):
        xbar_r_limits([list(np.arange(11.0)), list(np.arange(11.0))])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: xbar_r_limits([]), "subgroups"),
        (lambda: xbar_r_limits([[1.0, 2.0], [1.0, 2.0, 3.0]]), "subgroups"),
        (lambda: xbar_s_limits([[1.0], [2.0]]), "subgroups"),
        (lambda: xbar_r_limits([[1.0, 2.0], [float("nan"), 2.0]]), "subgroups"),
        (lambda: xbar_r_limits([[1.0, 2.0], [3.0, 4.0]], exclude=[2]), "exclude"),
        (lambda: xbar_r_limits([[1.0, 2.0]], exclude=[0]), "exclude"),
        (lambda: i_mr_limits([]), "values"),
        (lambda: i_mr_limits([1.0, 2.0, 3.0], exclude=[1]), "exclude"),
        (lambda: p_limits([], []), "defectives"),
        (lambda: p_limits([1, 2], [10]), "sample_sizes"),
        (lambda: p_limits([11], [10]), "defectives"),
        (lambda: u_limits([1], [0]), "sample_sizes"),
        (lambda: np_limits([1], 0), "sample_size"),
        (lambda: c_limits([-1]), "defects"),
        (lambda: subgroups_by_time([], window_ms=0, size=2), "window_ms"),
        (lambda: subgroups_by_count([1.0], 0), "size"),
    ],
)
def test_bad_input_names_the_argument(call: object, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        call()  # type: ignore[operator]


def test_phase_ii_needs_matching_subgroup_size_and_sample_sizes() -> None:
    with pytest.raises(ValueError, match=r"^data: subgroup size 4 differs"):
        monitor_variables([[1.0, 2.0, 3.0, 4.0]], xbar_r_limits(PISTON_RINGS_PHASE_I))
    with pytest.raises(ValueError, match=r"^sample_sizes: "):
        monitor_attributes([1], p_limits([1], [10]))
