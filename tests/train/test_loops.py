"""symlab.train loops against explicit references (manual updates, least squares, Adam formula)."""

import itertools
import math

import pytest
import torch
from torch import nn

from symlab.nets import flatten_params, mlp
from symlab.train import (
    adam,
    gradient_descent,
    lbfgs,
    levenberg_marquardt,
    loss_and_grad_norm,
    newton,
    sgd,
    step_decay,
)

DTYPES = [torch.float32, torch.float64]


def _data(n=40, d=3, k=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    return x, torch.randn(n, k, generator=g, dtype=dtype)


def _manual_grad(model, x, y):
    """Reference gradient of the mean squared error by torch.func over the parameter dict."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p):
        return ((torch.func.functional_call(model, p, (x,)) - y) ** 2).mean()

    return torch.func.grad(loss)(params)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_descent_steps_match_manual_updates(dtype):
    x, y = _data(dtype=dtype)
    model = mlp([3, 5, 2], "tanh", seed=1, dtype=dtype)
    reference = mlp([3, 5, 2], "tanh", seed=1, dtype=dtype)
    for _ in range(3):
        grads = _manual_grad(reference, x, y)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                p -= 0.1 * grads[name]
    trajectory = gradient_descent(model, (x, y), lr=0.1, steps=3)
    atol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=atol, rtol=0)
    assert trajectory.steps == [0, 1, 2, 3] and trajectory.n_steps == 3
    assert trajectory.losses[-1] < trajectory.losses[0]


def test_sgd_full_batch_equals_gd_and_seed_controls_minibatches():
    x, y = _data()
    a, b = mlp([3, 4, 2], "tanh", seed=2), mlp([3, 4, 2], "tanh", seed=2)
    gradient_descent(a, (x, y), lr=0.05, steps=5)
    sgd(b, (x, y), lr=0.05, steps=5, batch_size=40)
    torch.testing.assert_close(flatten_params(a), flatten_params(b), atol=1e-14, rtol=0)
    runs = []
    for seed in (0, 0, 1):
        model = mlp([3, 4, 2], "tanh", seed=2)
        sgd(model, (x, y), lr=0.05, steps=7, batch_size=8, seed=seed)
        runs.append(flatten_params(model))
    assert torch.equal(runs[0], runs[1]) and not torch.allclose(runs[0], runs[2])


def test_sgd_first_step_uses_the_first_minibatch_of_the_seeded_permutation():
    x, y = _data()
    model, reference = mlp([3, 4, 2], "tanh", seed=3), mlp([3, 4, 2], "tanh", seed=3)
    index = torch.randperm(40, generator=torch.Generator().manual_seed(5))[:8]
    grads = _manual_grad(reference, x[index], y[index])
    with torch.no_grad():
        for name, p in reference.named_parameters():
            p -= 0.2 * grads[name]
    sgd(model, (x, y), lr=0.2, steps=1, batch_size=8, seed=5)
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=1e-14, rtol=0)


@pytest.mark.parametrize("schedule", [None, step_decay([2], 0.1)], ids=["constant", "step-decay"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_matches_the_update_formula(dtype, schedule):
    # with a schedule ρ, step t uses the rate lr ρ(t - 1) (symlab.train.lr_schedules)
    factor = schedule or (lambda t: 1.0)
    x, y = _data(dtype=dtype)
    model, reference = (
        mlp([3, 4, 2], "tanh", seed=4, dtype=dtype),
        mlp([3, 4, 2], "tanh", seed=4, dtype=dtype),
    )
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    m = {k: torch.zeros_like(v) for k, v in reference.named_parameters()}
    v = {k: torch.zeros_like(p) for k, p in reference.named_parameters()}
    for t in range(1, 5):
        grads = _manual_grad(reference, x, y)
        with torch.no_grad():
            for name, p in reference.named_parameters():
                m[name] = b1 * m[name] + (1 - b1) * grads[name]
                v[name] = b2 * v[name] + (1 - b2) * grads[name] ** 2
                m_hat, v_hat = m[name] / (1 - b1**t), v[name] / (1 - b2**t)
                p -= lr * factor(t - 1) * m_hat / (v_hat.sqrt() + eps)
    adam(model, (x, y), lr=lr, steps=4, lr_schedule=schedule)
    atol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(flatten_params(model), flatten_params(reference), atol=atol, rtol=0)


def _linear(dtype, seed=0):
    layer = nn.Linear(3, 2, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(
            torch.randn(2, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        )
        layer.bias.zero_()
    return layer


def _least_squares(x, y):
    design = torch.cat([x, torch.ones_like(x[:, :1])], 1).double()
    solution = torch.linalg.lstsq(design, y.double()).solution  # (4, 2)
    return torch.cat([solution[:3].T.reshape(-1), solution[3]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_lbfgs_and_newton_reach_the_least_squares_solution(dtype):
    x, y = _data(dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    reference = _least_squares(x, y)
    for loop in (lbfgs, newton, levenberg_marquardt):
        model = _linear(dtype)
        trajectory = loop(model, (x, y), tol=tol)
        assert trajectory.converged and trajectory.final_grad_norm <= tol
        atol = 1e-8 if dtype == torch.float64 else 1e-4
        torch.testing.assert_close(flatten_params(model).double(), reference, atol=atol, rtol=0)
    assert newton(_linear(dtype), (x, y), tol=tol).n_steps <= 2  # quadratic: exact in one step


@pytest.mark.parametrize("dtype", DTYPES)
def test_lbfgs_with_weight_decay_reaches_the_ridge_solution(dtype):
    """min (1 / (N K)) ||A theta - Y||^2 + lam ||theta||^2 (A = [x, 1], bias penalized too):
    (A^T A / (N K) + lam I) theta = A^T Y / (N K), solved densely; the record is the objective."""
    x, y = _data(dtype=dtype)
    lam = 0.3
    design = torch.cat([x, torch.ones_like(x[:, :1])], 1).double()
    scale = x.shape[0] * y.shape[1]
    lhs = design.T @ design / scale + lam * torch.eye(4, dtype=torch.float64)
    solution = torch.linalg.solve(lhs, design.T @ y.double() / scale)  # (4, 2)
    reference = torch.cat([solution[:3].T.reshape(-1), solution[3]])
    # float64: tol above the line search's floor, where a step's decrease g^2 / (2 H) falls
    # below the objective's rounding eps L (g ~ 3e-8 here; at 1e-10 the run stalled at 2e-9 on
    # an AMD CPU and converged on an Intel one)
    tol = 1e-7 if dtype == torch.float64 else 1e-5
    model = _linear(dtype)
    trajectory = lbfgs(model, (x, y), tol=tol, weight_decay=lam)
    assert trajectory.converged and trajectory.final_grad_norm <= tol
    atol = 1e-6 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(flatten_params(model).double(), reference, atol=atol, rtol=0)
    residual = design @ solution - y.double()
    objective = float(residual.square().sum() / scale + lam * solution.square().sum())
    assert trajectory.losses[-1] == pytest.approx(
        objective, rel=1e-5 if dtype == torch.float32 else 1e-10
    )
    # without the decay it is the least-squares solution, not the ridge one
    plain = _linear(dtype)
    lbfgs(plain, (x, y), tol=tol)
    assert (flatten_params(plain).double() - reference).abs().max() > 100 * atol


@pytest.mark.parametrize("closed_form, freeze", [(True, False), (False, False), (True, True)])
def test_lbfgs_weight_decay_on_a_two_layer_net_reaches_a_critical_point_of_the_objective(
    closed_form, freeze
):
    """Sequential(Linear, tanh, Linear) is the closed-form route's net: with weight decay the
    loop must still stop at a zero of grad (L + lam ||theta||^2) (checked with autograd
    here), whichever route is asked for; a frozen parameter is neither moved nor penalized."""
    x, y = _data(n=30, d=2, k=1, seed=3)
    lam = 0.05
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    frozen = net[2].bias
    with torch.no_grad():
        frozen.fill_(0.7)
    frozen.requires_grad_(not freeze)
    trajectory = lbfgs(net, (x, y), tol=1e-10, weight_decay=lam, closed_form=closed_form)
    # the line search stalls near 4e-9 on this net (the objective's changes reach rounding)
    assert trajectory.stop_reason in ("tol", "stalled") and trajectory.final_grad_norm <= 1e-8
    trainable = [p for p in net.parameters() if p.requires_grad]
    objective = (net(x) - y).square().mean() + lam * sum(p.square().sum() for p in trainable)
    grads = torch.autograd.grad(objective, trainable)
    assert max(float(g.abs().max()) for g in grads) <= 1e-8
    assert (float(frozen.detach()) == 0.7) == freeze
    assert trajectory.losses[-1] == pytest.approx(float(objective.detach()), rel=1e-12)


@pytest.mark.parametrize("closed_form", [True, False])
def test_lbfgs_stops_at_max_iter_and_names_a_stall(closed_form):
    x, y = _data(n=30, d=2, k=1, seed=3)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    trajectory = lbfgs(net, (x, y), max_iter=10, record_every=7, closed_form=closed_form)
    assert trajectory.n_steps == 10 and trajectory.steps[-1] == 10  # not 14: chunks are cut
    assert trajectory.stop_reason == "steps"
    # float32 cannot reach a gradient of 1e-30: the line search stalls, and says so
    stalled = lbfgs(_linear(torch.float32), _data(dtype=torch.float32), tol=1e-30, max_iter=500,
                    record_every=5)  # fmt: skip
    assert stalled.n_steps < 500 and stalled.stop_reason == "stalled" and not stalled.converged


@pytest.mark.parametrize("closed_form", [True, False])
def test_lbfgs_recording_every_iteration_does_not_starve_the_line_search(closed_form):
    """The record cadence must not change what L-BFGS does: with one iteration per call the
    line search still gets its evaluations, and the run ends where the default cadence's does
    (with a call's budget at 5/4 of its iterations it stalled after 9 iterations, gradient 0.04)."""
    x, y = _data(n=30, d=2, k=1, seed=3)
    ends = []
    for record_every in (1, 20):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
        ends.append(lbfgs(net, (x, y), tol=1e-8, max_iter=150, record_every=record_every,
                          closed_form=closed_form))  # fmt: skip
    assert ends[0].n_steps == ends[1].n_steps == 150
    assert ends[0].losses[-1] == pytest.approx(ends[1].losses[-1], rel=1e-12)


def test_newton_returns_to_a_degenerate_saddle_line():
    """A split critical point (singular Hessian) perturbed by 1e-4 is polished back to gradient ≤ 1e-12."""
    x, y = _data(n=60, d=2, k=1, seed=7)
    model = mlp([2, 2, 1], "tanh", seed=8)
    lbfgs(model, (x, y), tol=1e-9)
    newton(model, (x, y), tol=1e-13)
    w1, w2 = model[0].weight.detach(), model[2].weight.detach()
    wide = mlp([2, 3, 1], "tanh", seed=0)
    with torch.no_grad():
        wide[0].weight.copy_(torch.cat([w1, w1[:1]]))
        wide[0].bias.copy_(torch.cat([model[0].bias, model[0].bias[:1]]))
        wide[2].weight.copy_(torch.cat([0.3 * w2[:, :1], w2[:, 1:], 0.7 * w2[:, :1]], 1))
        wide[2].bias.copy_(model[2].bias)
        for p in wide.parameters():
            p += 1e-4 * torch.randn(
                p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype
            )
    before = loss_and_grad_norm(wide, (x, y))[1]
    trajectory = newton(wide, (x, y), tol=1e-12)
    assert before > 1e-6 and trajectory.converged and trajectory.final_grad_norm <= 1e-12


def test_levenberg_marquardt_reaches_a_zero_residual_teacher():
    """Student of the teacher's width started 0.3 away: zero loss (< 1e-25) and the teacher's
    parameters up to a permutation of the hidden neurons (checked against all permutations)."""
    x, _ = _data(n=80, d=2, k=1, seed=9)
    teacher = mlp([2, 3, 1], "tanh", seed=10)
    y = teacher(x).detach()
    student = mlp([2, 3, 1], "tanh", seed=10)
    with torch.no_grad():
        for p in student.parameters():
            p += 0.3 * torch.randn(
                p.shape, generator=torch.Generator().manual_seed(2), dtype=p.dtype
            )
    trajectory = levenberg_marquardt(student, (x, y), tol=1e-13)
    assert trajectory.converged and trajectory.final_loss < 1e-25
    rows = lambda m: torch.cat([m[0].weight, m[0].bias[:, None], m[2].weight.T], 1).detach()  # noqa: E731
    best = min(
        float((rows(student)[list(perm)] - rows(teacher)).abs().max())
        for perm in itertools.permutations(range(3))
    )
    assert best < 1e-8


def test_levenberg_marquardt_jacobian_modes_agree(monkeypatch):
    """D < NK takes the forward-mode Jacobian, D >= NK the reverse mode: both reach zero loss, and
    on the same problem both modes give the same first steps (forced by patching the choice)."""
    for n, widths in ((6, [2, 8, 1]), (80, [2, 3, 1])):  # D = 33 > 6 and D = 13 < 80
        x, _ = _data(n=n, d=2, k=1, seed=11)
        teacher = mlp(widths, "tanh", seed=12)
        y = teacher(x).detach()
        student = mlp(widths, "tanh", seed=13)
        trajectory = levenberg_marquardt(student, (x, y), tol=1e-12, max_iter=400)
        assert trajectory.final_loss < 1e-20, (n, trajectory.final_loss)
    import torch.func

    x, _ = _data(n=40, d=2, k=1, seed=14)
    y = mlp([2, 3, 1], "tanh", seed=15)(x).detach()
    runs = []
    for forward in (True, False):
        student = mlp([2, 3, 1], "tanh", seed=16)
        if not forward:  # the reverse-mode Jacobian where the forward mode would run
            monkeypatch.setattr(torch.func, "jacfwd", torch.func.jacrev)
        runs.append(levenberg_marquardt(student, (x, y), tol=1e-30, max_iter=5).losses)
    assert len(runs[0]) == len(runs[1]) == 6  # 5 steps and the final point
    torch.testing.assert_close(torch.tensor(runs[0]), torch.tensor(runs[1]), rtol=1e-9, atol=0)


def test_callback_and_recording_schedule():
    x, y = _data()
    seen = []
    trajectory = gradient_descent(
        mlp([3, 4, 2], "tanh", seed=1), (x, y), lr=0.1, steps=10, record_every=4,
        callback=lambda step, model: seen.append(step), callback_every=3,
    )  # fmt: skip
    assert seen == [0, 3, 6, 9] and trajectory.steps == [0, 4, 8, 10]
    assert all(math.isfinite(v) for v in trajectory.grad_norms)


def test_tolerance_stops_early():
    x, y = _data()
    trajectory = gradient_descent(_linear(torch.float64), (x, y), lr=0.5, steps=5000, tol=1e-6)
    assert trajectory.converged and trajectory.n_steps < 5000 and trajectory.final_grad_norm <= 1e-6


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, d: gradient_descent(m, d, lr=-1.0, steps=3), "lr"),
        (lambda m, d: gradient_descent(m, d, lr=0.1, steps=-3), "steps"),
        (lambda m, d: sgd(m, d, lr=0.1, steps=3, batch_size=0), "batch_size"),
        (lambda m, d: sgd(m, d, lr=0.1, steps=3, batch_size=4, momentum=1.5), "momentum"),
        (lambda m, d: gradient_descent(m, d, lr=math.inf, steps=3), "lr"),
        (
            lambda m, d: gradient_descent(m, d, lr=0.1, steps=3, weight_decay=math.inf),
            "weight_decay",
        ),
        (lambda m, d: adam(m, d, lr=0.1, steps=3, weight_decay=math.nan), "weight_decay"),
        (lambda m, d: lbfgs(m, d, tol=0.0), "tol"),
        (lambda m, d: lbfgs(m, d, weight_decay=-1.0), "weight_decay"),
        (lambda m, d: lbfgs(m, d, weight_decay=math.inf), "weight_decay"),
        (lambda m, d: lbfgs(m, d, weight_decay=math.nan), "weight_decay"),
        (lambda m, d: lbfgs(m, d, weight_decay="0.1"), "weight_decay"),
        (lambda m, d: newton(m, d, max_params=3), "max_params"),
        (lambda m, d: adam(m, (d[0], d[1][:3]), lr=0.1, steps=1), "data"),
    ],
)
def test_bad_input_raises_one_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(_linear(torch.float64), _data())


