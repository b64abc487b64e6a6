"""Mean-field two-layer nets: the forward pass against a loop over neurons, the per-layer step sizes
against a manual SGD step, the recorded projections against exact Walsh coefficients on the whole
cube, the batched route against one-model-at-a-time gradient descent, and passage times."""

import itertools
import math

import numpy as np
import pytest
import torch

from symlab.boolean.mean_field import (
    MeanFieldNet,
    MonomialTracker,
    first_passage,
    layer_learning_rates,
    train_on_target,
    two_layer_output,
)
from symlab.boolean.monomials import hermite_monomial
from symlab.boolean.targets import monomial_target
from symlab.train import gradient_descent, train


def _cube(d):
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=torch.float64)


def _loop_output(w, a, x, scale, shift=0.5, mask=None):
    """f(x) = scale Σ_j a_j / (1 + exp(−⟨w_j ⊙ m_j, x⟩ + shift)), one neuron and one point at a time."""
    out = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(x.shape[0]):
        for j in range(w.shape[0]):
            wj = w[j] if mask is None else w[j] * mask[j]
            out[i] += a[j] / (1 + math.exp(-float(wj @ x[i]) + shift))
    return scale * out


def test_forward_matches_a_loop_over_neurons_single_stacked_and_masked():
    g = torch.Generator().manual_seed(0)
    w, a = (
        torch.randn(3, 5, 4, generator=g, dtype=torch.float64),
        torch.rand(3, 5, dtype=torch.float64),
    )
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    mask = (torch.rand(5, 4, generator=g) > 0.5).double()
    stacked = two_layer_output(w, a, x, 0.2, chunk=7)  # several chunks
    for s in range(3):
        torch.testing.assert_close(stacked[s], _loop_output(w[s], a[s], x, 0.2))
    torch.testing.assert_close(
        two_layer_output(w[0], a[0], x, 0.2, mask=mask), _loop_output(w[0], a[0], x, 0.2, mask=mask)
    )
    net = MeanFieldNet(4, 5, seed=1, dtype=torch.float64)
    torch.testing.assert_close(net(x)[:, 0], _loop_output(net.w.detach(), net.a.detach(), x, 1 / 5))
    shifted = MeanFieldNet(4, 5, seed=1, shift=1.5, dtype=torch.float64)
    torch.testing.assert_close(
        shifted(x)[:, 0], _loop_output(net.w.detach(), net.a.detach(), x, 1 / 5, shift=1.5)
    )
    standard = MeanFieldNet(4, 5, seed=1, scaling="standard", dtype=torch.float64)
    torch.testing.assert_close(standard(x), net(x) * math.sqrt(5))


def test_initialisation_law():
    net = MeanFieldNet(64, 4000, seed=3, dtype=torch.float64)
    scaled = net.w.detach() * math.sqrt(64)
    assert abs(float(scaled.mean())) < 0.01 and abs(float(scaled.var()) - 1) < 0.01
    a = net.a.detach()
    assert (
        float(a.min()) >= -1 and float(a.max()) <= 1 and abs(float(a.var()) - 1 / 3) < 0.02
    )  # 4 standard errors
    assert torch.equal(MeanFieldNet(4, 3, seed=5).w, MeanFieldNet(4, 3, seed=5).w)


