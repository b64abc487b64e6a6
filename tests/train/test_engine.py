"""symlab.train as the engine of every study: labels, divergence, momentum methods, online batches,
weight decay, parameter groups, recording schedules and ensembles, each against a manual reference."""

import math

import pytest
import torch
from torch import nn

from symlab.nets import flatten_params, mlp
from symlab.train import (
    gradient_descent,
    heavy_ball,
    log_spaced,
    log_spaced_steps,
    logistic_loss,
    mse_loss,
    nesterov,
    online_sgd,
    sample_mse_loss,
    sgd,
    train,
    train_ensemble,
)

DTYPES = [torch.float32, torch.float64]


def _data(n=40, d=3, k=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, k, generator=g, dtype=dtype)


def _grad(model, x, y, loss=mse_loss, params=None):
    params = {k: v.detach() for k, v in model.named_parameters()} if params is None else params
    return torch.func.grad(lambda p: loss(torch.func.functional_call(model, p, (x,)), y))(params)


def _manual(model, x, y, steps, update, loss=mse_loss):
    """Iterate θ ← update(t, θ, θ_prev, grad_fn) on the named parameters; returns the flat θ_T."""
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    previous = {k: v.clone() for k, v in theta.items()}
    for t in range(steps):
        new = update(t, theta, previous, lambda p: _grad(model, x, y, loss, p))
        previous, theta = theta, new
    return torch.cat([theta[k].reshape(-1) for k, _ in model.named_parameters()])