def _count_forwards(model):
    """A forward hook on the first Linear layer: one count per forward pass of the model."""
    calls = []
    model[0].register_forward_hook(lambda module, inputs, output: calls.append(1))
    return calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loop", ["gd", "adam", "sgd_full_batch"])
def test_full_batch_loops_record_from_the_steps_own_pass(loop, dtype):
    """100 full-batch steps cost 100 forward passes plus one for the final record (not 201), and
    the free records equal the loss and gradient ∞-norm recomputed at the same parameters."""
    x, y = _data(dtype=dtype)
    run = {
        "gd": lambda m, **kw: gradient_descent(m, (x, y), lr=0.1, steps=100, **kw),
        "adam": lambda m, **kw: adam(m, (x, y), lr=0.01, steps=100, **kw),
        "sgd_full_batch": lambda m, **kw: sgd(m, (x, y), lr=0.1, steps=100, batch_size=40, **kw),
    }[loop]
    model = mlp([3, 4, 2], "tanh", seed=1, dtype=dtype)
    calls = _count_forwards(model)
    trajectory = run(model)
    assert len(calls) == 101 and trajectory.steps == list(range(101))
    # reference: a replay whose callback recomputes L(θ_t) and ‖∇L(θ_t)‖_∞ from scratch
    replay, expected = mlp([3, 4, 2], "tanh", seed=1, dtype=dtype), {}

    def probe(step, m):
        expected[step] = loss_and_grad_norm(m, (x, y))

    run(replay, callback=probe, callback_every=10)
    assert torch.equal(flatten_params(replay), flatten_params(model))
    assert sorted(expected) == list(range(0, 101, 10))
    rel = 1e-5 if dtype == torch.float32 else 1e-12
    for step, (value, grad_norm) in expected.items():
        assert math.isclose(trajectory.losses[step], value, rel_tol=rel)
        assert math.isclose(trajectory.grad_norms[step], grad_norm, rel_tol=rel)


