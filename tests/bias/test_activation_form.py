"""The activations and covariance forms of the L2-regularized loss (Jacot et al., NeurIPS 2022)
against the parameter loss and an independent projector reference, and the Carathéodory width
reduction against dense references (outputs, penalty, the rank of the explicit neuron vectors)."""

import pytest
import torch
from torch import nn

from symlab.bias import (
    Activations,
    DeepLinearNetwork,
    activation_loss,
    layer_activations,
    optimal_weights,
    parameter_loss,
    reduce_width,
    set_weights,
)
from symlab.bias.width_reduction import GRAM_RTOL
from symlab.nets import mlp
from symlab.train import train

LAM = 1e-2


def _data(seed, n=6, d=3, k=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, k, generator=g, dtype=dtype)


def _trained(
    seed, activation="relu", widths=(3, 12, 12, 2), steps=2500, lam=LAM, dtype=torch.float64
):
    x, y = _data(seed, dtype=dtype)
    net = mlp(list(widths), activation=activation, seed=seed, dtype=dtype, bias_std=0.1)
    train(net, (x, y), method="heavy_ball", momentum=0.9, lr=0.05, steps=steps, weight_decay=lam,
          record_every=steps)  # fmt: skip
    return net, x, y


def _hidden_projector_gap(model, x):
    """Σ_ℓ ‖W_ℓ (I − P_ℓ)‖² with P_ℓ the projector onto the row space of Z_{ℓ−1}^σ, from an SVD
    of the activations replayed by hand (the W̃ part of the paper's decomposition)."""
    h = x.double()
    total = 0.0
    children = list(model)
    for index in range(0, len(children), 2):
        lin = children[index]
        zs = torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype)], 1)  # N × (n + 1)
        u, s, vh = torch.linalg.svd(zs.T, full_matrices=False)
        basis = u[:, s > s[0] * 1e-12]
        w = torch.cat([lin.weight.double(), lin.bias.double()[:, None]], 1).detach()
        total += float((w - w @ basis @ basis.T).square().sum())
        h = zs @ w.T
        if index + 1 < len(children):
            h = children[index + 1](h)
    return total


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_gap_to_the_parameter_loss_is_the_lam_weighted_null_space_part(activation):
    x, y = _data(0)
    net = mlp([3, 12, 12, 2], activation=activation, seed=0, dtype=torch.float64, bias_std=0.1)
    gap = parameter_loss(net, x, y, LAM) - activation_loss(net, x, y, LAM)
    expected = LAM * _hidden_projector_gap(net, x)
    assert gap > 1e-3  # at initialization the weights are far from optimal: the check can fail
    assert gap == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh"])
def test_both_forms_equal_the_parameter_loss_at_a_trained_minimum(activation):
    net, x, y = _trained(1, activation)
    full = parameter_loss(net, x, y, LAM)
    reduced = activation_loss(net, x, y, LAM)
    assert reduced <= full + 1e-12
    assert (full - reduced) / full < 1e-4  # heavy ball's tolerance after 2500 steps
    if activation != "tanh":
        covariance = activation_loss(net, x, y, LAM, form="covariances")
        assert covariance == pytest.approx(reduced, rel=1e-6)  # (K^σ)⁺ squares the condition


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_optimal_weights_keep_the_outputs_and_never_increase_the_loss(seed, dtype):
    x, y = _data(seed, dtype=dtype)
    net = mlp([3, 10, 9, 2], activation="relu", seed=seed, dtype=dtype, bias_std=0.3)
    before = parameter_loss(net, x, y, LAM)
    with torch.no_grad():
        out = net(x).double()
    set_weights(net, optimal_weights(layer_activations(net, x)))
    with torch.no_grad():
        torch.testing.assert_close(
            net(x).double(), out, atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=0
        )
    after = parameter_loss(net, x, y, LAM)
    assert after <= before + 1e-6
    assert after == pytest.approx(activation_loss(net, x, y, LAM), rel=1e-5)


def test_deep_linear_network_and_bias_free_layers_are_read():
    x, y = _data(3, n=5, d=4, k=4)
    net = DeepLinearNetwork(4, 4, width=7, depth=3, variance=0.3, seed=0, dtype=torch.float64)
    acts = layer_activations(net, x)
    assert not acts.bias and [tuple(z.shape) for z in acts.pre] == [(7, 5), (7, 5), (4, 5)]
    torch.testing.assert_close(acts.pre[-1].T, net(x).detach())
    a = activation_loss(net, x, y, LAM)
    assert a == pytest.approx(activation_loss(net, x, y, LAM, form="covariances"), rel=1e-9)
    assert a <= parameter_loss(net, x, y, LAM)


