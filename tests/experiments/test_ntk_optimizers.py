"""The ntk-optimizers study: the NTK-predicted error curves are exact for the linearised model,
match a tiny very wide network, fail for a narrow one, and the pipeline runs at tiny size."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call, jacrev

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import symlab
from symlab.engine.experiment import get_experiment
from symlab.experiments.ntk_optimizers import (
    OPTIMIZERS,
    NTKOptimizersSpec,
    train_network,
)
from symlab.nets import flatten_params, unflatten_params
from symlab.ntk.data import sphere_regression_task
from symlab.ntk.linear_dynamics import linearized_training_error, optimizer_hyperparameters
from symlab.ntk.models import TwoLayerNTK


def _dense_jacobian(model, x):
    """(N, D) Jacobian of the scalar outputs w.r.t. the flat parameters, by torch.func.jacrev."""
    flat = flatten_params(model)

    def outputs(theta):
        return functional_call(model, unflatten_params(model, theta), (x,))[:, 0]

    return flat, jacrev(outputs)(flat)


class _Linearised(torch.nn.Module):
    """f_0(X) + J (θ - θ_0) on the training inputs only (an independent dense linear model)."""

    def __init__(self, f0, jac, theta0):
        super().__init__()
        self.f0, self.jac, self.theta0 = f0, jac, theta0
        self.theta = torch.nn.Parameter(theta0.clone())

    def forward(self, x):
        return (self.f0 + self.jac @ (self.theta - self.theta0)).unsqueeze(-1)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_prediction_is_exact_for_the_linearised_model(optimizer):
    x, y = sphere_regression_task(10, 4, seed=0)
    net = TwoLayerNTK(4, 64, seed=1)
    theta0, jac = _dense_jacobian(net, x)
    with torch.no_grad():
        f0 = net(x)[:, 0]
    lam, u = torch.linalg.eigh(jac @ jac.T / len(y))
    eta, beta = optimizer_hyperparameters(optimizer, float(lam[0]), float(lam[-1]), 0.1)
    schedule = "k/(k+3)" if optimizer == "nesterov" else beta
    predicted = linearized_training_error(optimizer, lam, u.T @ (f0 - y[:, 0]), eta, schedule, 80)
    measured = train_network(_Linearised(f0, jac, theta0), x, y, optimizer, eta, beta, 80)
    keep = predicted > 1e-16 * predicted[0]
    assert keep.sum() > 20
    assert np.max(np.abs(measured[keep] / predicted[keep] - 1)) < 1e-6


def _gd_job(width, iterations=60):
    params = dict(optimizer="gd", seed=0, width=width, dim=4, n_train=8)
    return get_experiment("ntk-optimizers").run_job(
        {**params, "iterations": iterations, "hb_margin": 0.1}
    )


def test_gd_prediction_matches_a_tiny_very_wide_net_and_not_a_narrow_one():
    wide = _gd_job(65536)
    # the kernel barely moves, and the error falls by > 1e4 along the predicted curve
    assert wide["kernel_distance"] < 1e-4
    assert wide["error_reduction"] < 1e-4
    assert wide["error_rel_max"] < 0.08
    assert wide["rate_rel_diff"] < 0.005
    narrow = _gd_job(16)
    assert narrow["error_rel_max"] > 0.3  # a width-16 net leaves the kernel regime


def test_run_job_kernel_matches_dense_jacobian():
    row = _gd_job(512, iterations=5)
    x, y = sphere_regression_task(8, 4, seed=0)
    net = TwoLayerNTK(4, 512, seed=1000)  # run_job seeds the net with 1000 + seed
    _, jac = _dense_jacobian(net, x)
    lam = torch.linalg.eigvalsh(jac @ jac.T / 8)
    assert row["lambda_min"] == pytest.approx(float(lam[0]), rel=1e-9)
    assert row["lambda_max"] == pytest.approx(float(lam[-1]), rel=1e-9)
    assert row["measured"][0] == pytest.approx(row["predicted"][0], rel=1e-12)


def test_heavy_ball_textbook_parameters():
    eta, beta = optimizer_hyperparameters("heavy_ball", 1.0, 100.0, 0.0)
    assert eta == pytest.approx(4 / 121) and math.sqrt(beta) == pytest.approx(9 / 11)
    assert optimizer_hyperparameters("gd", 1.0, 4.0) == (0.25, 0.0)
    with pytest.raises(ValueError, match="optimizer"):
        optimizer_hyperparameters("adam", 1.0, 2.0)


def test_pipeline_tiny(tmp_path):
    study = get_experiment("ntk-optimizers")
    spec = study.spec_model(width=2048, dim=4, n_train=8, iterations=40, seeds=1)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert sorted(rows["optimizer"]) == sorted(OPTIMIZERS)
    for row in rows.itertuples():
        assert len(row.measured) == len(row.predicted) == 41
        assert row.measured[-1] < row.measured[0]
        assert np.all(np.isfinite(row.measured))
    summary = study.summarize(rows, spec)
    assert set(summary.table["optimizer"]) == set(OPTIMIZERS)
    assert "heavy ball" in summary.verdict and "%" in summary.verdict
    checks = {c["name"]: c["outcome"] for c in summary.extras["claims"]}
    assert set(checks) == {"gd_rate", "heavy_ball_rate", "nesterov_decay"}
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} == {"ntk_optimizers_error.png", "ntk_optimizers_error.svg"}
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "ntk-optimizers"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(NTKOptimizersSpec.model_fields)
    NTKOptimizersSpec(**values)
    with pytest.raises(ValueError, match="width"):
        NTKOptimizersSpec(**{**values, "width": 0})


def _noisy(curve, seed):
    """A curve with 1% multiplicative noise (fits of exact curves have zero residuals)."""
    rng = np.random.default_rng(seed)
    return curve * np.exp(0.01 * rng.standard_normal(len(curve)))


@pytest.mark.parametrize("optimizer", ["gd", "heavy_ball"])
def test_rate_claim_reproduced_only_inside_the_band(optimizer):
    from symlab.experiments.ntk_optimizers_verdict import rate_claim

    predicted = np.array([0.98, 0.97, 0.985])
    close = rate_claim(optimizer, predicted * (1 + np.array([1e-3, -1e-3, 2e-3])), predicted, 0.05)
    assert close.outcome == "reproduced"
    far = rate_claim(optimizer, predicted * np.array([1.2, 1.21, 1.19]), predicted, 0.05)
    assert far.outcome == "not reproduced"
    spread = rate_claim(optimizer, predicted * np.array([1.0, 1.08, 0.95]), predicted, 0.05)
    assert spread.outcome == "inconclusive"


def test_nesterov_claim_tells_geometric_from_power_law_decay():
    from symlab.experiments.ntk_optimizers_verdict import (
        compare_decay_models,
        decay_window,
        nesterov_claim,
    )

    t = np.arange(201, dtype=float)
    t[0] = 0.5  # t = 0 is outside every window
    window = decay_window(200)
    power = [compare_decay_models(_noisy(t**-3.0, s), *window) for s in range(3)]
    assert nesterov_claim(power).outcome == "reproduced"
    assert all(abs(f.product_exponent + 3) < 0.3 for f in power)
    product = [compare_decay_models(_noisy(t**-3.0 * 0.985**t, s), *window) for s in range(3)]
    claim = nesterov_claim(product, 0.985)
    assert claim.outcome == "not reproduced" and "geometric" in claim.measured
    assert abs(np.median([f.product_factor for f in product]) - 0.985) < 2e-3
    slow = [compare_decay_models(_noisy(t**-1.0, s), *window) for s in range(3)]
    assert nesterov_claim(slow).outcome == "not reproduced"
    assert nesterov_claim([]).outcome == "not measured"
