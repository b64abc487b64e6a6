"""Deep linear networks on matrix tasks: the model equals its layers applied in turn, the init has
the stated variances, the tasks have the stated spectra, and one step of symlab.train is Tu et
al.'s hand-written gradient step."""

import math

import pytest
import torch

from symlab.bias import (
    DeepLinearNetwork,
    dln_learning_rate,
    end_to_end_matrix,
    init_variance,
    low_rank_task,
)
from symlab.train import gradient_descent


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_forward_is_the_layers_applied_in_turn(dtype, depth):
    model = DeepLinearNetwork(5, 4, 7, depth, 0.3, seed=1, dtype=dtype)
    x = torch.randn(6, 5, dtype=dtype)
    expected = x
    for layer in model.layers:
        expected = torch.nn.functional.linear(expected, layer.weight)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(model(x), expected, rtol=tol, atol=tol)
    a = model.end_to_end()
    assert a.shape == (4, 5)
    torch.testing.assert_close(model(torch.eye(5, dtype=dtype)), a.T, rtol=tol, atol=tol)


def test_end_to_end_matrix_batched_and_checked():
    w1, w2, w3 = torch.randn(3, 6, 2), torch.randn(3, 6, 6), torch.randn(3, 4, 6)
    batched = end_to_end_matrix([w1, w2, w3])
    for s in range(3):
        torch.testing.assert_close(batched[s], w3[s] @ w2[s] @ w1[s])
    with pytest.raises(ValueError, match="weights"):
        end_to_end_matrix([torch.randn(6, 2), torch.randn(4, 5)])
    with pytest.raises(ValueError, match="weights"):
        end_to_end_matrix([])


def test_init_has_the_stated_variance_and_end_to_end_scale():
    d, width, depth, target_norm, scale = 20, 300, 3, 10.0, 0.05
    var = init_variance(scale, depth, width, d, target_norm)
    rms = []
    for seed in range(4):
        model = DeepLinearNetwork(d, d, width, depth, var, seed=seed, dtype=torch.float64)
        for layer in model.layers:
            assert float(layer.weight.detach().var()) == pytest.approx(var, rel=0.05)
        rms.append(float(model.end_to_end().detach().norm()) / math.sqrt(d))
    # E ||A_0||_F^2 = d^2 sigma^(2L) w^(L-1): RMS singular value = scale * target_norm
    assert sum(rms) / len(rms) == pytest.approx(scale * target_norm, rel=0.1)


def test_gaussian_task_has_rank_k_and_unit_entries():
    task = low_rank_task(200, 5, noise=1.0, seed=0)
    s = torch.linalg.svdvals(task.target)
    assert int((s > 1e-8 * s[0]).sum()) == 5
    assert float(task.target.square().mean()) == pytest.approx(1.0, rel=0.25)
    noise = task.observations - task.target
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(noise.var()) == pytest.approx(1.0, rel=0.03)
    assert task.mask is None
    torch.testing.assert_close(task.test_error(task.target), torch.tensor(0.0, dtype=torch.float64))
    assert float(task.train_error(task.target)) == pytest.approx(float(noise.square().mean()))


def test_geometric_task_spectrum_and_mask():
    task = low_rank_task(30, 3, spectrum="geometric", ratio=0.25, observed=0.5, seed=2)
    s = torch.linalg.svdvals(task.target)
    assert float(s[1] / s[0]) == pytest.approx(0.25, rel=1e-10)
    assert float(s[2] / s[1]) == pytest.approx(0.25, rel=1e-10)
    assert float(s[3]) < 1e-10 * float(s[0])
    assert float(s.square().sum()) == pytest.approx(30.0**2, rel=1e-10)
    torch.testing.assert_close(task.observations, task.target)  # noise 0
    assert 0.4 < float(task.mask.double().mean()) < 0.6
    a = torch.randn(30, 30, dtype=torch.float64)
    expected = ((a - task.observations)[task.mask]).square().mean()
    torch.testing.assert_close(task.train_error(a), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_train_step_is_tu_et_al_gradient_step(dtype):
    task = low_rank_task(6, 2, noise=1.0, observed=0.7, seed=3, dtype=dtype)
    model = DeepLinearNetwork(6, 6, 9, 2, 0.2, seed=4, dtype=dtype)
    w1, w2 = (layer.weight.detach().clone() for layer in model.layers)
    lr = 0.01
    gradient_descent(model, task.data(), lr=lr, steps=1, loss=task.loss(), record_grad_norm=False)
    g = (w2 @ w1 - task.observations) * task.mask.to(dtype)  # the masked residual
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(model.layers[0].weight, w1 - lr * w2.T @ g, rtol=tol, atol=tol)
    torch.testing.assert_close(model.layers[1].weight, w2 - lr * g @ w1.T, rtol=tol, atol=tol)


def test_learning_rate_rules():
    # two layers: Tu et al.'s rule on each side of sigma^2 w = d
    assert dln_learning_rate(2, 1000, 0.1, 7.0, 50) == pytest.approx(1 / (50 * 100))
    assert dln_learning_rate(2, 100, 0.1, 7.0, 50) == pytest.approx(1 / (50 * 7.0))
    # deeper: 2 / (factor L max((sigma^2 w)^(L-1), ||A*||^(2-2/L)))
    assert dln_learning_rate(3, 100, 0.1, 8.0, 50, factor=5) == pytest.approx(2 / (5 * 3 * 100))
    assert dln_learning_rate(4, 10, 0.01, 16.0, 50) == pytest.approx(2 / (50 * 4 * 16**1.5))


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: DeepLinearNetwork(3, 3, 4, 1, 0.1), "depth"),
        (lambda: DeepLinearNetwork(3, 3, 4, 2, -1.0), "variance"),
        (lambda: low_rank_task(5, 6), "rank"),
        (lambda: low_rank_task(5, 2, spectrum="flat"), "spectrum"),
        (lambda: low_rank_task(5, 2, observed=0.0), "observed"),
        (lambda: low_rank_task(5, 2, noise=-1.0), "noise"),
        (lambda: init_variance(0.0, 2, 4, 4, 1.0), "scale"),
        (lambda: dln_learning_rate(2, 4, 0.1, 0.0, 4), "target_norm"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        call()
