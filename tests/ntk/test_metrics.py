"""Kernel metrics against hand-computed and independent numpy references."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from symlab.ntk import (
    kernel_alignment,
    kernel_distance,
    kernel_velocity,
    ntk_effective_rank,
    ntk_matrix,
    ntk_spectrum,
)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
pairs = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(finite, min_size=n, max_size=n), st.lists(finite, min_size=n, max_size=n)
    )
)


@settings(max_examples=60, deadline=None)
@given(pairs, st.floats(0.01, 100))
def test_distance_properties(ab, scale):
    a, b = torch.tensor(ab[0], dtype=torch.float64), torch.tensor(ab[1], dtype=torch.float64)
    if a.norm() < 1e-6 or b.norm() < 1e-6:
        return
    d = kernel_distance(a, b)
    assert 0.0 <= d <= 2.0
    assert d == pytest.approx(kernel_distance(b, a), abs=1e-12)
    assert kernel_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    assert kernel_distance(a, scale * a) == pytest.approx(0.0, abs=1e-12)
    assert kernel_distance(a, -a) == pytest.approx(2.0, abs=1e-12)
    expected = 1 - float(np.dot(ab[0], ab[1]) / (np.linalg.norm(ab[0]) * np.linalg.norm(ab[1])))
    assert d == pytest.approx(min(2.0, max(0.0, expected)), abs=1e-9)


def test_distance_known_values_and_errors():
    k0 = torch.eye(2).reshape(2, 2, 1, 1)
    k1 = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).reshape(2, 2, 1, 1)
    assert kernel_distance(k0, k1) == 1.0
    assert kernel_distance(k0, k0.float() * 3) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="k1"):
        kernel_distance(k0, torch.eye(3))
    with pytest.raises(ValueError, match="k0"):
        kernel_distance(torch.zeros(2, 2), torch.eye(2))


def test_velocity_on_a_rotating_kernel():
    # K(t) = cos(w t) A + sin(w t) B with <A, B> = 0, |A| = |B| = 1: S(K(t), K(s)) = 1 - cos(w (s - t))
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    b = torch.randn(4, 4, generator=g, dtype=torch.float64)
    a = a / a.norm()
    b = b - (a * b).sum() * a
    b = b / b.norm()
    w = 0.3
    times = torch.tensor([0.0, 0.5, 2.0, 2.25, 5.0], dtype=torch.float64)
    kernels = [math.cos(w * t) * a + math.sin(w * t) * b for t in times.tolist()]
    v = kernel_velocity(kernels, times)
    dt = times[1:] - times[:-1]
    torch.testing.assert_close(v, (1 - torch.cos(w * dt)) / dt)
    torch.testing.assert_close(kernel_velocity(torch.stack(kernels), times.tolist()), v)
    with pytest.raises(ValueError, match="times"):
        kernel_velocity(kernels, times.flip(0))
    with pytest.raises(ValueError, match="kernels"):
        kernel_velocity(kernels[:1], times[:1])


def test_alignment_hand_computed():
    k = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    y = torch.tensor([1.0, 1.0, -1.0])
    # uncentered: <K, yy^T> = sum_ij K_ij y_i y_j = 2+1+0 + 1+2-1 + 0-1+2 = 6; |K| = sqrt(16); |yy^T| = 3
    assert kernel_alignment(k, y, centered=False) == pytest.approx(6 / (4 * 3))
    # centered, independently with numpy: H K H and H yy^T H
    h = np.eye(3) - np.ones((3, 3)) / 3
    kc, tc = h @ k.numpy() @ h, h @ np.outer(y, y) @ h
    expected = (kc * tc).sum() / (np.linalg.norm(kc) * np.linalg.norm(tc))
    assert kernel_alignment(k, y) == pytest.approx(float(expected), rel=1e-12)
    assert kernel_alignment(torch.outer(y, y) * 5, y) == pytest.approx(1.0)


def test_alignment_of_ntk_shapes():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(4, 3, 6, generator=g, dtype=torch.float64)  # (N, K, features)
    theta = torch.einsum("nkp,mlp->nmkl", f, f)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64)
    traced = torch.diagonal(theta, dim1=2, dim2=3).sum(-1)
    assert kernel_alignment(theta, y) == pytest.approx(kernel_alignment(traced, y))
    # full: the (NK, NK) kernel against vec(Y) vec(Y)^T, centred over points only
    m = ntk_matrix(theta).numpy()
    t = np.outer(y.numpy().reshape(-1), y.numpy().reshape(-1))
    h = np.kron(np.eye(4) - np.ones((4, 4)) / 4, np.eye(3))
    kc, tc = h @ m @ h, h @ t @ h
    expected = (kc * tc).sum() / (np.linalg.norm(kc) * np.linalg.norm(tc))
    assert kernel_alignment(theta, y, outputs="full") == pytest.approx(float(expected), rel=1e-10)
    with pytest.raises(ValueError, match="y"):
        kernel_alignment(theta, y[:3])
    with pytest.raises(ValueError, match="outputs"):
        kernel_alignment(theta, y, outputs="mean")


def test_spectrum_and_effective_rank():
    g = torch.Generator().manual_seed(2)
    f = torch.randn(3, 2, 10, generator=g, dtype=torch.float64)
    theta = torch.einsum("nkp,mlp->nmkl", f, f)
    explicit = np.zeros((6, 6))
    for n in range(3):
        for k in range(2):
            for m in range(3):
                for j in range(2):
                    explicit[n * 2 + k, m * 2 + j] = theta[n, m, k, j]
    expected = np.sort(np.linalg.eigvalsh(explicit))[::-1]
    np.testing.assert_allclose(ntk_spectrum(theta).numpy(), expected, rtol=1e-10, atol=1e-10)
    eye = torch.eye(6, dtype=torch.float64).reshape(3, 2, 3, 2).permute(0, 2, 1, 3)
    assert ntk_effective_rank(eye) == pytest.approx(6.0)
    rank_one = torch.ones(3, 3, 2, 2, dtype=torch.float64)
    assert ntk_effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="k"):
        ntk_spectrum(torch.ones(3, 2, 1, 1))
