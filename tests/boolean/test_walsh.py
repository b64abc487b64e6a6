"""WalshExpansion: evaluation against the product of coordinates, staircases, parities, samples."""

import itertools

import pytest
import torch

from symlab.boolean import WalshExpansion, uniform_cube


def _cube(d, dtype=torch.float64):
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_evaluation_is_the_sum_of_coordinate_products(dtype):
    coefficients = {(): 0.25, (2,): -1.5, (1, 3): 2.0, (4, 2, 1): 0.5}
    f = WalshExpansion(coefficients)
    x = _cube(5, dtype)
    expected = torch.full((len(x),), 0.25, dtype=dtype)
    for row, point in enumerate(x.tolist()):
        for support, value in coefficients.items():
            if support:
                expected[row] += value * torch.tensor([point[i - 1] for i in support]).prod()
    y = f(x)
    assert y.dtype == dtype and y.shape == (32,)
    torch.testing.assert_close(y, expected)
    assert f.supports == (frozenset(), frozenset({2}), frozenset({1, 3}), frozenset({1, 2, 4}))
    assert (f.degree, f.dim) == (3, 4)


def test_staircase_parity_and_arithmetic():
    x = _cube(4)
    stair = WalshExpansion.staircase(3)
    torch.testing.assert_close(stair(x), x[:, 0] + x[:, 0] * x[:, 1] + x[:, :3].prod(dim=1))
    assert stair == WalshExpansion.parity([1]) + WalshExpansion.parity([1, 2]) + 1.0 * (
        WalshExpansion.parity([3, 2, 1])
    )
    weighted = WalshExpansion.staircase(2, coefficients=[2.0, -1.0])
    torch.testing.assert_close(weighted(x), 2 * x[:, 0] - x[:, 0] * x[:, 1])
    cancelled = stair + (-1) * WalshExpansion.parity([1, 2])
    assert cancelled.supports == (frozenset({1}), frozenset({1, 2, 3}))  # zero dropped
    assert WalshExpansion({}).degree == 0 and WalshExpansion({}).dim == 0
    assert len({stair, WalshExpansion.staircase(3)}) == 1  # hashable, equal by coefficients


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_is_uniform_points_and_their_values(dtype):
    f = WalshExpansion.staircase(3)
    x, y = f.sample(4000, 10, torch.Generator().manual_seed(0), dtype=dtype)
    assert x.shape == (4000, 10) and y.shape == (4000,) and x.dtype == y.dtype == dtype
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(y, f(x))
    assert abs(float(x.mean())) < 0.05 and abs(float(y.square().mean()) - 3) < 0.3  # E f² = 3
    again, _ = f.sample(4000, 10, torch.Generator().manual_seed(0), dtype=dtype)
    assert torch.equal(x, again)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: WalshExpansion({(0, 1): 1.0}), "^coefficients: expected 1-based"),
        (lambda: WalshExpansion({(1, 1): 1.0}), "^coefficients: expected distinct"),
        (lambda: WalshExpansion({(1, 2): 1.0, (2, 1): 2.0}), "^coefficients: expected each"),
        (lambda: WalshExpansion({(1,): float("nan")}), "^coefficients: expected finite"),
        (lambda: WalshExpansion([(1,)]), "^coefficients: expected a mapping"),
        (lambda: WalshExpansion.staircase(0), "^k: expected an integer >= 1"),
        (lambda: WalshExpansion.staircase(2, [1.0]), "^coefficients: expected 2 numbers"),
        (lambda: WalshExpansion.parity([1, 1]), "^support: expected distinct"),
        (lambda: WalshExpansion.staircase(3).sample(5, 2), "^d: expected an integer >= .* 3"),
        (lambda: WalshExpansion.staircase(3).sample(0, 3), "^n: expected an integer >= 1"),
        (lambda: WalshExpansion.staircase(3)(torch.ones(4, 2)), r"^x: expected .* d >= 3"),
        (lambda: WalshExpansion.staircase(3)(torch.ones(4)), r"^x: expected .*shape \(n, d\)"),
        (lambda: WalshExpansion.staircase(1)(torch.ones(4, 1, dtype=torch.long)), "^x: .*float"),
    ],
)
def test_bad_input_is_one_sentence(build, message):
    with pytest.raises(ValueError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


def test_uniform_points_match_the_expansion_on_a_large_cube():
    x = uniform_cube(64, 200, torch.Generator().manual_seed(1), dtype=torch.float64)
    f = WalshExpansion({(7, 150, 200): 3.0})
    torch.testing.assert_close(f(x), 3.0 * x[:, 6] * x[:, 149] * x[:, 199])
