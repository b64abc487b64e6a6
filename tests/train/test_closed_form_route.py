"""The flat L-BFGS port against torch.optim.LBFGS, and the closed-form route of the second-order
trainers against their generic autograd / torch.func route (same iterates up to rounding)."""

import pytest
import torch
from torch import nn

from symlab.critical import train_to_critical
from symlab.critical.teacher_student import make_teacher, two_layer
from symlab.nets import flatten_params, mlp
from symlab.train import lbfgs, levenberg_marquardt, newton
from symlab.train.lbfgs_flat import LBFGSState, lbfgs_step


def _rosenbrock(v):
    return (100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2).sum()


@pytest.mark.parametrize("history_size, max_iter", [(4, 15), (50, 25)])
def test_lbfgs_step_matches_torch_optim_lbfgs_on_rosenbrock(history_size, max_iter):
    # three calls of `max_iter` iterations each: the memory (and, for history 4, its overflow)
    # carries over between calls exactly as in torch's optimizer state
    start = torch.tensor([-1.2, 1.0, -0.5, 0.8, 1.5, -1.0], dtype=torch.float64)
    param = nn.Parameter(start.clone())
    optimizer = torch.optim.LBFGS(
        [param], lr=1, max_iter=max_iter, history_size=history_size, tolerance_grad=1e-12,
        tolerance_change=0.0, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure():
        optimizer.zero_grad()
        value = _rosenbrock(param)
        value.backward()
        return value

    def objective(v):
        return _rosenbrock(v), torch.func.grad(_rosenbrock)(v)

    theta, state = start.clone(), LBFGSState()
    # Rosenbrock's valley amplifies rounding (~1e3 per 15 iterations): tight on the first call
    for call, atol in enumerate([1e-12, 1e-6, 1e-6]):
        before = optimizer.state[param].get("n_iter", 0)
        optimizer.step(closure)
        value, grad = objective(theta)
        theta, value, grad, done = lbfgs_step(
            objective, theta, float(value), grad, state, max_iter=max_iter,
            tolerance_grad=1e-12, tolerance_change=0.0, history_size=history_size,
        )  # fmt: skip
        assert done == optimizer.state[param]["n_iter"] - before
        assert state.n_iter == optimizer.state[param]["n_iter"]
        torch.testing.assert_close(theta, param.detach(), atol=atol, rtol=0, msg=f"call {call}")
    assert value < 0.1 * float(_rosenbrock(start))  # it did make progress towards (1, ..., 1)


def _teacher_student(activation, m=4, d=3, r=3, n=200, seed=0):
    teacher = make_teacher(d, r, activation, seed)
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(m, d, generator=g, dtype=torch.float64)
    a = torch.randn(m, generator=g, dtype=torch.float64) / m**0.5
    return (x, teacher(x).detach()), (w, a)


@pytest.mark.parametrize("activation", ["g", "softplus", "relu"])
def test_lbfgs_closed_form_follows_the_torch_optim_route(activation):
    data, (w, a) = _teacher_student(activation)
    runs = []
    for closed_form in (False, True):
        student = two_layer(w, a, activation)
        trajectory = lbfgs(
            student, data, max_iter=40, tol=1e-12, record_every=20, closed_form=closed_form
        )
        runs.append((flatten_params(student), trajectory))
    (old, old_run), (new, new_run) = runs
    assert new_run.steps == old_run.steps and new_run.n_steps == old_run.n_steps == 40
    torch.testing.assert_close(new, old, atol=1e-9, rtol=0)
    torch.testing.assert_close(
        torch.tensor(new_run.losses), torch.tensor(old_run.losses), rtol=1e-8, atol=0
    )


@pytest.mark.parametrize("activation", ["g", "softplus", "relu"])
def test_levenberg_marquardt_and_newton_closed_form_follow_torch_func(activation):
    data, (w, a) = _teacher_student(activation, seed=1)
    start = two_layer(w, a, activation)
    lbfgs(start, data, max_iter=30, tol=1e-12, record_every=30, closed_form=False)
    w, a = start[0].weight.detach(), start[2].weight.detach()[0]
    for method, steps in ((levenberg_marquardt, 6), (newton, 3)):
        ends, records = [], []
        for closed_form in (False, True):
            student = two_layer(w, a, activation)
            trajectory = method(student, data, tol=1e-14, max_iter=steps, closed_form=closed_form)
            ends.append(flatten_params(student))
            records.append(trajectory)
        assert records[0].n_steps == records[1].n_steps > 0
        torch.testing.assert_close(ends[1], ends[0], atol=1e-9, rtol=0)
        losses = torch.tensor(records[1].losses), torch.tensor(records[0].losses)
        torch.testing.assert_close(*losses, rtol=1e-7, atol=1e-12 * records[0].losses[0])


def test_closed_form_route_with_biases_and_two_outputs():
    # a general one-hidden-layer MLP (biases, K = 2) also takes the closed-form route
    g = torch.Generator().manual_seed(3)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64)
    y = torch.randn(60, 2, generator=g, dtype=torch.float64)
    ends = []
    for closed_form in (False, True):
        model = mlp([3, 4, 2], "tanh", seed=5)
        lbfgs(model, (x, y), max_iter=20, tol=1e-12, record_every=10, closed_form=closed_form)
        levenberg_marquardt(model, (x, y), max_iter=3, tol=1e-14, closed_form=closed_form)
        newton(model, (x, y), max_iter=2, tol=1e-14, closed_form=closed_form)
        ends.append(flatten_params(model))
    torch.testing.assert_close(ends[1], ends[0], atol=1e-8, rtol=0)


