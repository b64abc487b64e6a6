"""certified_functional_dimension: exact-arithmetic proofs checked against the float FD."""

import pytest
import torch

from symlab.linalg.certified import quantize_mlp
from symlab.nets import mlp
from symlab.symmetry import fd_bound, functional_dimension
from symlab.symmetry.certified_fd import CertifiedFD, certified_functional_dimension


def multiscale(n: int, n0: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, n0, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x * 10.0 ** torch.linspace(-1, 1, n, dtype=torch.float64)[:, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_functional_dimension_is_proven(dtype):
    widths = [3, 6, 5, 2]
    model = mlp(widths, bias_std=0.3, seed=3).to(dtype)
    x = multiscale(60, 3, 2).to(dtype)
    result = certified_functional_dimension(model, x)
    assert isinstance(result, CertifiedFD)
    assert result.full and result.exact and result.max_deficit == 0
    assert result.lower_bound == result.bound == fd_bound(widths)
    assert functional_dimension(quantize_mlp(model, 16), x).rank == result.lower_bound


def test_certifies_the_float_estimate_on_its_own_sample():
    model = quantize_mlp(mlp([2, 4, 4, 1], bias_std=0.3, seed=0), 12)
    estimate = functional_dimension(model, seed=0)
    result = certified_functional_dimension(model, estimate, bits=12)
    assert result.n_points == len(estimate.points)  # the differentiated points (Z')
    assert result.lower_bound == estimate.rank
    assert result.full == (estimate.deficit == 0)


@pytest.mark.parametrize("seed", range(4))
def test_lower_bound_matches_float_fd_on_random_networks(seed):
    widths = [2, 5, 4, 1]
    model = mlp(widths, bias_std=0.5, seed=seed)
    x = multiscale(80, 2, seed)
    result = certified_functional_dimension(model, x, bits=10)
    float_fd = functional_dimension(quantize_mlp(model, 10), x)
    assert result.lower_bound == float_fd.rank
    assert result.bound == float_fd.bound
    assert result.max_deficit == float_fd.deficit


def test_bias_free_estimate_is_certified_on_its_own_sample():
    # points where hidden layer 1 is all off give exactly zero pre-activations in layer 2 (17
    # of these 20 ReLU samples had one and were rejected before)
    for seed in range(20):
        model = mlp([3, 4, 3, 2], seed=seed, bias=False)
        estimate = functional_dimension(model, seed=seed)
        result = certified_functional_dimension(model, estimate, bits=None)
        assert result.lower_bound == estimate.rank and result.bound == estimate.bound
        assert result.full == (estimate.deficit == 0)


def test_dead_neuron_is_a_proven_deficit_bound_only():
    widths = [3, 6, 5, 2]
    model = mlp(widths, bias_std=0.3, seed=3)
    with torch.no_grad():
        model[2].bias[1] = -1000.0
    result = certified_functional_dimension(model, multiscale(60, 3, 2))
    assert not result.full
    assert result.max_deficit == widths[1] + widths[3]


def test_fdresult_without_points_is_rejected():
    model = mlp([2, 3, 1], bias_std=0.3, seed=0)
    estimate = functional_dimension(model, multiscale(10, 2, 0))
    bare = type(estimate)(**{**estimate.__dict__, "points": None})
    with pytest.raises(ValueError, match="inputs: expected an FDResult carrying its points"):
        certified_functional_dimension(model, bare)
