"""Parameters unused on a sample (zero Jacobian columns) in diagnose: the flagged set against the
all-zero columns of an independent torch.func Jacobian, the prediction as a lower bound on the
float64 SVD rank deficit, a constructed sample where never-co-active edges are the only mechanism,
and the report's counts, table and string."""

import pytest
import torch
from jacobian_reference import jacobian as _jacobian
from jacobian_reference import multiscale as _multiscale

from symlab.nets import linear_layers, mlp
from symlab.symmetry import diagnose, mechanism_kernel


def _rank_and_gap(jac):
    """Float64 SVD rank with tol = sigma_max * max(shape) * eps, and the gap sigma_r / sigma_{r+1}."""
    s = torch.linalg.svdvals(jac.to(torch.float64))
    tol = s[0] * max(jac.shape) * torch.finfo(torch.float64).eps
    rank = int((s > tol).sum())
    gap = float(s[rank - 1] / s[rank]) if rank < s.numel() and s[rank] > 0 else float("inf")
    return rank, gap


def _random_case(widths, n_points, seed, dtype):
    """A ReLU net with large biases (dead neurons happen) on few Gaussian points; one input
    coordinate is exactly zero when seed is odd (its first-layer weights are then unused)."""
    model = mlp(widths, bias_std=0.5, seed=seed, dtype=dtype)
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(n_points, widths[0], generator=g, dtype=torch.float64)
    if seed % 2:
        x[:, 0] = 0.0
    return model, x.to(dtype)


SHAPES = [[2, 4, 3, 1], [3, 5, 5, 4, 2], [4, 3, 6, 2], [2, 6, 6, 6, 1]]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_unused_set_equals_the_zero_columns_of_the_jacobian(dtype):
    totals = dict(dead=0, beyond=0, cases=0)
    for widths in SHAPES:
        for n_points in (1, 2, 3, 6, 20):
            for seed in range(2):
                model, x = _random_case(widths, n_points, seed, dtype)
                jac = _jacobian(model, x)
                report = diagnose(model, x)
                zero_columns = (jac == 0).all(0)
                assert torch.equal(report.unused_coordinates, zero_columns), (widths, n_points)
                assert report.n_unused == int(zero_columns.sum())
                totals["dead"] += report.n_never_active
                totals["beyond"] += report.n_unused_beyond_dead
                totals["cases"] += 1
    # the cases really exercise every kind of unused parameter
    assert totals["cases"] == 40 and totals["dead"] > 0
    assert totals["beyond"] > 0


def test_alive_neuron_without_a_live_downstream_path():
    """h_1 = relu(-x_0) is active on half of Z, but only where u = relu(h_0 - h_1 - 0.1) is off,
    and u is the only path to the output: h_1's incoming weights, its bias and the edge u <- h_1
    are unused although h_1 is not dead."""
    model = mlp([2, 2, 1, 1], seed=0)
    first, second, third = linear_layers(model)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        first.bias.zero_()
        second.weight.copy_(torch.tensor([[1.0, -1.0]]))
        second.bias.fill_(-0.1)
        third.weight.fill_(2.0)
        third.bias.fill_(0.3)
    x = _multiscale(40, 2, seed=3)
    report = diagnose(model, x, compute_fd=True)
    jac = _jacobian(model, x)
    assert torch.equal(report.unused_coordinates, (jac == 0).all(0))
    frame = report.to_frame().set_index(["layer", "neuron"])
    h1 = frame.loc[(1, 1)]
    assert not h1.never_active and h1.no_live_path
    assert (h1.unused_incoming, h1.unused_outgoing) == (2 + 1, 1)
    assert report.n_never_active == 0 and report.n_unused == report.n_unused_beyond_dead == 4
    assert report.predicted_deficit <= report.bound - _rank_and_gap(jac)[0]


def test_dead_neuron_parameters_are_unused_and_counted_apart():
    model = mlp([3, 6, 5, 2], bias_std=0.1, seed=0)
    with torch.no_grad():
        layer = linear_layers(model)[0]
        layer.weight[2], layer.bias[2] = 0.0, -1.0  # neuron 2 of layer 1 dead everywhere
    x = _multiscale(300, 3)
    report = diagnose(model, x, compute_fd=True)
    frame = report.to_frame().set_index(["layer", "neuron"])
    dead = frame.loc[(1, 2)]
    assert dead.never_active and dead.no_live_path
    assert (dead.unused_incoming, dead.unused_outgoing) == (3 + 1, 5)
    assert report.n_unused == 3 + 1 + 5 and report.n_unused_beyond_dead == 0
    assert (report.dead_deficit, report.unused_deficit) == (3 + 5, 0)
    assert report.predicted_deficit == report.observed_deficit == 8
    assert torch.equal(report.unused_coordinates, (_jacobian(model, x) == 0).all(0))