def test_integer_class_labels_stay_integers_and_train_with_cross_entropy():
    x, _ = _data()
    labels = torch.arange(40) % 3
    model = mlp([3, 8, 3], "tanh", seed=0)
    trajectory = gradient_descent(
        model, (x, labels), lr=0.5, steps=30, loss=nn.functional.cross_entropy
    )
    assert trajectory.losses[-1] < trajectory.losses[0] < math.log(3) + 0.5
    reference = mlp([3, 8, 3], "tanh", seed=0)
    expected = float(nn.functional.cross_entropy(reference(x), labels).detach())
    assert trajectory.losses[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("loss", [mse_loss, logistic_loss])
def test_plus_minus_one_integer_labels_work(loss):
    x, _ = _data(k=1)
    labels = torch.where(x[:, :1] > 0, 1, -1)  # int64 ±1 labels
    model = mlp([3, 8, 1], "relu", seed=1)
    trajectory = gradient_descent(model, (x, labels), lr=0.1, steps=40, loss=loss)
    assert trajectory.losses[-1] < trajectory.losses[0]
    floats = labels.double()
    assert trajectory.losses[-1] == pytest.approx(float(loss(model(x), floats).detach()), rel=1e-2)


@pytest.mark.parametrize(
    "run",
    [
        lambda m, d: gradient_descent(m, d, lr=50.0, steps=200),
        lambda m, d: sgd(m, d, lr=50.0, steps=200, batch_size=8),
        lambda m, d: nesterov(m, d, lr=50.0, steps=200),
        lambda m, d: heavy_ball(m, d, lr=50.0, momentum=0.5, steps=200),
    ],
)
def test_a_run_stops_flagged_at_the_first_non_finite_loss(run):
    x, y = _data()
    trajectory = run(mlp([3, 16, 2], "relu", seed=0), (x, y * 100))
    assert trajectory.diverged and trajectory.stop_reason == "diverged"
    assert trajectory.n_steps < 200 and not math.isfinite(trajectory.losses[-1])
    assert all(math.isfinite(v) for v in trajectory.losses[:-1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_heavy_ball_matches_polyaks_recursion(dtype):
    x, y = _data(dtype=dtype)
    model, reference = (
        mlp([3, 5, 2], "tanh", seed=1, dtype=dtype),
        mlp([3, 5, 2], "tanh", seed=1, dtype=dtype),
    )

    def update(t, theta, previous, grad):
        g = grad(theta)
        return {k: theta[k] - 0.1 * g[k] + 0.7 * (theta[k] - previous[k]) for k in theta}

    expected = _manual(reference, x, y, 6, update)
    trajectory = heavy_ball(model, (x, y), lr=0.1, momentum=0.7, steps=6)
    atol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(flatten_params(model), expected, atol=atol, rtol=0)
    assert trajectory.steps == list(range(7))


@pytest.mark.parametrize("momentum", ["k/(k+3)", 0.6])
@pytest.mark.parametrize("dtype", DTYPES)
def test_nesterov_matches_the_look_ahead_recursion_and_records_the_iterate(momentum, dtype):
    x, y = _data(dtype=dtype)
    model, reference = (
        mlp([3, 5, 2], "tanh", seed=2, dtype=dtype),
        mlp([3, 5, 2], "tanh", seed=2, dtype=dtype),
    )
    losses = []

    def update(t, theta, previous, grad):
        losses.append(float(mse_loss(torch.func.functional_call(reference, theta, (x,)), y)))
        beta = t / (t + 3) if momentum == "k/(k+3)" else momentum
        phi = {k: theta[k] + beta * (theta[k] - previous[k]) for k in theta}
        g = grad(phi)
        return {k: phi[k] - 0.2 * g[k] for k in theta}

    expected = _manual(reference, x, y, 5, update)
    trajectory = nesterov(model, (x, y), lr=0.2, momentum=momentum, steps=5, record_every=1)
    atol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(flatten_params(model), expected, atol=atol, rtol=0)
    assert trajectory.losses[:5] == pytest.approx(
        losses, rel=1e-5 if dtype == torch.float32 else 1e-13
    )


def test_online_sgd_draws_a_fresh_batch_per_step_from_the_sampler():
    teacher = mlp([3, 4, 1], "tanh", seed=9)
    seen = []

    def sampler(step, generator):
        x = torch.randn(16, 3, generator=generator, dtype=torch.float64)
        seen.append(x)
        with torch.no_grad():
            return x, teacher(x)

    model, reference = mlp([3, 6, 1], "tanh", seed=3), mlp([3, 6, 1], "tanh", seed=3)
    trajectory = online_sgd(model, sampler, lr=0.1, steps=5, seed=4)
    assert len(seen) == 5 and not torch.equal(seen[0], seen[1])
    g = torch.Generator().manual_seed(4)
    for _ in range(5):
        x = torch.randn(16, 3, generator=g, dtype=torch.float64)
        grads = _grad(reference, x, teacher(x).detach())
        with torch.no_grad():
            for name, p in reference.named_parameters():
                p -= 0.1 * grads[name]
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=1e-14, rtol=0)
    assert trajectory.steps == list(range(6)) and trajectory.method == "online_sgd"


def test_weight_decay_is_part_of_the_reported_and_differentiated_loss():
    x, y = _data()
    lam = 0.03
    model, reference = mlp([3, 5, 2], "tanh", seed=4), mlp([3, 5, 2], "tanh", seed=4)
    theta0 = flatten_params(reference)
    trajectory = gradient_descent(model, (x, y), lr=0.1, steps=3, weight_decay=lam)
    assert trajectory.losses[0] == pytest.approx(
        float(mse_loss(reference(x), y).detach()) + lam * float(theta0.square().sum()), rel=1e-13
    )

    def penalized(out, target):
        return mse_loss(out, target)

    for _ in range(3):
        grads = _grad(reference, x, y, penalized)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                p -= 0.1 * (grads[name] + 2 * lam * p)
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=1e-14, rtol=0)


def test_parameter_groups_set_per_layer_learning_rates_and_weight_decay():
    x, y = _data()
    model, reference = mlp([3, 5, 2], "tanh", seed=5), mlp([3, 5, 2], "tanh", seed=5)
    names = [n for n, _ in model.named_parameters()]
    first, last = names[:2], names[2:]
    groups = [{"params": first, "lr": 0.5}, {"params": last, "lr": 0.01, "weight_decay": 0.1}]
    gradient_descent(model, (x, y), lr=1.0, steps=2, param_groups=groups)
    for _ in range(2):
        grads = _grad(reference, x, y)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                lr, lam = (0.5, 0.0) if name in first else (0.01, 0.1)
                p -= lr * (grads[name] + 2 * lam * p)
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="param_groups\\[0\\]: no trainable parameter"):
        gradient_descent(model, (x, y), lr=1.0, steps=1, param_groups=[{"params": ["nope"]}])
    with pytest.raises(ValueError, match="already in a group"):
        gradient_descent(model, (x, y), lr=1.0, steps=1, param_groups=[{"params": first}] * 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_penalty_reads_a_buffer_a_callback_changes(dtype):
    """penalty(model) is differentiated and reported with the loss, and sees buffer changes."""
    x, y = _data(dtype=dtype)
    model, reference = (
        mlp([3, 5, 2], "tanh", seed=6, dtype=dtype),
        mlp([3, 5, 2], "tanh", seed=6, dtype=dtype),
    )
    for net in (model, reference):
        net.register_buffer("scale", torch.tensor(0.2, dtype=dtype))

    def penalty(net):
        return net.scale * net[0].weight.abs().sum()

    def callback(step, net):
        net.scale.fill_(0.2 * (step + 1))  # the scale at step t is 0.2 (t + 1)

    trajectory = gradient_descent(
        model, (x, y), lr=0.05, steps=3, penalty=penalty, callback=callback
    )
    for step in range(3):
        scale = 0.2 * (step + 1)
        with torch.no_grad():
            expected = float(mse_loss(reference(x), y)) + scale * float(
                reference[0].weight.abs().sum()
            )
        assert trajectory.losses[step] == pytest.approx(
            expected, rel=1e-5 if dtype == torch.float32 else 1e-13
        )
        grads = _grad(reference, x, y)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                extra = scale * p.sign() if name == "0.weight" else 0
                p -= 0.05 * (grads[name] + extra)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=tol, rtol=0)
    with pytest.raises(ValueError, match="penalty: expected a function"):
        gradient_descent(model, (x, y), lr=0.1, steps=1, penalty=0.1)


