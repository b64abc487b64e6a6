"""parameter_jacobian: closed form vs torch.func vs central finite differences."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from symlab.linalg import parameter_jacobian
from symlab.nets import flatten_params, mlp, unflatten_params


def finite_difference_jacobian(model: nn.Module, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central differences (f(theta + h e_p) - f(theta - h e_p)) / 2h, float64, one column at a time."""
    model = model.double()
    x = x.double()
    theta = flatten_params(model)

    def f(t: torch.Tensor) -> torch.Tensor:
        return functional_call(model, unflatten_params(model, t), (x,)).reshape(-1)

    columns = []
    with torch.no_grad():
        for p in range(theta.numel()):
            e = torch.zeros_like(theta)
            e[p] = h
            columns.append((f(theta + e) - f(theta - e)) / (2 * h))
    return torch.stack(columns, dim=1)


WIDTHS = {1: [(3, 5, 4, 1), (2, 3, 1)], 3: [(3, 5, 4, 3), (4, 2, 3)]}


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity", "tanh"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_closed_form_matches_generic_and_finite_differences(activation, k, dtype):
    for index, widths in enumerate(WIDTHS[k]):
        model = mlp(widths, activation, bias_std=0.5, seed=10 * index + k, dtype=dtype)
        x = torch.randn(6, widths[0], generator=torch.Generator().manual_seed(index), dtype=dtype)
        closed = parameter_jacobian(model, x, method="closed_form")
        generic = parameter_jacobian(model, x, method="generic")
        d = sum(p.numel() for p in model.parameters())
        assert closed.shape == generic.shape == (6 * k, d)
        assert closed.dtype == generic.dtype == dtype
        atol = 1e-12 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(closed, generic, atol=atol, rtol=atol)
        reference = finite_difference_jacobian(model, x)
        closed64 = parameter_jacobian(model, x, method="closed_form", dtype=torch.float64)
        torch.testing.assert_close(closed64, reference, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("activation", ["gelu", "softplus"])
def test_smooth_activations_match_finite_differences(activation):
    model = mlp((3, 4, 4, 2), activation, bias_std=0.3, seed=1)
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(
        parameter_jacobian(model, x, method="closed_form"),
        finite_difference_jacobian(model, x),
        atol=1e-7,
        rtol=1e-6,
    )


def test_rows_are_point_major_and_columns_follow_parameters():
    model = mlp((2, 3, 2), "relu", bias_std=0.2, seed=3)
    x = torch.randn(4, 2, dtype=torch.float64)
    jac = parameter_jacobian(model, x)
    for i in range(4):
        torch.testing.assert_close(jac[2 * i : 2 * i + 2], parameter_jacobian(model, x[i : i + 1]))
    # column of b_2[k] is the indicator of output k (df_k / db_2[k] = 1)
    w1, b1, w2 = 3 * 2, 3, 2 * 3
    bias_cols = jac[:, w1 + b1 + w2 :]
    torch.testing.assert_close(bias_cols, torch.eye(2, dtype=torch.float64).repeat(4, 1))


def test_chunking_does_not_change_the_result():
    model = mlp((3, 7, 5, 2), "relu", bias_std=0.1, seed=0)
    x = torch.randn(11, 3, dtype=torch.float64)
    full = parameter_jacobian(model, x)
    for method in ["closed_form", "generic"]:
        for chunk in [1, 4, 11, 50]:
            torch.testing.assert_close(
                parameter_jacobian(model, x, method=method, chunk_size=chunk),
                full,
                atol=1e-14,
                rtol=0,
            )


def test_float64_recomputation_is_not_a_cast():
    model = mlp((3, 8, 8, 1), "tanh", bias_std=0.1, seed=2, dtype=torch.float32)
    x = torch.randn(20, 3)
    j32 = parameter_jacobian(model, x)
    j64 = parameter_jacobian(model, x, dtype=torch.float64)
    assert j32.dtype == torch.float32 and j64.dtype == torch.float64
    exact = parameter_jacobian(mlp_copy64(model), x.double())
    torch.testing.assert_close(j64, exact, atol=0, rtol=0)
    for method in ["closed_form", "generic"]:
        torch.testing.assert_close(
            parameter_jacobian(model, x, method=method, dtype=torch.float64),
            exact,
            atol=1e-14,
            rtol=1e-13,
        )
    # same function up to float32 rounding, but not the float32 numbers widened
    assert (j64 - j32.double()).abs().max() > 0
    torch.testing.assert_close(j64, j32.double(), atol=1e-5, rtol=1e-4)


def mlp_copy64(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).double()


def test_mlp_without_bias():
    model = mlp((3, 4, 2), "leaky_relu", seed=4, bias=False)
    x = torch.randn(5, 3, dtype=torch.float64)
    closed = parameter_jacobian(model, x, method="closed_form")
    assert closed.shape == (10, 3 * 4 + 4 * 2)
    torch.testing.assert_close(closed, parameter_jacobian(model, x, method="generic"))
    torch.testing.assert_close(closed, finite_difference_jacobian(model, x), atol=1e-7, rtol=1e-6)


class ResidualBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 5, dtype=torch.float64)
        self.back = nn.Linear(5, 3, dtype=torch.float64)
        self.head = nn.Linear(3, 2, dtype=torch.float64)

    def forward(self, x):
        return self.head(x + self.back(torch.tanh(self.inner(x))))


