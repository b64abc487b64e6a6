"""Symmetry actions on MLPs: function preservation, the documented parameter maps, the group law,
canonical form (idempotent, orbit-invariant, not trivial) and rank invariance of J E_Z."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, jacrev, vmap

from symlab.nets import linear_layers, mlp
from symlab.symmetry import (
    SymmetryElement,
    apply_symmetry,
    canonicalize,
    functional_dimension,
    permute,
    random_symmetry,
    rescale,
)

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _inputs(n0, n=64, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, n0, generator=g, dtype=torch.float64) * 2).to(dtype)


def _rel_err(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same_params(m1, m2):
    return all(torch.equal(a, b) for a, b in zip(_params(m1), _params(m2), strict=True))


def _reference_rank(model, x):
    """rank of J E_Z by torch.func (independent of symlab.linalg), float64 matrix_rank."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, xi):
        return functional_call(model, p, (xi[None],))[0]

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    n_rows = jac[next(iter(params))].shape[0] * jac[next(iter(params))].shape[1]
    cols = [jac[k].reshape(n_rows, -1) for k in params]
    return int(torch.linalg.matrix_rank(torch.cat(cols, dim=1).double()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity", "tanh"])
@pytest.mark.parametrize("layer", [1, 2])
def test_permute_preserves_function_and_moves_rows_and_columns(dtype, activation, layer):
    model = mlp([3, 5, 4, 2], activation=activation, bias_std=0.3, seed=1, dtype=dtype)
    before = _params(model)
    n = [5, 4][layer - 1]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(layer))
    moved = permute(model, layer, perm.tolist())
    assert all(torch.equal(a, b) for a, b in zip(before, _params(model), strict=True))
    x = _inputs(3, dtype=dtype)
    assert _rel_err(moved(x), model(x)) < TOL[dtype]
    old, new = linear_layers(model), linear_layers(moved)
    assert torch.equal(new[layer - 1].weight, old[layer - 1].weight[perm])
    assert torch.equal(new[layer - 1].bias, old[layer - 1].bias[perm])
    assert torch.equal(new[layer].weight, old[layer].weight[:, perm])
    assert torch.equal(new[layer].bias, old[layer].bias)
    assert moved is not model and not torch.equal(new[layer - 1].weight, old[layer - 1].weight)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
def test_rescale_preserves_function_and_scales_row_and_column(dtype, activation):
    model = mlp([3, 5, 4, 2], activation=activation, bias_std=0.3, seed=2, dtype=dtype)
    before = _params(model)
    scales = torch.tensor([0.3, 2.0, 5.0, 0.7], dtype=dtype)
    moved = rescale(model, 2, scales)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(model), strict=True))
    x = _inputs(3, dtype=dtype)
    assert _rel_err(moved(x), model(x)) < TOL[dtype]
    old, new = linear_layers(model), linear_layers(moved)
    torch.testing.assert_close(new[1].weight, old[1].weight * scales[:, None])
    torch.testing.assert_close(new[1].bias, old[1].bias * scales)
    torch.testing.assert_close(new[2].weight, old[2].weight / scales[None, :])
    assert torch.equal(new[0].weight, old[0].weight) and torch.equal(new[2].bias, old[2].bias)