def test_prediction_is_a_lower_bound_and_the_kernel_lies_in_ker_j():
    checked = with_unused = 0
    for seed in range(20):
        widths = SHAPES[seed % len(SHAPES)]
        model, x = _random_case(widths, (4, 10, 40)[seed % 3], seed, torch.float64)
        jac = _jacobian(model, x)
        report = diagnose(model, x)
        rank, _ = _rank_and_gap(jac)
        assert report.predicted_deficit <= report.bound - rank, (seed, str(report))
        assert report.predicted_deficit == (
            report.dead_deficit + report.unused_deficit + report.always_active_deficit
        )
        assert min(report.dead_deficit, report.unused_deficit, report.always_active_deficit) >= 0
        with_unused += report.unused_deficit > 0
        if report.dead_layers:
            continue
        kernel = mechanism_kernel(model, x)
        residual = (jac @ kernel.T).abs().max() / (jac.abs().max() * kernel.abs().max())
        assert residual < 1e-13
        assert int(torch.linalg.matrix_rank(kernel)) == jac.shape[1] - report.predicted_rank
        checked += 1
    assert checked >= 15 and with_unused >= 3


@pytest.mark.parametrize("edges", [[(3, 3)], [(3, 3), (3, 1)]])
def test_never_co_active_edges_alone_are_predicted_exactly(edges):
    """A generic net at full FD on 300 multi-scale points; removing the few points where neuron j
    of layer 1 and neuron i of layer 2 are active together leaves W_2[i, j] unused (and nothing
    else: no dead or always-active neuron), so the deficit is exactly the number of edges."""
    model = mlp([3, 6, 5, 2], bias_std=0.1, seed=0)
    x = _multiscale(300, 3)
    full = diagnose(model, x, compute_fd=True)
    assert full.observed_deficit == 0 and full.n_unused == 0
    first, second = linear_layers(model)[:2]
    with torch.no_grad():
        z1 = first(x)
        z2 = second(torch.relu(z1))
    keep = torch.ones(len(x), dtype=torch.bool)
    for j, i in edges:
        keep &= ~((z1[:, j] > 0) & (z2[:, i] > 0))
    z = x[keep]
    assert len(z) > 250  # a sample property: the dropped points are what made the edges used
    report = diagnose(model, z, compute_fd=True)
    assert report.n_never_active == report.n_always_active == 0
    assert sorted(map(tuple, report.unused_weights[1].nonzero().tolist())) == sorted(
        (i, j) for j, i in edges
    )
    assert report.n_unused == report.n_unused_beyond_dead == len(edges)
    assert report.unused_deficit == report.predicted_deficit == len(edges)
    rank, gap = _rank_and_gap(_jacobian(model, z))
    assert gap > 1e8  # the observed rank is unambiguous
    assert report.predicted_rank == rank == report.observed_rank
    assert report.unexplained == 0
    text = str(report)
    assert f"{len(edges)} unused parameters ({len(edges)} beyond dead neurons)" in text
    assert f"unused {len(edges)}" in text and "\n" not in text
    frame = report.to_frame().set_index(["layer", "neuron"])
    assert frame.loc[(1, 3)].unused_outgoing == len(edges)
    assert frame["unused_incoming"].sum() == len(edges)  # W_2 edges count as incoming of layer 2


def test_whole_dead_layer_reports_unused_counts():
    model = mlp([3, 4, 3, 1], bias_std=0.1, seed=1)
    with torch.no_grad():
        second = linear_layers(model)[1]
        second.weight.copy_(-second.weight.abs())
        second.bias.fill_(-0.5)  # every neuron of layer 2 dead: F constant on Z
    x = _multiscale(50, 3)
    report = diagnose(model, x)
    assert report.dead_layers == (2,) and report.predicted_rank == 1
    assert torch.equal(report.unused_coordinates, (_jacobian(model, x) == 0).all(0))
    # only the output bias is used: layer 1 reaches no output (4 x 3 + 4 beyond dead neurons),
    # layer 2 (3 x 4 + 3) and W_3 (1 x 3) belong to the dead neurons
    assert report.n_unused == 4 * 4 + 3 * 5 + 3 and report.n_unused_beyond_dead == 4 * 4
