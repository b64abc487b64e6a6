"""The proven upper bound on the functional dimension and the region enumeration behind it.

References: sampled ranks (a lower bound on dim_fun, so upper >= any of them), the scaling bound
fd_bound (upper <= it), hand-built networks whose answer is known, and an independent count of
the regions of a hyperplane arrangement.
"""

import math

import numpy as np
import pytest
import torch

from symlab.nets import linear_layers, mlp
from symlab.symmetry import batch_functional_dimension, fd_bound
from symlab.symmetry.kernel_proofs import proven_kernel
from symlab.symmetry.linear_regions import enumerate_regions
from symlab.symmetry.regions import activation_patterns
from symlab.symmetry.samplers import gaussian, multiscale


def random_net(index: int, rng: torch.Generator) -> torch.nn.Sequential:
    """Small ReLU nets of many kinds: narrow layers, dead neurons, very negative biases."""
    depth = int(torch.randint(1, 4, (1,), generator=rng))
    n0 = int(torch.randint(1, 4, (1,), generator=rng))
    hidden = torch.randint(1, 6, (depth,), generator=rng).tolist()
    widths = [n0, *hidden, int(torch.randint(1, 3, (1,), generator=rng))]
    model = mlp(widths, bias_std=[0.1, 1.0, 3.0][index % 3], seed=index)
    layers = linear_layers(model)
    with torch.no_grad():
        if index % 4 == 1:  # a very negative bias somewhere
            layer = layers[index % (len(layers) - 1)]
            layer.bias[0] = -abs(float(layer.bias[0])) - 4.0
        if index % 4 == 2 and len(layers) > 2:  # a neuron dead by signs in layer 2
            layers[1].weight[0] = -layers[1].weight[0].abs()
            layers[1].bias[0] = -0.5
        if index % 4 == 3 and len(layers) > 2:  # a neuron always active by signs
            layers[1].weight[-1] = layers[1].weight[-1].abs()
            layers[1].bias[-1] = 0.5
    return model


def test_upper_bounds_every_sampled_rank_on_200_random_networks():
    rng = torch.Generator().manual_seed(7)
    below, complete, signs = 0, 0, 0
    for index in range(200):
        model = random_net(index, rng)
        widths = [linear_layers(model)[0].in_features] + [
            layer.out_features for layer in linear_layers(model)
        ]
        proof = proven_kernel(model, max_regions=[1, 6, 24][index % 3])
        bound = fd_bound(widths)
        assert proof.bound == bound and proof.upper <= proof.kernel_upper <= bound
        sample = torch.cat(
            [
                multiscale(2000, widths[0], torch.Generator().manual_seed(index), torch.float64),
                gaussian(500, widths[0], torch.Generator().manual_seed(index), torch.float64),
            ]
        )
        rank = batch_functional_dimension(model, sample).rank
        assert rank <= proof.upper, (index, widths, rank, proof.upper)
        if proof.complete:  # the decisive rank is itself a sampled rank, and the value
            assert proof.decisive_rank == proof.upper >= rank
        below += proof.upper < bound
        complete += proof.complete
        signs += "signs" in proof.how
    # the check has teeth: many proofs lower the bound, both proof routes are exercised
    assert below >= 40 and complete >= 40 and signs >= 20


def test_a_neuron_dead_on_all_inputs_costs_its_neighbouring_widths():
    model = mlp((3, 4, 5, 2), bias_std=0.5, seed=0)
    with torch.no_grad():
        layer = linear_layers(model)[1]
        layer.weight[2] = -layer.weight[2].abs()
        layer.bias[2] = -1.0
    for budget in (1, 4096):  # sign argument alone, and with every region enumerated
        proof = proven_kernel(model, max_regions=budget)
        assert proof.dead[1].tolist() == [False, False, True, False, False]
        assert proof.kernel_upper == fd_bound((3, 4, 5, 2)) - (4 + 2)
    assert proof.how == ("regions", "regions") and proof.upper == proof.kernel_upper


def test_a_whole_dead_layer_leaves_only_the_output_biases():
    model = mlp((2, 3, 3, 2), bias_std=0.5, seed=0)
    with torch.no_grad():
        linear_layers(model)[1].weight.copy_(-linear_layers(model)[1].weight.abs())
        linear_layers(model)[1].bias.fill_(-1.0)
    proof = proven_kernel(model)
    assert proof.n_dead == 3 and proof.upper == 2  # F is constant: rank K
    x = multiscale(500, 2, torch.Generator().manual_seed(0), torch.float64)
    assert batch_functional_dimension(model, x).rank == 2


def test_a_never_co_active_edge_is_proven_by_the_regions():
    # n0 = 1: h1 = relu(x), h2 = relu(-x); g = relu(-h1 + h2 - 1) is active only for x < -1,
    # where h1 is off: the edge h1 -> g is never used, yet neither neuron is dead. Only the
    # enumeration (not the signs) proves it.
    model = mlp((1, 2, 1, 1), seed=0)
    first, second, out = linear_layers(model)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        first.bias.zero_()
        second.weight.copy_(torch.tensor([[-1.0, 1.0]]))
        second.bias.fill_(-1.0)
        out.weight.fill_(1.0)
        out.bias.fill_(0.3)
    proof = proven_kernel(model)
    assert proof.n_dead == 0 and proof.n_always_active == 0
    edge = 2 + 2  # flat index of W_2[0, 0] (after W_1 (2) and b_1 (2))
    assert bool(proof.unused[edge]) and not bool(proof.unused[edge + 1])
    signs_only = proven_kernel(model, max_regions=1)
    assert not bool(signs_only.unused[edge]) and signs_only.upper > proof.kernel_upper
    x = multiscale(20000, 1, torch.Generator().manual_seed(0), torch.float64)
    assert batch_functional_dimension(model, x).rank == proof.upper <= proof.kernel_upper


