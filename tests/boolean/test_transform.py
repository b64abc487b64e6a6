"""The Walsh transform against the dense matrix of characters, Parseval, round trips, estimates."""

import itertools

import pytest
import torch
from torch import nn

from symlab.boolean import (
    MAX_EXACT_DIM,
    WalshExpansion,
    characters,
    cube_points,
    estimate_coefficients,
    fourier_weight_by_degree,
    fwht,
    hadamard,
    index_support,
    support_index,
    walsh_coefficients,
    walsh_transform,
)


def _all_supports(d):
    return [frozenset(s) for k in range(d + 1) for s in itertools.combinations(range(1, d + 1), k)]


def _brute_force(f, d, dtype=torch.float64):
    """f̂(S) = 2^{-d} Σ_x f(x) χ_S(x) from the dense (2^d × 2^d) matrix of characters."""
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=dtype)
    supports = _all_supports(d)
    with torch.no_grad():
        y = f(x).reshape(-1).to(torch.float64)
    coefficients = characters(x.to(torch.float64), supports).T @ y / 2**d
    return dict(zip(supports, coefficients.tolist()))


def _mlp(d, dtype, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 12), nn.Tanh(), nn.Linear(12, 1)).to(dtype)


@pytest.mark.parametrize("d", [1, 2, 5, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_transform_matches_the_dense_characters_matrix(d, dtype):
    model = _mlp(d, dtype)
    exact = walsh_transform(model, d)
    reference = _brute_force(model, d, dtype)
    assert set(exact) <= set(reference)
    atol = 1e-6 if dtype == torch.float32 else 1e-12
    for support, value in reference.items():
        assert exact.get(support, 0.0) == pytest.approx(value, abs=atol)
    table = torch.randn(2**d, dtype=torch.float64, generator=torch.Generator().manual_seed(d))

    def lookup(x):  # an arbitrary function of the point: a random table indexed by its bits
        bits = ((1 - x) / 2).long()
        return table[(bits << torch.arange(d)).sum(dim=1)]

    tabled = walsh_coefficients(lookup, d, chunk_size=3)  # chunks that do not divide 2^d
    for support, value in _brute_force(lookup, d).items():
        assert float(tabled[support_index(support)]) == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fwht_is_the_hadamard_matrix_product(dtype):
    for d in range(0, 10):
        values = torch.randn(3, 2**d, dtype=dtype, generator=torch.Generator().manual_seed(d))
        dense = torch.stack([_dense_hadamard(d).to(dtype) @ v for v in values])
        tol = 1e-4 if dtype == torch.float32 else 1e-11
        torch.testing.assert_close(fwht(values), dense, atol=tol, rtol=tol)
        torch.testing.assert_close(fwht(fwht(values)) / 2**d, values, atol=tol, rtol=tol)
        assert fwht(values[0]).shape == (2**d,)
    assert torch.equal(hadamard(6), _dense_hadamard(6))


def _dense_hadamard(d):
    """H[s, i] = χ_{S(s)}(x_i), each entry from the characters of monomials.py."""
    x = cube_points(d)
    return characters(x, [index_support(s) for s in range(2**d)]).T if d else torch.ones(1, 1)


def test_cube_points_and_index_order():
    x = cube_points(3)
    assert (
        x[0].tolist() == [1, 1, 1] and x[1].tolist() == [-1, 1, 1] and x[6].tolist() == [1, -1, -1]
    )
    assert len({tuple(p) for p in x.tolist()}) == 8
    assert index_support(0b1011) == frozenset({1, 2, 4}) and support_index([4, 2, 1]) == 0b1011
    torch.testing.assert_close(cube_points(5, 4, 9), cube_points(5)[4:9])


def test_parseval_and_the_degree_profile():
    d = 10
    model = _mlp(d, torch.float64, seed=3)
    coefficients = walsh_coefficients(model, d)
    with torch.no_grad():
        second_moment = model(cube_points(d)).square().mean()
    torch.testing.assert_close(coefficients.square().sum(), second_moment)
    weights = fourier_weight_by_degree(model, d)
    assert weights.shape == (d + 1,) and weights.dtype == torch.float64
    torch.testing.assert_close(weights.sum(), second_moment)
    exact = walsh_transform(model, d)
    by_degree = [sum(c * c for s, c in exact.items() if len(s) == k) for k in range(d + 1)]
    torch.testing.assert_close(weights, torch.tensor(by_degree, dtype=torch.float64))
    assert [len(s) for s in exact] == sorted(len(s) for s in exact)  # ordered by degree


def test_round_trip_with_walsh_expansion():
    generator = torch.Generator().manual_seed(7)
    d = 7
    supports = _all_supports(d)
    chosen = torch.randperm(len(supports), generator=generator)[:12].tolist()
    values = torch.randn(12, generator=generator, dtype=torch.float64).tolist()
    f = WalshExpansion({supports[i]: v for i, v in zip(chosen, values)})
    recovered = walsh_transform(f, d, tol=1e-12)
    assert set(recovered) == set(f.coefficients)
    for support, value in f.coefficients.items():
        assert recovered[support] == pytest.approx(value, abs=1e-12)
    model = _mlp(d, torch.float64)
    x = cube_points(d)
    with torch.no_grad():
        torch.testing.assert_close(WalshExpansion(walsh_transform(model, d))(x), model(x)[:, 0])
    weights = fourier_weight_by_degree(f, d)
    torch.testing.assert_close(weights, fourier_weight_by_degree(f, d, chunk_size=5))
    torch.testing.assert_close(weights, fourier_weight_by_degree(lambda x: f(x), d))
    torch.testing.assert_close(weights, fourier_weight_by_degree(dict(f.coefficients), d))
    far = fourier_weight_by_degree(WalshExpansion.staircase(4), 100)  # any d from coefficients
    assert far.shape == (101,) and far[:5].tolist() == [0, 1, 1, 1, 1] and far[5:].sum() == 0


def test_estimates_agree_with_the_exact_transform_and_cover_it():
    d = 9
    model = _mlp(d, torch.float32, seed=1)
    exact = walsh_transform(model, d)
    supports = [frozenset({1}), frozenset({2, 5}), frozenset(), frozenset({1, 2, 3})]
    estimates = estimate_coefficients(model, d, supports, 20000, seed=0, chunk_size=7000)
    for s in supports:
        e = estimates[s]
        assert e.low < e.estimate < e.high and e.stderr > 0
        assert abs(e.estimate - exact.get(s, 0.0)) < 5 * e.stderr
    assert estimate_coefficients(model, d, supports, 20000, seed=0, chunk_size=7000) == estimates
    assert estimate_coefficients(model, d, supports, 20000, seed=1) != estimates


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_confidence_intervals_cover_at_their_level(dtype):
    f = WalshExpansion({(1,): 1.0, (1, 2): 0.5, (3, 40): -0.7})
    truth = {frozenset({1}): 1.0, frozenset({1, 2}): 0.5, frozenset({3, 40}): -0.7, frozenset(): 0}
    hits = total = 0
    for seed in range(250):
        found = estimate_coefficients(f, 50, list(truth), 300, seed=seed, dtype=dtype)
        for s, value in truth.items():
            hits += found[s].low <= value <= found[s].high
            total += 1
    assert 0.92 <= hits / total <= 0.98, hits / total  # ±4 binomial standard errors of 0.95
    parity = estimate_coefficients(WalshExpansion.parity([2, 9]), 30, [[2, 9]], 50)
    assert parity[frozenset({2, 9})].estimate == 1.0 and parity[frozenset({2, 9})].stderr == 0.0
    wide = estimate_coefficients(f, 50, [[1]], 300, seed=0, confidence=0.999)[frozenset({1})]
    narrow = estimate_coefficients(f, 50, [[1]], 300, seed=0, confidence=0.5)[frozenset({1})]
    assert wide.high - wide.low > 2 * (narrow.high - narrow.low)


def _wrong_shape(x):
    return x


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: walsh_transform(_wrong_shape, 3), r"^f: expected a real tensor of shape \(8,\)"),
        (lambda: walsh_transform(lambda x: x.sum(1).tolist(), 3), "^f: expected a real tensor"),
        (lambda: walsh_transform(lambda x: x[:, 0] / 0 * 0, 3), "^f: expected finite outputs"),
        (lambda: walsh_transform(3.0, 3), "^f: expected a callable"),
        (lambda: walsh_transform(_wrong_shape, MAX_EXACT_DIM + 1), "^d: expected an integer bet"),
        (lambda: walsh_transform(_wrong_shape, 0), "^d: expected an integer between 1 and 24"),
        (lambda: walsh_transform(lambda x: x[:, 0], 3, tol=-1.0), "^tol: expected a number >= 0"),
        (lambda: walsh_coefficients(lambda x: x[:, 0], 3, chunk_size=0), "^chunk_size: expect"),
        (lambda: fourier_weight_by_degree(WalshExpansion.staircase(4), 3), "^d: expected .* 4"),
        (lambda: fourier_weight_by_degree(_wrong_shape, 30), "^d: expected an integer between"),
        (lambda: estimate_coefficients(_wrong_shape, 3, [[4]], 10), "^d: expected .* 4, got 3"),
        (lambda: estimate_coefficients(_wrong_shape, 3, [], 10), "^supports: expected at least"),
        (lambda: estimate_coefficients(_wrong_shape, 3, [[1, 1]], 10), "^supports: expected dis"),
        (lambda: estimate_coefficients(_wrong_shape, 3, [[1]], 10), r"^f: expected .*\(10,\)"),
        (lambda: estimate_coefficients(_wrong_shape, 3, [[1]], 1), "^n_samples: expected"),
        (lambda: estimate_coefficients(_wrong_shape, 3, [[1]], 9, 0, 1.0), "^confidence: exp"),
        (lambda: estimate_coefficients(_wrong_shape, 3, [[1]], 9, seed=0.5), "^seed: expected"),
        (lambda: fwht(torch.ones(6)), "^values: expected a last dimension of size 2"),
        (lambda: fwht(torch.ones(4, dtype=torch.long)), "^values: expected a floating-point"),
    ],
)
def test_bad_input_is_one_sentence(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_large_dimension_is_reachable_by_estimates_only():
    f = WalshExpansion.staircase(3)
    with pytest.raises(ValueError, match="use estimate_coefficients beyond"):
        walsh_transform(f, 40)
    found = estimate_coefficients(f, 40, [[1, 2, 3], [4]], 4000, seed=2)
    assert found[frozenset({1, 2, 3})].low < 1 < found[frozenset({1, 2, 3})].high
