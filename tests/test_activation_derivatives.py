"""symlab.nets.activation_calculus: σ, σ′, σ″ of every supported activation against torch.func
(grad and grad of grad of the module's own forward), in float32 and float64, on a grid and at and
around every kink and threshold."""

import pytest
import torch
from torch import nn

from symlab.critical.teacher_student import SigmoidSoftplus
from symlab.nets import (
    AUTOGRAD_ACTIVATIONS,
    CLOSED_FORM_ACTIVATIONS,
    activation_derivative,
    activation_derivatives,
    activation_second_derivative,
    autograd_derivatives,
    supports_closed_form,
    supports_derivatives,
)

DTYPES = [torch.float32, torch.float64]
# name: (module factory, the points where its σ, σ′ or torch's branch switches)
ACTIVATIONS = {
    "identity": (nn.Identity, []),
    "relu": (nn.ReLU, [0.0]),
    "leaky_relu": (nn.LeakyReLU, [0.0]),
    "leaky_relu_0.2": (lambda: nn.LeakyReLU(0.2), [0.0]),
    "tanh": (nn.Tanh, []),
    "sigmoid": (nn.Sigmoid, []),
    "softplus": (nn.Softplus, [20.0]),
    "softplus_beta2_threshold1": (lambda: nn.Softplus(beta=2.0, threshold=1.0), [0.5]),
    "softplus_beta0.5_threshold3": (lambda: nn.Softplus(beta=0.5, threshold=3.0), [6.0]),
    "g": (SigmoidSoftplus, [20.0]),
    "gelu": (nn.GELU, []),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), []),
    "silu": (nn.SiLU, []),
    "elu": (nn.ELU, [0.0]),
    "elu_0.5": (lambda: nn.ELU(0.5), [0.0]),
    "selu": (nn.SELU, [0.0]),
    "celu_0.7": (lambda: nn.CELU(0.7), [0.0]),
    "mish": (nn.Mish, []),
    "hardtanh": (nn.Hardtanh, [-1.0, 1.0]),
    "hardtanh_half": (lambda: nn.Hardtanh(-0.5, 0.5), [-0.5, 0.5]),
    "relu6": (nn.ReLU6, [0.0, 6.0]),
    "hardswish": (nn.Hardswish, [-3.0, 3.0]),
    "hardsigmoid": (nn.Hardsigmoid, [-3.0, 3.0]),
    "softsign": (nn.Softsign, []),
    "logsigmoid": (nn.LogSigmoid, []),
    "tanhshrink": (nn.Tanhshrink, []),
}


def _points(kinks, dtype):
    """A grid over [-8, 8], large inputs, ±0 and each kink with its two floating-point
    neighbours."""
    grid = torch.linspace(-8, 8, 97, dtype=dtype)
    special = torch.tensor([-40.0, -25.0, -0.0, 0.0, 25.0, 40.0] + kinks, dtype=dtype)
    below = torch.nextafter(special, torch.tensor(-float("inf"), dtype=dtype))
    above = torch.nextafter(special, torch.tensor(float("inf"), dtype=dtype))
    return torch.cat([grid, special, below, above])


def _references(module, z):
    def f(t):
        return module(t)

    first = torch.func.vmap(torch.func.grad(f))(z)
    if isinstance(module, nn.Hardsigmoid):  # piecewise linear; torch has no double backward
        return module(z), first, torch.zeros_like(z)
    second = torch.func.vmap(torch.func.grad(torch.func.grad(f)))(z)
    return module(z), first, second


