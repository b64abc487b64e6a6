"""Signed permutations and rotations: orthogonality, action on inputs and weights, composition of a
target with g checked pointwise, and the cross-predictability of a parity orbit against 1/C(d, k)."""

import itertools
import math

import pytest
import torch

from symlab.boolean.orbits import (
    act,
    compose,
    cross_predictability,
    is_signed_permutation,
    parity_orbit_size,
    random_rotation,
    signed_permutation,
)
from symlab.boolean.targets import monomial_target


def test_group_elements_are_orthogonal_and_recognised():
    g = torch.Generator().manual_seed(0)
    m = signed_permutation(7, g)
    assert is_signed_permutation(m)
    torch.testing.assert_close(m @ m.T, torch.eye(7, dtype=torch.float64))
    r = random_rotation(7, g)
    torch.testing.assert_close(r @ r.T, torch.eye(7, dtype=torch.float64))
    assert not is_signed_permutation(r)
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=7)), dtype=torch.float64)
    moved = act(x, m)
    assert set(map(tuple, moved.tolist())) == set(map(tuple, x.tolist()))  # the cube is preserved
    w = torch.randn(3, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(act(w, m) @ act(x, m).T, w @ x.T)  # (W Mᵀ)(M x) = W x
    torch.testing.assert_close(act(w, r) @ act(x, r).T, w @ x.T)


def test_compose_matches_the_target_evaluated_at_g_x():
    g = torch.Generator().manual_seed(1)
    target = monomial_target([[1], [1, 2], [2, 3, 5]], [0.5, -1.0, 2.0])
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=6)), dtype=torch.float64)
    for _ in range(5):
        m = signed_permutation(6, g)
        torch.testing.assert_close(compose(target, m)(x), target(act(x, m)))
    with pytest.raises(ValueError, match="matrix: expected a signed permutation"):
        compose(target, random_rotation(6, g))


@pytest.mark.parametrize("d, k", [(6, 2), (7, 3)])
def test_cross_predictability_of_a_parity_is_one_over_the_orbit_size(d, k):
    target = monomial_target([list(range(1, k + 1))])
    estimate = cross_predictability(
        target, d, pairs=1500, generator=torch.Generator().manual_seed(2)
    )
    p = 1 / parity_orbit_size(d, k)
    assert parity_orbit_size(d, k) == math.comb(d, k)
    assert abs(estimate - p) < 4 * math.sqrt(p * (1 - p) / 1500)  # a Bernoulli(p) mean
    # x1 + x1x2: (P[π(1) = π'(1)] + P[π{1,2} = π'{1,2}]) / ‖f‖⁴ (the cross term has mean 0)
    staircase = monomial_target([[1], [1, 2]])
    value = cross_predictability(
        staircase, 6, pairs=1500, generator=torch.Generator().manual_seed(3)
    )
    assert value == pytest.approx((1 / 6 + 1 / 15) / 4, abs=0.01)


def test_bad_input_gets_one_sentence():
    with pytest.raises(ValueError, match="d: expected a positive integer"):
        signed_permutation(0)
    with pytest.raises(ValueError, match="matrix: expected shape"):
        act(torch.zeros(2, 3), torch.eye(4))
