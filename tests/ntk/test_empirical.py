"""empirical_ntk: every method against the dense jacrev reference, float32 and float64."""

import copy

import pytest
import torch
from torch import nn

from symlab.ntk import empirical_ntk, structured_layers
from symlab.ntk.structured import (
    accumulate,
    contract,
    gradient_rows,
    layer_factors,
    mirror,
)

CASES = ["mlp_relu_k1", "mlp_tanh_k3", "cnn", "shared", "sequence"]
METHODS = ["structured", "jacobian", "ntvp", "auto"]
DTYPES = [torch.float32, torch.float64]


def _close(actual, expected, dtype):
    tol = 2e-5 if dtype == torch.float32 else 1e-11
    scale = expected.abs().max().item()
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def _traced(k):
    return torch.diagonal(k, dim1=2, dim2=3).sum(-1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", CASES)
def test_matches_dense_reference(name, method, dtype, case, reference):
    model, x1, x2 = case(name, dtype)
    model64, _, _ = case(name, torch.float64)
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref12 = reference(model64, x1.double(), x2.double())
    ref11 = reference(model64, x1.double(), x1.double())
    _close(empirical_ntk(model, x1, x2, method=method), ref12, dtype)
    _close(empirical_ntk(model, x1, method=method, trace=True), _traced(ref11), dtype)
    diag = torch.stack([ref11[n, n] for n in range(x1.shape[0])])
    _close(empirical_ntk(model, x1, method=method, diagonal=True), diag, dtype)
    _close(
        empirical_ntk(model, x1, method=method, diagonal=True, trace=True),
        _traced(diag.unsqueeze(0))[0],
        dtype,
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["mlp_tanh_k3", "cnn"])
def test_chunked_equals_unchunked(name, method, case):
    model, x1, x2 = case(name, torch.float64)
    for kwargs in ({}, {"trace": True}, {"diagonal": True}):
        whole = empirical_ntk(model, x1, method=method, **kwargs)
        torch.testing.assert_close(
            empirical_ntk(model, x1, method=method, chunk_size=2, **kwargs), whole
        )
    whole = empirical_ntk(model, x1, x2, method=method)
    torch.testing.assert_close(empirical_ntk(model, x1, x2, method=method, chunk_size=2), whole)


def test_symmetric_kernel_with_chunks_is_symmetric(case):
    model, x1, _ = case("mlp_tanh_k3", torch.float64)
    k = empirical_ntk(model, x1, chunk_size=2, method="structured")
    torch.testing.assert_close(k, k.permute(1, 0, 3, 2))


def test_diagonal_with_x2_pairs_points(case, reference):
    model, x1, _ = case("mlp_tanh_k3", torch.float64)
    x2 = x1.flip(0) * 0.5
    ref = reference(model, x1, x2)
    expected = torch.stack([ref[n, n] for n in range(x1.shape[0])])
    for method in METHODS:
        torch.testing.assert_close(
            empirical_ntk(model, x1, x2, method=method, diagonal=True), expected
        )


def test_weight_shared_layer_is_structured(case):
    model, _, _ = case("shared", torch.float64)
    assert set(structured_layers(model)) == {"shared", "readout"}


def test_tied_weight_outside_forward_falls_back(case, reference):
    model, x1, x2 = case("tied", torch.float64)
    ref = reference(model, x1, x2)
    torch.testing.assert_close(empirical_ntk(model, x1, x2, method="auto"), ref)
    with pytest.raises(ValueError, match="method"):
        empirical_ntk(model, x1, x2, method="structured")


def test_frozen_parameters_are_left_out(case, reference):
    model, x1, x2 = case("mlp_tanh_k3", torch.float64)
    model[0].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    ref = reference(model, x1, x2)
    for method in METHODS:
        torch.testing.assert_close(empirical_ntk(model, x1, x2, method=method), ref)


@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("diagonal", [False, True])
def test_both_contraction_paths_agree(trace, diagonal, case):
    for name in ("cnn", "shared", "sequence", "mlp_tanh_k3"):
        model, x1, x2 = case(name, torch.float64)
        layers = structured_layers(model)
        _, f1 = layer_factors(model, layers, x1)
        _, f2 = layer_factors(model, layers, x1 if diagonal else x2)
        for u, v in zip(f1, f2, strict=True):
            a = contract(u, v, trace=trace, diagonal=diagonal, path="pairs")
            b = contract(u, v, trace=trace, diagonal=diagonal, path="gradients")
            torch.testing.assert_close(a, b)


def test_bad_arguments(case):
    model, x1, x2 = case("mlp_relu_k1", torch.float64)
    with pytest.raises(ValueError, match="method"):
        empirical_ntk(model, x1, method="exact")
    with pytest.raises(ValueError, match="chunk_size"):
        empirical_ntk(model, x1, chunk_size=0)
    with pytest.raises(ValueError, match="x2"):
        empirical_ntk(model, x1, x2[:, :2])
    with pytest.raises(ValueError, match="x2"):
        empirical_ntk(model, x1, x2, diagonal=True)
    with pytest.raises(ValueError, match="x1"):
        empirical_ntk(model, x1[:0])
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="model"):
        empirical_ntk(model, x1)