def _close(actual, expected, dtype):
    tol = 16 * torch.finfo(dtype).eps
    assert actual.dtype == dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_value_first_and_second_derivative_match_torch_func(name, dtype):
    make, kinks = ACTIVATIONS[name]
    module = make()
    z = _points(kinks, dtype)
    value, first, second = _references(module, z)
    values = activation_derivatives(module, z)
    assert len(values) == 3
    torch.testing.assert_close(values[0], value, atol=0, rtol=0)
    _close(values[1], first, dtype)
    _close(values[2], second, dtype)
    _close(activation_derivative(module, z), first, dtype)
    _close(activation_second_derivative(module, z), second, dtype)
    # the orders agree with each other and the value shortcut changes nothing
    for order in (0, 1):
        lower = activation_derivatives(module, z, order)
        assert len(lower) == order + 1
        for a, b in zip(lower, values, strict=False):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    given = activation_derivative(module, z, value=value)
    torch.testing.assert_close(given, activation_derivative(module, z), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kink_conventions_are_autograds(dtype):
    zero = torch.zeros(2, dtype=dtype)
    zero[1] = -0.0
    # relu'(0) = 0 (and relu''(0) = 0), as torch's backward defines it
    assert activation_derivative(nn.ReLU(), zero).tolist() == [0.0, 0.0]
    assert activation_second_derivative(nn.ReLU(), zero).tolist() == [0.0, 0.0]
    # leaky_relu'(0) = the negative slope, held in z's dtype
    slope = activation_derivative(nn.LeakyReLU(0.2), zero)
    assert torch.equal(slope, torch.full_like(zero, 0.2))
    # softplus at βz = threshold: smooth branch for σ and σ′, σ″ = 0; linear just above
    softplus = nn.Softplus(beta=2.0, threshold=1.0)
    at = torch.tensor([0.5], dtype=dtype)
    above = torch.nextafter(at, torch.tensor(1.0, dtype=dtype))
    value, first, second = activation_derivatives(softplus, at)
    assert float(value) == pytest.approx(float(torch.log1p(torch.exp(torch.tensor(1.0)))) / 2)
    assert float(first) == pytest.approx(float(torch.sigmoid(torch.tensor(1.0))))
    assert float(second) == 0.0
    value, first, second = activation_derivatives(softplus, above)
    assert torch.equal(value, above) and float(first) == 1.0 and float(second) == 0.0


def test_lookup_is_by_exact_type():
    class ScaledTanh(nn.Tanh):
        def forward(self, z):
            return torch.tanh(2 * z)

    class Own(nn.Module):
        def forward(self, z):
            return z**3

        def derivatives(self, z, order=2):
            return (z**3, 3 * z**2, 6 * z)[: order + 1]

    assert all(supports_closed_form(kind()) for kind in CLOSED_FORM_ACTIVATIONS)
    assert not any(supports_closed_form(kind()) for kind in AUTOGRAD_ACTIVATIONS)
    assert all(supports_derivatives(kind()) for kind in AUTOGRAD_ACTIVATIONS)
    assert supports_closed_form(nn.LeakyReLU(0.1)) and supports_closed_form(Own())
    assert not supports_closed_form(ScaledTanh()) and not supports_derivatives(ScaledTanh())
    assert not supports_derivatives(nn.Softmax(dim=0))
    z = torch.linspace(-2, 2, 9, dtype=torch.float64)
    # a subclass is differentiated through its own forward, not by its parent's closed form
    expected = 2 * (1 - torch.tanh(2 * z) ** 2)
    torch.testing.assert_close(activation_derivative(ScaledTanh(), z), expected)
    assert torch.equal(activation_second_derivative(Own(), z), 6 * z)
    with pytest.raises(ValueError, match="activation: expected one of .*Softmax"):
        activation_derivative(nn.Softmax(dim=0), z)
    with pytest.raises(ValueError, match="order: expected 0, 1 or 2"):
        activation_derivatives(nn.Tanh(), z, 3)


def test_autograd_route_of_a_linear_map_has_zero_curvature():
    z = torch.linspace(-1, 1, 5, dtype=torch.float64)
    value, first, second = autograd_derivatives(nn.Identity(), z)
    assert torch.equal(value, z) and torch.equal(first, torch.ones_like(z))
    assert torch.equal(second, torch.zeros_like(z))