def test_train_to_critical_same_end_point_on_both_routes():
    data, (w, a) = _teacher_student("g", m=3, d=2, r=2, n=100, seed=2)
    results = []
    for closed_form in (False, True):
        student = two_layer(w, a, "g")
        result = train_to_critical(student, data, tol=1e-10, max_iter=60, closed_form=closed_form)
        results.append((result, flatten_params(student)))
    (old, old_theta), (new, new_theta) = results
    assert old.converged and new.converged
    # equal on one machine; a BLAS with other rounding may move the stopping test by a step
    assert abs(new.lbfgs_iterations - old.lbfgs_iterations) <= 2
    assert abs(new.newton_iterations - old.newton_iterations) <= 2
    torch.testing.assert_close(new_theta, old_theta, atol=1e-8, rtol=0)
    assert new.loss == pytest.approx(old.loss, rel=1e-8, abs=1e-20)


def test_lbfgs_routes_agree_over_a_short_float32_run():
    """float32: the routes round differently, and L-BFGS amplifies that, so only a short run is
    compared (measured: 5e-7 apart after 5 iterations, 4e-5 after 10)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g)
    y = torch.randn(50, 2, generator=g)
    ends = []
    for closed_form in (False, True):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        run = lbfgs(model, (x, y), max_iter=5, tol=1e-12, record_every=5, closed_form=closed_form)
        ends.append((flatten_params(model), run))
    (old, old_run), (new, new_run) = ends
    assert new.dtype == torch.float32 and new_run.n_steps == old_run.n_steps == 5
    torch.testing.assert_close(new, old, atol=1e-5, rtol=0)
    assert new_run.losses[-1] == pytest.approx(old_run.losses[-1], rel=1e-5)
    assert new_run.losses[-1] < new_run.losses[0]


def test_bad_targets_and_settings_are_refused_in_one_sentence():
    from symlab.train.lbfgs_flat import LBFGSState, lbfgs_step
    from symlab.train.two_layer_derivatives import gradient, two_layer_structure

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.randn(20, 3)
    for closed_form in (False, True):  # (N,) targets against (N, 1) outputs would broadcast
        with pytest.raises(ValueError, match=r"data: expected .*y.* \(N, 1\)|shaped like"):
            lbfgs(model, (x, torch.randn(20)), max_iter=2, closed_form=closed_form)
    net = two_layer_structure(model)
    theta = flatten_params(model)
    with pytest.raises(ValueError, match="data: expected x and y of theta's dtype"):
        gradient(net, theta, (x.double(), torch.randn(20, 1, dtype=torch.float64)))
    with pytest.raises(ValueError, match="max_iter, max_eval: expected positive integers"):
        lbfgs_step(lambda t: (t.sum(), torch.ones_like(t)), theta, 1.0, torch.ones_like(theta),
                   LBFGSState(), max_eval=0)  # fmt: skip


def test_closed_form_route_only_for_the_exact_activation_types():
    from symlab.train.two_layer_derivatives import two_layer_structure

    class ShiftedTanh(torch.nn.Tanh):
        def forward(self, z):
            return torch.tanh(z) + 1

    shifted = torch.nn.Sequential(torch.nn.Linear(3, 4), ShiftedTanh(), torch.nn.Linear(4, 1))
    assert two_layer_structure(shifted) is None
    plain = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    assert two_layer_structure(plain) is not None


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_softplus_with_no_hidden_units_matches_the_generic_hessian():
    from symlab.critical.criticality import hessian

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 0), torch.nn.Softplus(), torch.nn.Linear(0, 1)
    ).double()
    data = (torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64))
    torch.testing.assert_close(hessian(model, data), hessian(model, data, closed_form=False))
