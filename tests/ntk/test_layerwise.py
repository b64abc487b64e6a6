"""layerwise_ntk: each layer's kernel against the dense jacrev reference over that layer's
parameters only, their sum against empirical_ntk, and the error-reduction shares."""

import copy

import pytest
import torch
from torch import nn

from symlab.nets import mlp
from symlab.ntk import empirical_ntk, error_reduction, error_reduction_shares, layerwise_ntk


def _only(model: nn.Module, prefix: str) -> nn.Module:
    """A copy of ``model`` in which only the parameters of module ``prefix`` require grad."""
    copy_ = copy.deepcopy(model)
    for name, p in copy_.named_parameters():
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        p.requires_grad_(owner == prefix)
    return copy_


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["mlp_tanh_k3", "cnn", "shared", "sequence"])
def test_each_layer_matches_the_dense_reference_and_they_sum_to_the_ntk(
    name, dtype, case, reference
):
    model, x, _ = case(name, dtype)
    kernels = layerwise_ntk(model, x)
    owners = {n.rsplit(".", 1)[0] if "." in n else "" for n, _ in model.named_parameters()}
    assert set(kernels) == owners
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    full = empirical_ntk(model, x, method="jacobian").double()
    for layer, theta in kernels.items():
        expected = reference(_only(model, layer), x, x).double()
        assert theta.dtype == dtype
        assert (theta.double() - expected).abs().max() <= tol * full.abs().max(), layer
    total = sum(k.double() for k in kernels.values())
    assert (total - full).abs().max() <= tol * full.abs().max()
    traced = layerwise_ntk(model, x, trace=True)
    for layer in kernels:
        assert torch.allclose(traced[layer], kernels[layer].diagonal(dim1=2, dim2=3).sum(-1))


def test_error_reduction_sums_to_the_full_quadratic_form():
    model = mlp([3, 8, 8, 2], seed=0, bias_std=0.1)
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    kernels = layerwise_ntk(model, x)
    parts = error_reduction(kernels, r)
    theta = empirical_ntk(model, x)
    assert sum(parts.values()) == pytest.approx(
        float(torch.einsum("nk,nmkl,ml->", r, theta, r)), rel=1e-12
    )
    assert all(v >= 0 for v in parts.values())
    # −dL/dt: one small gradient step on ½‖f − y‖² with y = f − r lowers the loss by lr ⟨r, Θ r⟩
    shares = error_reduction_shares(kernels, r)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert list(shares) == ["0", "2", "4"]


def test_bad_input_names_the_argument():
    model = mlp([3, 4, 1], seed=0)
    x = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="^x: expected torch.float64"):
        layerwise_ntk(model, x.float())
    with pytest.raises(ValueError, match="^model: expected an nn.Module"):
        layerwise_ntk("net", x)
    kernels = layerwise_ntk(model, x)
    with pytest.raises(ValueError, match="^residual: expected shape"):
        error_reduction(kernels, torch.zeros(4, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="^residual: expected a residual"):
        error_reduction_shares(kernels, torch.zeros(5, 1, dtype=torch.float64))