def test_rescale_is_not_a_symmetry_for_tanh_and_is_rejected():
    model = mlp([3, 5, 2], activation="tanh", seed=0)
    with pytest.raises(ValueError, match="positively homogeneous"):
        rescale(model, 1, [2.0] * 5)
    with pytest.raises(ValueError, match="scale_range"):
        random_symmetry(model, 0)
    # permutations remain symmetries for tanh
    moved = random_symmetry(model, 0, scale_range=None)
    x = _inputs(3)
    assert _rel_err(moved(x), model(x)) < 1e-12 and not _same_params(moved, model)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_random_symmetry_group_law(dtype):
    model = mlp([2, 6, 5, 4, 2], bias_std=0.2, seed=3, dtype=dtype)
    moved, g = random_symmetry(model, 11, return_element=True)
    x = _inputs(2, dtype=dtype)
    assert _rel_err(moved(x), model(x)) < TOL[dtype]
    # g acts layer by layer as permute(pi_l) then rescale(c_l): an independent composition.
    composed = model
    for layer, (perm, scale) in enumerate(zip(g.perms, g.scales, strict=True), start=1):
        composed = rescale(permute(composed, layer, perm), layer, scale)
    for a, b in zip(moved.parameters(), composed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=4 * torch.finfo(dtype).eps, atol=0)
    back = apply_symmetry(moved, g.inverse())
    for a, b in zip(back.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=8 * torch.finfo(dtype).eps, atol=0)
    assert all(bool(((s >= 0.25) & (s <= 4.0)).all()) for s in g.scales)
    assert not g.is_permutation and g.inverse().inverse().perms[0].equal(g.perms[0])
    again = random_symmetry(model, 11)
    assert _same_params(again, moved)
    assert not _same_params(random_symmetry(model, 12), moved)


def _assert_params_close(m1, m2, rtol):
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.detach().abs().max()))


@pytest.mark.parametrize("widths", [[3, 5, 2], [2, 6, 5, 4, 2], [4, 3, 6, 1]])
@pytest.mark.parametrize("seed", [0, 1])
def test_canonicalize_is_orbit_invariant_idempotent_and_same_function(widths, seed):
    model = mlp(widths, bias_std=0.3, seed=seed)
    canon = canonicalize(model)
    x = _inputs(widths[0])
    assert _rel_err(canon(x), model(x)) < 1e-12
    _assert_params_close(canonicalize(canon), canon, 1e-14)
    for g_seed in range(3):
        moved = random_symmetry(model, 100 + g_seed, scale_range=(0.1, 10.0))
        assert not _same_params(moved, model)
        _assert_params_close(canonicalize(moved), canon, 1e-13)
    # the documented normal form: unit incoming rows, sorted lexicographically
    for layer in linear_layers(canon)[:-1]:
        rows = torch.cat([layer.weight, layer.bias[:, None]], 1).detach()
        torch.testing.assert_close(
            torch.linalg.vector_norm(rows, dim=1), torch.ones(len(rows)).double()
        )
        keys = [tuple(r.tolist()) for r in rows]
        assert keys == sorted(keys)


def test_canonicalize_separates_different_functions_and_leaves_input_untouched():
    m1, m2 = mlp([3, 5, 4, 2], bias_std=0.3, seed=0), mlp([3, 5, 4, 2], bias_std=0.3, seed=1)
    before = _params(m1)
    c1, c2 = canonicalize(m1), canonicalize(m2)
    assert all(torch.equal(a, b) for a, b in zip(before, _params(m1), strict=True))
    assert (
        max(
            float((a - b).detach().abs().max())
            for a, b in zip(c1.parameters(), c2.parameters(), strict=True)
        )
        > 0.1
    )


def test_canonicalize_float32_and_tanh():
    model = mlp([3, 6, 4, 2], bias_std=0.3, seed=5, dtype=torch.float32)
    _assert_params_close(canonicalize(random_symmetry(model, 1)), canonicalize(model), 1e-5)
    x = _inputs(3, dtype=torch.float32)
    assert _rel_err(canonicalize(model)(x), model(x)) < 1e-5
    # tanh: the group is the permutations; canonicalize sorts without rescaling
    tanh = mlp([3, 6, 4, 2], activation="tanh", bias_std=0.3, seed=5)
    canon = canonicalize(tanh)
    _assert_params_close(canonicalize(random_symmetry(tanh, 3, scale_range=None)), canon, 0)
    x = _inputs(3)
    assert _rel_err(canon(x), tanh(x)) < 1e-12
    sorted_norms = torch.linalg.vector_norm(linear_layers(canon)[0].weight, dim=1)
    assert not torch.allclose(sorted_norms, torch.ones(6, dtype=torch.float64))