def test_a_plateau_stops_the_run_where_the_full_record_first_flattens():
    x, y = _data()
    full = gradient_descent(mlp([3, 8, 2], "tanh", seed=7), (x, y), lr=0.1, steps=400)
    window, rtol = 20, 0.03
    losses = full.losses
    first = next(
        t
        for t in range(window, len(losses))
        if losses[t - window] - losses[t] < rtol * losses[t - window]
    )
    assert 20 < first < 400
    run = gradient_descent(
        mlp([3, 8, 2], "tanh", seed=7), (x, y), lr=0.1, steps=400, plateau=(window, rtol)
    )
    assert run.stop_reason == "plateau" and run.n_steps == first and run.steps[-1] == first
    assert run.losses == losses[: first + 1]
    coarse = gradient_descent(  # records every 5 steps: the look-back is the record 20 steps before
        mlp([3, 8, 2], "tanh", seed=7),
        (x, y),
        lr=0.1,
        steps=400,
        plateau=(window, rtol),
        record_every=5,
    )
    assert coarse.n_steps == min(t for t in range(first, 401) if t % 5 == 0)
    with pytest.raises(ValueError, match="plateau: expected \\(window, rtol\\)"):
        gradient_descent(mlp([3, 8, 2], seed=7), (x, y), lr=0.1, steps=4, plateau=(0, 1e-3))


def test_sample_mse_loss_sums_outputs_and_averages_samples():
    out, target = torch.arange(6.0).reshape(3, 2), torch.ones(3, 2)
    rows = out.tolist()  # (0, 1), (2, 3), (4, 5) against (1, 1): 1 + 0, 1 + 4, 9 + 16
    expected = sum((a - 1) ** 2 + (b - 1) ** 2 for a, b in rows) / 3
    assert expected == pytest.approx(31 / 3)
    assert float(sample_mse_loss(out, target)) == pytest.approx(expected)
    assert float(sample_mse_loss(out, target)) == pytest.approx(2 * float(mse_loss(out, target)))
    with pytest.raises(ValueError, match="data: expected targets"):
        sample_mse_loss(out, torch.ones(3))


def test_log_spaced_recording_keeps_memory_bounded():
    x, y = _data()
    model = mlp([3, 4, 2], "tanh", seed=6)
    trajectory = sgd(
        model, (x, y), lr=0.05, steps=2000, batch_size=8, record_every=log_spaced(2000, 12)
    )
    assert trajectory.steps == log_spaced_steps(2000, 12)
    assert trajectory.steps[-1] == 2000 and len(trajectory.steps) <= 12
    thinned = gradient_descent(model, (x, y), lr=0.01, steps=1000, max_records=20)
    assert len(thinned.steps) <= 20 and thinned.steps[0] == 0 and thinned.steps[-1] == 1000
    assert thinned.steps == sorted(thinned.steps)


