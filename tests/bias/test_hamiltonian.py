"""The Leaky-ResNet Hamiltonian: its flow against autograd, its conservation along an integrated
solution, an exact bottleneck fixed point where −(2/L̃)H = rank, and the backward variables of a
net against autograd weight gradients (the stationarity condition W_ℓ = L̃ B_ℓ σ(A_{ℓ−1})ᵀ)."""

import pytest
import torch

from symlab.bias import (
    backward_variables,
    hamiltonian,
    hamiltonian_flow,
    identity_sigma,
    rank_estimate,
)
from symlab.nets.leaky_resnet import LeakyResNet
from symlab.train import sample_mse_loss


def _symplectic_gradient(a, b, depth):
    """(∂H/∂B, −∂H/∂A) by autograd on the formula H = (L̃/2)‖Bσ(A)ᵀ‖² − L̃ Tr[BAᵀ]."""
    a = a.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    sigma = torch.cat([torch.relu(a), torch.ones(1, a.shape[1], dtype=a.dtype)])
    h = depth / 2 * (b @ sigma.T).square().sum() - depth * (b * a).sum()
    ga, gb = torch.autograd.grad(h, (a, b))
    return gb, -ga


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flow_is_the_symplectic_gradient_of_h(dtype):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 8, generator=g, dtype=torch.float64)
    b = torch.randn(5, 8, generator=g, dtype=torch.float64) * 0.3
    da, db = hamiltonian_flow(a.to(dtype), b.to(dtype), 3.0)
    ra, rb = _symplectic_gradient(a.to(dtype).double(), b.to(dtype).double(), 3.0)
    torch.testing.assert_close(da, ra, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(db, rb, atol=1e-12, rtol=1e-10)


def test_h_is_conserved_along_an_integrated_solution():
    """RK4 on Hamilton's equations over p ∈ [0, 1] (2000 steps) from a positive A that stays
    positive (no ReLU kink is crossed, so the flow is smooth and RK4 fourth-order): H stays
    constant to 1e-10 of its scale while A and B move by O(1)."""
    g = torch.Generator().manual_seed(1)
    a = 3 + 0.3 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    b = 0.02 * torch.rand(4, 6, generator=g, dtype=torch.float64)  # B ≥ 0 keeps A away from 0
    depth, n = 1.0, 2000
    h = 1.0 / n
    start = hamiltonian(a, b, depth)
    a0, b0, values = a.clone(), b.clone(), []
    for _ in range(n):
        k1 = hamiltonian_flow(a, b, depth)
        k2 = hamiltonian_flow(a + h / 2 * k1[0], b + h / 2 * k1[1], depth)
        k3 = hamiltonian_flow(a + h / 2 * k2[0], b + h / 2 * k2[1], depth)
        k4 = hamiltonian_flow(a + h * k3[0], b + h * k3[1], depth)
        a = a + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        b = b + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        assert bool((a > 0).all())
        values.append(hamiltonian(a, b, depth))
    scale = depth * (float(b.square().sum()) + float(a.square().sum()))
    assert float((a - a0).norm()) > 1 and float((b - b0).norm()) > 0.5 * float(
        b0.norm()
    )  # it moves
    assert max(abs(v - start) for v in values) < 1e-10 * scale


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_rank_estimate_is_exact_at_a_bottleneck_fixed_point(rank):
    """A = B = U with non-negative rows of disjoint supports and unit norm (bias-free σ) is a fixed
    point of the flow: ∂A = L̃(U UᵀU − U) = 0, ∂B = L̃(1[U>0] ⊙ U UᵀU − U) = 0, and
    H = (L̃/2) rank − L̃ rank, so −(2/L̃) H = rank exactly, for any L̃."""
    w, n = 5, 12
    u = torch.zeros(w, n, dtype=torch.float64)
    for i in range(rank):  # row i lives on columns 4i..4i+3, positive
        u[i, 4 * i : 4 * i + 4] = torch.tensor([1.0, 2.0, 0.5, 1.5])
        u[i] /= u[i].norm()
    for depth in (0.7, 4.0):
        da, db = hamiltonian_flow(u, u, depth, bias=False)
        assert float(da.abs().max()) < 1e-14 and float(db.abs().max()) < 1e-14
        h = hamiltonian(u, u, depth, bias=False)
        assert rank_estimate(h, depth) == pytest.approx(rank, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_variables_give_the_weight_gradients(dtype):
    """∂C/∂W_ℓ = ρ_ℓ (∂C/∂α_ℓ)ᵀ σ(α_{ℓ−1}) = −λ ρ_ℓ B_ℓ σ(A_{ℓ−1})ᵀ at any parameters (autograd
    on the weights is the reference); so the stationarity of C + (λ/(2L̃)) Σ ρ_ℓ‖W_ℓ‖² in W_ℓ is
    exactly W_ℓ = L̃ B_ℓ σ(A_{ℓ−1})ᵀ, the optimal weights of the paper."""
    torch.manual_seed(0)
    x = torch.randn(12, 3, dtype=dtype)
    y = torch.tanh(x @ torch.randn(3, 2, dtype=dtype))
    lam, depth_tilde = 0.05, 2.0
    net = LeakyResNet(3, 6, 2, depth=5, effective_depth=depth_tilde, steps="irregular", seed=2)
    net = net.to(dtype)
    cost = sample_mse_loss(net(x), y)
    grads = torch.autograd.grad(cost, [layer.weight for layer in net.layers])
    a, b = backward_variables(net, x, y, lam, sample_mse_loss)
    assert len(a) == len(b) == 6 and a[0].shape == (6, 12) and a[0].dtype == torch.float64
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for index, (layer, grad) in enumerate(zip(net.layers, grads), start=1):
        predicted = -lam * float(layer.rho) * b[index] @ identity_sigma(a[index - 1]).T
        torch.testing.assert_close(predicted, grad.double(), atol=tol, rtol=tol)


def test_bad_input_gets_one_sentence():
    a = torch.ones(3, 4)
    with pytest.raises(ValueError, match="B: expected the shape of A"):
        hamiltonian(a, torch.ones(3, 5), 1.0)
    with pytest.raises(ValueError, match="effective_depth: expected a positive number"):
        hamiltonian(a, a, 0.0)
    with pytest.raises(ValueError, match="lam: expected a positive number"):
        backward_variables(
            LeakyResNet(2, 3, 1, 2, 1.0), torch.ones(4, 2), torch.ones(4, 1), 0.0, sample_mse_loss
        )
