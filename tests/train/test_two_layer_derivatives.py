"""Closed-form derivatives of one-hidden-layer nets against torch.func (grad, jacrev, hessian).
σ, σ′, σ″ of the activations themselves: tests/test_activation_derivatives.py."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from symlab.critical.teacher_student import SigmoidSoftplus
from symlab.nets import flatten_params, mlp, unflatten_params
from symlab.train.two_layer_derivatives import (
    loss_and_gradient,
    loss_hessian,
    residual,
    residual_jacobian,
    two_layer_structure,
)

DTYPES = [torch.float32, torch.float64]
ACTIVATIONS = {
    "g": SigmoidSoftplus,
    "softplus": nn.Softplus,
    "softplus_beta2_threshold1": lambda: nn.Softplus(beta=2.0, threshold=1.0),
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
SHAPES = [(False, False, 1), (True, True, 2), (True, False, 1), (False, True, 3)]


def _case(activation, bias1, bias2, k, dtype, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(3, 5, bias=bias1), ACTIVATIONS[activation](), nn.Linear(5, k, bias=bias2)
    ).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    x = scale * torch.randn(30, 3, generator=g, dtype=dtype)
    y = torch.randn(30, k, generator=g, dtype=dtype)
    return model, x, y


def _references(model, x, y):
    theta = flatten_params(model)

    def out(t):
        return functional_call(model, unflatten_params(model, t), (x,))

    def loss(t):
        return nn.functional.mse_loss(out(t), y)

    def res(t):
        return (out(t) - y).reshape(-1)

    return theta, loss, res


def _close(actual, expected, dtype):
    scale = float(expected.abs().max()) or 1.0
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(actual, expected, atol=tol * scale, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias1, bias2, k", SHAPES)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_loss_gradient_jacobian_hessian_match_torch_func(activation, bias1, bias2, k, dtype):
    model, x, y = _case(activation, bias1, bias2, k, dtype)
    net = two_layer_structure(model)
    assert net is not None and net.n_params == sum(p.numel() for p in model.parameters())
    theta, loss, res = _references(model, x, y)
    value, grad = loss_and_gradient(net, theta, (x, y))
    _close(value, loss(theta), dtype)
    _close(grad, torch.func.grad(loss)(theta), dtype)
    r, jac = residual_jacobian(net, theta, (x, y))
    _close(r, res(theta), dtype)
    _close(residual(net, theta, (x, y)), res(theta), dtype)
    _close(jac, torch.func.jacrev(res)(theta), dtype)
    _close(loss_hessian(net, theta, (x, y)), torch.func.hessian(loss)(theta), dtype)


@pytest.mark.parametrize("activation", ["g", "softplus"])
def test_softplus_linear_branch_above_threshold_matches_autograd(activation):
    # inputs scaled so that some pre-activations exceed torch's softplus threshold of 20
    model, x, y = _case(activation, True, False, 1, torch.float64, scale=15.0, seed=1)
    net = two_layer_structure(model)
    theta, loss, _ = _references(model, x, y)
    z = x @ model[0].weight.T + model[0].bias
    assert bool((z > 20).any()) and bool((z <= 20).any())
    _close(loss_and_gradient(net, theta, (x, y))[1], torch.func.grad(loss)(theta), torch.float64)
    _close(loss_hessian(net, theta, (x, y)), torch.func.hessian(loss)(theta), torch.float64)


def test_two_layer_structure_recognises_only_the_closed_form_nets():
    net = two_layer_structure(mlp([4, 6, 2], "tanh", seed=0))
    assert (net.d, net.m, net.k, net.bias1, net.bias2) == (4, 6, 2, True, True)
    assert two_layer_structure(mlp([4, 6, 6, 1], "tanh", seed=0)) is None  # two hidden layers
    odd = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1))
    assert two_layer_structure(odd) is None  # no closed-form derivatives for GELU here
    frozen = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    frozen[2].weight.requires_grad_(False)
    assert two_layer_structure(frozen) is None


def test_bad_theta_and_data_raise_value_error():
    model, x, y = _case("tanh", True, True, 2, torch.float64)
    net = two_layer_structure(model)
    with pytest.raises(ValueError, match="theta: expected a flat vector of 32 parameters"):
        loss_and_gradient(net, torch.zeros(5, dtype=torch.float64), (x, y))
    with pytest.raises(ValueError, match="data: expected x"):
        residual(net, flatten_params(model), (x[:, :2], y))