def test_generic_on_residual_block_and_conv_net():
    torch.manual_seed(0)
    block = ResidualBlock()
    x = torch.randn(4, 3, dtype=torch.float64)
    auto = parameter_jacobian(block, x)
    assert auto.shape == (8, sum(p.numel() for p in block.parameters()))
    torch.testing.assert_close(auto, finite_difference_jacobian(block, x), atol=1e-7, rtol=1e-6)

    conv = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 2)
    ).double()
    images = torch.randn(3, 1, 5, 5, dtype=torch.float64)
    jac = parameter_jacobian(conv, images, chunk_size=2)
    assert jac.shape == (6, sum(p.numel() for p in conv.parameters()))
    torch.testing.assert_close(jac, finite_difference_jacobian(conv, images), atol=1e-7, rtol=1e-6)


def test_bad_arguments_raise_one_clear_value_error():
    model = mlp((3, 4, 1), seed=0)
    x = torch.randn(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="method"):
        parameter_jacobian(model, x, method="fast")
    with pytest.raises(ValueError, match="inputs"):
        parameter_jacobian(model, torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="inputs"):
        parameter_jacobian(model, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="inputs"):
        parameter_jacobian(model, torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_size"):
        parameter_jacobian(model, x, chunk_size=0)
    with pytest.raises(ValueError, match="method"):
        parameter_jacobian(ResidualBlock(), x, method="closed_form")


@pytest.mark.parametrize("bias", [True, False])
def test_closed_form_factors_write_the_closed_form_jacobian(bias):
    # J's rows from its factors (the scaled Jacobian's route) are parameter_jacobian's rows
    from symlab.linalg.jacobian import closed_form_factors, write_jacobian_rows

    model = mlp((3, 5, 4, 2), "tanh", seed=4, bias=bias)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    activations, cotangents = closed_form_factors(model, x)
    assert [a.shape for a in activations] == [(7, 3), (7, 5), (7, 4)]
    assert [g.shape for g in cotangents] == [(7, 2, 5), (7, 2, 4), (7, 2, 2)]
    expected = parameter_jacobian(model, x, method="closed_form", dtype=torch.float64)
    out = torch.empty(7, 2, expected.shape[1], dtype=torch.float64)
    write_jacobian_rows(activations, cotangents, [bias] * 3, out)
    assert torch.equal(out.reshape(14, -1), expected)
    with pytest.raises(ValueError, match="model: expected an MLP"):
        closed_form_factors(nn.Sequential(nn.Conv1d(1, 1, 2)), x)
