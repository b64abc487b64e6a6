"""empirical_ntk returns plain tensors on models with normalisation layers, and every method
it runs (auto's choice or an explicit one) runs on the model or fails with one ValueError."""

import gc

import pytest
import torch
from jacobian_reference import jacobian
from torch import nn

from symlab.ntk import METHODS, empirical_ntk, support


def _reference(model, x1, x2):
    """Theta (N1, N2, K, K) = J1 J2^T with the torch.func Jacobian of tests/jacobian_reference."""
    j1, j2 = jacobian(model, x1), jacobian(model, x2)
    k = j1.shape[0] // x1.shape[0]
    return (j1 @ j2.T).reshape(x1.shape[0], k, x2.shape[0], k).permute(0, 2, 1, 3)


class ScaledByTensor(nn.Module):
    """Reads a plain tensor attribute that requires grad (not a parameter: not differentiated)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 8)
        self.scale = torch.linspace(0.5, 1.5, 8, dtype=torch.float64, requires_grad=True)

    def forward(self, x):
        return self.layer(x) * self.scale


NORMS = {
    "layernorm": lambda: nn.LayerNorm(8),
    "batchnorm_eval": lambda: nn.BatchNorm1d(8),
    "groupnorm": lambda: nn.GroupNorm(2, 8),
    "tensor_attribute": ScaledByTensor,
}


def _model(norm):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), NORMS[norm](), nn.Tanh(), nn.Linear(8, 2)).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model[1].parameters():  # away from the identity initialisation
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        if isinstance(model[1], nn.BatchNorm1d):
            model[1].running_mean.normal_(generator=g)
            model[1].running_var.uniform_(0.5, 2.0, generator=g)
    return model.eval()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("norm", list(NORMS))
def test_kernel_holds_no_graph_and_matches_reference(norm, method):
    model = _model(norm)
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(4, 5, generator=g, dtype=torch.float64)
    x2 = torch.randn(3, 5, generator=g, dtype=torch.float64)
    ref12, ref11 = _reference(model, x1, x2), _reference(model, x1, x1)
    traced = ref12.diagonal(0, 2, 3).sum(-1)
    diag = torch.stack([ref11[n, n] for n in range(x1.shape[0])])
    kernels = {
        "x1, x2": (empirical_ntk(model, x1, x2, method=method), ref12),
        "symmetric": (empirical_ntk(model, x1, method=method, chunk_size=3), ref11),
        "trace": (empirical_ntk(model, x1, x2, method=method, trace=True), traced),
        "diagonal": (empirical_ntk(model, x1, method=method, diagonal=True), diag),
    }
    for name, (k, expected) in kernels.items():
        assert not k.requires_grad and k.grad_fn is None, name
        k.numpy()
        torch.testing.assert_close(k, expected, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("method", METHODS)
def test_batchnorm_in_training_mode_is_refused(method):
    model = _model("batchnorm_eval").train()
    with pytest.raises(ValueError, match="^model: batch normalisation in training mode"):
        empirical_ntk(model, torch.randn(4, 5, dtype=torch.float64), method=method)


class Attention(nn.Module):
    """nn.MultiheadAttention (in eval mode a fused kernel without forward-mode AD) and a head."""

    def __init__(self):
        super().__init__()
        self.attention = nn.MultiheadAttention(4, 2, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h, _ = self.attention(x, x, x)
        return self.head(h.mean(1))


def _attention():
    torch.manual_seed(3)
    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    return Attention().double().eval(), x


def test_auto_picks_a_method_that_runs_on_attention():
    model, x = _attention()
    ref = _reference(model, x, x)
    # a tiny memory budget makes NTK-vector products auto's first choice
    k = empirical_ntk(model, x, method="auto", memory_budget=1)
    torch.testing.assert_close(k, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(empirical_ntk(model, x, method="jacobian"), ref)


def test_explicit_method_without_forward_mode_ad_is_one_value_error():
    model, x = _attention()
    expected = (
        r"^method: 'ntvp' needs forward-mode AD, which MultiheadAttention does not support"
        r"( \(aten::\w+\))?; use 'jacobian' or 'auto'$"
    )
    with pytest.raises(ValueError, match=expected):
        empirical_ntk(model, x, method="ntvp")


class ItemScale(nn.Module):
    """Scales by a Python number read with .item(), which vmap cannot batch."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def forward(self, x):
        return self.layer(x) * (1.0 + x.abs().max().item())


def test_explicit_method_without_vmap_is_one_value_error():
    model = ItemScale().double()
    x = torch.randn(4, 3, dtype=torch.float64)
    for method in ("jacobian", "ntvp"):
        with pytest.raises(ValueError, match=f"^method: '{method}' needs vmap, which ItemScale"):
            empirical_ntk(model, x, method=method)


def test_probe_runs_once_per_model_and_again_when_the_model_changes(monkeypatch):
    model, x = _attention()
    calls = []
    probe = support._probe

    def counting(model, method, *args):
        calls.append(method)
        return probe(model, method, *args)

    monkeypatch.setattr(support, "_probe", counting)
    for _ in range(3):
        empirical_ntk(model, x, method="auto", memory_budget=1)
    assert sorted(calls) == ["jacobian", "ntvp"]  # attention is mostly not structured
    model.train()  # training mode: no fused kernel, forward-mode AD works
    calls.clear()
    torch.testing.assert_close(
        empirical_ntk(model, x, method="ntvp"), _reference(model, x, x), rtol=1e-10, atol=1e-12
    )
    assert calls == ["ntvp"]
    before = len(support._CACHE)
    del model
    gc.collect()
    assert len(support._CACHE) == before - 1
