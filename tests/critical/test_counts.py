"""Exact counts T, T', G against exact-arithmetic references (the enumerator checks are elsewhere)."""

from math import comb, factorial

import pytest

from symlab.critical import (
    bell_number,
    count_global_minima_subspaces,
    count_symmetry_induced_subspaces,
    stirling2,
    subspace_kinds,
)
from symlab.critical.counts import stirling2_row

# Worked values (m = r, ..., r + 5) from the project's paper note, derived independently.
TABLE_T = {
    1: [1, 3, 7, 15, 31, 63],
    2: [2, 12, 50, 180, 602, 1932],
    3: [6, 60, 390, 2100, 10206, 46620],
    4: [24, 360, 3360, 25200, 166824, 1020600],
    5: [120, 2520, 31920, 317520, 2739240, 21538440],
}
TABLE_T_ZERO_SUM = {
    1: [1, 3, 10, 37, 151, 674],
    2: [2, 12, 62, 320, 1712, 9604],
    3: [6, 60, 450, 3120, 21336, 147756],
    4: [24, 360, 3720, 33600, 287784, 2424744],
    5: [120, 2520, 34440, 394800, 4160520, 42106680],
}
TABLE_G = {
    1: [1, 1, 1, 1, 1, 1],
    2: [2, 6, 14, 30, 62, 126],
    3: [6, 36, 150, 540, 1806, 5796],
    4: [24, 240, 1560, 8400, 40824, 186480],
    5: [120, 1800, 16800, 126000, 834120, 5103000],
}


@pytest.mark.parametrize("r", range(1, 6))
def test_worked_table(r):
    ms = range(r, r + 6)
    assert [count_global_minima_subspaces(r, m) for m in ms] == TABLE_T[r]
    assert [
        count_global_minima_subspaces(r, m, zero_sum_groups=True) for m in ms
    ] == TABLE_T_ZERO_SUM[r]
    assert [count_symmetry_induced_subspaces(r, m) for m in ms] == TABLE_G[r]


def test_stirling_recurrence_matches_inclusion_exclusion_and_bell():
    for n in range(0, 40):
        row = stirling2_row(n)
        assert row == [stirling2(n, k) for k in range(n + 1)]
        assert bell_number(n) == sum(row)
    assert [bell_number(n) for n in range(9)] == [1, 1, 2, 5, 15, 52, 203, 877, 4140]
    assert stirling2(3, 5) == 0 and stirling2(0, 0) == 1 and stirling2(4, 0) == 0


def test_closed_forms_agree_with_stirling_sums():
    for r in range(1, 8):
        for m in range(r, r + 12):
            row_m, row_m1 = stirling2_row(m), stirling2_row(m + 1)
            g = factorial(r) * row_m[r]
            t = factorial(r) * row_m1[r + 1]
            # T = sum over the number k of zero-type neurons of C(m, k) G(r, m - k)
            by_k = sum(
                comb(m, k) * factorial(r) * stirling2_row(m - k)[r] for k in range(m - r + 1)
            )
            # T' = sum over g free groups of S(m, r + g) (r + g)! / g!
            by_g = sum(row_m[r + q] * factorial(r + q) // factorial(q) for q in range(m - r + 1))
            assert count_symmetry_induced_subspaces(r, m) == g
            assert count_global_minima_subspaces(r, m) == t == by_k
            assert count_global_minima_subspaces(r, m, zero_sum_groups=True) == by_g


def test_exact_for_large_sizes():
    g = count_symmetry_induced_subspaces(50, 400)
    t = count_global_minima_subspaces(50, 400)
    assert isinstance(g, int) and isinstance(t, int)
    assert g == factorial(50) * stirling2_row(400)[50]
    assert t == factorial(50) * stirling2_row(401)[51]
    assert g.bit_length() > 2000  # far beyond float range: no overflow, no rounding
    # vast overparameterisation: G(r, m) ~ r^m
    assert abs(count_symmetry_induced_subspaces(3, 300) / 3**300 - 1) < 1e-30


def test_figure4_case_m_equals_r_plus_one():
    # Şimşek et al. Fig. 4: one vanishing output weight (blue) or two identical incoming (green)
    for r in range(1, 10):
        blue, green = (r + 1) * factorial(r), comb(r + 1, 2) * factorial(r)
        assert count_global_minima_subspaces(r, r + 1) == blue + green
        assert count_global_minima_subspaces(r, r + 1, zero_sum_groups=True) == blue + green
    assert count_global_minima_subspaces(
        2, 4, zero_sum_groups=True
    ) > count_global_minima_subspaces(2, 4)


def test_mild_overparameterisation_ratio():
    # G(r*-1, r*+h) / T(r*, r*+h): saddles dominate for small h (paper note's table)
    expected = {(5, 0): 2.0, (5, 1): 0.62, (10, 1): 1.75, (10, 2): 0.92, (20, 5): 0.85}
    for (r_star, h), value in expected.items():
        ratio = count_symmetry_induced_subspaces(
            r_star - 1, r_star + h
        ) / count_global_minima_subspaces(r_star, r_star + h)
        assert round(ratio, 2) == value


def test_kinds_sum_to_counts_and_dimensions():
    kinds = subspace_kinds(2, 4, input_dim=2)
    assert [(k.free_groups, k.count, k.dimension) for k in kinds] == [
        (0, 14, 2),
        (1, 24, 3),
        (2, 12, 4),
    ]
    for r in range(1, 5):
        for m in range(r, r + 6):
            for zero_sum in (False, True):
                kinds = subspace_kinds(r, m, 3, zero_sum_groups=zero_sum, bias=True, output_dim=2)
                total = count_global_minima_subspaces(r, m, zero_sum_groups=zero_sum)
                assert sum(k.count for k in kinds) == total
                for k in kinds:  # K (m - r - g) + g (d + 1)
                    assert k.dimension == 2 * (m - r - k.free_groups) + 4 * k.free_groups
                    assert k.dimension >= m - r  # "dimension at least h"
            (g_kind,) = subspace_kinds(r, m, 3, family="symmetry-induced")
            assert (g_kind.count, g_kind.dimension) == (
                count_symmetry_induced_subspaces(r, m),
                m - r,
            )


def test_fewer_student_than_teacher_neurons():
    assert count_global_minima_subspaces(3, 2) == 0
    assert count_global_minima_subspaces(3, 2, zero_sum_groups=True) == 0
    assert count_symmetry_induced_subspaces(4, 3) == 0
    assert subspace_kinds(4, 3, 2) == []


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: count_global_minima_subspaces(0, 3), "r: expected an integer >= 1"),
        (lambda: count_global_minima_subspaces(2, 2.0), "m: expected an integer >= 1"),
        (lambda: count_symmetry_induced_subspaces(True, 3), "r: expected"),
        (lambda: count_symmetry_induced_subspaces(2, -1), "m: expected"),
        (lambda: subspace_kinds(2, 3, 0), "input_dim: expected"),
        (lambda: subspace_kinds(2, 3, 2, family="saddles"), "family: expected one of"),
        (lambda: stirling2(-1, 2), "n: expected"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