def test_minibatch_sgd_records_full_batch_every_ten_epochs_by_default():
    """Minibatch SGD records the full-batch loss (one extra forward pass per record) every
    10 epochs = 10 ceil(N / batch) steps by default: 100 steps of batch 8 on N = 40 → records at
    0, 50, 100, i.e. 100 + 3 forward passes; record_every=1 gives 10 + 11 for 10 steps."""
    x, y = _data()
    model = mlp([3, 4, 2], "tanh", seed=1)
    calls = _count_forwards(model)
    trajectory = sgd(model, (x, y), lr=0.05, steps=100, batch_size=8, seed=0)
    assert trajectory.steps == [0, 50, 100] and len(calls) == 103
    assert trajectory.final_loss == loss_and_grad_norm(model, (x, y))[0]
    every = mlp([3, 4, 2], "tanh", seed=1)
    calls = _count_forwards(every)
    recorded = sgd(every, (x, y), lr=0.05, steps=10, batch_size=8, record_every=1)
    assert recorded.steps == list(range(11)) and len(calls) == 10 + 11
    assert math.isclose(recorded.losses[0], trajectory.losses[0], rel_tol=1e-14)


def test_early_stop_runs_the_callback_once_per_step():
    x, y = _data()
    seen = []
    trajectory = gradient_descent(
        _linear(torch.float64), (x, y), lr=0.5, steps=5000, tol=1e-6,
        callback=lambda step, model: seen.append(step), callback_every=1,
    )  # fmt: skip
    assert trajectory.converged and seen == list(range(trajectory.n_steps + 1))
    assert trajectory.steps[-1] == trajectory.n_steps


