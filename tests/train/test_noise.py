"""Noisy gradient descent (``noise_std``): the update against a manual reference with the same draws,
the law of the noise, the transform that couples two runs, and one-sentence errors."""

import pytest
import torch
from torch import nn

from symlab.nets import flatten_params, mlp
from symlab.train import gradient_descent, sgd, train
from symlab.train.first_order import NOISE_SEED_OFFSET


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(20, 3, generator=g, dtype=torch.float64), torch.randn(
        20, 2, generator=g, dtype=torch.float64
    )


def _manual_noisy_gd(model, data, lr, tau, steps, seed, transform=None):
    generator = torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET)
    x, y = data
    for _ in range(steps):
        params = {k: v.detach() for k, v in model.named_parameters()}
        grads = torch.func.grad(
            lambda p: ((torch.func.functional_call(model, p, (x,)) - y) ** 2).mean()
        )(params)
        with torch.no_grad():
            for name, p in model.named_parameters():
                xi = torch.randn(p.shape, generator=generator, dtype=p.dtype)
                xi = xi if transform is None else transform(name, xi)
                p -= lr * (grads[name] + tau * xi)


def test_noisy_gradient_descent_matches_the_manual_update():
    data = _data()
    model, reference = mlp([3, 4, 2], "tanh", seed=1), mlp([3, 4, 2], "tanh", seed=1)
    trajectory = gradient_descent(model, data, lr=0.1, steps=4, noise_std=0.3, seed=7)
    _manual_noisy_gd(reference, data, 0.1, 0.3, 4, 7)
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=1e-13, rtol=0)
    plain = mlp([3, 4, 2], "tanh", seed=1)
    first = gradient_descent(plain, data, lr=0.1, steps=1).losses[0]
    assert trajectory.losses[0] == pytest.approx(first, rel=1e-14)  # records are noise-free


def test_the_transform_acts_on_each_draw_and_minibatches_see_the_noise():
    data = _data()
    flip = lambda name, xi: -xi if name.endswith("weight") else xi  # noqa: E731
    model, reference = mlp([3, 4, 2], "tanh", seed=2), mlp([3, 4, 2], "tanh", seed=2)
    gradient_descent(model, data, lr=0.05, steps=3, noise_std=0.5, seed=3, noise_transform=flip)
    _manual_noisy_gd(reference, data, 0.05, 0.5, 3, 3, transform=flip)
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=1e-13, rtol=0)
    runs = []
    for tau in (0.0, 0.2):
        net = mlp([3, 4, 2], "tanh", seed=2)
        sgd(net, data, lr=0.05, steps=5, batch_size=5, seed=1, noise_std=tau)
        runs.append(flatten_params(net))
    assert not torch.allclose(runs[0], runs[1])


def test_the_noise_has_the_stated_law():
    class Idle(nn.Module):  # the loss ignores ``theta``: its updates are the noise alone
        def __init__(self):
            super().__init__()
            self.theta = nn.Parameter(torch.zeros(4000, dtype=torch.float64))
            self.bias = nn.Parameter(torch.zeros(1, dtype=torch.float64))

        def forward(self, x):
            return self.bias.expand(x.shape[0], 1)

    model = Idle()
    x, y = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
    train(model, (x, y), lr=0.1, steps=25, noise_std=2.0, seed=0)
    increments = model.theta.detach()  # = −η τ Σ_t ξ_t, variance T η² τ² = 25·0.01·4 = 1
    assert abs(float(increments.mean())) < 0.05 and abs(float(increments.var()) - 1.0) < 0.07


def test_bad_noise_gets_one_sentence():
    with pytest.raises(ValueError, match="^noise_std: expected a non-negative number"):
        gradient_descent(mlp([3, 4, 2], "tanh", seed=0), _data(), lr=0.1, steps=1, noise_std=-1)
