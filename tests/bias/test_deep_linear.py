"""Deep linear nets: the balanced factorization attains L Σ s^{2/L}, the expansion converges, and
training reaches the penalized optimum computed independently per singular value."""

import pytest
import torch
from torch import nn

from symlab.bias import (
    balanced_factorization,
    dln_representation_cost,
    penalized_dln_optimum,
    representation_cost_expansion,
)
from symlab.train import lbfgs


def _low_rank(m=6, n=5, rank=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    left = torch.randn(m, rank, generator=g, dtype=torch.float64)
    return (left @ torch.randn(rank, n, generator=g, dtype=torch.float64)).to(dtype)


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_balanced_factorization_attains_the_schatten_cost(depth, dtype):
    a = _low_rank(dtype=dtype)
    widths = [3 + layer for layer in range(depth - 1)]
    factors = balanced_factorization(a, depth, widths)
    product = factors[0]
    for w in factors[1:]:
        product = w @ product
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(product, a.double(), atol=tol * float(a.abs().max()), rtol=0)
    cost = sum(float(w.square().sum()) for w in factors)
    s = torch.linalg.svdvals(a.double())[:3]
    expected = depth * float(s.pow(2 / depth).sum())
    assert cost == pytest.approx(expected, rel=1e-10)
    assert dln_representation_cost(a, depth) == pytest.approx(expected, rel=tol)
    for w in factors:
        sv = torch.linalg.svdvals(w)
        torch.testing.assert_close(
            sv[:3], s.pow(1 / depth), rtol=1e-10 if dtype == torch.float64 else 1e-5, atol=0
        )
        assert len(sv) == 3 or float(sv[3:].max()) <= 1e-12 * float(sv[0])


def test_the_truncated_expansion_converges_to_the_exact_cost():
    a = _low_rank(rank=3, seed=1) * 0.7
    expansion = representation_cost_expansion(a)
    assert expansion.r0 == 3
    errors = [
        abs(dln_representation_cost(a, d) - expansion.truncated(d)) for d in (4, 8, 16, 32, 64)
    ]
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:]))
    # the remainder is O(L^-2): halving 1/L divides it by about 4
    assert 3.0 < errors[-2] / errors[-1] < 5.0
    assert errors[-1] < 1e-3 * dln_representation_cost(a, 64)


class _DeepLinear(nn.Module):
    def __init__(self, widths, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList(
            nn.Parameter(0.5 * torch.randn(o, i, generator=g, dtype=torch.float64))
            for i, o in zip(widths[:-1], widths[1:])
        )

    def forward(self, x):
        for w in self.weights:
            x = x @ w.T
        return x


@pytest.mark.parametrize("depth", [2, 3])
def test_training_from_a_random_factorization_reaches_the_penalized_optimum(depth):
    a = _low_rank(m=4, n=4, rank=2, seed=2)
    penalty = 50.0
    model = _DeepLinear([4] * (depth + 1), seed=3)
    eye = torch.eye(4, dtype=torch.float64)

    def objective(out, target):  # out = (W_L⋯W_1)ᵀ on the identity input
        norm = sum(w.square().sum() for w in model.weights)
        return norm + penalty * (out - target).square().sum()

    trajectory = lbfgs(model, (eye, a.T), loss=objective, tol=1e-11, max_iter=5000)
    expected = penalized_dln_optimum(a, depth, penalty)
    assert trajectory.final_loss == pytest.approx(expected, rel=1e-6)


def test_bad_input_gets_one_sentence():
    with pytest.raises(ValueError, match="^A: expected a non-empty 2-D tensor"):
        dln_representation_cost(torch.ones(3), 2)
    with pytest.raises(ValueError, match="^A: expected finite entries"):
        dln_representation_cost(torch.tensor([[float("nan")]]), 2)
    with pytest.raises(ValueError, match="^depth: expected an integer >= 1"):
        dln_representation_cost(torch.eye(2), 0)
    with pytest.raises(ValueError, match="^widths: expected integers >= rank A = 3"):
        balanced_factorization(_low_rank(), 3, [3, 2])
