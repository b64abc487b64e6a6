"""Spherical harmonics: Gegenbauer polynomials against scipy, orthogonality under the quadrature,
exact degree projections of polynomial dot-product kernels."""

import math

import pytest
import torch
from scipy import special

from symlab.ntk.spherical import (
    degree_projections,
    gegenbauer,
    harmonic_dimension,
    sphere_quadrature,
    uniform_sphere,
    zonal_harmonic,
)


@pytest.mark.parametrize("d", [2, 3, 5, 10])
def test_gegenbauer_matches_scipy(d):
    t = torch.linspace(-1, 1, 41, dtype=torch.float64)
    for k in range(8):
        if d == 2:
            expected = special.eval_chebyt(k, t.numpy())
        else:
            a = (d - 2) / 2
            expected = special.eval_gegenbauer(k, a, t.numpy()) / special.eval_gegenbauer(k, a, 1.0)
        assert torch.allclose(gegenbauer(k, d, t), torch.tensor(expected), atol=1e-12)


def test_harmonic_dimensions():
    assert [harmonic_dimension(3, k) for k in range(5)] == [1, 3, 5, 7, 9]
    assert [harmonic_dimension(2, k) for k in range(4)] == [1, 2, 2, 2]
    assert harmonic_dimension(4, 2) == 9  # (k + 1)² on S³


def test_quadrature_orthonormality_and_exact_projections():
    x, w = sphere_quadrature(12)
    assert float(w.sum()) == pytest.approx(1.0)
    for k in range(1, 7):
        f = zonal_harmonic(x, k)
        assert float((w * f * f).sum()) == pytest.approx(1.0, abs=1e-12)
        assert float((w * f * zonal_harmonic(x, k - 1)).sum()) == pytest.approx(0.0, abs=1e-12)
    # a dot-product kernel Σ_k a_k N(3, k) P_k: its projections are the a_k, exactly
    a = {0: 2.0, 1: 0.5, 2: 0.25, 3: 0.0, 4: 0.03, 5: 0.01}
    gram = (x @ x.T).clamp(-1, 1)
    kernel = sum(v * harmonic_dimension(3, k) * gegenbauer(k, 3, gram) for k, v in a.items())
    got = degree_projections(kernel, x, range(8), w)
    for k in range(8):
        assert got[k] == pytest.approx(a.get(k, 0.0), abs=1e-12)


def test_monte_carlo_projections_are_close_in_higher_dimension():
    x = uniform_sphere(600, 5, seed=0)
    gram = x @ x.T
    kernel = 1.0 + 2.0 * harmonic_dimension(5, 2) * gegenbauer(2, 5, gram)
    got = degree_projections(kernel, x, [0, 1, 2, 3])
    assert got[0] == pytest.approx(1.0, abs=0.15) and got[2] == pytest.approx(2.0, rel=0.1)
    assert abs(got[1]) < 0.15 and abs(got[3]) < 0.15
    assert x.norm(dim=1).sub(1).abs().max() < 1e-12
    assert math.isfinite(got[0])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: harmonic_dimension(1, 2), "^dim"),
        (lambda: harmonic_dimension(3, -1), "^degree"),
        (lambda: gegenbauer(2.5, 3, torch.zeros(2)), "^degree"),
        (lambda: sphere_quadrature(0), "^n:"),
        (lambda: degree_projections(torch.zeros(3, 2), torch.zeros(3, 3), [1]), "^kernel"),
        # P_k(<x, e>) is a harmonic only for a unit pole e
        (lambda: zonal_harmonic(uniform_sphere(4, 3, 0), 2, torch.tensor([2.0, 0, 0])), "^pole"),
        (lambda: zonal_harmonic(uniform_sphere(4, 3, 0), 2, torch.tensor([1.0, 0])), "^pole"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
