"""Study ``ntk-optimizers``: GD, heavy ball and Nesterov on a wide two-layer net, predicted by its NTK.

In the kernel regime (Jacot et al. 2018; Lee et al. 2019, "Wide neural networks of any depth
evolve as linear models under gradient descent") a wide network trained on the MSE
L(θ) = ‖f_θ(X) - y‖² / (2N) follows its linearisation f_0 + J (θ - θ_0), whose residual
r_t = f_t(X) - y obeys, with H = Θ_0 / N = J Jᵀ / N = U diag(λ) Uᵀ and c = Uᵀ r, per eigen-direction:

- gradient descent (step η):        c_{t+1} = (1 - η λ) c_t                  → rate 1 - η λ_min,
- heavy ball (Polyak 1964):         c_{t+1} = (1 + β - η λ) c_t - β c_{t-1},
  with the optimal η = 4 / (√L + √μ)², β = ((√κ - 1)/(√κ + 1))², κ = L/μ  → rate (√κ-1)/(√κ+1),
  where [μ, L] = [λ_min / (1 + margin), λ_max (1 + margin)]. margin = 0 is Polyak's exact optimum,
  but there the extreme modes sit on a double root (c_t ∝ t ρ^t), which O(1/√m) kernel drift
  splits, changing the prediction like √drift: at width 65536 we measured a 30x gap after 20
  iterations. A small margin (default 0.1) keeps every mode strictly oscillating,
  with modulus √β, at a small cost in rate.
- Nesterov (1983) with β_k = k/(k+3): c_{t+1} = (1 - η λ)(c_t + β_t (c_t - c_{t-1})), η = 1/λ_max,
  whose worst-case guarantee on convex losses is sublinear, E_t = O(1/t²); with a positive-definite
  NTK every direction still decays geometrically, c_t ~ t^(-3/2) (1 - ηλ)^(t/2), so the bound is
  loose. The verdict fits both models and reports which one the curve supports.

The predicted training error E_t = Σ_i c_i(t)² / (2N) is exact for the linearised model; the study
runs the same three optimizers on the network itself and compares: curves, fitted per-iteration
rates of the residual (log-linear fit on the second half of the run for GD and heavy ball,
log-log exponent of the loss for Nesterov), and the relative error |E_meas / E_pred - 1|. The
claims and their statistics over seeds are in :mod:`symlab.experiments.ntk_optimizers_verdict`.
Cost per job: one N x N NTK and its eigen-decomposition, plus T forward/backward passes O(N m d).
The recurrences live in :mod:`symlab.ntk.linear_dynamics`, the training runs in :mod:`symlab.train`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint

from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.figures import save_figure
from symlab.engine.verdict import Claim, as_records, render
from symlab.experiments.ntk_optimizers_verdict import (
    compare_decay_models,
    decay_window,
    nesterov_claim,
    rate_claim,
)
from symlab.ntk.linear_dynamics import linearized_training_error, optimizer_hyperparameters
from symlab.train import gradient_descent, heavy_ball, nesterov, sample_mse_loss
from symlab.train.momentum import NESTEROV_SCHEDULE

OptimizerName = Literal["gd", "heavy_ball", "nesterov"]
OPTIMIZERS: tuple[str, ...] = ("gd", "heavy_ball", "nesterov")
# curves are compared while the predicted error is above this fraction of E_0 (8 decades)
COMPARE_FLOOR = 1e-8


class NTKOptimizersSpec(BaseModel):
    """Wide two-layer ReLU net (NTK parameterisation), MSE on the sphere, three optimizers."""

    model_config = ConfigDict(extra="forbid")

    optimizers: list[OptimizerName] = Field(
        list(OPTIMIZERS), min_length=1, description="optimizers to run: gd, heavy_ball, nesterov"
    )
    width: conint(ge=1) = Field(4096, description="hidden width m of the two-layer network")
    dim: conint(ge=2) = Field(8, description="input dimension d (inputs on the unit sphere)")
    n_train: conint(ge=2) = Field(32, description="training points N")
    iterations: conint(ge=2) = Field(300, description="full-batch iterations T")
    seeds: conint(ge=1) = Field(2, description="seeds 0..seeds-1 (data and initialisation)")
    hb_margin: confloat(ge=0) = Field(
        0.1, description="heavy ball: widen [λ_min, λ_max] by this factor before Polyak's optimum"
    )
    tolerance: confloat(gt=0) = Field(
        0.05, description="band of the relative rate difference (network vs NTK) of the verdict"
    )


def expand(spec: NTKOptimizersSpec) -> list[dict[str, Any]]:
    """One job per (optimizer, seed)."""
    shared = spec.model_dump(exclude={"optimizers", "seeds", "tolerance"})
    return [
        {"optimizer": name, "seed": seed, **shared}
        for name in spec.optimizers
        for seed in range(spec.seeds)
    ]


def half_mean_squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The study's loss L(θ) = ‖f_θ(X) − y‖² / (2N) (gradient J^T r / N, so H = Θ_0 / N): half of
    :func:`symlab.train.sample_mse_loss` (the halving is exact in floating point)."""
    return 0.5 * sample_mse_loss(output, target)


