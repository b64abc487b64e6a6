"""Exact functional dimension from enumerated regions, against a 10^6-point dense sample, the
certified (exact-arithmetic) rank and the proven upper bound."""

import copy

import pytest
import torch

from symlab.nets import mlp
from symlab.symmetry import batch_functional_dimension, certified_functional_dimension
from symlab.symmetry.exact_dimension import exact_functional_dimension
from symlab.symmetry.samplers import multiscale


def test_exact_meets_a_million_point_sample_that_reaches_every_region():
    # small n0 = 2 nets with few, thick regions: 10^6 multiscale points meet all of them, so the
    # dense rank must equal the exact value; it is never above it in any case
    reached = 0
    for widths, seed in [((2, 3, 3, 1), 0), ((2, 4, 3, 1), 1), ((2, 3, 2, 2, 1), 2)]:
        model = mlp(widths, bias_std=1.0, seed=seed)
        exact = exact_functional_dimension(model)
        x = multiscale(10**6, 2, torch.Generator().manual_seed(seed), torch.float64)
        dense = batch_functional_dimension(model, x)
        assert dense.rank <= exact.rank <= exact.kernel_upper <= exact.bound
        # the sampled patterns are enumerated ones (test_kernel_proofs), so equal counts mean
        # the sample met every region
        if dense.regions == exact.regions:
            assert dense.rank == exact.rank
            reached += 1
    assert reached >= 2


def test_exact_is_above_a_sample_that_misses_regions_and_equals_the_certified_rank():
    model = mlp((3, 5, 4, 1), bias_std=0.1, seed=4)
    exact = exact_functional_dimension(model)
    small = multiscale(200, 3, torch.Generator().manual_seed(0), torch.float64)
    assert batch_functional_dimension(model, small).rank <= exact.rank
    # exact arithmetic on the decisive set (float parameters as they are): the same rank
    certified = certified_functional_dimension(model, exact.points, bits=None)
    assert certified.lower_bound == exact.rank
    assert exact.points.shape == (4 * exact.regions, 3)


def test_float32_models_have_the_same_exact_value_and_the_budget_refuses():
    model32 = mlp((2, 4, 4, 1), bias_std=0.2, seed=5, dtype=torch.float32)
    model64 = copy.deepcopy(model32).double()  # the same parameter values in float64
    exact = exact_functional_dimension(model64)
    assert exact_functional_dimension(model32).rank == exact.rank
    with pytest.raises(ValueError, match="max_regions: the network has more than 5 activation"):
        exact_functional_dimension(model64, max_regions=5)


def test_a_region_where_a_neuron_is_identically_zero_is_named_in_the_refusal():
    """Zero biases (mlp's default init): on the cone where every first-layer neuron is off, a
    second-layer neuron's pre-activation is identically 0, so the cell's points are not smooth
    in its bias; the refusal must say so rather than blame a thin region."""
    net = mlp([2, 3, 2, 1], seed=0, dtype=torch.float64)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="identically 0"):
        exact_functional_dimension(net)


def _thin_region_net(width: float) -> torch.nn.Module:
    """n0 = 1; hidden neuron 1 of layer 2 is positive only on |x| < width / 2 (ReLU(x) and
    ReLU(-x) below it), so its parameters matter only on that interval."""
    model = mlp((1, 2, 3, 1), seed=0, dtype=torch.float64)
    first, second, last = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        first.bias.zero_()
        second.weight.copy_(torch.tensor([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]]))
        second.bias.copy_(torch.tensor([width / 2, 0.3, -0.2]))
        last.weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
        last.bias.fill_(0.1)
    return model


@pytest.mark.parametrize("width", [1e-3, 1.5e-9])
def test_a_region_thinner_than_the_lp_cut_is_never_proven_empty(width):
    # a dense sample that covers the thin interval reaches rank 10; before the thin-side rule a
    # region of inradius 7.5e-10 counted as empty: the neuron was "proven" dead and the adaptive
    # estimate stopped as exact at 6
    from symlab.symmetry import functional_dimension
    from symlab.symmetry.linear_regions import enumerate_regions

    model = _thin_region_net(width)
    x = torch.cat(
        [
            torch.linspace(-2, 2, 4001, dtype=torch.float64),
            torch.linspace(-width, width, 4001, dtype=torch.float64),
        ]  # fmt: skip
    )[:, None]
    dense = batch_functional_dimension(model, x).rank
    assert dense == 10
    estimate = functional_dimension(model)
    assert estimate.lower <= dense <= estimate.upper
    regions = enumerate_regions(model)
    if width > 1e-6:
        assert regions.complete and not regions.thin
        assert exact_functional_dimension(model).rank == dense == estimate.lower
        assert estimate.exact
    else:
        assert regions.thin and not regions.complete
        assert regions.positive[1][:, 0].any()  # the thin side counts as nonempty
        assert not estimate.exact
        with pytest.raises(ValueError, match="inradius between 1e-12 and 1e-09"):
            exact_functional_dimension(model)
