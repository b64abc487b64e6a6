"""Certified rank: rank mod p vs Fraction elimination, exact Jacobians vs floats and exact
finite differences, certified rank vs the float64 pipeline on random quantized networks."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from symlab.linalg import numerical_rank, parameter_jacobian
from symlab.linalg.certified import (
    CertifiedRank,
    certified_rank,
    exact_jacobian,
    jacobian_rank_bound,
    quantize_mlp,
    scaling_rank_bound,
)
from symlab.linalg.modular import DEFAULT_PRIME, _submul_mod, rank_mod_p
from symlab.nets import linear_layers, mlp
from symlab.symmetry import fd_bound, functional_dimension

SMALL_PRIME = 1_048_573  # float64 BLAS path
PRIMES = (DEFAULT_PRIME, SMALL_PRIME)  # int64 limb path, float64 path


def fraction_rank(rows: list[list[int]]) -> int:
    """Rank over Q by Gaussian elimination in fractions.Fraction (no rounding, no modulus)."""
    a = [[Fraction(int(v)) for v in row] for row in rows]
    m, n = len(a), len(a[0]) if a else 0
    rank = 0
    for col in range(n):
        pivot = next((i for i in range(rank, m) if a[i][col] != 0), None)
        if pivot is None:
            continue
        a[rank], a[pivot] = a[pivot], a[rank]
        for i in range(rank + 1, m):
            if a[i][col] != 0:
                factor = a[i][col] / a[rank][col]
                a[i] = [x - factor * y for x, y in zip(a[i], a[rank])]
        rank += 1
        if rank == m:
            break
    return rank


def random_low_rank(rng: np.random.Generator, m: int, n: int, r: int, high: int) -> np.ndarray:
    """U V with random integer factors U (m x r), V (r x n): rank <= r, = r generically."""
    return rng.integers(-high, high + 1, size=(m, r)) @ rng.integers(-high, high + 1, size=(r, n))


@pytest.mark.parametrize("seed", range(16))
def test_rank_mod_p_matches_fraction_elimination(seed):
    rng = np.random.default_rng(seed)
    m, n = (int(v) for v in rng.integers(1, 13, size=2))
    r = int(rng.integers(0, min(m, n) + 1))
    a = random_low_rank(rng, m, n, r, high=int(rng.choice([2, 1000])))
    expected = fraction_rank(a.tolist())
    assert expected <= r
    for p in PRIMES:
        for block_rows in (1, 3, 32):
            assert rank_mod_p(a, p, block_rows=block_rows) == expected, (p, block_rows)
    assert rank_mod_p(torch.from_numpy(a), SMALL_PRIME) == expected
    assert rank_mod_p(a, 2) <= expected  # always a lower bound, even for a tiny prime


def test_rank_mod_p_blocked_path_on_a_larger_matrix():
    rng = np.random.default_rng(7)
    a = random_low_rank(rng, 70, 45, 31, high=3)
    a[:, 5] = 0  # a zero column and a repeated one
    a[:, 9] = a[:, 11]
    expected = fraction_rank(a.tolist())
    for p in PRIMES:
        for block_rows in (4, 32):
            assert rank_mod_p(a, p, block_rows=block_rows) == expected
            assert rank_mod_p(a.T, p, block_rows=block_rows) == expected


def test_rank_drops_modulo_a_dividing_prime_only():
    p = 7
    assert rank_mod_p(np.array([[1, 1], [1, p + 1]]), p) == 1  # det = p
    assert rank_mod_p(np.array([[1, 1], [1, p + 1]]), DEFAULT_PRIME) == 2
    # L diag(1, 1, 1, 13) R with unimodular L, R: rank 4 over Q, rank 3 exactly mod 13
    rng = np.random.default_rng(0)
    lower = np.tril(rng.integers(-5, 6, size=(4, 4)), -1) + np.eye(4, dtype=np.int64)
    upper = np.triu(rng.integers(-5, 6, size=(4, 4)), 1) + np.eye(4, dtype=np.int64)
    a = lower @ np.diag([1, 1, 1, 13]) @ upper
    assert fraction_rank(a.tolist()) == 4
    assert rank_mod_p(a, 13) == 3
    assert rank_mod_p(a, 11) == 4
    assert all(rank_mod_p(a, q) == 4 for q in PRIMES)


def test_rank_mod_p_of_python_ints_beyond_int64():
    big = 2**80 + 1
    a = np.array([[big, 3, 2**70], [2 * big, 6, 2**71], [1, 0, 5]], dtype=object)
    assert fraction_rank(a.tolist()) == 2
    assert all(rank_mod_p(a, q) == 2 for q in PRIMES)


def test_stop_at_stops_early_with_a_valid_lower_bound():
    rng = np.random.default_rng(3)
    a = random_low_rank(rng, 40, 20, 20, high=3)
    assert rank_mod_p(a, SMALL_PRIME) == 20
    early = rank_mod_p(a, SMALL_PRIME, stop_at=5, block_rows=4)
    assert 5 <= early <= 20


@pytest.mark.parametrize("p", PRIMES)
def test_submul_mod_matches_python_ints_across_chunks(p):
    rng = np.random.default_rng(1)
    a, b, c = rng.integers(0, p, (9, 41)), rng.integers(0, p, (41, 6)), rng.integers(0, p, (9, 6))
    a[0, :5] = b[:5, 0] = c[0, 0] = p - 1  # the largest residues
    ref = (c.astype(object) - a.astype(object) @ b.astype(object)) % p
    for max_inner in (None, 1, 8):
        got = _submul_mod(c.astype(float), a.astype(float), b.astype(float), p, max_inner)
        assert got.dtype == np.float64
        assert (got.astype(np.int64) == ref.astype(np.int64)).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 4}, "p: expected a prime"),
        ({"p": 2**31 + 11}, "p: expected a prime"),
        ({"p": 7.0}, "p: expected a prime"),
        ({"block_rows": 0}, "block_rows"),
        ({"stop_at": -1}, "stop_at: expected a non-negative integer"),
    ],
)
def test_rank_mod_p_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rank_mod_p(np.eye(3, dtype=np.int64), **kwargs)


@pytest.mark.parametrize(
    "matrix", [np.eye(2), torch.eye(2), np.arange(3), np.zeros((0, 3), dtype=np.int64)]
)
def test_rank_mod_p_rejects_non_integer_or_non_matrix_input(matrix):
    with pytest.raises(ValueError, match="matrix: expected"):
        rank_mod_p(matrix)


def fraction_forward(weights, biases, x, slope: Fraction) -> list[Fraction]:
    """f(x) in exact rational arithmetic for an MLP with a (leaky) ReLU slope."""
    a = [Fraction(v) for v in x]
    for index, (w, b) in enumerate(zip(weights, biases)):
        z = [sum((wij * aj for wij, aj in zip(row, a)), Fraction(0)) + bi for row, bi in zip(w, b)]
        if index < len(weights) - 1:
            z = [v if v > 0 else slope * v for v in z]
        a = z
    return a


def test_exact_jacobian_equals_exact_finite_differences():
    """f is affine in each single parameter on a linear region, so a small exact difference
    quotient in Fraction arithmetic is its derivative exactly."""
    model = quantize_mlp(mlp([2, 3, 2, 2], "leaky_relu", bias_std=0.5, seed=4, slope=0.25), 6)
    x = torch.tensor([[0.75, -1.5], [2.0, 0.375]], dtype=torch.float64)
    jac = exact_jacobian(model, x)
    layers = linear_layers(model)
    params = [[[Fraction(float(v)) for v in row] for row in ly.weight.tolist()] for ly in layers]
    biases = [[Fraction(float(v)) for v in ly.bias.tolist()] for ly in layers]
    slots = []  # (kind, layer, i, j) in flat order
    for li, ly in enumerate(layers):
        slots += [("w", li, i, j) for i in range(ly.out_features) for j in range(ly.in_features)]
        slots += [("b", li, i, 0) for i in range(ly.out_features)]
    h, slope = Fraction(1, 2**40), Fraction(1, 4)
    for point in range(x.shape[0]):
        base = fraction_forward(params, biases, x[point].tolist(), slope)
        for col, (kind, li, i, j) in enumerate(slots):
            target = params[li][i] if kind == "w" else biases[li]
            index = j if kind == "w" else i
            target[index] += h
            moved = fraction_forward(params, biases, x[point].tolist(), slope)
            target[index] -= h
            for k in range(2):
                exact = Fraction(
                    int(jac.numerators[point * 2 + k, col]), 2 ** int(jac.exponents[col])
                )
                assert exact == (moved[k] - base[k]) / h


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_jacobian_matches_float_closed_form(activation, dtype):
    model = mlp([3, 5, 4, 2], activation, bias_std=0.3, seed=2, dtype=dtype)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for net in (quantize_mlp(model, 10), model):  # quantized, and the float parameters as is
        jac = exact_jacobian(net, x)
        reference = parameter_jacobian(net, x, dtype=torch.float64)
        assert jac.numerators.shape == reference.shape
        assert torch.allclose(jac.to_float(), reference, rtol=1e-12, atol=1e-13)
        residues = exact_jacobian(net, x, modulus=SMALL_PRIME).numerators
        assert (residues == np.mod(jac.numerators, SMALL_PRIME).astype(np.int64)).all()


def test_quantize_mlp_rounds_to_the_dyadic_grid():
    model = mlp([3, 4, 1], bias_std=0.2, seed=0, dtype=torch.float32)
    quantized = quantize_mlp(model, 5)
    for before, after in zip(model.parameters(), quantized.parameters()):
        assert after.dtype == torch.float64
        assert torch.equal(after * 32, torch.round(after * 32))
        assert (after - before.double()).abs().max() <= 2.0**-6
    assert next(model.parameters()).dtype == torch.float32  # the original is untouched


NETS = [
    ([2, 4, 1], "relu", 12),
    ([3, 5, 2], "relu", 10),
    ([2, 6, 5, 1], "relu", 60),
    ([1, 4, 4, 4, 1], "relu", 40),  # deep and narrow input: deficits are common
    ([3, 4, 3, 2], "leaky_relu", 12),
    ([2, 3, 3, 3, 1], "relu", 30),
    ([4, 3, 3, 1], "identity", 20),  # linear nets: rank far below fd_bound
    ([2, 5, 1], "relu", 4),  # fewer rows than the bound
    ([5, 12, 12, 2], "relu", 150),  # several elimination blocks and recursion levels
]


@pytest.mark.parametrize(("widths", "activation", "n"), NETS)
@pytest.mark.parametrize("seed", range(3))
def test_certified_rank_agrees_with_the_float64_pipeline(widths, activation, n, seed):
    model = mlp(widths, activation, bias_std=0.5, seed=seed)
    x = torch.randn(n, widths[0], generator=torch.Generator().manual_seed(seed + 10))
    x = x.to(torch.float64) * 10.0 ** torch.linspace(-1, 1, n, dtype=torch.float64)[:, None]
    result = certified_rank(model, x, bits=12)
    quantized = quantize_mlp(model, 12)
    float_rank = numerical_rank(parameter_jacobian(quantized, x, dtype=torch.float64))
    assert result.rank == float_rank.rank == functional_dimension(quantized, x).rank
    assert result.upper_bound <= min(n * widths[-1], fd_bound(widths))
    assert result.lower_bound <= result.upper_bound
    assert result.exact == (result.lower_bound == result.upper_bound)
    assert all(r <= result.lower_bound for r in result.ranks_mod_p)


def test_certified_rank_of_the_unquantized_float_model():
    model = mlp([3, 6, 4, 1], bias_std=0.2, seed=5)
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = certified_rank(model, x, bits=None)
    assert result.bits is None
    assert result.rank == numerical_rank(parameter_jacobian(model, x)).rank


@pytest.mark.parametrize("layer", [1, 2])
def test_dead_neuron_costs_exactly_its_fan_in_plus_fan_out(layer):
    widths = [3, 6, 5, 2]
    model = mlp(widths, bias_std=0.3, seed=3)
    x = torch.randn(60, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = x * 10.0 ** torch.linspace(-1, 1, 60, dtype=torch.float64)[:, None]
    alive = certified_rank(model, x)
    assert alive.exact and alive.rank == fd_bound(widths)  # a proof of full rank
    with torch.no_grad():
        model[2 * (layer - 1)].bias[3] = -1000.0  # neuron 3 of hidden layer `layer`: never active
    dead = certified_rank(model, x)
    assert dead.rank == fd_bound(widths) - (widths[layer - 1] + widths[layer + 1])
    assert dead.rank == numerical_rank(parameter_jacobian(quantize_mlp(model, 16), x)).rank
    assert dead.exact  # the zero columns lower the upper bound by the same amount: a proof
    assert dead.upper_bound == dead.rank < alive.upper_bound


def test_non_smooth_point_is_rejected():
    model = mlp([2, 3, 1], bias_std=0.0, seed=0)  # zero biases: z = 0 at x = 0
    x = torch.tensor([[0.5, 0.25], [0.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="inputs: point 1 has an exactly zero pre-activation"):
        exact_jacobian(model, x)
    with pytest.raises(ValueError, match="non-smooth"):
        certified_rank(model, x)
    linear = mlp([2, 3, 1], "identity", bias_std=0.0, seed=0)  # no kink: accepted
    assert exact_jacobian(linear, x).numerators.shape == (2, 13)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_forced_zero_preactivations_of_bias_free_layers_are_smooth(activation):
    # x = 0: every pre-activation of a bias-free net is 0 for all parameters (smooth, J = 0);
    # a point where hidden layer 1 is all off makes layer 2's pre-activations 0 the same way
    model = mlp([2, 3, 3, 1], activation, seed=0, bias=False)
    with torch.no_grad():
        linear_layers(model)[0].weight.copy_(-linear_layers(model)[0].weight.abs())
    x = torch.tensor([[0.5, 0.25], [0.0, 0.0], [-0.5, 1.0]], dtype=torch.float64)
    exact = exact_jacobian(model, x)
    torch.testing.assert_close(
        exact.to_float(), parameter_jacobian(model, x), rtol=1e-14, atol=1e-15
    )
    assert not exact.to_float()[1].any()
    assert (
        certified_rank(model, x, bits=None).rank
        == numerical_rank(parameter_jacobian(model, x)).rank
    )
    # a zero that a parameter moves is still a kink, bias-free or not
    with torch.no_grad():
        linear_layers(model)[0].weight[1] = torch.tensor([1.0, -2.0])
    with pytest.raises(ValueError, match="inputs: point 0 has an exactly zero pre-activation"):
        exact_jacobian(model, x)


def test_zero_incoming_row_voids_the_scaling_bound_for_linear_nets():
    model = mlp([2, 3, 1], "identity", bias_std=0.1, seed=0)
    assert jacobian_rank_bound(model) == fd_bound([2, 3, 1])
    with torch.no_grad():
        model[0].weight[1] = 0.0
        model[0].bias[1] = 0.0
    assert jacobian_rank_bound(model) == 13


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda m, x: certified_rank(
                nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)), x
            ),
            "model: expected an MLP",
        ),
        (
            lambda m, x: certified_rank(m, x[:, :1]),
            r"inputs: expected a floating-point tensor of shape \(N, 2\)",
        ),
        (lambda m, x: certified_rank(m, x.long()), "inputs: expected a floating-point"),
        (lambda m, x: certified_rank(m, x * float("nan")), "inputs: expected finite"),
        (lambda m, x: certified_rank(m, x, primes=(9,)), "primes: expected a prime"),
        (lambda m, x: certified_rank(m, x, primes=()), "primes: expected at least one"),
        (lambda m, x: certified_rank(m, x, bits=-1), "bits: expected an integer"),
        (lambda m, x: exact_jacobian(m, x, modulus=10), "modulus: expected a prime"),
        (lambda m, x: exact_jacobian(m, x, modulus=7).to_float(), "modulus: to_float"),
    ],
)
def test_bad_input_raises_one_clear_sentence(call, match):
    model = mlp([2, 3, 1], bias_std=0.3, seed=0)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        call(model, x)


def test_certified_rank_result_type():
    model = mlp([2, 3, 1], bias_std=0.3, seed=0)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = certified_rank(model, x, primes=[SMALL_PRIME])
    assert isinstance(result, CertifiedRank) and result.primes == (SMALL_PRIME,)


def test_exact_jacobian_without_biases():
    model = mlp([3, 8, 4, 2], bias_std=0.3, seed=6, bias=False)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    jac = exact_jacobian(model, x)
    assert jac.numerators.shape == (14, 64)
    assert torch.allclose(jac.to_float(), parameter_jacobian(model, x), rtol=1e-12, atol=1e-15)
    result = certified_rank(model, x)
    assert result.rank == numerical_rank(parameter_jacobian(quantize_mlp(model, 16), x)).rank


def test_tiny_leaky_slope_float_rank_falls_short_of_the_certified_rank():
    """Columns mixing O(1) and O(1e-30) contributions: float64 rounds the small part away,
    exact arithmetic does not. The certified rank is full; the float rank is lower."""
    model = quantize_mlp(mlp([3, 4, 4, 2], "leaky_relu", bias_std=0.3, seed=6, slope=1e-30), 16)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    jac = exact_jacobian(model, x)
    assert torch.allclose(jac.to_float(), parameter_jacobian(model, x), rtol=1e-12, atol=1e-300)
    result = certified_rank(model, x, bits=None)
    assert result.exact and result.rank == result.upper_bound == 7 * 2  # full row rank
    assert numerical_rank(parameter_jacobian(model, x)).rank == 13


def test_nonzero_columns_and_the_scaling_bound():
    widths = [3, 5, 4, 2]
    model = quantize_mlp(mlp(widths, bias_std=0.3, seed=0), 12)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        model[0].bias[2] = -1000.0  # dead on x: 3 + 1 incoming and 4 outgoing zero columns
    jac = exact_jacobian(model, x)
    residues = exact_jacobian(model, x, modulus=SMALL_PRIME)
    expected = (jac.numerators != 0).any(axis=0)
    assert (jac.nonzero_columns == expected).all()
    assert (residues.nonzero_columns == expected).all()
    assert int((~expected).sum()) == 3 + 1 + 4
    bound = scaling_rank_bound(model, jac.nonzero_columns)
    assert bound == fd_bound(widths) - (3 + 4)
    assert bound == scaling_rank_bound(model, np.ones_like(expected)) - (3 + 4)
