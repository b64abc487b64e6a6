"""Self-consistent dynamics of Tu et al. (2024) against independent references: scipy's matrix
square root, a direct ODE solve (scipy solve_ivp), the gradient flow of a balanced two-layer net
(σ → 0), the closed-form lazy flow (large σ²w), and gradient descent on a wide two-layer net."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import sqrtm

from symlab.bias import (
    DeepLinearNetwork,
    balanced_factorization,
    integrate_mixed_dynamics,
    mixed_dynamics_step,
    mixed_dynamics_velocity,
    shifted_square_roots,
)
from symlab.train import gradient_descent

TOL = {torch.float32: 2e-5, torch.float64: 1e-11}


def _velocity_reference(a: np.ndarray, g: np.ndarray, c: float) -> np.ndarray:
    """−[(AAᵀ + c²I)^{1/2} G + G (AᵀA + c²I)^{1/2}] through scipy's sqrtm (Schur method)."""
    m, n = a.shape
    left = np.real(sqrtm(a @ a.T + c * c * np.eye(m)))
    right = np.real(sqrtm(a.T @ a + c * c * np.eye(n)))
    return -(left @ g + g @ right)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (2, 6)])
def test_square_roots_and_velocity_match_scipy(dtype, shape):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(*shape, generator=g, dtype=torch.float64)
    grad = torch.randn(*shape, generator=g, dtype=torch.float64)
    m, n = shape
    for c in (0.0, 0.3, 5.0):
        left, right = shifted_square_roots(a.to(dtype), c)
        scale = 1 + float(a.norm()) + c
        grams = (a @ a.T + c * c * torch.eye(m, dtype=torch.float64),
                 a.T @ a + c * c * torch.eye(n, dtype=torch.float64))  # fmt: skip
        for root, gram in zip((left, right), grams):
            # the defining properties of the PSD square root (unique), at any c
            root = root.double()
            torch.testing.assert_close(root, root.T, rtol=0, atol=TOL[dtype] * scale)
            assert float(torch.linalg.eigvalsh(root).min()) >= -10 * TOL[dtype] * scale
            torch.testing.assert_close(root @ root, gram, rtol=0, atol=10 * TOL[dtype] * scale**2)
            if c > 0:  # scipy's Schur-method sqrtm is accurate for a nonsingular matrix
                ref = np.real(sqrtm(gram.numpy()))
                assert np.abs(root.numpy() - ref).max() <= 10 * TOL[dtype] * scale
        v = mixed_dynamics_velocity(a.to(dtype), grad.to(dtype), c)
        assert v.dtype == dtype
        if c > 0:
            ref = _velocity_reference(a.numpy(), grad.numpy(), c)
            assert np.abs(v.double().numpy() - ref).max() <= 50 * TOL[dtype] * scale**2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_euler_integration_converges_to_a_direct_ode_solve(dtype):
    g = torch.Generator().manual_seed(1)
    a0 = 0.1 * torch.randn(3, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, 2, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    c, horizon = 0.4, 1.5

    def rhs(_t, flat):
        a = flat.reshape(3, 2)
        return _velocity_reference(a, (a - y.numpy()) * mask.numpy(), c).ravel()

    exact = solve_ivp(rhs, (0, horizon), a0.numpy().ravel(), rtol=1e-11, atol=1e-13).y[:, -1]
    errors = []
    for n_steps in (300, 600, 1200):
        run = integrate_mixed_dynamics(
            a0.to(dtype), y.to(dtype), scale=c, lr=horizon / n_steps, steps=n_steps, mask=mask,
            record_steps=[0, n_steps],
        )  # fmt: skip
        assert run.steps == [0, n_steps] and run.matrices.shape == (2, 3, 2)
        errors.append(float(np.abs(run.matrices[-1].double().numpy().ravel() - exact).max()))
    assert errors[-1] < 2e-3
    # Euler is first order: halving the step halves the error (float32 adds ~1e-6 round-off)
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.1)
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.15 if dtype == torch.float64 else 0.3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_small_scale_limit_is_the_balanced_gradient_flow(dtype):
    """c = 0: the velocity of A = W_2 W_1 under the gradient flow of a balanced factorization,
    Ȧ = Ẇ_2 W_1 + W_2 Ẇ_1 with Ẇ = −∂C/∂W by autograd (Arora et al. 2018)."""
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64)
    w1, w2 = (w.detach().requires_grad_(True) for w in balanced_factorization(a, 2, [3]))
    cost = 0.5 * (w2 @ w1 - y).square().sum()
    g1, g2 = torch.autograd.grad(cost, (w1, w2))
    reference = -(g2 @ w1 + w2 @ g1).detach()
    v = mixed_dynamics_velocity(a.to(dtype), (a - y).to(dtype), 0.0)
    torch.testing.assert_close(v.double(), reference, rtol=0, atol=50 * TOL[dtype])
    # and c small against ||A||: the difference from c = 0 vanishes like c
    gaps = [
        float((mixed_dynamics_velocity(a, a - y, c) - reference).abs().max()) for c in (1e-2, 1e-3)
    ]
    assert gaps[1] < gaps[0] / 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_large_scale_limit_is_the_lazy_linear_flow(dtype):
    """c ≫ ||A||: Ȧ ≈ −2c ∇C(A), so A(t) = Y + (A_0 − Y) e^{−2ct} at full observation."""
    g = torch.Generator().manual_seed(3)
    a0 = torch.randn(3, 3, generator=g, dtype=torch.float64)
    y = torch.randn(3, 3, generator=g, dtype=torch.float64)
    gaps = []
    for c in (1e2, 1e3):
        ratio = mixed_dynamics_velocity(a0.to(dtype), (a0 - y).to(dtype), c).double() / (2 * c)
        gaps.append(float((ratio + (a0 - y)).abs().max()))
        horizon, n_steps = 1.0 / c, 2000
        run = integrate_mixed_dynamics(
            a0.to(dtype), y.to(dtype), scale=c, lr=horizon / n_steps, steps=n_steps,
            record_steps=[n_steps],
        )  # fmt: skip
        lazy = y + (a0 - y) * math.exp(-2 * c * horizon)
        # the gap is the O(||A||/c) correction plus Euler's O(step) error
        assert float((run.matrices[-1].double() - lazy).abs().max()) < 5.0 / c + 1e-3
    assert gaps[1] < gaps[0] / 5  # the correction is O(||A||/c)


