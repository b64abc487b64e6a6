"""The closed-form factor chain on pooling, autograd-derivative activations, eval-mode dropout and
nested nn.Sequentials: equal to the dense jacrev reference and to the autograd factor pass."""

import pytest
import torch
from torch import nn

from symlab.ntk import empirical_ntk, structured_layers
from symlab.ntk import structured as structured_module
from symlab.ntk.factors import _chain_factors, chain_modules
from symlab.ntk.models import small_cnn
from symlab.ntk.structured import layer_factors

DTYPES = [torch.float32, torch.float64]


def _close(actual, expected, dtype):
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    scale = expected.abs().max().item()
    assert actual.dtype == dtype and actual.shape == expected.shape
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def _pooled_cnn(dtype):
    """Nested Sequentials with overlapping max pooling, average and adaptive pooling, 1-d pooling
    and every activation whose derivative is taken by autograd."""
    torch.manual_seed(11)
    block = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, dtype=dtype),
        nn.GELU(approximate="tanh"),
        nn.MaxPool2d(3, stride=2, padding=1),  # overlapping windows: gradients add up
        nn.Dropout(0.5),
    )
    return nn.Sequential(
        nn.Unflatten(1, (2, 8, 8)),
        block,
        nn.Sequential(nn.Conv2d(4, 5, 2, dtype=dtype), nn.SiLU(), nn.AvgPool2d(2, ceil_mode=True)),
        nn.ELU(),
        nn.AdaptiveAvgPool2d((2, 1)),
        nn.Flatten(),
        nn.Unflatten(1, (1, 10)),
        nn.MaxPool1d(2),
        nn.AdaptiveAvgPool1d(4),
        nn.Flatten(),
        nn.Linear(4, 6, dtype=dtype),
        nn.Mish(),
        nn.Linear(6, 5, dtype=dtype),
        nn.Hardtanh(-0.5, 0.5),
        nn.ReLU6(),
        nn.Linear(5, 3, dtype=dtype),
        nn.Dropout(0.2),
        nn.Softsign(),
    ).eval()


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_chain_matches_dense_reference_and_autograd(dtype, reference, monkeypatch):
    model = _pooled_cnn(dtype)
    assert chain_modules(model) is not None
    g = torch.Generator().manual_seed(12)
    x1 = torch.randn(5, 128, generator=g).to(dtype)
    x2 = torch.randn(3, 128, generator=g).to(dtype)
    model64 = _pooled_cnn(torch.float64)
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref12 = reference(model64, x1.double(), x2.double())
    ref11 = reference(model64, x1.double(), x1.double())
    assert ref12.abs().max() > 0
    _close(empirical_ntk(model, x1, x2, method="structured"), ref12, dtype)
    _close(empirical_ntk(model, x1, method="structured"), ref11, dtype)
    layers = structured_layers(model)
    assert (
        _chain_factors(chain_modules(model), layers, x1) is not None
    )  # the closed form ran, not autograd
    out, chain = layer_factors(model, layers, x1)
    monkeypatch.setattr(structured_module, "chain_modules", lambda _m: None)
    out_autograd, autograd = layer_factors(model, layers, x1)
    _close(out, out_autograd, dtype)
    assert len(chain) == len(autograd) == 5
    for u, v in zip(chain, autograd, strict=True):
        _close(u.delta, v.delta, dtype)
        _close(u.a, v.a, dtype)


def test_max_pool_ties_route_like_autograd(reference):
    """Constant inputs make every pooling window a tie: the chain must pick autograd's argmax."""
    torch.manual_seed(13)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)),
        nn.Conv2d(1, 2, 1, bias=False, dtype=torch.float64),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8, 2, dtype=torch.float64),
    )
    x = torch.ones(3, 16, dtype=torch.float64)
    torch.testing.assert_close(empirical_ntk(model, x, method="structured"), reference(model, x, x))


def test_small_cnn_takes_the_chain():
    model = small_cnn(4, 3, image_side=8, seed=0)
    x = torch.randn(3, 64, dtype=torch.float64)
    assert _chain_factors(chain_modules(model), structured_layers(model), x) is not None


def test_chain_rejects_what_it_cannot_see(reference):
    assert chain_modules(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))) is None  # train mode
    assert chain_modules(nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1))) is None  # mixes outputs
    pool = nn.MaxPool1d(2, return_indices=True)
    assert chain_modules(nn.Sequential(nn.Unflatten(1, (1, 4)), pool)) is None

    class Doubled(nn.ReLU):
        def forward(self, x):
            return 2 * super().forward(x)

    model = nn.Sequential(nn.Linear(3, 4), Doubled(), nn.Linear(4, 2)).double()
    assert chain_modules(model) is None  # a subclass may change forward: autograd pass instead
    inner = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    inner.register_forward_hook(lambda _m, _i, out: out * 3)
    hooked = nn.Sequential(inner, nn.Linear(4, 2)).double()
    assert chain_modules(hooked) is None
    x = torch.randn(4, 3, dtype=torch.float64)
    for m in (model, hooked):
        torch.testing.assert_close(empirical_ntk(m, x, method="structured"), reference(m, x, x))
    shared = nn.Linear(4, 4)
    assert chain_modules(nn.Sequential(nn.Sequential(shared, nn.Tanh()), shared)) is None


def _device_cases():
    torch.manual_seed(14)
    mlp = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    cnn = small_cnn(4, 3, image_side=8, seed=0, dtype=torch.float32)
    return [(mlp, torch.randn(4, 3)), (cnn, torch.randn(4, 64))]


@pytest.mark.parametrize("index", [0, 1])
def test_every_route_keeps_tensors_on_the_inputs_device(index, monkeypatch):
    """On the meta device any tensor made on the CPU by mistake raises: a stand-in for a GPU."""
    model, x = _device_cases()[index]
    model, x = model.to("meta"), x.to("meta")
    for method in ("jacobian", "ntvp"):
        for kwargs in ({}, {"trace": True}, {"diagonal": True}):
            assert empirical_ntk(model, x, method=method, **kwargs).device.type == "meta"
    layers = structured_layers(model)
    for chain in (True, False):  # closed-form chain and autograd factor passes
        if not chain:
            monkeypatch.setattr(structured_module, "chain_modules", lambda _m: None)
        _, factors = layer_factors(model, layers, x)
        k = factors[0].delta.shape[0]
        out = torch.zeros((4, k, 4, k), device="meta")
        blocks = structured_module.point_blocks(4, k)
        for f in factors:
            for kwargs in ({}, {"trace": True}, {"diagonal": True}):
                assert structured_module.contract(f, f, **kwargs).device.type == "meta"
            structured_module.accumulate(out, f, f, symmetric=True, blocks=blocks)
            structured_module.accumulate(out, f, f)
        structured_module.mirror(out, blocks)