def train_network(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: str,
    eta: float,
    beta: float,
    steps: int,
) -> np.ndarray:
    """Run the optimizer on the network's MSE with :mod:`symlab.train` and return
    E_t = ‖f_t(X) − y‖² / (2N), t = 0..steps (NaN after a divergence). Modifies ``model``.

    GD: θ ← θ − η ∇L(θ); heavy ball: θ_{t+1} = θ_t − η ∇L(θ_t) + β (θ_t − θ_{t−1}); Nesterov:
    φ = θ_t + t/(t+3) (θ_t − θ_{t−1}), θ_{t+1} = φ − η ∇L(φ). E_t is recorded at θ_t."""
    options = {"lr": eta, "steps": steps, "loss": half_mean_squared_error, "record_every": 1}
    options["record_grad_norm"] = False  # E_t only: Nesterov's records are then forward passes
    if optimizer == "gd":
        trajectory = gradient_descent(model, (x, y), **options)
    elif optimizer == "heavy_ball":
        trajectory = heavy_ball(model, (x, y), momentum=beta, **options)
    else:
        trajectory = nesterov(model, (x, y), momentum=NESTEROV_SCHEDULE, **options)
    errors = np.full(steps + 1, np.nan)
    errors[: len(trajectory.losses)] = trajectory.losses
    return errors


