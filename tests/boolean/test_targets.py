"""Sparse targets: values against explicit products, exact Walsh coefficients by enumeration of the
cube, Gaussian targets against Hermite polynomials, the online sampler's shapes and independence."""

import itertools
import math

import numpy as np
import pytest
import torch

from symlab.boolean.targets import (
    control_supports,
    monomial_features,
    monomial_sampler,
    monomial_target,
    sample_inputs,
)


def _cube(d):
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=torch.float64)


def _walsh_by_hadamard(values: np.ndarray, d: int) -> dict:
    """Exact Walsh coefficients f̂(S) = 2^{-d} Σ_x f(x) χ_S(x) by the Sylvester-Hadamard matrix
    (an independent route: no characters are evaluated)."""
    h = np.array([[1.0]])
    for _ in range(d):
        h = np.block([[h, h], [h, -h]])
    coefficients = h @ values / 2**d
    # row r of H is χ_S with S = bits of r; itertools.product puts x_1 in the leading bit, -1 first
    out = {}
    for r in range(2**d):
        support = frozenset(i + 1 for i in range(d) if (r >> (d - 1 - i)) & 1)
        out[support] = coefficients[r] * (-1) ** len(support)
    return out


def test_boolean_target_values_and_exact_walsh_coefficients():
    target = monomial_target([[1], [1, 2], [2, 3, 4]], [0.5, -1.0, 2.0])
    x = _cube(4)
    expected = 0.5 * x[:, 0] - x[:, 0] * x[:, 1] + 2.0 * x[:, 1] * x[:, 2] * x[:, 3]
    torch.testing.assert_close(target(x), expected)
    walsh = _walsh_by_hadamard(target(x).numpy(), 4)
    for support, coefficient in walsh.items():
        wanted = dict(zip(target.supports, target.coefficients)).get(support, 0.0)
        assert coefficient == pytest.approx(wanted, abs=1e-12)
    assert target.norm_squared == pytest.approx(float(target(x).square().mean()))
    assert target.coordinates == frozenset({1, 2, 3, 4})


def test_gaussian_target_uses_normalized_hermite_monomials():
    target = monomial_target([{1: 2}, [1, 3]], [1.0, 3.0], inputs="gaussian")
    x = torch.randn(7, 4, dtype=torch.float64)
    expected = (x[:, 0] ** 2 - 1) / math.sqrt(2) + 3.0 * x[:, 0] * x[:, 2]
    torch.testing.assert_close(target(x), expected)
    features = monomial_features(x, [[2]], "gaussian")
    torch.testing.assert_close(features[:, 0], x[:, 1])


def test_sampler_draws_fresh_independent_batches_per_model():
    target = monomial_target([[1], [1, 2]])
    sampler = monomial_sampler(target, 6, batch=5, models=3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    x, y = sampler(0, generator)
    assert x.shape == (3, 5, 6) and y.shape == (3, 5, 1)
    torch.testing.assert_close(y[..., 0], x[..., 0] + x[..., 0] * x[..., 1])
    assert not torch.equal(x[0], x[1])
    x2, _ = sampler(1, generator)
    assert not torch.equal(x, x2)  # online: a new batch every step
    single = monomial_sampler(target, 6, batch=4)
    assert single(0, torch.Generator().manual_seed(0))[0].shape == (4, 6)
    g = sample_inputs(20000, 3, "gaussian", torch.Generator().manual_seed(1), torch.float64)
    assert abs(float(g.mean())) < 0.03 and abs(float(g.var()) - 1) < 0.03


def test_control_supports_avoid_the_target():
    target = monomial_target([[1], [1, 2], [1, 2, 3]])
    controls = control_supports(target, 8)
    assert controls == [frozenset({4}), frozenset({1, 4}), frozenset({4, 5})]
    assert control_supports(monomial_target([[1, 2, 3]]), 8)[-1] == frozenset({4, 5})
    assert frozenset({1, 2, 3}) in control_supports(monomial_target([[1], [2, 3]]), 8)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: monomial_target([]), "supports"),
        (lambda: monomial_target([[1], [1]]), "supports: expected distinct"),
        (lambda: monomial_target([[0]]), "supports"),
        (lambda: monomial_target([[1]], [1.0, 2.0]), "coefficients"),
        (lambda: monomial_target([[1]], inputs="sphere"), "inputs"),
        (lambda: monomial_sampler(monomial_target([[1, 5]]), 4, 1), "d: expected"),
        (lambda: monomial_sampler(monomial_target([[1]]), 4, 0), "batch"),
    ],
)
def test_bad_input_gets_one_sentence(call, match):
    with pytest.raises(ValueError, match=match):
        call()