def test_callback_schedule_and_stop_request():
    x, y = _data()
    calls = []

    def callback(step, model):
        calls.append(step)
        return step >= 8

    trajectory = gradient_descent(
        mlp([3, 4, 2], "tanh", seed=6), (x, y), lr=0.01, steps=100, callback=callback,
        callback_every=[0, 1, 2, 4, 8, 16],
    )  # fmt: skip
    assert calls == [0, 1, 2, 4, 8] and trajectory.stop_reason == "callback"
    assert trajectory.n_steps == 8  # the parameters the callback saw are the final ones


@pytest.mark.parametrize(
    "options",
    [
        {"method": "sgd", "batch_size": 8},
        {"method": "heavy_ball", "momentum": 0.8},
        {"method": "nesterov", "momentum": "k/(k+3)", "batch_size": 16},
        {"method": "adam", "lr": 0.01, "weight_decay": 1e-3},
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_an_ensemble_follows_each_seeds_own_run(options, dtype):
    x, y = _data(dtype=dtype)
    options = {"lr": 0.05, **options}
    models = [mlp([3, 6, 2], "relu", seed=s, dtype=dtype) for s in range(5)]
    singles = [mlp([3, 6, 2], "relu", seed=s, dtype=dtype) for s in range(5)]
    result = train_ensemble(models, (x, y), steps=25, seeds=[10 + s for s in range(5)], **options)
    for s, model in enumerate(singles):
        single = train(model, (x, y), steps=25, seed=10 + s, **options)
        rtol = 1e-4 if dtype == torch.float32 else 1e-10
        assert result.trajectories[s].losses == pytest.approx(single.losses, rel=rtol)
        assert result.trajectories[s].steps == single.steps
        torch.testing.assert_close(
            flatten_params(models[s]), flatten_params(model), rtol=rtol, atol=rtol
        )


def test_an_ensemble_records_each_models_gradient_norm_on_a_sparse_schedule():
    x, y = _data()
    models = [mlp([3, 6, 2], "tanh", seed=s) for s in range(3)]
    result = train_ensemble(models, (x, y), lr=0.1, steps=12, record_every=5)
    for s, trajectory in enumerate(result.trajectories):
        single = gradient_descent(mlp([3, 6, 2], "tanh", seed=s), (x, y), lr=0.1, steps=12,
                                  record_every=5)  # fmt: skip
        assert trajectory.steps == single.steps == [0, 5, 10, 12]
        assert trajectory.grad_norms == pytest.approx(single.grad_norms, rel=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_ensemble_records_each_seeds_gradient_norms_at_sparse_records(dtype):
    """Full-batch GD recorded at a few steps only: the records (loss and gradient ∞-norm) are
    those of each seed's own run, although the unrecorded steps skip the norm."""
    x, y = _data(dtype=dtype)
    schedule = log_spaced(40, 6)
    models = [mlp([3, 6, 2], "tanh", seed=s, dtype=dtype) for s in range(3)]
    result = train_ensemble(models, (x, y), lr=0.1, steps=40, record_every=schedule)
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    for s, trajectory in enumerate(result.trajectories):
        single = gradient_descent(mlp([3, 6, 2], "tanh", seed=s, dtype=dtype), (x, y), lr=0.1,
                                  steps=40, record_every=schedule)  # fmt: skip
        assert trajectory.steps == single.steps == sorted(schedule.steps)
        assert trajectory.grad_norms == pytest.approx(single.grad_norms, rel=rtol)
        assert all(math.isfinite(g) for g in trajectory.grad_norms)


def test_an_ensemble_freezes_a_diverging_model_and_keeps_the_others():
    x, y = _data()
    models = [mlp([3, 6, 2], "relu", seed=s) for s in range(3)]
    with torch.no_grad():
        models[1][0].weight.mul_(1e3)  # this copy blows up at lr 0.5
    result = train_ensemble(models, (x, y), lr=0.5, steps=50)
    assert [t.diverged for t in result.trajectories] == [False, True, False]
    assert result.trajectories[1].n_steps < 50
    single = mlp([3, 6, 2], "relu", seed=2)
    expected = gradient_descent(single, (x, y), lr=0.5, steps=50)
    assert result.trajectories[2].losses == pytest.approx(expected.losses, rel=1e-10)
    assert torch.isfinite(flatten_params(models[0])).all()


def test_bad_input_gets_one_sentence():
    x, y = _data()
    model = mlp([3, 4, 2], "tanh", seed=0)
    with pytest.raises(ValueError, match="^method: expected one of"):
        train(model, (x, y), method="rmsprop", lr=0.1, steps=1)
    with pytest.raises(ValueError, match="^momentum: expected"):
        nesterov(model, (x, y), lr=0.1, steps=1, momentum=1.5)
    with pytest.raises(ValueError, match="^record_every: expected"):
        gradient_descent(model, (x, y), lr=0.1, steps=1, record_every=0)
    with pytest.raises(ValueError, match="^data: expected a pair"):
        train(model, None, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="^seeds: expected 2 seeds"):
        train_ensemble([model, mlp([3, 4, 2], "tanh", seed=1)], (x, y), lr=0.1, steps=1, seeds=[0])


def test_an_ensemble_stops_each_model_at_its_own_tolerance():
    x, y = _data()
    models = [mlp([3, 6, 2], "tanh", seed=s) for s in range(3)]
    result = train_ensemble(models, (x, y), lr=0.2, steps=400, tol=0.015)
    for s, trajectory in enumerate(result.trajectories):
        single = gradient_descent(
            mlp([3, 6, 2], "tanh", seed=s), (x, y), lr=0.2, steps=400, tol=0.015
        )
        assert (trajectory.n_steps, trajectory.converged) == (single.n_steps, single.converged)
        assert trajectory.converged and trajectory.n_steps < 400
        assert trajectory.final_loss == pytest.approx(single.final_loss, rel=1e-10)


@pytest.mark.parametrize("run", [gradient_descent, nesterov])
def test_loss_only_records_match_the_full_records(run):
    x, y = _data()
    full = run(mlp([3, 5, 2], "tanh", seed=7), (x, y), lr=0.1, steps=6, record_every=1)
    light = run(
        mlp([3, 5, 2], "tanh", seed=7), (x, y), lr=0.1, steps=6, record_every=1,
        record_grad_norm=False,
    )  # fmt: skip
    assert light.losses == pytest.approx(full.losses, rel=1e-13) and light.steps == full.steps
    assert all(math.isnan(g) for g in light.grad_norms)
    with pytest.raises(ValueError, match="^tol: a gradient tolerance"):
        run(
            mlp([3, 5, 2], "tanh", seed=7),
            (x, y),
            lr=0.1,
            steps=1,
            tol=1e-3,
            record_grad_norm=False,
        )


@pytest.mark.parametrize("per_model", [False, True])
def test_an_online_ensemble_follows_each_models_own_online_run(per_model):
    teacher = mlp([3, 4, 1], "tanh", seed=9)
    count = 3

    def sampler(step, generator):
        shape = (count, 8, 3) if per_model else (8, 3)
        x = torch.randn(*shape, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            return x, teacher(x)

    models = [mlp([3, 6, 1], "tanh", seed=s) for s in range(count)]
    result = train_ensemble(
        models, None, sampler=sampler, data_per_model=per_model, lr=0.1, steps=6, seeds=[4, 5, 6]
    )
    draws = torch.Generator().manual_seed(4)
    batches = [sampler(step, draws) for step in range(6)]
    for s in range(count):
        single = mlp([3, 6, 1], "tanh", seed=s)

        def replay(step, generator, s=s):
            x, y = batches[step]
            return (x[s], y[s]) if per_model else (x, y)

        expected = online_sgd(single, replay, lr=0.1, steps=6)
        assert result.trajectories[s].losses[:6] == pytest.approx(expected.losses[:6], rel=1e-12)
        torch.testing.assert_close(
            flatten_params(models[s]), flatten_params(single), rtol=1e-12, atol=1e-12
        )