def test_one_hidden_layer_regions_are_those_of_a_hyperplane_arrangement():
    # n generic hyperplanes in R^d cut it into sum_{k <= d} C(n, k) regions
    for n0, n1, seed in [(2, 4, 0), (2, 6, 1), (3, 5, 2), (1, 7, 3)]:
        model = mlp((n0, n1, 1), bias_std=1.0, seed=seed)
        regions = enumerate_regions(model)
        assert regions.complete and regions.depth == 1
        assert len(regions.cells) == sum(math.comb(n1, k) for k in range(n0 + 1))


def test_sampled_patterns_are_a_subset_of_the_enumerated_ones():
    for widths, seed in [((2, 4, 4, 1), 0), ((2, 3, 3, 3, 1), 1), ((3, 4, 3, 1), 2)]:
        model = mlp(widths, bias_std=0.3, seed=seed)
        regions = enumerate_regions(model)
        enumerated = {tuple(bool(b) for c in cell.pattern for b in c) for cell in regions.cells}
        x = multiscale(50000, widths[0], torch.Generator().manual_seed(seed), torch.float64)
        sampled = {tuple(row) for row in activation_patterns(model, x).tolist()}
        assert sampled <= enumerated and len(enumerated) == len(regions.cells)
        # every cell's witness point carries the cell's pattern
        points = torch.from_numpy(np.array([cell.point for cell in regions.cells]))
        found = [tuple(row) for row in activation_patterns(model, points).tolist()]
        assert found == [tuple(bool(b) for c in cell.pattern for b in c) for cell in regions.cells]


def test_budget_stops_the_enumeration_at_a_complete_depth_and_bad_arguments_raise():
    model = mlp((3, 8, 8, 1), bias_std=0.1, seed=0)
    regions = enumerate_regions(model, max_regions=100)
    assert not regions.complete and regions.depth == 1 and regions.tested == 2
    assert len(regions.cells) == sum(math.comb(8, k) for k in range(4))
    with pytest.raises(ValueError, match="max_regions: expected a positive integer"):
        enumerate_regions(model, max_regions=0)
    with pytest.raises(ValueError, match="model: enumerate_regions expects a ReLU MLP"):
        enumerate_regions(mlp((2, 3, 1), "tanh", seed=0))


def test_a_decisive_rank_below_a_sampled_rank_withdraws_the_exact_claim_only():
    import dataclasses

    from symlab.symmetry.batch_dimension import proven_upper

    model = mlp((2, 3, 1), bias_std=0.5, seed=0)
    proof = proven_kernel(model)
    assert proof.complete and proof.upper == proof.decisive_rank == proof.kernel_upper
    short = dataclasses.replace(proof, upper=proof.upper - 1, decisive_rank=proof.upper - 1)
    assert proven_upper(short, proof.bound, proof.upper) == proof.kernel_upper
    assert proven_upper(short, proof.bound, proof.upper - 2) == proof.upper - 1
    with pytest.raises(RuntimeError, match="exceeds its proven upper bound"):
        proven_upper(proof, proof.bound + 5, proof.kernel_upper + 1)


def test_a_failed_lp_proves_nothing(monkeypatch):
    """HiGHS stopping without an answer (status 4: numerical difficulties) is no proof that a
    side of a cell is empty: the enumeration must not turn it into a dead neuron. The proven
    upper bound then falls back to fd_bound (no proof), never below a sampled rank."""
    import scipy.optimize

    from symlab.symmetry import functional_dimension
    from symlab.symmetry import linear_regions as lr

    model = mlp([2, 4, 3, 1], bias_std=1.0, seed=3)
    x = multiscale(4000, 2, torch.Generator().manual_seed(0)).double()
    sampled = batch_functional_dimension(model, x).rank

    def failing(c, **kwargs):
        return scipy.optimize.OptimizeResult(
            status=4, fun=0.0, x=np.zeros(len(c)), message="numerical difficulties"
        )

    monkeypatch.setattr(lr, "milp", failing)
    with pytest.raises(lr.LPFailure, match="status 4"):
        enumerate_regions(model, pool_points=0)
    fd = functional_dimension(model, max_points=64)
    assert fd.proof is None and fd.upper == fd_bound(model) >= sampled


def test_a_direction_built_twice_counts_once_in_the_kernel_rank():
    """A kernel direction repeated with a rounding-level error (as an always-active group's null
    space repeats a scaling direction) must not add to the rank the upper bound subtracts: with
    the tolerance sigma_max max(shape) eps it did (5.8e-15 against 5.0e-15 on one CPU)."""
    from symlab.symmetry.kernel_directions import _restricted_rank

    rng = torch.Generator().manual_seed(0)
    basis = torch.randn(5, 14, generator=rng, dtype=torch.float64)
    noise = torch.randn(14, generator=rng, dtype=torch.float64)
    q, _ = torch.linalg.qr(basis.T)
    noise = noise - q @ (q.T @ noise)  # off the span: the duplicate's error at rounding level
    duplicate = basis[0] + 1e-13 * basis[0].norm() * noise / noise.norm()
    rows = torch.cat([basis, duplicate[None]])
    coords = torch.zeros(14, dtype=torch.bool)
    rank, _, gap = _restricted_rank(coords, rows)
    assert rank == 5 and gap > 1e6
    assert torch.linalg.matrix_rank(rows / rows.norm(dim=1, keepdim=True)) == 6  # the tight rule
