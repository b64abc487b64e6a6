"""λ-continuation of the L2 objective (symlab.train.l2_continuation) against dense references."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from torch import nn

from symlab.nets import flatten_params
from symlab.train import l2_continuation, lbfgs, mse_loss

DTYPES = [torch.float32, torch.float64]


def _chain(weights, dtype=torch.float64):
    """f(x) = w_L ... w_1 x: a depth-L scalar linear chain (positively homogeneous)."""
    layers = [nn.Linear(1, 1, bias=False, dtype=dtype) for _ in weights]
    with torch.no_grad():
        for layer, w in zip(layers, weights):
            layer.weight.fill_(w)
    return nn.Sequential(*layers)


@pytest.mark.parametrize("dtype", DTYPES)
def test_continuation_reaches_the_fitted_minimum_where_lbfgs_at_the_target_falls_to_zero(dtype):
    """(w_6 ... w_1 - 1)^2 + lam sum w_i^2 from a fit with a large, unbalanced norm: L-BFGS at
    lam = 0.1 alone ends at theta = 0 (objective 1), the ladder at the balanced minimum
    w_i = a* with a* = argmin (a^6 - 1)^2 + 6 lam a^2 (1-D reference), objective 0.589 < 1."""
    double = dtype == torch.float64
    tol = 1e-12 if double else 1e-6
    x = torch.ones(1, 1, dtype=dtype)
    data, lam, start = (x, x.clone()), 0.1, [10.0, 0.1, 1.0, 1.0, 1.0, 1.0]
    direct = _chain(start, dtype)
    lbfgs(direct, data, weight_decay=lam, tol=tol, max_iter=500, record_every=5)
    assert flatten_params(direct).abs().max() < 1e-6  # collapsed to f = 0
    ladder = np.geomspace(lam / 100, lam, 5).tolist()
    model = _chain(start, dtype)
    stages = l2_continuation(model, data, ladder, max_iter=500, tol=tol, record_every=5)
    assert len(stages) == 5 and not any(s.diverged for s in stages)
    best = minimize_scalar(lambda a: (a**6 - 1) ** 2 + 6 * lam * a**2, bounds=(0.5, 1.5),
                           method="bounded", options={"xatol": 1e-12})  # fmt: skip
    assert stages[-1].losses[-1] == pytest.approx(best.fun, abs=1e-10 if double else 1e-6)
    assert best.fun < 0.6 < 1.0  # the fitted minimum is below f = 0's objective
    weights = flatten_params(model).abs().double()
    torch.testing.assert_close(
        weights, torch.full_like(weights, best.x), atol=1e-5 if double else 1e-4, rtol=0
    )


def _ridge_problem(dtype):
    """Random (x, y) and a linear model with a seeded initialization (no global RNG)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g, dtype=dtype)
    y = torch.randn(40, 2, generator=g, dtype=dtype)
    model = nn.Linear(3, 2, dtype=dtype)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 3, generator=g, dtype=dtype))
        model.bias.copy_(torch.randn(2, generator=g, dtype=dtype))
    return model, (x, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_stage_ends_at_the_ridge_solution_of_its_lambda(dtype):
    """A linear model's stage i minimizes the ridge objective at lam_i (dense solve), and the
    model ends at the last one's solution; each stage records its own lam's objective. A stage
    that stalls has met the rounding floor of a line search on an objective of size ~1: a
    gradient of about sqrt(eps) (1.5e-8 in float64), not the tolerance."""
    model, (x, y) = _ridge_problem(dtype)
    ladder = [0.01, 0.1, 0.3]
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    floor = 10 * math.sqrt(torch.finfo(dtype).eps)
    stages = l2_continuation(model, (x, y), ladder, tol=tol, loss=mse_loss)
    assert len(stages) == 3
    design = torch.cat([x, torch.ones_like(x[:, :1])], 1).double()
    scale = x.shape[0] * y.shape[1]
    for lam, stage in zip(ladder, stages):
        lhs = design.T @ design / scale + lam * torch.eye(4, dtype=torch.float64)
        solution = torch.linalg.solve(lhs, design.T @ y.double() / scale)
        residual = design @ solution - y.double()
        objective = float(residual.square().sum() / scale + lam * solution.square().sum())
        assert stage.stop_reason in ("tol", "stalled")
        assert stage.final_grad_norm <= (tol if stage.stop_reason == "tol" else floor)
        assert stage.losses[-1] == pytest.approx(
            objective, rel=1e-10 if dtype == torch.float64 else 1e-5
        )
    reference = torch.cat([solution[:3].T.reshape(-1), solution[3]])
    atol = 1e-7 if dtype == torch.float64 else 1e-4  # gradient floor / curvature (>= 2 x 0.3)
    torch.testing.assert_close(flatten_params(model).double(), reference, atol=atol, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_stage_stops_at_the_given_tolerance(dtype):
    """tol is each stage's: at tol = 1e-2 every stage stops at it, in fewer iterations than
    the same ladder at a tight tolerance."""
    model, data = _ridge_problem(dtype)
    loose = l2_continuation(model, data, [0.01, 0.1, 0.3], tol=1e-2, record_every=1)
    assert [s.stop_reason for s in loose] == ["tol"] * 3
    assert all(s.final_grad_norm <= 1e-2 for s in loose)
    model, data = _ridge_problem(dtype)
    tight = l2_continuation(model, data, [0.01, 0.1, 0.3], tol=1e-12, record_every=1)
    assert sum(s.n_steps for s in loose) < sum(s.n_steps for s in tight)


def test_numpy_ladders_are_taken_like_python_floats():
    """numpy.geomspace's float64 values, float32 values and integers run the ladder of the
    same Python numbers (float32 values as float32 rounds them)."""
    as_float32 = np.array([0.01, 0.1, 0.3], dtype=np.float32)
    cases = [
        (np.geomspace(0.01, 0.3, 3), np.geomspace(0.01, 0.3, 3).tolist()),
        (as_float32, [float(v) for v in as_float32]),
        (np.array([1, 2]), [1.0, 2.0]),
    ]
    for ladder, floats in cases:
        runs = []
        for lams in (ladder, floats):
            model, data = _ridge_problem(torch.float64)
            runs.append([s.losses for s in l2_continuation(model, data, lams, max_iter=30)])
        assert runs[0] == runs[1] and len(runs[0]) == len(floats)


def test_a_diverged_stage_ends_the_ladder():
    """A stage with a non-finite objective is the last one: nothing to continue from."""
    model = _chain([1.0, 1.0, 1.0])
    with torch.no_grad():
        model[1].weight.fill_(math.nan)
    x = torch.ones(4, 1, dtype=torch.float64)
    stages = l2_continuation(model, (x, x), [0.01, 0.1, 1.0], max_iter=20)
    assert len(stages) == 1 and stages[0].diverged and stages[0].stop_reason == "diverged"


@pytest.mark.parametrize(
    "lams",
    [
        [],
        [0.1, 0.1],
        [0.2, 0.1],
        [0.0, 0.1],
        [-1.0],
        [math.inf],
        [math.nan],
        [True],
        0.1,
        "0.1",
        [torch.tensor(0.1)],
        [None],
    ],
)
def test_a_bad_ladder_is_refused_in_one_sentence(lams):
    x = torch.ones(4, 1, dtype=torch.float64)
    model = _chain([1.0, 1.0])
    before = flatten_params(model).clone()
    with pytest.raises(ValueError, match=r"^lams: expected"):
        l2_continuation(model, (x, x), lams)
    assert torch.equal(flatten_params(model), before)  # nothing trained