def test_canonicalize_zero_incoming_neuron_uses_outgoing_norm():
    model = mlp([3, 5, 2], bias_std=0.3, seed=0)
    with torch.no_grad():
        linear_layers(model)[0].weight[2] = 0
        linear_layers(model)[0].bias[2] = 0
    canon = canonicalize(model)
    _assert_params_close(canonicalize(rescale(model, 1, [1.0, 1.0, 7.0, 0.5, 2.0])), canon, 1e-14)
    w_in, w_out = (lin.weight.detach() for lin in linear_layers(canon))
    zero = int(torch.nonzero(w_in.abs().sum(1) == 0).flatten()[0])
    assert float(torch.linalg.vector_norm(w_out[:, zero])) == pytest.approx(1.0, rel=1e-15)


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=3, max_size=5),
    seed=st.integers(0, 2**31 - 1),
    g_seed=st.integers(0, 2**31 - 1),
    activation=st.sampled_from(["relu", "leaky_relu", "identity"]),
)
def test_canonical_form_property(widths, seed, g_seed, activation):
    model = mlp(widths, activation=activation, bias_std=0.3, seed=seed)
    moved = random_symmetry(model, g_seed)
    canon = canonicalize(model)
    _assert_params_close(canonicalize(moved), canon, 1e-12)
    x = _inputs(widths[0], n=16)
    assert _rel_err(moved(x), model(x)) < 1e-12 and _rel_err(canon(x), model(x)) < 1e-12


def test_functional_dimension_is_invariant_under_random_symmetries():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64) * 10 ** (
        torch.rand(200, 1, generator=g, dtype=torch.float64) * 4 - 2
    )
    for seed in (0, 1):
        model = mlp([3, 5, 4, 2], bias_std=0.1, seed=seed)
        rank = functional_dimension(model, x).rank
        assert rank == _reference_rank(model, x)
        for g_seed in (7, 8):
            moved = random_symmetry(model, g_seed)
            assert functional_dimension(moved, x).rank == rank
            assert _reference_rank(moved, x) == rank


def test_argument_validation():
    model = mlp([3, 5, 4, 2], seed=0)
    snapshot = copy.deepcopy(model)
    bad = [
        (
            lambda: permute(model, 0, range(5)),
            "layer: expected a hidden layer index between 1 and 2",
        ),
        (lambda: permute(model, 3, range(5)), "layer"),
        (lambda: permute(model, True, range(5)), "layer"),
        (lambda: permute(model, 1.0, range(5)), "layer"),
        (lambda: permute(model, 1, [0, 1, 2, 3]), "perm: expected a permutation of 0..4"),
        (lambda: permute(model, 1, [0, 1, 1, 3, 4]), "perm"),
        (lambda: permute(model, 1, [0.0, 1.0, 2.0, 3.0, 4.0]), "perm"),
        (lambda: permute(model, 1, "abcde"), "perm"),
        (lambda: rescale(model, 2, [1.0, 2.0, 3.0]), "scales: expected 4 finite positive"),
        (lambda: rescale(model, 2, [1.0, 0.0, 3.0, 1.0]), "scales"),
        (lambda: rescale(model, 2, [1.0, -2.0, 3.0, 1.0]), "scales"),
        (lambda: rescale(model, 2, [1.0, float("nan"), 3.0, 1.0]), "scales"),
        (lambda: permute(nn.Linear(3, 2), 1, [0]), "model: expected an MLP"),
        (lambda: canonicalize("net"), "model"),
        (lambda: permute(mlp([3, 2], seed=0), 1, [0, 1]), "layer: the model has no hidden layer"),
        (lambda: random_symmetry(model, "x"), "seed"),
        (lambda: random_symmetry(model, 0, scale_range=(0.0, 2.0)), "scale_range"),
        (lambda: random_symmetry(model, 0, scale_range=(3.0, 2.0)), "scale_range"),
        (lambda: apply_symmetry(model, "g"), "element"),
        (
            lambda: apply_symmetry(model, SymmetryElement((torch.arange(5),), (torch.ones(5),))),
            "element: expected one permutation and one scale vector per hidden layer",
        ),
    ]
    for call, message in bad:
        with pytest.raises(ValueError, match=message):
            call()
    assert _same_params(model, snapshot)