def _explicit_rank(z, s, rtol=None):
    """Rank of the explicit vectors v_i = (upper triangles of z_i z_iᵀ and s_i s_iᵀ, off-diagonal
    entries times √2 so the inner product is the Frobenius one)."""
    n = z.shape[1]
    iu = torch.triu_indices(n, n)
    weight = torch.where(iu[0] == iu[1], 1.0, 2**0.5).double()
    v = torch.cat([(z[:, :, None] * z[:, None, :])[:, iu[0], iu[1]] * weight,
                   (s[:, :, None] * s[:, None, :])[:, iu[0], iu[1]] * weight], 1)  # fmt: skip
    return int(torch.linalg.matrix_rank(v, rtol=rtol))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reduce_width_keeps_outputs_and_penalty_within_the_bound(seed):
    g = torch.Generator().manual_seed(10 + seed)
    n = 5
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, 2, generator=g, dtype=torch.float64)
    net = mlp([3, 48, 48, 2], seed=seed, dtype=torch.float64, bias_std=0.1)
    train(net, (x, y), method="heavy_ball", momentum=0.9, lr=0.02, steps=1500, weight_decay=1e-3,
          record_every=1500)  # fmt: skip
    result = reduce_width(net, x, 1e-3)
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), net(x), atol=1e-8, rtol=0)
    assert result.penalty_after <= result.penalty_before + 1e-12
    acts = layer_activations(net, x)
    for layer, z in enumerate(acts.pre[:-1]):
        # the Gram threshold on eigenvalues is √GRAM_RTOL on the singular values of V
        assert result.ranks[layer] == _explicit_rank(z, torch.relu(z), rtol=GRAM_RTOL**0.5)
        bound = _explicit_rank(z, torch.relu(z))  # LAPACK's default threshold
        assert result.widths_after[layer] <= result.ranks[layer] <= bound <= n * (n + 1)
        assert result.widths_after[layer] < result.widths_before[layer]
    # the reduced net's own activations reproduce its parameter loss (its weights are optimal)
    assert parameter_loss(result.model, x, y, 1e-3) == pytest.approx(
        activation_loss(result.model, x, y, 1e-3), rel=1e-9
    )


def test_reduce_width_merges_positively_proportional_neurons_in_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, generator=g, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(2, 3, dtype=torch.float64), nn.ReLU(),
                        nn.Linear(3, 1, dtype=torch.float64))  # fmt: skip
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0], [2.0, 4.0], [-1.0, 0.5]]))
        net[0].bias.copy_(torch.tensor([0.5, 1.0, 0.0]))  # neuron 2 = 2 · neuron 1
        net[2].weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
        net[2].bias.zero_()
    result = reduce_width(net, x, 1.0)
    assert result.widths_after == [2]
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), net(x), atol=1e-10, rtol=0)


def test_bad_inputs_name_the_argument():
    x, y = _data(0)
    tanh = mlp([3, 5, 2], activation="tanh", seed=0, dtype=torch.float64)
    relu = mlp([3, 5, 2], seed=0, dtype=torch.float64)
    with pytest.raises(
        ValueError, match="^model: the covariance form needs a positively homogeneous"
    ):
        activation_loss(tanh, x, y, LAM, form="covariances")
    with pytest.raises(ValueError, match="^model: reduce_width needs a positively homogeneous"):
        reduce_width(tanh, x, LAM)
    for lam in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="^lam: expected a"):
            activation_loss(relu, x, y, lam)
        with pytest.raises(ValueError, match="^lam: expected a"):
            reduce_width(relu, x, lam)
    acts = layer_activations(relu, x)
    with pytest.raises(
        ValueError, match="^activations: expected 2-D matrices with the same number N"
    ):
        Activations(
            pre=[acts.pre[0], acts.pre[1][:, :4]], post=acts.post, bias=True, sigma=acts.sigma
        )
    with pytest.raises(ValueError, match="^activations: expected an Activations record"):
        optimal_weights([acts.pre[0]])
    with pytest.raises(ValueError, match="^Y: expected targets of shape"):
        activation_loss(relu, x, y[:, :1], LAM)
    with pytest.raises(ValueError, match="^X: expected inputs of shape"):
        activation_loss(relu, x[:, :2], y, LAM)
    with pytest.raises(ValueError, match="^form: expected"):
        activation_loss(relu, x, y, LAM, form="kernel")


def test_reduce_width_never_returns_a_larger_penalty_even_at_a_coarse_threshold():
    """A coarse Gram threshold drops directions that matter: the check retries finer (or keeps
    every neuron), so the L2 term never rises and the outputs stay."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    net = mlp([3, 40, 40, 2], seed=3, dtype=torch.float64, bias_std=0.1)
    coarse = reduce_width(net, x, 1e-3, rtol=1e-4)
    assert coarse.penalty_after <= coarse.penalty_before
    assert coarse.rtol < 1e-4 or coarse.rtol == 1e-4
    with torch.no_grad():
        torch.testing.assert_close(coarse.model(x), net(x), atol=1e-6, rtol=0)