def test_same_result_under_no_grad_and_for_x2_is_x1(case):
    model, x1, _ = case("cnn", torch.float64)
    for method in METHODS:
        expected = empirical_ntk(model, x1, x1.clone(), method=method)
        with torch.no_grad():
            torch.testing.assert_close(empirical_ntk(model, x1, method=method), expected)
        torch.testing.assert_close(
            empirical_ntk(model, x1, x1, method=method, chunk_size=2), expected
        )


def test_tiny_memory_budget_chunks_ntvp_and_auto_picks_it(case, reference):
    model, x1, x2 = case("tied", torch.float64)  # not structured: auto chooses by memory
    ref = reference(model, x1, x2)
    torch.testing.assert_close(empirical_ntk(model, x1, x2, method="ntvp", memory_budget=1), ref)
    torch.testing.assert_close(empirical_ntk(model, x1, x2, method="auto", memory_budget=1), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", CASES)
def test_full_symmetric_kernel_matches_dense_reference(name, method, dtype, case, reference):
    """x2=None, x2 an equal copy of x1 and chunked: the symmetric path against jacrev."""
    model, x1, _ = case(name, dtype)
    model64, _, _ = case(name, torch.float64)
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref = reference(model64, x1.double(), x1.double())
    _close(empirical_ntk(model, x1, method=method), ref, dtype)
    _close(empirical_ntk(model, x1, x1.clone(), method=method), ref, dtype)
    _close(empirical_ntk(model, x1, x1.clone(), method=method, chunk_size=2), ref, dtype)


def test_nearly_equal_x2_is_not_treated_as_x1(case, reference):
    """One changed entry in a copy of x1: the kernel is Theta(x1, x2), not Theta(x1, x1)."""
    model, x1, _ = case("cnn", torch.float64)
    x2 = x1.clone()
    x2[-1, 0, 0, 0] += 0.5
    ref = reference(model, x1, x2)
    assert (ref - reference(model, x1, x1)).abs().max() > 1e-3
    torch.testing.assert_close(empirical_ntk(model, x1, x2, method="structured"), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [2, 37])
def test_many_point_blocks_match_dense_reference(n, dtype, reference):
    """Enough points for several symmetric row blocks (point_blocks), against jacrev."""
    from symlab.nets import mlp

    model = mlp([3, 7, 6, 3], "tanh", bias_std=0.1, seed=1, dtype=dtype)
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    model64 = mlp([3, 7, 6, 3], "tanh", bias_std=0.1, seed=1, dtype=torch.float64)
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref = reference(model64, x.double(), x.double())
    _close(empirical_ntk(model, x, method="structured"), ref, dtype)
    _close(empirical_ntk(model, x, method="structured", chunk_size=16), ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("symmetric", [False, True])
def test_accumulate_matches_contract_per_layer(symmetric, dtype, case):
    """The point-major accumulation (both paths, any row blocks) equals contract's kernel."""
    for name in ("cnn", "shared", "sequence", "mlp_tanh_k3", "mlp_relu_k1"):
        model, x1, x2 = case(name, dtype)
        layers = structured_layers(model)
        _, f1 = layer_factors(model, layers, x1)
        f2 = f1 if symmetric else layer_factors(model, layers, x2)[1]
        n1, n2 = x1.shape[0], (x1 if symmetric else x2).shape[0]
        k = f1[0].delta.shape[0]
        for blocks in ([slice(0, n1)], [slice(0, 1), slice(1, 3), slice(3, n1)]):
            for u, v in zip(f1, f2, strict=True):
                expected = contract(u, v).permute(0, 2, 1, 3)
                out = torch.zeros(n1, k, n2, k, dtype=dtype)
                accumulate(out, u, v, symmetric=symmetric, blocks=blocks)
                if symmetric:
                    mirror(out, blocks)
                _close(out, expected, dtype)


def test_gradient_rows_are_per_example_gradients(case):
    """Gram of gradient_rows equals the Gram of per-example parameter gradients from autograd."""
    model, x1, _ = case("cnn", torch.float64)
    layers = structured_layers(model)
    _, factors = layer_factors(model, layers, x1)
    conv = model.conv1
    rows = gradient_rows(factors[0])  # conv1: (N K, O (I + 1))
    grads = []
    for n in range(x1.shape[0]):
        out = model(x1[n : n + 1]).reshape(-1)
        for k in range(out.shape[0]):
            g = torch.autograd.grad(out[k], [conv.weight, conv.bias], retain_graph=True)
            grads.append(torch.cat([g[0].reshape(-1), g[1]]))
    dense = torch.stack(grads)
    torch.testing.assert_close(rows @ rows.T, dense @ dense.T)
    torch.testing.assert_close(rows.norm(dim=1), dense.norm(dim=1))


def _chain_cnn(dtype):
    """A flat nn.Sequential with every module the closed-form chain supports: Unflatten, a
    padded conv, a strided, dilated, bias-free conv with odd sizes, each activation, Flatten."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Unflatten(1, (2, 7, 6)),
        nn.Conv2d(2, 3, 3, padding=1, dtype=dtype),
        nn.LeakyReLU(0.1),
        nn.Conv2d(
            3, 4, (3, 2), stride=(2, 3), dilation=(1, 2), padding=(1, 2), bias=False, dtype=dtype
        ),
        nn.Softplus(beta=2.0, threshold=1.0),
        nn.Flatten(),
        nn.Linear(4 * 4 * 3, 5, dtype=dtype),
        nn.Sigmoid(),
        nn.Identity(),
        nn.Linear(5, 3, dtype=dtype),
        nn.Tanh(),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_closed_form_chain_matches_dense_reference_and_autograd(dtype, reference, monkeypatch):
    """nn.Sequential chains use closed-form backpropagation: against jacrev and autograd factors."""
    from symlab.ntk import structured

    model = _chain_cnn(dtype)
    g = torch.Generator().manual_seed(4)
    x1 = torch.randn(5, 84, generator=g).to(dtype)
    x2 = torch.randn(3, 84, generator=g).to(dtype)
    assert structured.chain_modules(model) is not None
    model64 = _chain_cnn(torch.float64)
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref12 = reference(model64, x1.double(), x2.double())
    ref11 = reference(model64, x1.double(), x1.double())
    _close(empirical_ntk(model, x1, x2, method="structured"), ref12, dtype)
    _close(empirical_ntk(model, x1, method="structured"), ref11, dtype)
    _close(empirical_ntk(model, x1, method="structured", trace=True), _traced(ref11), dtype)
    layers = structured_layers(model)
    out, chain = layer_factors(model, layers, x1)
    monkeypatch.setattr(structured, "chain_modules", lambda _m: None)
    out_ag, autograd = layer_factors(model, layers, x1)
    _close(out, out_ag, dtype)
    assert len(chain) == len(autograd) == 4
    for u, v in zip(chain, autograd, strict=True):
        _close(u.delta, v.delta, dtype)
        _close(u.a, v.a, dtype)
        assert u.bias == v.bias


def test_closed_form_chain_frozen_layers_and_fallbacks(reference):
    model = _chain_cnn(torch.float64)
    x = torch.randn(4, 84, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    model[1].requires_grad_(False)  # a frozen layer is backpropagated through, not counted
    model[6].weight.requires_grad_(False)
    model[9].bias.requires_grad_(False)
    torch.testing.assert_close(empirical_ntk(model, x, method="structured"), reference(model, x, x))
    from symlab.ntk.factors import chain_modules

    assert chain_modules(nn.Sequential(nn.Linear(2, 2), nn.PReLU())) is None  # autograd instead
    layer = nn.Linear(3, 3, dtype=torch.float64)
    assert chain_modules(nn.Sequential(layer, nn.Tanh(), layer)) is None  # one module used twice
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    seq.register_forward_hook(lambda _m, _i, out: out * 2)
    assert chain_modules(seq) is None
    torch.testing.assert_close(
        empirical_ntk(seq, x[:, :3], method="structured"), reference(seq, x[:, :3], x[:, :3])
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_closed_form_chain_consecutive_linear_layers(dtype, reference):
    """Linear layers back to back (no activation between), the output layer frozen and an
    activation after the output: the chain's shortcuts at the output stay exact."""
    torch.manual_seed(6)
    model = nn.Sequential(
        nn.Linear(4, 5, dtype=dtype),
        nn.Linear(5, 6, dtype=dtype),
        nn.Tanh(),
        nn.Identity(),
        nn.Linear(6, 3, dtype=dtype),
        nn.Linear(3, 2, dtype=dtype),
        nn.Sigmoid(),
    )
    model[5].requires_grad_(False)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(7)).to(dtype)
    model64 = copy.deepcopy(model).double()
    ref = reference(model64, x.double(), x.double())
    _close(empirical_ntk(model, x, method="structured"), ref, dtype)
    _close(empirical_ntk(model, x, x[:3], method="structured"), ref[:, :3], dtype)


@pytest.mark.parametrize("n", [1, 4])
def test_closed_form_chain_leaves_the_weights_untouched(n, case, reference):
    """The chain scales its buffers in place; the broadcast output weight must never be one."""
    model, x1, _ = case("mlp_tanh_k3", torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    k = empirical_ntk(model, x1[:n], method="structured")
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    torch.testing.assert_close(k, reference(model, x1[:n], x1[:n]))


def test_bad_inputs_are_one_sentence_value_errors_and_batchnorm_state_is_untouched():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="^x1: expected torch.float32 points"):
        empirical_ntk(model, torch.randn(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="^x1: the model cannot be evaluated"):
        empirical_ntk(model, torch.randn(5, 7))
    bn = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    before = int(bn[1].num_batches_tracked)
    with pytest.raises(ValueError, match="^model: batch normalisation in training mode"):
        empirical_ntk(bn, torch.randn(5, 3))
    assert int(bn[1].num_batches_tracked) == before
    assert empirical_ntk(bn.eval(), torch.randn(5, 3)).shape == (5, 5, 1, 1)


def test_frozen_parameters_are_left_out_of_the_kernel_but_not_the_jacobian():
    from symlab.linalg import parameter_jacobian

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
    ).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    jac = parameter_jacobian(model, x)
    assert torch.allclose(empirical_ntk(model, x)[:, :, 0, 0], jac @ jac.T, atol=1e-12)
    model[0].bias.requires_grad_(False)
    frozen = torch.ones(jac.shape[1], dtype=torch.bool)
    frozen[12:16] = False  # W_1 is 4 x 3 = 12 entries, then b_1 (4)
    kept = jac[:, frozen]
    assert torch.allclose(empirical_ntk(model, x)[:, :, 0, 0], kept @ kept.T, atol=1e-12)
    assert parameter_jacobian(model, x).shape == jac.shape
