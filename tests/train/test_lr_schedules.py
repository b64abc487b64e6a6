"""Learning-rate schedules of symlab.train: their values by hand, and training with one against
manual updates with the scheduled rate (GD with per-group rates; Adam in tests/train/test_loops.py)."""

import math

import pytest
import torch

from symlab.nets import flatten_params, mlp
from symlab.train import gradient_descent, step_decay, train, warmup_cosine

DTYPES = [torch.float32, torch.float64]


def _data(dtype, n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=dtype), torch.randn(n, 2, generator=g, dtype=dtype)


def _grads(model, x, y, weight_decay=0.0):
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p):
        value = ((torch.func.functional_call(model, p, (x,)) - y) ** 2).mean()
        return value + weight_decay * sum(t.square().sum() for t in p.values())

    return torch.func.grad(loss)(params)


def test_warmup_cosine_and_step_decay_values():
    rho = warmup_cosine(11, warmup=4, final=0.1)
    assert [rho(t) for t in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert rho(4) == pytest.approx(1.0) and rho(10) == pytest.approx(0.1)
    assert rho(7) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))  # midpoint
    assert rho(50) == pytest.approx(0.1)  # past the end: the final rate
    assert warmup_cosine(1)(0) == 1.0
    decay = step_decay([3, 5], 0.5)
    assert [decay(t) for t in range(7)] == [1, 1, 1, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("dtype", DTYPES)
def test_scheduled_gd_matches_manual_updates_with_per_group_rates(dtype):
    x, y = _data(dtype)
    model = mlp([3, 5, 2], "tanh", seed=1, dtype=dtype)
    reference = mlp([3, 5, 2], "tanh", seed=1, dtype=dtype)
    rho = warmup_cosine(6, warmup=2, final=0.0)
    rates = {"0": 0.2, "2": 0.05}  # first layer's group and the rest (per-group lr)
    for t in range(6):
        grads = _grads(reference, x, y, weight_decay=0.01)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                p -= rates[name.split(".")[0]] * rho(t) * grads[name]
    trajectory = gradient_descent(
        model, (x, y), lr=0.05, steps=6, weight_decay=0.01, lr_schedule=rho,
        param_groups=[{"params": ["0"], "lr": 0.2}],
    )  # fmt: skip
    atol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=atol, rtol=0)
    assert trajectory.steps[-1] == 6


def test_a_zero_factor_freezes_the_parameters():
    x, y = _data(torch.float64)
    model = mlp([3, 4, 2], "tanh", seed=2, dtype=torch.float64)
    before = flatten_params(model).clone()
    train(model, (x, y), lr=0.1, steps=3, lr_schedule=lambda t: 0.0)
    assert torch.equal(flatten_params(model), before)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: warmup_cosine(10, warmup=10), "^warmup"),
        (lambda: warmup_cosine(0), "^steps"),
        (lambda: warmup_cosine(10, final=1.5), "^final"),
        (lambda: step_decay([5, 3], 0.5), "^milestones"),
        (lambda: step_decay([], 0.5), "^milestones"),
        (lambda: step_decay([3], 0.0), "^gamma"),
    ],
)
def test_bad_schedules_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("schedule", [lambda t: -1.0, lambda t: math.nan, "cosine"])
def test_bad_factors_are_refused_in_one_sentence(schedule):
    x, y = _data(torch.float64)
    model = mlp([3, 4, 2], "tanh", seed=2, dtype=torch.float64)
    with pytest.raises(ValueError, match="^lr_schedule"):
        train(model, (x, y), lr=0.1, steps=3, lr_schedule=schedule)