def fitted_rate(errors: np.ndarray, optimizer: str, end: int | None = None) -> float:
    """Fitted decay of E_t on the second half of the iterations [0, end] (default: all).

    GD and heavy ball: the per-iteration residual factor exp(slope / 2) of a least-squares fit of
    log E_t on t. Nesterov: the exponent p of E_t ~ t^p from a fit of log E_t on log t.
    """
    end = len(errors) - 1 if end is None else int(end)
    t = np.arange(len(errors), dtype=float)
    keep = (t >= max(end // 2, 1)) & (t <= end) & (errors > 0)
    if keep.sum() < 2:
        return float("nan")
    if optimizer == "nesterov":
        return float(np.polyfit(np.log(t[keep]), np.log(errors[keep]), 1)[0])
    return float(math.exp(np.polyfit(t[keep], np.log(errors[keep]), 1)[0] / 2))


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """One optimizer on one seed: measured and NTK-predicted training error over the iterations."""
    from symlab.ntk import empirical_ntk, kernel_distance
    from symlab.ntk.data import sphere_regression_task
    from symlab.ntk.models import TwoLayerNTK

    seed, steps = int(params["seed"]), int(params["iterations"])
    x, y = sphere_regression_task(params["n_train"], params["dim"], seed=seed)
    model = TwoLayerNTK(params["dim"], params["width"], seed=1000 + seed)
    n = len(y)
    theta0 = empirical_ntk(model, x)[:, :, 0, 0].detach()
    lam, u = torch.linalg.eigh(theta0 / n)
    lam_min, lam_max = float(lam[0]), float(lam[-1])
    if lam_min <= 0:
        raise ValueError("n_train: expected a positive-definite NTK on the training set")
    optimizer = params["optimizer"]
    eta, beta = optimizer_hyperparameters(optimizer, lam_min, lam_max, params["hb_margin"])
    with torch.no_grad():
        c0 = u.T @ (model(x) - y)[:, 0]
    schedule = NESTEROV_SCHEDULE if optimizer == "nesterov" else beta
    predicted = linearized_training_error(optimizer, lam, c0, eta, schedule, steps)
    measured = train_network(model, x, y, params["optimizer"], eta, beta, steps)
    theta_t = empirical_ntk(model, x)[:, :, 0, 0].detach()

    kappa = lam_max / lam_min
    if params["optimizer"] == "gd":
        theory = 1 - eta * lam_min
    elif params["optimizer"] == "heavy_ball":
        theory = math.sqrt(beta)  # = (√κ' - 1)/(√κ' + 1) for the widened interval
    else:
        theory = -2.0  # worst-case O(1/t²) loss bound of Nesterov's schedule
    # compare over the iterations before the prediction first drops below COMPARE_FLOOR * E_0
    below = np.flatnonzero(predicted < COMPARE_FLOOR * predicted[0])
    end = int(below[0]) - 1 if len(below) else steps
    rel = np.abs(measured[: end + 1] / predicted[: end + 1] - 1)
    rate_meas = fitted_rate(measured, params["optimizer"], end)
    rate_pred = fitted_rate(predicted, params["optimizer"], end)
    return {
        "measured": measured.tolist(),
        "predicted": predicted.tolist(),
        "eta": eta,
        "beta": beta,
        "lambda_min": lam_min,
        "lambda_max": lam_max,
        "kappa": kappa,
        "rate_measured": rate_meas,
        "rate_predicted": rate_pred,
        "rate_theory": theory,
        "rate_rel_diff": abs(rate_meas - rate_pred) / abs(rate_pred),
        "rate_theory_rel_diff": abs(rate_meas - theory) / abs(theory),
        "error_rel_median": float(np.median(rel)),
        "error_rel_max": float(np.max(rel)),
        "compare_end": end,
        "error_final": float(measured[-1]),
        "error_reduction": float(measured[-1] / measured[0]),
        "kernel_distance": float(kernel_distance(theta0, theta_t)),
    }


def summarize(rows: pd.DataFrame, spec: NTKOptimizersSpec) -> Summary:
    """Median over seeds of fitted vs predicted rates and of the curve errors, per optimizer."""
    cols = [
        "kappa",
        "eta",
        "beta",
        "rate_measured",
        "rate_predicted",
        "rate_theory",
        "rate_rel_diff",
        "rate_theory_rel_diff",
        "error_rel_median",
        "error_rel_max",
        "compare_end",
        "error_reduction",
        "kernel_distance",
    ]
    table = rows.groupby("optimizer")[cols].median().reset_index()
    table.insert(1, "n_seeds", rows.groupby("optimizer").size().values)
    claims = optimizer_claims(rows, spec.tolerance)
    kernel_move = float(rows["kernel_distance"].max())
    preamble = (
        f"Width-{spec.width} two-layer ReLU net (NTK parameterisation), N = {spec.n_train} points "
        f"on S^{spec.dim - 1}, {spec.iterations} full-batch iterations, {spec.seeds} seed(s); "
        f"condition number κ of Θ_0/N ≈ {float(rows['kappa'].median()):.3g}; the NTK moved by at "
        f"most {kernel_move:.2g} in kernel distance. Rates are least-squares fits on the second "
        f"half of the iterations compared (until the prediction falls below "
        f"{COMPARE_FLOOR:g} E_0): GD and heavy ball log E on t, per seed; the fitted NTK "
        "prediction is the fair comparison, the textbook value being only asymptotic."
    )
    extras = {"max_kernel_distance": kernel_move, "claims": as_records(claims)}
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


def optimizer_claims(rows: pd.DataFrame, tolerance: float) -> list[Claim]:
    """One claim per optimizer present (see :mod:`symlab.experiments.ntk_optimizers_verdict`)."""
    claims = []
    for name in OPTIMIZERS:
        part = rows[rows["optimizer"] == name].sort_values("seed")
        if not len(part):
            continue
        if name == "nesterov":
            fits = []
            for rec in part.itertuples():
                try:
                    fits.append(compare_decay_models(rec.measured, *decay_window(rec.compare_end)))
                except ValueError:  # too few compared iterations for the late window
                    continue
            theory = float(np.median(1 - part["eta"] * part["lambda_min"]))
            claims.append(nesterov_claim(fits, theory))
        else:
            claims.append(
                rate_claim(
                    name,
                    part["rate_measured"],
                    part["rate_predicted"],
                    tolerance,
                    part["error_rel_median"],
                )  # fmt: skip
            )
    return claims


def plot(rows: pd.DataFrame, spec: NTKOptimizersSpec, out_dir: Path) -> list[Path]:
    """Training error vs iteration, measured (solid) and NTK-predicted (dashed), and their gap.

    Left and middle: the first seed on a semi-log and a log-log axis, with the level where the
    comparison stops (the prediction below ``COMPARE_FLOOR`` E_0) and the float64 round-off floor
    (1e-28 E_0, below which the prediction is not drawn). Right: |E_meas / E_pred - 1| over the
    compared iterations t >= 1 for every seed. One legend for all.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = {"gd": "tab:blue", "heavy_ball": "tab:orange", "nesterov": "tab:green"}
    names = {
        "gd": "GD",
        "heavy_ball": "heavy ball",
        "nesterov": r"Nesterov, $\beta_k = k/(k+3)$",
    }
    roundoff = 1e-28  # relative to E_0: below this a float64 prediction is round-off
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), constrained_layout=True)
    first_seed = rows["seed"].min()
    rank = rows["optimizer"].map({name: i for i, name in enumerate(OPTIMIZERS)})
    ordered = rows.assign(rank=rank).sort_values(["seed", "rank"])
    floor = rf"$10^{{{round(math.log10(COMPARE_FLOOR))}}}\,E_0$"
    for rec in ordered.itertuples():  # every seed; the first one bold, the others faint
        t = np.arange(len(rec.measured))
        predicted = np.asarray(rec.predicted, dtype=float)
        predicted[predicted < roundoff * predicted[0]] = np.nan
        first = rec.seed == first_seed
        for ax, x in ((axes[0], t), (axes[1], t + 1)):
            ax.plot(x, rec.measured, "-", color=colors[rec.optimizer], lw=2.2 if first else 1,
                    alpha=1.0 if first else 0.4)  # fmt: skip
            if first:
                ax.plot(x, predicted, "--", color="black", lw=1, alpha=0.85)
    e0 = float(np.median([r[0] for r in rows.loc[rows["seed"] == first_seed, "predicted"]]))
    for ax in axes[:2]:
        ax.set_yscale("log")
        ax.axhline(COMPARE_FLOOR * e0, color="gray", ls=":", lw=1.2)
        ax.axhspan(ax.get_ylim()[0], roundoff * e0, color="gray", alpha=0.15, lw=0)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel(r"training error $E_t = \|f_t(X) - y\|^2 / (2N)$")
    axes[0].set_xlabel(r"iteration $t$")
    axes[1].set_xlabel(r"iteration $t + 1$")
    axes[1].set_xscale("log")
    axes[0].set_title(f"semi-log: a straight line is geometric decay\n(bold: seed {first_seed})",
                      fontsize=10)  # fmt: skip
    axes[1].set_title(f"log-log: a straight line is a power law\n(bold: seed {first_seed})",
                      fontsize=10)  # fmt: skip

    ax = axes[2]
    for rec in ordered.itertuples():
        end = int(rec.compare_end) + 1
        measured = np.asarray(rec.measured, dtype=float)[:end]
        predicted = np.asarray(rec.predicted, dtype=float)[:end]
        alpha = 1.0 if rec.seed == first_seed else 0.5
        lw = 1.6 if rec.seed == first_seed else 0.9
        gap = np.abs(measured / predicted - 1)  # t = 0: same start, the gap is round-off
        ax.plot(np.arange(1, end), gap[1:], "-", color=colors[rec.optimizer], lw=lw, alpha=alpha)
    ax.set_yscale("log")
    ax.set_xlabel(rf"iteration $t$ (until the prediction falls below {floor})")
    ax.set_ylabel(r"relative gap $|E_t^{\mathrm{net}} / E_t^{\mathrm{NTK}} - 1|$")
    seeds = rows["seed"].nunique()
    ax.set_title(f"network vs NTK prediction, all {seeds} seeds", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)

    handles = [
        Line2D([], [], color=colors[name], lw=2.2, label=f"{names[name]} (network)")
        for name in OPTIMIZERS
        if name in set(rows["optimizer"])
    ] + [
        Line2D([], [], color="black", ls="--", lw=1,
               label=f"NTK prediction\n(linearised model, seed {first_seed})"),
        Line2D([], [], color="gray", ls=":", lw=1.2,
               label=f"end of comparison ({floor})"),
        Patch(color="gray", alpha=0.15, lw=0, label="float64 round-off\n(prediction not drawn)"),
    ]  # fmt: skip
    if seeds > 1:
        handles.append(Line2D([], [], color="gray", lw=0.9, alpha=0.5, label="other seeds"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(
        f"Optimizers in the kernel regime: width-{spec.width} two-layer ReLU net, "
        f"$N$ = {spec.n_train} points on $S^{{{spec.dim - 1}}}$, full batch"
    )
    return save_figure(fig, out_dir, "ntk_optimizers_error")


EXPERIMENT = register(
    Experiment(
        name="ntk-optimizers",
        description=(
            "GD, heavy ball and Nesterov on a wide two-layer ReLU net (MSE): measured training "
            "error vs the rates predicted by the eigen-decomposition of the initial NTK."
        ),
        spec_model=NTKOptimizersSpec,
        version="2",  # 2: trained by symlab.train (records through its loop)
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
