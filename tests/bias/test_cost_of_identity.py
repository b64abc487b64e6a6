"""Cost of identity by a Cholesky solve against the pseudo-inverse formula ‖A σ(A)⁺‖_F², its rank
value on non-negative matrices, and the nuclear-ratio bound of Prop. 1 (and where it fails)."""

import pytest
import torch

from symlab.bias import cost_of_identity, cost_of_identity_bound

DTYPES = [torch.float32, torch.float64]


def _pinv_cost(a, bias=True):
    """‖A σ(A)⁺‖_F² by numpy's pseudo-inverse (an independent route)."""
    import numpy as np

    a = a.double().numpy()
    s = np.maximum(a, 0)
    if bias:
        s = np.vstack([s, np.ones((1, a.shape[1]))])
    return float(np.square(a @ np.linalg.pinv(s)).sum())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_small_gamma_limit_is_the_pseudo_inverse_formula_on_well_conditioned_cases(dtype, bias):
    g = torch.Generator().manual_seed(0)
    # N ≤ w (+1): σ(A) has full column rank, K is invertible and COI is finite
    for w, n in [(8, 5), (12, 12), (6, 3)]:
        a = (torch.randn(w, n, generator=g, dtype=torch.float64) + 0.3).to(dtype)
        expected = _pinv_cost(a, bias)
        value = cost_of_identity(a, gamma0=1e-13, bias=bias)
        assert value == pytest.approx(expected, rel=1e-6)
    looser = cost_of_identity(a, gamma0=1e-3, bias=bias)
    assert looser < value  # COI_γ increases to COI as γ → 0


def test_non_negative_matrices_cost_their_rank_without_the_constant_row():
    g = torch.Generator().manual_seed(1)
    for rank in (1, 2, 4):
        a = torch.rand(9, rank, generator=g, dtype=torch.float64) @ torch.rand(
            rank, 40, generator=g, dtype=torch.float64
        )  # non-negative, rank r, N = 40 > w = 9: K is singular
        assert cost_of_identity(a, gamma0=1e-12, bias=False) == pytest.approx(rank, abs=1e-5)
        # COI_γ = Σ s_i²/(s_i² + γ) here: a moderate γ gives the closed form
        s = torch.linalg.svdvals(a)
        gamma = 1e-2 * float(s[0]) ** 2
        closed = float((s**2 / (s**2 + gamma)).sum())
        assert cost_of_identity(a, gamma0=1e-2, bias=False) == pytest.approx(closed, rel=1e-10)
        # the constant row can only lower the cost
        assert cost_of_identity(a, gamma0=1e-12) <= rank + 1e-5


def test_nuclear_ratio_bounds_the_cost_without_the_constant_row():
    g = torch.Generator().manual_seed(2)
    for w, n in [(8, 5), (10, 10), (5, 30)]:
        a = torch.randn(w, n, generator=g, dtype=torch.float64)
        if n > w:  # make Im Aᵀ ⊂ Im σ(A)ᵀ: a non-negative matrix of rank 3
            a = torch.rand(w, 3, generator=g, dtype=torch.float64) @ torch.rand(
                3, n, generator=g, dtype=torch.float64
            )
        bound = cost_of_identity_bound(a)
        coi = cost_of_identity(a, gamma0=1e-12, bias=False)
        assert 1 <= bound <= coi + 1e-8
        s = torch.linalg.svdvals(a)
        assert bound == pytest.approx(float(s.sum() ** 2 / (s**2).sum()), rel=1e-12)


def test_the_bound_fails_with_the_constant_row():
    """A = c 1ᵀ: W = (0, …, 0, c) maps σ(A) to A, so COI ≤ c² < 1 = ‖A‖_*²/‖A‖_F²."""
    a = torch.full((4, 10), 0.1, dtype=torch.float64)
    assert cost_of_identity_bound(a) == pytest.approx(1.0)
    assert cost_of_identity(a, gamma0=1e-12) < 0.04 + 1e-9


def test_bad_input_gets_one_sentence():
    with pytest.raises(ValueError, match="A: expected a non-empty \\(w, N\\) matrix"):
        cost_of_identity(torch.ones(3))
    with pytest.raises(ValueError, match="gamma0: expected a positive number"):
        cost_of_identity(torch.ones(3, 4), gamma0=0.0)
    with pytest.raises(ValueError, match="A: expected finite entries"):
        cost_of_identity_bound(torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="A: σ\\(A\\) = 0 while A ≠ 0"):
        cost_of_identity(-torch.ones(3, 4), bias=False)
    assert cost_of_identity(torch.zeros(3, 4), bias=False) == 0.0