def test_tracks_gradient_descent_on_a_wide_two_layer_net():
    """Tu et al.'s claim at small size: d = 3, w = 20000, GD on (W_1, W_2) and the self-consistent
    dynamics from the same A_0 stay close (relative distance), much closer than either moves."""
    d, width, variance = 3, 20000, 2.5e-5  # c = σ²w = 0.5
    target = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    model = DeepLinearNetwork(d, d, width, 2, variance, seed=0, dtype=torch.float64)
    a0 = model.end_to_end().detach()
    lr, steps = 0.01, 300
    run = integrate_mixed_dynamics(a0, target, scale=variance * width, lr=lr, steps=steps,
                                   record_steps=[steps])  # fmt: skip
    eye = torch.eye(d, dtype=torch.float64)

    def half_sse(output, y):
        return 0.5 * (output - y).square().sum()

    gradient_descent(model, (eye, target.T), lr=lr, steps=steps, loss=half_sse,
                     record_grad_norm=False)  # fmt: skip
    a_gd = model.end_to_end().detach()
    moved = float((a_gd - a0).norm())
    gap = float((a_gd - run.matrices[-1]).norm())
    assert moved > 2.0
    assert gap < 0.05 * moved


def test_step_matches_integration_and_bad_input():
    a0, y = torch.randn(3, 3, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    one = integrate_mixed_dynamics(a0, y, scale=0.5, lr=0.1, steps=1)
    torch.testing.assert_close(one.matrices[1], mixed_dynamics_step(a0, y, scale=0.5, lr=0.1))
    with pytest.raises(ValueError, match="^scale: expected"):
        mixed_dynamics_velocity(a0, y, -1.0)
    with pytest.raises(ValueError, match="^gradient: expected"):
        mixed_dynamics_velocity(a0, y[:2], 1.0)
    with pytest.raises(ValueError, match="^lr: expected"):
        integrate_mixed_dynamics(a0, y, scale=1.0, lr=0.0, steps=1)
    with pytest.raises(ValueError, match="^observations: expected"):
        integrate_mixed_dynamics(a0, y[:, :2], scale=1.0, lr=0.1, steps=1)
