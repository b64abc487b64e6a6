"""Embeddings preserve the network function; reduce undoes them (up to permutation)."""

import pytest
import torch
from torch import nn

from symlab.critical import add_zero_neuron, embed, permute_neurons, reduce, split_neuron
from symlab.nets import flatten_params, mlp, widths_of

CASES = [
    ([3, 4, 2], "tanh"),
    ([3, 5, 4, 2], "relu"),
    ([2, 3, 4, 3, 1], "softplus"),
]


def _inputs(d, dtype=torch.float64, n=64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(7), dtype=dtype) * 2


def _close(model_a, model_b, x):
    with torch.no_grad():
        out_a, out_b = model_a(x), model_b(x)
    eps = torch.finfo(x.dtype).eps
    return float((out_a - out_b).abs().max()) <= 100 * eps * max(1.0, float(out_a.abs().max()))


def _model(widths, activation, dtype=torch.float64, seed=0):
    return mlp(widths, activation, bias_std=0.5, seed=seed, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("widths, activation", CASES)
def test_split_neuron_preserves_function(widths, activation, dtype):
    model = _model(widths, activation, dtype)
    x = _inputs(widths[0], dtype)
    for layer in range(1, len(widths) - 1):
        wide = split_neuron(model, layer, 1, 0.3)
        assert widths_of(wide)[layer] == widths[layer] + 1
        assert _close(model, wide, x)
        w_in, w_out = wide[2 * (layer - 1)], wide[2 * layer]
        assert torch.equal(w_in.weight[-1], w_in.weight[1]) and torch.equal(
            w_in.bias[-1], w_in.bias[1]
        )
        v = model[2 * layer].weight[:, 1]
        assert torch.allclose(w_out.weight[:, 1], 0.3 * v) and torch.allclose(
            w_out.weight[:, -1], 0.7 * v
        )
        # a split with a wrong outgoing share does change the function (the test can fail)
        with torch.no_grad():
            w_out.weight[:, -1] *= 2
        assert not _close(model, wide, x)
    assert flatten_params(model).numel() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("widths, activation", CASES)
def test_add_zero_neuron_preserves_function(widths, activation, dtype):
    model = _model(widths, activation, dtype)
    x = _inputs(widths[0], dtype)
    wide = add_zero_neuron(model, 1, seed=3)
    assert _close(model, wide, x) and widths_of(wide)[1] == widths[1] + 1
    assert torch.all(wide[2].weight[:, -1] == 0) and wide[0].weight[-1].abs().sum() > 0
    given = torch.arange(widths[0] + 1, dtype=dtype)
    wide = add_zero_neuron(model, 1, incoming=given)
    assert torch.equal(wide[0].weight[-1], given[:-1]) and wide[0].bias[-1] == given[-1]
    assert model[0].weight.shape[0] == widths[1]  # the argument is not modified


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("widths, activation", CASES)
@pytest.mark.parametrize(
    "method, alpha", [("split", "equal"), ("split", "random"), ("split", 0.25), ("zero", "equal")]
)
def test_embed_preserves_function_and_reduce_recovers(widths, activation, dtype, method, alpha):
    model = _model(widths, activation, dtype)
    x = _inputs(widths[0], dtype)
    target = [widths[0]] + [w + 1 + i for i, w in enumerate(widths[1:-1])] + [widths[-1]]
    target[1] += widths[1]  # more than one copy of some neurons
    wide = embed(model, target, method=method, alpha=alpha, seed=5)
    assert widths_of(wide) == target and _close(model, wide, x)
    reduced, report = reduce(wide)
    assert report.widths_before == target and report.widths_after == widths
    assert widths_of(reduced) == widths and _close(model, reduced, x)
    eps = torch.finfo(dtype).eps
    assert torch.allclose(flatten_params(reduced), flatten_params(model), atol=100 * eps, rtol=0)
    assert report.kept == {layer: list(range(widths[layer])) for layer in range(1, len(widths) - 1)}
    extra = sum(t - w for t, w in zip(target, widths, strict=True))
    if method == "split":
        assert len(report.merged) == extra and not report.dropped
        assert all(kept == merged % widths[layer] for layer, kept, merged, _ in report.merged)
    else:
        assert len(report.dropped) == extra and not report.merged


def test_embed_with_number_equals_repeated_splits():
    model = _model([3, 2, 3, 1], "tanh")
    wide = embed(model, [3, 5, 4, 1], alpha=0.3)
    manual = model
    for layer, neuron in [(1, 0), (1, 1), (1, 0), (2, 0)]:
        manual = split_neuron(manual, layer, neuron, 0.3)
    assert torch.allclose(flatten_params(wide), flatten_params(manual), atol=1e-15, rtol=0)


def _canonical(model):
    """Neurons of every hidden layer sorted by their first incoming weight (a permutation-free form)."""
    result = model
    for layer in range(1, len(widths_of(model)) - 1):
        order = torch.argsort(result[2 * (layer - 1)].weight[:, 0]).tolist()
        result = permute_neurons(result, layer, order)
    return flatten_params(result)


@pytest.mark.parametrize("widths, activation", CASES)
def test_reduce_recovers_up_to_permutation(widths, activation):
    model = _model(widths, activation)
    target = [widths[0]] + [2 * w for w in widths[1:-1]] + [widths[-1]]
    wide = embed(model, target, alpha="random", seed=1)
    gen = torch.Generator().manual_seed(2)
    for layer in range(1, len(widths) - 1):
        wide = permute_neurons(wide, layer, torch.randperm(target[layer], generator=gen).tolist())
    reduced, report = reduce(wide)
    x = _inputs(widths[0])
    assert widths_of(reduced) == widths and _close(model, reduced, x)
    assert torch.allclose(_canonical(reduced), _canonical(model), atol=1e-13, rtol=0)
    assert len(report.merged) == sum(widths[1:-1])


def test_reduce_positively_proportional_relu_neurons():
    model = _model([3, 4, 2], "relu")
    wide = split_neuron(model, 1, 2, 0.4)
    with torch.no_grad():  # rescale the copy: relu(c z) / c = relu(z) for c > 0
        wide[0].weight[-1] *= 3.0
        wide[0].bias[-1] *= 3.0
        wide[2].weight[:, -1] /= 3.0
    x = _inputs(3)
    assert _close(model, wide, x)
    reduced, report = reduce(wide)
    assert widths_of(reduced) == [3, 4, 2] and _close(model, reduced, x)
    ((layer, kept, merged, scale),) = report.merged
    assert (layer, kept, merged) == (1, 2, 4) and abs(scale - 3.0) < 1e-12
    # tanh is not positively homogeneous: the same rescaled copy is a different neuron
    tanh_wide = _model([3, 4, 2], "tanh")
    tanh_wide = split_neuron(tanh_wide, 1, 2, 0.4)
    with torch.no_grad():
        tanh_wide[0].weight[-1] *= 3.0
    assert widths_of(reduce(tanh_wide)[0]) == [3, 5, 2]


def _flipped_split(activation, dtype, scale=-1.0, flip_bias=True):
    """Split neuron 2 of layer 1 at alpha = 0.4, then move the copy by c = ``scale``: incoming
    row (and bias, if ``flip_bias``) times c, outgoing column divided by c."""
    model = _model([3, 4, 2], activation, dtype)
    wide = split_neuron(model, 1, 2, 0.4)
    with torch.no_grad():
        wide[0].weight[-1] *= scale
        if flip_bias:
            wide[0].bias[-1] *= scale
        wide[2].weight[:, -1] /= scale
    return model, wide


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reduce_merges_sign_flipped_neurons_of_odd_activations(dtype):
    """tanh(-w.x - b) = -tanh(w.x + b): a copy with (w, b, v) -> (-w, -b, -v) is the same neuron
    and merges with scale -1 back to the original parameters; identity merges any c != 0."""
    x = _inputs(3, dtype)
    model, wide = _flipped_split("tanh", dtype)
    assert _close(model, wide, x)
    reduced, report = reduce(wide)
    assert report.merged == [(1, 2, 4, -1.0)] and widths_of(reduced) == [3, 4, 2]
    atol = 1e-6 if dtype == torch.float32 else 1e-15
    torch.testing.assert_close(flatten_params(reduced), flatten_params(model), atol=atol, rtol=0)
    model, wide = _flipped_split("identity", dtype, scale=-2.5)
    assert _close(model, wide, x)
    reduced, report = reduce(wide)
    assert widths_of(reduced) == [3, 4, 2] and _close(model, reduced, x)
    ((layer, kept, merged, scale),) = report.merged
    assert (layer, kept, merged) == (1, 2, 4) and abs(scale + 2.5) < 1e-5


@pytest.mark.parametrize(
    "activation, scale, flip_bias",
    [
        ("softplus", -1.0, True),  # softplus(-z) = softplus(z) - z: not odd
        ("relu", -1.0, True),  # relu(-z) != -relu(z)
        ("tanh", -1.0, False),  # the flip must act on (w, b) together
        ("tanh", -2.0, True),  # tanh is odd but not homogeneous
    ],
)
def test_reduce_keeps_copies_that_are_not_a_symmetry(activation, scale, flip_bias):
    """Controls: these moved copies change the function and reduce must not merge them."""
    model, wide = _flipped_split(activation, torch.float64, scale, flip_bias)
    assert not _close(model, wide, _inputs(3))
    reduced, report = reduce(wide)
    assert widths_of(reduced) == [3, 5, 2] and not report.merged


def test_reduce_zero_sum_pair_and_irreducible_model():
    model = _model([2, 3, 1], "softplus")
    wide = add_zero_neuron(model, 1, seed=0)
    wide = split_neuron(wide, 1, 3, 0.5)  # a zero-sum pair sharing free incoming weights
    with torch.no_grad():
        wide[2].weight[:, 3] = 1.5
        wide[2].weight[:, 4] = -1.5
    x = _inputs(2)
    assert _close(model, wide, x)
    reduced, report = reduce(wide)
    assert widths_of(reduced) == [2, 3, 1] and _close(model, reduced, x)
    assert report.merged[0][1:3] == (3, 4) and report.dropped == [(1, 3)]
    same, report = reduce(model)
    assert torch.equal(flatten_params(same), flatten_params(model))
    assert not report.merged and not report.dropped


def test_bias_free_models():
    model = mlp([3, 4, 1], "softplus", seed=0, bias=False)
    wide = embed(model, [3, 7, 1], alpha="random", seed=0)
    wide = add_zero_neuron(wide, 1, incoming=torch.ones(3, dtype=torch.float64))
    x = _inputs(3)
    assert _close(model, wide, x)
    reduced, _ = reduce(wide)
    assert torch.allclose(flatten_params(reduced), flatten_params(model), atol=1e-14, rtol=0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: split_neuron(m, 0, 0, 0.5), r"layer: expected a hidden layer index in 1\.\.2"),
        (lambda m: split_neuron(m, 3, 0, 0.5), "layer: expected"),
        (lambda m: split_neuron(m, 1, 4, 0.5), r"neuron: expected an index in 0\.\.3"),
        (lambda m: split_neuron(m, 1, 0, "half"), "alpha: expected a real number"),
        (
            lambda m: add_zero_neuron(m, 1, incoming=torch.ones(5)),
            "incoming: expected 3 or 4 entries",
        ),
        (lambda m: embed(m, [3, 3, 5, 2]), "widths: expected 4 integers"),
        (lambda m: embed(m, [3, 4, 5, 1]), "widths: expected"),
        (lambda m: embed(m, [3, 4, 5, 2], method="copy"), "method: expected"),
        (lambda m: embed(m, [3, 4, 5, 2], alpha="half"), "alpha: expected"),
        (lambda m: reduce(m, tol=-1.0), "tol: expected a non-negative number"),
        (lambda m: reduce(nn.Linear(2, 2)), "model: expected a symlab.nets.mlp network"),
    ],
)
def test_bad_input(call, match):
    model = _model([3, 4, 5, 2], "relu")
    with pytest.raises(ValueError, match=match):
        call(model)
