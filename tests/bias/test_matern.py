"""Matérn GP draws and the compositional task: the kernel against its closed forms and scikit-learn,
both samplers' covariances against the kernel within their Monte-Carlo error."""

import math

import numpy as np
import pytest
import torch
from sklearn.gaussian_process.kernels import Matern

from symlab.bias.matern import (
    composition_task,
    matern_correlation,
    matern_gp_sample,
    matern_kernel,
    matern_random_features,
)
from symlab.nets import accordion_net

R = torch.tensor([0.0, 1e-3, 0.1, 0.5, 1.0, 2.0, 5.0], dtype=torch.float64)


def test_half_integer_closed_forms():
    assert torch.allclose(matern_correlation(R, 0.5), torch.exp(-R), rtol=1e-14, atol=0)
    s = math.sqrt(3) * R
    assert torch.allclose(matern_correlation(R, 1.5), (1 + s) * torch.exp(-s), rtol=1e-14, atol=0)
    s = math.sqrt(5) * R
    assert torch.allclose(
        matern_correlation(R, 2.5), (1 + s + s**2 / 3) * torch.exp(-s), rtol=1e-14, atol=0
    )


@pytest.mark.parametrize("nu", [0.3, 0.5, 1.0, 1.5, 2.7, 6.5, 10.0])
def test_kernel_matches_scikit_learn_with_rms_distance(nu):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 0.3
    # the RMS distance with length scale 1 is the Euclidean one with length scale √D
    reference = Matern(length_scale=math.sqrt(5), nu=nu)(x.numpy(), y.numpy())
    assert np.allclose(matern_kernel(x, y, nu).numpy(), reference, rtol=1e-9, atol=1e-12)
    assert torch.allclose(
        torch.diagonal(matern_kernel(x, x, nu)), torch.ones(7, dtype=torch.float64)
    )


def test_bessel_route_agrees_with_closed_form_near_half_integers():
    # ν = 1.5 ± 1e-9 takes the Bessel route; continuity in ν ties the two routes together
    assert torch.allclose(matern_correlation(R, 1.5 + 1e-9), matern_correlation(R, 1.5), atol=1e-8)
    assert torch.allclose(matern_correlation(R, 0.5 - 1e-9), matern_correlation(R, 0.5), atol=1e-8)


def _points(dim: int) -> torch.Tensor:
    """Four points of R^dim at RMS distances 0.3, 1 and 2 from the first."""
    base = torch.zeros(4, dim, dtype=torch.float64)
    for i, r in enumerate((0.3, 1.0, 2.0), start=1):
        base[i, i % dim] = r * math.sqrt(dim)
    return base


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.7])
def test_cholesky_draws_have_the_kernel_covariance(nu):
    x = _points(4)
    draws = matern_gp_sample(x, nu, 20_000, torch.Generator().manual_seed(2))  # (4, S)
    empirical = draws @ draws.T / draws.shape[1]
    kernel = matern_kernel(x, x, nu) + 1e-4 * torch.eye(4, dtype=torch.float64)
    # Var of a sample second moment of a centred Gaussian pair: (K_ii K_jj + K_ij²) / S
    sd = torch.sqrt(
        (kernel.diagonal()[:, None] * kernel.diagonal()[None, :] + kernel**2) / draws.shape[1]
    )
    assert float(((empirical - kernel).abs() / sd).max()) < 5


@pytest.mark.parametrize("nu, dim", [(0.5, 3), (1.5, 15), (2.7, 3)])
def test_fourier_draws_have_the_kernel_covariance(nu, dim):
    x = _points(dim)
    gen = torch.Generator().manual_seed(3)
    values = torch.stack(
        [matern_random_features(dim, nu, 1, 64, gen)(x)[:, 0] for _ in range(2000)]
    )
    products = values[:, 0:1] * values  # f(x_0) f(x_j) per independent draw
    mean, sd = products.mean(0), products.std(0) / math.sqrt(len(values))
    target = matern_kernel(x[:1], x, nu)[0]
    assert float(((mean - target).abs() / sd).max()) < 5
    assert float(target[1]) > 0.2  # the test sees a real correlation, not only zeros


def test_composition_task_is_reproducible_and_checked():
    a = composition_task(50, 1.5, 2.5, seed=4)
    b = composition_task(50, 1.5, 2.5, seed=4)
    assert a.x.shape == (50, 15) and a.z.shape == (50, 3) and a.y.shape == (50, 20)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, composition_task(50, 1.5, 2.5, seed=5).y)
    other_h = composition_task(50, 1.5, 0.5, seed=4)  # X and g are shared along a row of the grid
    assert torch.equal(a.z, other_h.z) and not torch.equal(a.y, other_h.y)
    f = composition_task(50, 1.5, 2.5, seed=4, sampler="fourier", n_features=256)
    assert f.y.shape == (50, 20) and torch.isfinite(f.y).all()
    with pytest.raises(ValueError, match="^nu"):
        composition_task(10, 0.0, 1.0)
    with pytest.raises(ValueError, match="^sampler"):
        composition_task(10, 1.0, 1.0, sampler="sparse")
    with pytest.raises(ValueError, match="^d_mid"):
        composition_task(10, 1.0, 1.0, d_mid=0)


def test_accordion_net_is_the_composition_of_its_blocks():
    net = accordion_net(5, 7, 2, 3, blocks=3, seed=0, dtype=torch.float64)
    x = torch.randn(4, 5, dtype=torch.float64)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [
        (7, 5),
        (2, 7),
        (7, 2),
        (2, 7),
        (7, 2),
        (3, 7),
    ]
    assert [m.bias is not None for m in linears] == [True, False, True, False, True, True]
    z = x
    for w_in, w_out in zip(linears[::2], linears[1::2]):
        z = w_out(torch.relu(w_in(z)))  # f_ℓ(z) = W_out σ(W_in z + b)
    assert torch.allclose(net(x), z)
    single = accordion_net(5, 7, 2, 3, blocks=3, seed=0, dtype=torch.float32)
    assert all(torch.equal(a, b.float()) for a, b in zip(single.parameters(), net.parameters()))
    with pytest.raises(ValueError, match="^blocks"):
        accordion_net(5, 7, 2, 3, blocks=0)
