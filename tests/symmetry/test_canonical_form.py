"""canonicalize on nets with duplicated and zero neurons (the nets split_neuron / embed build):
one canonical form for the whole orbit, to rounding, in float64 and float32."""

import pytest
import torch

from symlab.critical import add_zero_neuron, embed, split_neuron
from symlab.nets import linear_layers, mlp
from symlab.symmetry import canonicalize, random_symmetry

TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def _flat(model):
    return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()])


def _nets(dtype, activation="relu", bias=True):
    base = mlp(
        [3, 4, 3, 2],
        activation=activation,
        bias_std=0.3 if bias else 0.0,
        seed=0,
        dtype=dtype,
        bias=bias,
    )
    zero_row = torch.zeros(3 + int(bias), dtype=dtype)
    return {
        "split": split_neuron(split_neuron(base, 1, 2, 0.3), 2, 1, 0.7),
        "embed_random": embed(base, [3, 9, 8, 2], method="split", alpha="random", seed=1),
        "embed_alpha": embed(base, [3, 9, 8, 2], method="split", alpha=0.3),
        "embed_zero": embed(base, [3, 9, 8, 2], method="zero", seed=1),
        "zero_incoming": add_zero_neuron(add_zero_neuron(base, 1, zero_row), 1, zero_row),
    }


def _max_rel_diff(model, n, scale_range=(0.25, 4.0)):
    canon = _flat(canonicalize(model))
    return max(
        float(
            (_flat(canonicalize(random_symmetry(model, s, scale_range=scale_range))) - canon)
            .abs()
            .max()
        )
        for s in range(n)
    ) / float(canon.abs().max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "name", ["split", "embed_random", "embed_alpha", "embed_zero", "zero_incoming"]
)
def test_canonical_form_is_unique_on_nets_with_duplicated_neurons(dtype, name):
    # before the fix, twins were ordered by rounding noise: max differences 0.57 to 0.94
    model = _nets(dtype)[name]
    assert _max_rel_diff(model, 100) < TOL[dtype]
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x.to(dtype)
    canon = canonicalize(model)
    y = model(x).detach()
    assert float((canon(x).detach() - y).abs().max()) < TOL[dtype] * float(y.abs().max())


@pytest.mark.parametrize(("activation", "bias"), [("leaky_relu", False), ("tanh", True)])
def test_canonical_form_with_duplicates_bias_free_and_permutation_only(activation, bias):
    scale_range = None if activation == "tanh" else (0.25, 4.0)
    for model in _nets(torch.float64, activation, bias).values():
        assert _max_rel_diff(model, 20, scale_range) < 1e-12


def test_twins_are_ordered_by_their_outgoing_columns():
    model = split_neuron(mlp([3, 4, 2], bias_std=0.3, seed=0), 1, 2, 0.3)
    canon = canonicalize(random_symmetry(model, 7))
    w_in, w_out = (layer.weight.detach() for layer in linear_layers(canon))
    torch.testing.assert_close(canonicalize(canon).state_dict(), canon.state_dict())
    rows = torch.cat([w_in, linear_layers(canon)[0].bias.detach()[:, None]], 1)
    twins = [i for i in range(5) for j in range(5) if i != j and torch.allclose(rows[i], rows[j])]
    assert len(twins) == 2 and twins[1] == twins[0] + 1  # adjacent, both shares present
    first, second = w_out[:, twins[0]], w_out[:, twins[1]]
    ratio = 0.3 / 0.7 if abs(float(first[0])) < abs(float(second[0])) else 0.7 / 0.3
    torch.testing.assert_close(first / second, torch.full_like(first, ratio))
    assert float(first[0]) < float(second[0])  # tolerant lexicographic on the outgoing column


def test_tol_is_checked():
    model = mlp([3, 4, 2], seed=0)
    for tol in (-1.0, float("nan"), float("inf"), "1e-8", True):
        with pytest.raises(ValueError, match="^tol: "):
            canonicalize(model, tol=tol)
    torch.testing.assert_close(
        canonicalize(model, tol=0).state_dict(), canonicalize(model).state_dict()
    )
