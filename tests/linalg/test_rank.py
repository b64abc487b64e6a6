"""numerical_rank: svd and gram routes against exact arithmetic and each other."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symlab.linalg import RankResult, numerical_rank, parameter_jacobian
from symlab.linalg.rank import GRAM_TRUST_GAP, equilibrate_columns
from symlab.nets import mlp

EPS = float(torch.finfo(torch.float64).eps)


def exact_rank(rows: list[list[int]]) -> int:
    """Rank by Gaussian elimination over the rationals (fractions.Fraction, no rounding)."""
    a = [[Fraction(v) for v in row] for row in rows]
    rank, col, m = 0, 0, len(a)
    n = len(a[0]) if a else 0
    while rank < m and col < n:
        pivot = next((i for i in range(rank, m) if a[i][col] != 0), None)
        if pivot is None:
            col += 1
            continue
        a[rank], a[pivot] = a[pivot], a[rank]
        for i in range(m):
            if i != rank and a[i][col] != 0:
                factor = a[i][col] / a[rank][col]
                a[i] = [x - factor * y for x, y in zip(a[i], a[rank], strict=True)]
        rank += 1
        col += 1
    return rank


def low_rank(m: int, n: int, r: int, seed: int, spread: float = 3.0) -> torch.Tensor:
    """U diag(s) V^T with orthonormal U, V and r singular values 10^U(-spread, 0)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, max(r, 1), generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, max(r, 1), generator=g, dtype=torch.float64))
    s = 10.0 ** (-spread * torch.rand(r, generator=g, dtype=torch.float64))
    return (u[:, :r] * s) @ v[:, :r].T


