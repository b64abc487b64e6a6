"""linearize (first-order Taylor model) and kernel_regression (NTK predictor)."""

import numpy as np
import pytest
import torch
from torch.func import functional_call, jacrev

from symlab.nets import flatten_params, mlp, unflatten_params
from symlab.ntk import empirical_ntk, kernel_regression, linearize


def _setup(dtype=torch.float64):
    model = mlp([3, 8, 8, 2], "tanh", bias_std=0.1, seed=0, dtype=dtype)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).to(dtype)
    return model, x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linearized_equals_model_at_expansion_point(dtype):
    model, x = _setup(dtype)
    lin = linearize(model)
    torch.testing.assert_close(lin(x), model(x))
    params = {n: p.detach() for n, p in model.named_parameters()}
    torch.testing.assert_close(lin(params, x), model(x))


def test_first_order_change_matches_finite_differences():
    model, x = _setup()
    theta = flatten_params(model)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    lin = linearize(model, theta)
    eps = 1e-6

    def f(t):
        return functional_call(model, unflatten_params(model, t), (x,))

    fd = (f(theta + eps * v) - f(theta - eps * v)) / (2 * eps)
    change = lin(unflatten_params(model, theta + v), x) - f(theta)
    torch.testing.assert_close(change, fd, rtol=1e-6, atol=1e-8)
    # exactly linear in theta - theta_t, unlike the network itself
    change2 = lin(unflatten_params(model, theta + 2 * v), x) - f(theta)
    torch.testing.assert_close(change2, 2 * change)


def test_training_side_by_side_uses_the_jacobian():
    model, x = _setup()
    y = torch.zeros(5, 2, dtype=torch.float64)
    lin = linearize(model)
    opt = torch.optim.SGD(lin.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = ((lin(x) - y) ** 2).sum() / 2
        loss.backward()
        losses.append(loss.item())
        if len(losses) == 1:  # gradient = J^T r at theta_t, from a dense jacrev
            theta = flatten_params(model)
            jac = jacrev(lambda t: functional_call(model, unflatten_params(model, t), (x,)))(theta)
            expected = jac.reshape(-1, theta.numel()).T @ (model(x) - y).reshape(-1)
            got = torch.cat([p.grad.reshape(-1) for p in lin.parameters()])
            torch.testing.assert_close(got, expected.detach())
        opt.step()
    assert losses[-1] < losses[0]
    # the wrapped network itself is untouched
    torch.testing.assert_close(flatten_params(lin.model), flatten_params(model))


def test_linearize_bad_arguments():
    model, _ = _setup()
    with pytest.raises(ValueError, match="params_t"):
        linearize(model, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="params_t"):
        linearize(model, {"0.weight": torch.zeros(8, 3)})


def test_kernel_regression_interpolates_and_matches_numpy():
    model, x = _setup()
    xt = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kxx, ktx = empirical_ntk(model, x), empirical_ntk(model, xt, x)
    torch.testing.assert_close(kernel_regression(kxx, y, kxx), y)
    m_xx = kxx.permute(0, 2, 1, 3).reshape(10, 10).numpy()
    m_tx = ktx.permute(0, 2, 1, 3).reshape(8, 10).numpy()
    ridge = 0.1
    expected = m_tx @ np.linalg.solve(m_xx + ridge * np.eye(10), y.numpy().reshape(-1))
    got = kernel_regression(kxx, y, ktx, ridge=ridge)
    np.testing.assert_allclose(got.numpy(), expected.reshape(4, 2), rtol=1e-10)
    # traced (N, N) kernel, each target column solved with the same kernel
    t_xx, t_tx = torch.einsum("nmkk->nm", kxx), torch.einsum("nmkk->nm", ktx)
    expected = t_tx.numpy() @ np.linalg.solve(t_xx.numpy(), y.numpy())
    np.testing.assert_allclose(kernel_regression(t_xx, y, t_tx).numpy(), expected, rtol=1e-8)
    assert kernel_regression(t_xx.float(), y[:, 0], t_tx.float()).dtype == torch.float32


def test_kernel_regression_singular_kernel_falls_back_to_least_squares():
    x = torch.tensor([[1.0], [1.0], [2.0]], dtype=torch.float64)
    k = x @ x.T  # rank one
    y = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64)
    pred = kernel_regression(k, y, k)
    torch.testing.assert_close(pred, y)
    with pytest.raises(ValueError, match="ridge"):
        kernel_regression(k, y, k, ridge=-1.0)
    with pytest.raises(ValueError, match="y_train"):
        kernel_regression(k, y[:2], k)
