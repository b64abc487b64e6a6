"""The fused closed-form SGD step of symlab.train.two_layer_sgd against autograd: one step against
``backward`` on a single network, and ``train_ensemble``'s fused route against its autograd route
(``closed_form=False``) step by step, for both scalings, Boolean and Gaussian inputs, float64 and
float32, online and fixed-sample SGD, records, stops and the routes it must not take."""

import pytest
import torch

import symlab.train.ensemble as ensemble_module
from symlab.boolean import uniform_cube
from symlab.boolean.mean_field import MeanFieldNet, layer_learning_rates
from symlab.boolean.targets import monomial_sampler, monomial_target
from symlab.train import train_ensemble, two_layer_pass
from symlab.train.trajectory import mse_loss

BOOLEAN = monomial_target([[1], [1, 2], [1, 2, 3]])
GAUSSIAN = monomial_target([{1: 1}, {1: 1, 2: 1}, {3: 2}], inputs="gaussian")
TOLERANCE = {torch.float64: dict(atol=1e-12, rtol=1e-12), torch.float32: dict(atol=2e-6, rtol=2e-5)}


@pytest.mark.parametrize("activation", ["shifted_sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("scaling", ["mean_field", "standard"])
def test_one_fused_step_equals_backward_on_each_model(activation, scaling):
    d, width, batch = 7, 5, 6
    nets = [
        MeanFieldNet(d, width, seed=s, scaling=scaling, activation=activation, dtype=torch.float64)
        for s in range(3)
    ]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, batch, d, generator=g, dtype=torch.float64)
    y = torch.randn(3, batch, 1, generator=g, dtype=torch.float64)
    params = {n: torch.stack([getattr(m, n).detach() for m in nets]) for n in ("w", "a")}
    for shared in (False, True):
        stacked = {n: p.clone() for n, p in params.items()}
        xs, ys = (x[0], y[0]) if shared else (x, y)
        step = two_layer_pass(nets[0].two_layer_form(), stacked, xs, ys)
        norms = step.grad_norms()
        step.apply_(0.3, 0.7)
        for s, net in enumerate(nets):
            net.zero_grad()
            loss = mse_loss(net(x[0] if shared else x[s]), y[0] if shared else y[s])
            loss.backward()
            assert float(step.losses[s]) == pytest.approx(float(loss.detach()), rel=1e-13)
            largest = max(float(net.w.grad.abs().max()), float(net.a.grad.abs().max()))
            assert float(norms[s]) == pytest.approx(largest, rel=1e-12)
            torch.testing.assert_close(stacked["w"][s], net.w.detach() - 0.3 * net.w.grad, **TOLERANCE[torch.float64])  # fmt: skip
            torch.testing.assert_close(stacked["a"][s], net.a.detach() - 0.7 * net.a.grad, **TOLERANCE[torch.float64])  # fmt: skip


def _run(closed_form, *, dtype, scaling, target, batch=4, **options):
    d, width, count = 12, 16, 3
    models = [MeanFieldNet(d, width, seed=s, scaling=scaling, dtype=dtype) for s in range(count)]
    groups = layer_learning_rates(width, 0.05, 0.03, scaling)
    snapshots = []
    if "data" not in options:
        options["sampler"] = monomial_sampler(target, d, batch, models=count, dtype=dtype)
    result = train_ensemble(
        models, options.pop("data", None), lr=1.0, steps=options.pop("steps", 40),
        param_groups=groups, data_per_model=True, closed_form=closed_form,
        callback=lambda step, p: snapshots.append({k: v.clone() for k, v in p.items()}),
        **options,
    )  # fmt: skip
    return result, snapshots


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scaling", ["mean_field", "standard"])
@pytest.mark.parametrize("target", [BOOLEAN, GAUSSIAN], ids=["boolean", "gaussian"])
def test_train_ensemble_fused_route_follows_autograd_step_by_step(dtype, scaling, target):
    fused, fused_steps = _run(True, dtype=dtype, scaling=scaling, target=target, record_every=7)
    plain, plain_steps = _run(False, dtype=dtype, scaling=scaling, target=target, record_every=7)
    assert len(fused_steps) == len(plain_steps) == 40
    for a, b in zip(fused_steps, plain_steps, strict=True):
        for name in ("w", "a"):
            torch.testing.assert_close(a[name], b[name], **TOLERANCE[dtype])
    assert fused_steps[-1]["w"].ne(fused_steps[0]["w"]).any()  # it did move
    for t, u in zip(fused.trajectories, plain.trajectories, strict=True):
        assert t.steps == u.steps and t.stop_reason == u.stop_reason
        tol = TOLERANCE[dtype]["rtol"] * 10
        assert t.losses == pytest.approx(u.losses, rel=tol)
        assert t.grad_norms == pytest.approx(u.grad_norms, rel=tol)


def test_fixed_sample_minibatches_and_a_tolerance_stop_agree_with_autograd():
    g = torch.Generator().manual_seed(3)
    x = uniform_cube(3 * 20, 12, g, torch.float64).reshape(3, 20, 12)
    y = BOOLEAN(x.reshape(-1, 12)).reshape(3, 20, 1)
    options = dict(dtype=torch.float64, scaling="mean_field", target=BOOLEAN, steps=30)
    for extra in ({"batch_size": 5, "record_every": 4}, {"tol": 0.5}):
        fused, f_steps = _run(True, data=(x, y), **options, **extra)
        plain, p_steps = _run(False, data=(x, y), **options, **extra)
        for a, b in zip(f_steps, p_steps, strict=True):
            torch.testing.assert_close(a["w"], b["w"], atol=1e-12, rtol=1e-12)
        for t, u in zip(fused.trajectories, plain.trajectories, strict=True):
            assert (t.steps, t.stop_reason, t.n_steps) == (u.steps, u.stop_reason, u.n_steps)
            assert t.losses == pytest.approx(u.losses, rel=1e-11)
        torch.testing.assert_close(fused.params["w"], plain.params["w"], atol=1e-12, rtol=0)
    assert {t.stop_reason for t in fused.trajectories} == {"tol"}  # the stop was exercised


def test_divergence_freezes_models_as_on_the_autograd_route():
    options = dict(dtype=torch.float64, scaling="mean_field", target=BOOLEAN, steps=30)
    d, width = 12, 16
    big = [{"params": ["w"], "lr": 1e160 * width}, {"params": ["a"], "lr": 1e160 * width}]
    results = []
    for closed_form in (True, False):
        models = [MeanFieldNet(d, width, seed=s, dtype=torch.float64) for s in range(2)]
        results.append(
            train_ensemble(
                models,
                None,
                sampler=monomial_sampler(BOOLEAN, d, 4, models=2, dtype=torch.float64),
                lr=1.0,
                steps=options["steps"],
                param_groups=big,
                data_per_model=True,
                closed_form=closed_form,
            )  # fmt: skip
        )
    fused, plain = results
    assert "diverged" in {t.stop_reason for t in fused.trajectories}
    assert [t.stop_reason for t in fused.trajectories] == [
        t.stop_reason for t in plain.trajectories
    ]
    assert [t.n_steps for t in fused.trajectories] == [t.n_steps for t in plain.trajectories]


def test_route_is_fused_only_where_it_applies(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return two_layer_pass(*args, **kwargs)

    monkeypatch.setattr(ensemble_module, "two_layer_pass", spy)
    base = dict(dtype=torch.float64, scaling="mean_field", target=BOOLEAN, steps=5)
    _run(True, **base)
    assert len(calls) == 5
    for closed_form, extra in (
        (False, {}),
        (True, {"method": "adam"}),
        (True, {"weight_decay": 0.1}),
    ):
        calls.clear()
        _run(closed_form, **base, **extra)
        assert not calls
    masked = MeanFieldNet(4, 3, mask=torch.ones(3, 4), dtype=torch.float64)
    assert masked.two_layer_form() is None


def test_fused_pass_refuses_mismatched_shapes_in_one_sentence():
    net = MeanFieldNet(4, 3, dtype=torch.float64)
    params = {"w": net.w.detach()[None].clone(), "a": net.a.detach()[None].clone()}
    x = torch.ones(1, 5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="data: expected"):
        two_layer_pass(net.two_layer_form(), params, x, torch.ones(1, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="params: expected"):
        two_layer_pass(net.two_layer_form(), {"w": params["w"][0], "a": params["a"][0]}, x, x)


def test_uniform_cube_draws_the_randint_stream():
    for dtype in (torch.float32, torch.float64):
        expected = 2 * torch.randint(0, 2, (9, 33), generator=torch.Generator().manual_seed(4)) - 1
        drawn = uniform_cube(9, 33, torch.Generator().manual_seed(4), dtype)
        assert drawn.dtype == dtype and torch.equal(drawn, expected.to(dtype))
