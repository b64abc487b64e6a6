"""Walsh characters and Hermite monomials are orthonormal (exactly on the cube, by quadrature on R)."""

import itertools
import math

import numpy as np
import pytest
import torch

from symlab.boolean import character, characters, hermite, hermite_monomial, uniform_cube


def _cube(d):
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=torch.float64)


def test_walsh_characters_are_orthonormal_on_the_cube():
    d = 4
    x = _cube(d)
    supports = [s for k in range(d + 1) for s in itertools.combinations(range(1, d + 1), k)]
    gram = characters(x, supports).T @ characters(x, supports) / len(x)
    torch.testing.assert_close(gram, torch.eye(len(supports), dtype=torch.float64))
    assert torch.equal(character(x, [1, 3]), x[:, 0] * x[:, 2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hermite_monomials_are_orthonormal_under_the_gaussian(dtype):
    nodes, weights = np.polynomial.hermite_e.hermegauss(30)
    z = torch.tensor(nodes, dtype=dtype)
    w = torch.tensor(weights / math.sqrt(2 * math.pi), dtype=dtype)
    values = torch.stack([hermite(k, z) / math.sqrt(math.factorial(k)) for k in range(6)])
    gram = (values * w) @ values.T
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(gram, torch.eye(6, dtype=dtype), atol=tol, rtol=tol)
    x = torch.randn(5, 3, dtype=dtype)
    expected = (x[:, 0] ** 2 - 1) / math.sqrt(2) * x[:, 2]
    torch.testing.assert_close(hermite_monomial(x, {1: 2, 3: 1}), expected)


def test_bad_supports_get_one_sentence():
    with pytest.raises(ValueError, match="^supports: expected 1-based"):
        character(_cube(2), [0, 1])
    with pytest.raises(ValueError, match="^supports: expected distinct"):
        character(_cube(2), [1, 1])
    with pytest.raises(ValueError, match="^supports: expected 1-based coordinates with degrees"):
        hermite_monomial(torch.zeros(2, 2), {1: 0})
    assert set(uniform_cube(100, 3, torch.Generator().manual_seed(0)).unique().tolist()) == {-1, 1}
