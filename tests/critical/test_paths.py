"""One extra neuron connects permuted zero-loss minima by a path of zero loss."""

import pytest
import torch

from symlab.critical import path_loss, path_model, permutation_path, permute_neurons
from symlab.nets import flatten_params, mlp, unflatten_params, widths_of


def _teacher_data(widths, activation, bias, n=100, seed=0):
    teacher = mlp(widths, activation, seed=seed, bias=bias, bias_std=0.5)
    x = torch.randn(
        n, widths[0], generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    )
    with torch.no_grad():
        y = teacher(x)
    return teacher, x, y


def _cycles(perm):
    seen, cycles = set(), 0
    for start in range(len(perm)):
        if start not in seen:
            cycles += 1
            while start not in seen:
                seen.add(start)
                start = perm[start]
    return cycles


CASES = [
    # (widths, activation, bias, layer, perm)
    ([2, 3, 1], "softplus", False, 1, [1, 0, 2]),  # the teacher as a two-layer student, a swap
    ([2, 3, 1], "softplus", False, 1, [2, 0, 1]),  # a 3-cycle: two transpositions
    ([3, 4, 4, 2], "tanh", True, 2, [3, 2, 1, 0]),  # a deeper net, permuting hidden layer 2
]


@pytest.mark.parametrize("widths, activation, bias, layer, perm", CASES)
def test_path_has_zero_loss_and_the_straight_line_does_not(widths, activation, bias, layer, perm):
    teacher, x, y = _teacher_data(widths, activation, bias)
    vertices = permutation_path(teacher, perm, layer=layer)
    wide = path_model(teacher, layer)
    assert widths_of(wide)[layer] == widths[layer] + 1
    # endpoints: the minimum and its permuted copy, both embedded with the zero slot
    assert torch.equal(vertices[0], flatten_params(wide))
    permuted = path_model(permute_neurons(teacher, layer, perm), layer)
    assert torch.equal(vertices[-1], flatten_params(permuted))
    assert not torch.equal(vertices[0], vertices[-1])
    assert len(vertices) == 7 * (len(perm) - _cycles(perm)) + 1  # 7 segments per transposition
    losses = path_loss(wide, vertices, x, y, points_per_segment=50)
    assert losses.shape == (50 * (len(vertices) - 1) + 1,)
    assert float(losses.max()) <= 1e-28
    naive = path_loss(wide, [vertices[0], vertices[-1]], x, y, points_per_segment=50)
    assert float(naive[0]) <= 1e-28 and float(naive[-1]) <= 1e-28
    assert float(naive.max()) > 1e-3  # a loss barrier on the straight line


@pytest.mark.parametrize("widths, activation, bias, layer, perm", CASES)
def test_each_segment_moves_only_function_preserving_parameters(
    widths, activation, bias, layer, perm
):
    teacher, _, _ = _teacher_data(widths, activation, bias)
    wide = path_model(teacher, layer)
    vertices = permutation_path(teacher, perm, layer=layer)
    w_name, b_name, v_name = (
        f"{2 * layer - 2}.weight",
        f"{2 * layer - 2}.bias",
        f"{2 * layer}.weight",
    )
    for start, end in zip(vertices[:-1], vertices[1:], strict=True):
        p, q = unflatten_params(wide, start), unflatten_params(wide, end)
        changed = {name for name in p if not torch.equal(p[name], q[name])}
        assert changed <= {w_name, b_name, v_name}

        def incoming(params):
            rows = params[w_name]
            return torch.cat([rows, params[b_name][:, None]], 1) if bias else rows

        rows_changed = (incoming(p) != incoming(q)).any(dim=1).nonzero().flatten().tolist()
        cols_changed = (p[v_name] != q[v_name]).any(dim=0).nonzero().flatten().tolist()
        if rows_changed:  # only a silent neuron's incoming weights move
            assert not cols_changed and len(rows_changed) == 1
            assert torch.all(p[v_name][:, rows_changed[0]] == 0)
        else:  # outgoing weights move between two neurons with equal incoming weights
            i, j = cols_changed
            assert torch.equal(incoming(p)[i], incoming(p)[j])
            assert torch.equal(p[v_name][:, i] + p[v_name][:, j], q[v_name][:, i] + q[v_name][:, j])


def test_identity_permutation_and_float32():
    teacher, x, y = _teacher_data([2, 3, 1], "softplus", False)
    assert len(permutation_path(teacher, [0, 1, 2])) == 1
    teacher32 = teacher.to(torch.float32)
    vertices = permutation_path(teacher32, [1, 0, 2])
    losses = path_loss(path_model(teacher32), vertices, x.float(), y.float())
    assert vertices[0].dtype == torch.float32 and float(losses.max()) <= 1e-11


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: permutation_path(m, [0, 0, 1]), r"perm: expected a permutation of 0\.\.2"),
        (lambda m: permutation_path(m, [0, 1]), "perm: expected"),
        (lambda m: permutation_path(m, [0, 1, 2], layer=2), "layer: expected"),
        (
            lambda m: path_loss(m, [flatten_params(m)], None, None),
            "vertices: expected at least two",
        ),
        (
            lambda m: path_loss(m, [flatten_params(m)] * 2, None, None, points_per_segment=0),
            "points_per_segment: expected",
        ),
    ],
)
def test_bad_input(call, match):
    teacher, _, _ = _teacher_data([2, 3, 1], "softplus", False)
    with pytest.raises(ValueError, match=match):
        call(teacher)


def test_permute_neurons_is_the_symmetry_permutation():
    """One implementation: critical.permute_neurons is symmetry.permute (new neuron i = old
    perm[i], layer 1-based), checked against explicit row/column indexing, with and without bias."""
    from symlab.symmetry import permute

    assert permute_neurons is permute
    for bias in (True, False):
        model = mlp([3, 4, 5, 2], "tanh", seed=3, bias=bias, bias_std=0.5)
        perm = [4, 0, 3, 1, 2]
        moved = permute_neurons(model, 2, perm)
        assert torch.equal(moved[2].weight, model[2].weight[perm])
        assert torch.equal(moved[4].weight, model[4].weight[:, perm])
        assert torch.equal(moved[0].weight, model[0].weight)
        if bias:
            assert torch.equal(moved[2].bias, model[2].bias[perm])
        x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        torch.testing.assert_close(moved(x), model(x), atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="perm: expected a permutation of 0..4"):
        permute_neurons(model, 2, [0, 0, 1, 2, 3])
