"""empirical_ntk: every method against the dense jacrev reference, float32 and float64."""

import pytest
import torch

from symlab.ntk import empirical_ntk, structured_layers
from symlab.ntk.structured import contract, layer_factors

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