@pytest.mark.parametrize("seed", range(12))
def test_exact_rank_of_tiny_integer_matrices(seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(1, 7, size=2)
    r = int(rng.integers(0, min(m, n) + 1))
    a = rng.integers(-3, 4, size=(m, r)) @ rng.integers(-3, 4, size=(r, n))
    expected = exact_rank(a.tolist())
    assert expected <= r
    for method in ["svd", "gram", "auto"]:
        assert numerical_rank(torch.tensor(a), method=method).rank == expected, method


def test_exact_rank_of_singular_integer_patterns():
    cases = [
        [[1, 2, 3], [2, 4, 6], [1, 0, 1]],
        [[1, 1, 1, 1], [1, 2, 3, 4], [2, 3, 4, 5], [0, 0, 0, 0]],
        [[0, 0], [0, 0]],
        [[5]],
        [[1, 2], [3, 4], [5, 6], [7, 8]],
    ]
    for rows in cases:
        for method in ["svd", "gram", "auto"]:
            assert numerical_rank(torch.tensor(rows), method=method).rank == exact_rank(rows)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    fraction=st.floats(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_gram_equals_svd_on_random_low_rank_matrices(m, n, fraction, seed):
    r = int(round(fraction * min(m, n)))
    a = low_rank(m, n, r, seed)
    svd = numerical_rank(a, method="svd")
    auto = numerical_rank(a, method="auto")
    assert svd.rank == auto.rank == r
    assert not svd.ambiguous
    if auto.method == "gram":
        assert auto.gap >= 1e2


def test_ill_conditioned_columns():
    g = torch.Generator().manual_seed(0)
    a = low_rank(60, 30, 17, seed=1, spread=1.0)
    scales = 10.0 ** (8 * torch.rand(30, generator=g, dtype=torch.float64) - 4)
    scaled = a * scales
    assert numerical_rank(scaled, method="svd").rank == 17
    for method in ["gram", "auto"]:
        result = numerical_rank(scaled, method=method)
        assert result.rank == 17 and result.method == "gram" and not result.ambiguous
    # a zero column is dropped, not counted
    with_zero = torch.cat([scaled, torch.zeros(60, 1, dtype=torch.float64)], dim=1)
    assert numerical_rank(with_zero, method="auto").rank == 17


@pytest.mark.parametrize(
    "widths, n_points",
    [((3, 6, 6, 1), 200), ((2, 8, 8, 2), 150), ((4, 10, 1), 100), ((3, 20, 1), 12)],
)
def test_gram_equals_svd_on_network_jacobians(widths, n_points):
    model = mlp(widths, "relu", bias_std=0.1, seed=7)
    x = torch.randn(
        n_points, widths[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    jac = parameter_jacobian(model, x)
    svd = numerical_rank(jac, method="svd")
    auto = numerical_rank(jac, method="auto")
    reference = int(torch.linalg.matrix_rank(jac))
    assert svd.rank == auto.rank == reference
    # the scaling null space (one direction per hidden neuron) is in ker J
    assert reference <= jac.shape[1] - sum(widths[1:-1])
    assert svd.gap > 1e3


def test_fallback_triggers_on_an_ambiguous_gram_cut():
    # 10 unit singular values and one at 1e-7: lambda = 1e-14, within 1e4 of the Gram noise floor
    g = torch.Generator().manual_seed(5)
    u, _ = torch.linalg.qr(torch.randn(50, 11, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(20, 11, generator=g, dtype=torch.float64))
    s = torch.tensor([1.0] * 10 + [1e-7], dtype=torch.float64)
    a = (u * s) @ v.T
    svd = numerical_rank(a, method="svd")
    assert svd.rank == 11 and svd.gap > 1e6
    gram = numerical_rank(a, method="gram")
    assert gram.method == "gram" and gram.ambiguous
    auto = numerical_rank(a, method="auto")
    assert auto.method == "svd (fallback)" and auto.rank == 11 and not auto.ambiguous
    expected = torch.linalg.svdvals(equilibrate_columns(a))
    torch.testing.assert_close(auto.singular_values, expected)
    assert GRAM_TRUST_GAP >= 1e4


def test_default_tolerance_gap_and_ambiguity():
    a = torch.diag(torch.tensor([3.0, 2.0, 1e-3, 0.0], dtype=torch.float64))
    result = numerical_rank(a, method="svd")
    assert isinstance(result, RankResult)
    assert result.rank == 3 and result.method == "svd"
    assert result.tol == pytest.approx(3.0 * 4 * EPS)
    assert result.gap == float("inf")  # sigma_4 is exactly zero
    full = numerical_rank(torch.eye(3, dtype=torch.float64), method="svd")
    assert full.rank == 3 and full.gap == float("inf")
    near = torch.diag(torch.tensor([1.0, 0.1, 0.05], dtype=torch.float64))
    cut = numerical_rank(near, tol=0.07, method="svd")
    assert cut.rank == 2 and cut.gap == pytest.approx(2.0) and cut.ambiguous
    assert not numerical_rank(near, tol=0.07, method="svd", gap_threshold=1.5).ambiguous
    zero = numerical_rank(torch.zeros(3, 2), method="auto")
    assert zero.rank == 0 and not zero.ambiguous


def test_float32_input_is_ranked_in_float64():
    # small integers are exact in float32, so the float64 rank is the exact rank
    rng = np.random.default_rng(2)
    a = rng.integers(-3, 4, size=(30, 9)) @ rng.integers(-3, 4, size=(9, 20))
    expected = exact_rank(a.tolist())
    for method in ["svd", "gram", "auto"]:
        result = numerical_rank(torch.tensor(a, dtype=torch.float32), method=method)
        assert result.rank == expected and result.singular_values.dtype == torch.float64
    assert numerical_rank(a, method="svd").rank == expected


def test_bad_arguments_raise_one_clear_value_error():
    with pytest.raises(ValueError, match="matrix"):
        numerical_rank(torch.ones(3))
    with pytest.raises(ValueError, match="matrix"):
        numerical_rank(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="method"):
        numerical_rank(torch.eye(2), method="qr")
    with pytest.raises(ValueError, match="tol"):
        numerical_rank(torch.eye(2), tol=-1.0)
    with pytest.raises(ValueError, match="gap_threshold"):
        numerical_rank(torch.eye(2), gap_threshold=0)


@pytest.mark.slow
def test_gram_equals_svd_on_the_benchmark_network():
    model = mlp((10, 30, 30, 30, 30, 1), "relu", bias_std=0.1, seed=0)
    x = torch.randn(4000, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    jac = parameter_jacobian(model, x)
    svd = numerical_rank(jac, method="svd")
    auto = numerical_rank(jac, method="auto")
    assert svd.rank == auto.rank <= 3151 - 120
    assert not svd.ambiguous