@pytest.mark.parametrize("loop", [newton, levenberg_marquardt])
def test_second_order_records_and_callbacks_see_the_current_iterate(loop):
    """Each record (L(θ_t), ‖∇L(θ_t)‖_∞) equals a recomputation at the parameters the callback
    sees at step t, and those parameters move (they are the iterates, not the start point)."""
    x, y = _data()
    model, seen = mlp([3, 4, 2], "tanh", seed=1), {}

    def probe(step, m):
        seen[step] = (flatten_params(m), *loss_and_grad_norm(m, (x, y)))

    trajectory = loop(model, (x, y), tol=1e-10, max_iter=5, callback=probe)
    assert trajectory.steps == list(range(6)) and sorted(seen) == trajectory.steps
    for step, (theta, value, grad_norm) in seen.items():
        assert math.isclose(trajectory.losses[step], value, rel_tol=1e-10)
        assert math.isclose(trajectory.grad_norms[step], grad_norm, rel_tol=1e-8)
        assert step == 0 or not torch.equal(theta, seen[step - 1][0])
    assert torch.equal(seen[5][0], flatten_params(model))
    if loop is levenberg_marquardt:  # a descent method: the recorded loss decreases
        assert all(b < a for a, b in zip(trajectory.losses, trajectory.losses[1:]))