def test_layer_step_sizes_are_scaled_by_the_width_in_mean_field():
    net = MeanFieldNet(3, 4, seed=0, dtype=torch.float64)
    reference = MeanFieldNet(3, 4, seed=0, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.randn(5, 1, dtype=torch.float64)
    params = {k: v.detach() for k, v in reference.named_parameters()}
    grads = torch.func.grad(
        lambda p: ((torch.func.functional_call(reference, p, (x,)) - y) ** 2).mean()
    )(params)
    groups = layer_learning_rates(4, 0.1, 0.03)
    assert [g["lr"] for g in groups] == pytest.approx([0.4, 0.12])
    train(net, (x, y), lr=1.0, steps=1, param_groups=groups)
    torch.testing.assert_close(net.w.detach(), params["w"] - 0.4 * grads["w"])
    torch.testing.assert_close(net.a.detach(), params["a"] - 0.12 * grads["a"])
    assert [g["lr"] for g in layer_learning_rates(4, 0.1, 0.03, "standard")] == [0.1, 0.03]


def test_tracker_on_the_whole_cube_gives_exact_walsh_coefficients_and_standard_errors():
    d = 5
    x = _cube(d)
    target = monomial_target([[1], [1, 2]])
    net = MeanFieldNet(d, 7, seed=2, dtype=torch.float64)
    supports = [frozenset({1}), frozenset({1, 2}), frozenset({3, 4, 5})]
    tracker = MonomialTracker(target, x, supports, scale=net.scale)
    stacked = {"w": net.w.detach()[None], "a": net.a.detach()[None]}
    tracker(0, stacked)
    f = net(x)[:, 0].detach().numpy()
    for k, support in enumerate(supports):
        chi = np.prod(x[:, [i - 1 for i in sorted(support)]].numpy(), axis=1)
        exact = float(np.mean(f * chi))  # f̂(S) = 2^{-d} Σ_x f(x) χ_S(x)
        assert tracker.coefficients[0][0, k] == pytest.approx(exact, abs=1e-12)
        se = np.std(f * chi, ddof=0) / math.sqrt(len(f) - 1)
        assert tracker.standard_errors[0][0, k] == pytest.approx(se, rel=1e-9)
    y = x[:, 0] + x[:, 0] * x[:, 1]
    assert tracker.test_errors[0][0] == pytest.approx(
        float(((net(x)[:, 0].detach() - y) ** 2).mean())
    )


def test_batched_route_equals_gradient_descent_one_model_at_a_time():
    target = monomial_target([[1], [1, 2]])
    run = train_on_target(
        target, 6, width=8, seeds=[0, 1, 2], steps=15, lr_first=0.05, lr_second=0.02,
        n_train=32, batch=32, dtype=torch.float64, test_size=64, record_every=5,
    )  # fmt: skip
    assert run.steps.tolist() == [0, 5, 10, 15]
    assert run.coefficients.shape == (4, 3, 2) and run.test_errors.shape == (4, 3)
    for s in range(3):
        net = MeanFieldNet(6, 8, seed=s, dtype=torch.float64)
        x = target.sample_inputs(32, 6, torch.Generator().manual_seed(s), torch.float64)
        groups = layer_learning_rates(8, 0.05, 0.02)
        gradient_descent(net, (x, target(x)[:, None]), lr=1.0, steps=15, param_groups=groups)
        torch.testing.assert_close(run.params["w"][s], net.w.detach(), atol=1e-12, rtol=0)
        torch.testing.assert_close(run.params["a"][s], net.a.detach(), atol=1e-12, rtol=0)


def test_online_sgd_learns_a_single_coordinate_and_stops_on_request():
    target = monomial_target([[1]])
    run = train_on_target(
        target, 8, width=64, seeds=[0, 1], steps=3000, lr_first=0.02, lr_second=0.02,
        test_size=1024, record_every=100,
        stop_when=lambda t: bool((t.coefficients[-1][:, 0] >= 0.5).all()),
    )  # fmt: skip
    assert run.stop_reason == "callback" and run.steps[-1] < 3000
    assert (run.coefficients[-1][:, 0] >= 0.5).all()
    assert (run.test_errors[-1] < run.test_errors[0]).all()


def test_first_passage_interpolates_in_log_time_and_censors():
    steps = np.array([0, 10, 100, 1000])
    assert first_passage(steps, [0.0, 0.2, 0.4, 0.8], 0.6) == (pytest.approx(math.sqrt(1e5)), False)
    assert first_passage(steps, [0.0, 0.2, 0.4, 0.5], 0.6) == (1000.0, True)
    assert first_passage(steps, [1.0, 0.5, 0.1, 0.0], 0.5, above=False) == (
        pytest.approx(10.0),
        False,
    )
    assert first_passage(steps, [0.9, 1.0, 1.0, 1.0], 0.5) == (0.0, False)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: MeanFieldNet(0, 3), "dim"),
        (lambda: MeanFieldNet(3, 4, scaling="ntk"), "scaling"),
        (lambda: MeanFieldNet(3, 4, activation="elu"), "activation"),
        (lambda: MeanFieldNet(3, 4, mask=torch.ones(3, 3)), "mask"),
        (lambda: layer_learning_rates(4, 0.0, 0.1), "lr_first"),
    ],
)
def test_bad_input_gets_one_sentence(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_gaussian_inputs_are_projected_on_hermite_monomials():
    target = monomial_target([{1: 2}, [1, 2]], inputs="gaussian")
    run = train_on_target(
        target, 6, width=16, seeds=[0, 1], steps=30, lr_first=0.01, lr_second=0.01, batch=4,
        controls=[frozenset({3})], test_size=256, record_every=10, dtype=torch.float64,
    )  # fmt: skip
    assert run.coefficients.shape == (4, 2, 3) and np.isfinite(run.coefficients).all()
    x = target.sample_inputs(256, 6, torch.Generator().manual_seed(12345), torch.float64)
    net = MeanFieldNet(6, 16, seed=0, dtype=torch.float64)
    tracker = MonomialTracker(target, x, list(target.supports), scale=net.scale)
    tracker(0, {"w": net.w.detach()[None], "a": net.a.detach()[None]})
    f = net(x)[:, 0].detach()
    expected = float((f * hermite_monomial(x, {1: 2})).mean())
    assert tracker.coefficients[0][0, 0] == pytest.approx(expected, rel=1e-10)
    assert run.coefficients[0, 0, 0] == pytest.approx(expected, rel=1e-10)  # same init, same sample
