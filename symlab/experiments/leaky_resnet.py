"""Study ``leaky-resnet``: bottleneck structure and adaptive layer steps in Leaky ResNets.

Jacot & Kaiser (2024), "Hamiltonian mechanics of feature learning: bottleneck structure in Leaky
ResNets" (arXiv 2405.17573), App. B, Fig. 1: Leaky ResNets (:mod:`symlab.nets.leaky_resnet`)
α_ℓ = (1 − ρ_ℓ L̃) α_{ℓ−1} + ρ_ℓ W_ℓ σ(α_{ℓ−1}) of width w with fixed random linear maps in and out,
trained on (1/N) Σ ‖f*(x_i) − f(x_i)‖² + (λ/(2L̃)) Σ_ℓ ρ_ℓ ‖W_ℓ‖² with a teacher f* = g_2 ∘ g_1 of
random shallow ReLU nets 30 → 3 → 30 (bottleneck rank k* = 3,
:func:`symlab.bias.tasks.composite_teacher_task`), for a sweep of effective depths L̃ and three step
rules: equidistant ρ_ℓ = 1/L, irregular (finer near the ends) and adaptive (the paper's rule
ρ_ℓ ∝ c_ℓ⁻¹, re-applied every ``adapt_every`` steps by a training callback). The paper's sizes:
L = 20, width 100, N = 1000 / 1000, Adam for ~5000 epochs then ~1000 epochs of SGD at a smaller
learning rate; here both phases are full-batch Adam through ``symlab.train.train`` (the second at
lr · ``refine_factor``), a documented deviation; Adam's learning rate on the W_ℓ is lr · max(L̃, 1),
since the optimal weights W_p = L̃ B_p σ(A_p)ᵀ scale with L̃; λ is a spec field (the paper's value is
ambiguous, "λ/L̃ = 0.001"), in units of a unit mean squared target norm.

Measured per network on the training inputs: the singular values of each W_ℓ and of each centered
representation A_ℓ = α_ℓ(X) (:func:`symlab.bias.layer_spectra`), the rank profile under the rule
of :func:`symlab.bias.bottleneck_profile` (#{s_i > 10⁻² s_max}; 10⁻³ and 10⁻¹ beside it), the
bottleneck dimension (the least rank over the hidden representations A_1 … A_{L−1}), the cost of
identity COI_γ(A_ℓ) with γ = ``gamma0`` ‖σ(A_ℓ)‖²_op and its nuclear-ratio proxy, the Hamiltonian
rank estimate −(2/L̃) H(A_ℓ, B_ℓ) with the backward variables B_ℓ = −(1/λ) ∂C/∂α_ℓ (its median
over ℓ, and its spread across layers as a check of the constancy the theory predicts at an exact
critical point), the steps ρ_ℓ, and the train and test errors. Claims (:func:`summarize`):

1. "the bottleneck dimension is k*", at the effective depths ≥ ``claim_min_effective_depth``: the
   median (over seeds and step rules) of the bottleneck dimension equals k*;
2. "adaptive steps do not hurt the test error": paired by (seed, L̃), the differences
   d = log(test error, adaptive) − log(test error, equidistant) have a 95% t interval whose upper
   end is below log(1 + ``margin``) (non-inferior: reproduced), a lower end above it (worse:
   not reproduced), or neither (inconclusive); the Wilcoxon p-value and the paper's stronger
   "small consistent gain" (upper end < 0) are reported beside it, and irregular steps the same way;
3. "−(2/L̃) H ≈ k* (from below), min_p COI from above", at the same effective depths: the median
   over layers of the Hamiltonian estimate, median over networks, within ``hamiltonian_tolerance``
   of k* (reproduced) or not; min_p COI_γ and the spread of the estimate across layers are
   reported (the estimate is exact only at a critical point of the continuous problem).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint, model_validator

from symlab.bias import (
    PROFILE_RTOL,
    backward_variables,
    cost_of_identity,
    cost_of_identity_bound,
    hamiltonian,
    layer_spectra,
    numerical_rank,
    rank_estimate,
)
from symlab.bias.tasks import composite_teacher_task
from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.verdict import Claim, render
from symlab.experiments.leaky_resnet_plots import plot
from symlab.nets.leaky_resnet import STEP_CAP, AdaptiveSteps, LeakyResNet
from symlab.stats import paired_comparison
from symlab.train import adam, sample_mse_loss

StepRule = Literal["equidistant", "irregular", "adaptive"]
KEEP_SINGULAR_VALUES = 12


class LeakyResNetSpec(BaseModel):
    """Effective depths × step rules × seeds of Leaky ResNets on a 30 → k* → 30 teacher."""

    model_config = ConfigDict(extra="forbid")

    effective_depths: list[confloat(gt=0)] = Field(
        [2.0, 6.0], min_length=1, description="effective depths L̃ (each < 0.9 L)"
    )
    step_rules: list[StepRule] = Field(
        ["equidistant", "irregular", "adaptive"], min_length=1,
        description="step rules: equidistant, irregular, adaptive",
    )  # fmt: skip
    depth: conint(ge=2) = Field(12, description="number of layers L")
    width: conint(ge=1) = Field(32, description="width w of the residual stream")
    learn_maps: bool = Field(False, description="learn the in/out linear maps (else fixed)")
    n_train: conint(ge=2) = Field(200, description="training points N")
    n_test: conint(ge=2) = Field(200, description="test points")
    d_in: conint(ge=1) = Field(30, description="input and output dimension of the teacher")
    rank: conint(ge=1) = Field(3, description="teacher bottleneck rank k*")
    teacher_hidden: conint(ge=1) = Field(100, description="hidden width of g_1 and g_2")
    lam: confloat(gt=0) = Field(1.5e-2, description="λ in (λ/(2L̃)) Σ ρ_ℓ ‖W_ℓ‖²")
    irregularity: confloat(ge=0, lt=1) = Field(0.5, description="a of the irregular rule")
    adapt_every: conint(ge=1) = Field(50, description="training steps between adaptive updates")
    lr: confloat(gt=0) = Field(1e-3, description="Adam learning rate of the first phase")
    steps: conint(ge=1) = Field(1500, description="Adam steps of the first phase")
    refine_factor: confloat(gt=0, le=1) = Field(0.1, description="second-phase lr / lr")
    refine_steps: conint(ge=0) = Field(500, description="Adam steps of the second phase")
    gamma0: confloat(gt=0) = Field(1e-3, description="COI ridge γ = gamma0 ‖σ(A)‖²_op")
    seeds: conint(ge=2) = Field(3, description="seeds 0..seeds-1 (teacher, data and init)")
    claim_min_effective_depth: confloat(gt=0) = Field(
        5.0, description="the bottleneck claim uses the effective depths >= this"
    )
    margin: confloat(gt=0) = Field(
        0.05, description="non-inferiority margin: relative test-error increase tolerated"
    )
    hamiltonian_tolerance: confloat(gt=0) = Field(
        0.5, description="Hamiltonian claim: |−(2/L̃)H − k*| at most this"
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="training precision")

    @model_validator(mode="after")
    def _feasible(self) -> LeakyResNetSpec:
        worst = max(self.effective_depths) / self.depth
        if worst >= STEP_CAP:
            raise ValueError(
                f"effective_depths: expected every L̃ below {STEP_CAP} · depth = "
                f"{STEP_CAP * self.depth:g} (so that ρ_ℓ L̃ < 1), got {max(self.effective_depths):g}"
            )
        return self


def expand(spec: LeakyResNetSpec) -> list[dict[str, Any]]:
    """One job per (L̃, step rule, seed)."""
    shared = spec.model_dump(
        exclude={
            "effective_depths",
            "step_rules",
            "seeds",
            "claim_min_effective_depth",
            "margin",
            "hamiltonian_tolerance",
        }  # fmt: skip
    )
    return [
        {"effective_depth": lt, "step_rule": rule, "seed": seed, **shared}
        for lt in spec.effective_depths
        for rule in spec.step_rules
        for seed in range(spec.seeds)
    ]


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Train one Leaky ResNet and measure its spectra, COI, Hamiltonian and errors."""
    start = time.perf_counter()
    seed, lam, rule = int(params["seed"]), float(params["lam"]), params["step_rule"]
    depth_tilde, dtype = float(params["effective_depth"]), getattr(torch, params["dtype"])
    task = composite_teacher_task(
        params["n_train"], params["n_test"], seed, d_in=params["d_in"], rank=params["rank"],
        d_out=params["d_in"], hidden=params["teacher_hidden"],
    )  # fmt: skip
    net = LeakyResNet(
        params["d_in"], params["width"], params["d_in"], params["depth"], depth_tilde,
        steps="equidistant" if rule == "adaptive" else rule, irregularity=params["irregularity"],
        learn_maps=params["learn_maps"], seed=1000 + seed, dtype=dtype,
    )  # fmt: skip
    x, y = task.x_train.to(dtype), task.y_train.to(dtype)
    adaptive = AdaptiveSteps(x) if rule == "adaptive" else None
    options: dict[str, Any] = {"loss": sample_mse_loss, "penalty": lambda m: m.regularization(lam)}
    if adaptive is not None:
        options.update(callback=adaptive, callback_every=params["adapt_every"])
    options["record_every"] = max(params["steps"] // 50, 1)

    def phase(lr: float, steps: int):  # W_p = L̃ B_p σ(A_p)ᵀ scales with L̃, so does its step
        groups = [{"params": ["layers"], "lr": lr * max(depth_tilde, 1.0)}]
        return adam(net, (x, y), lr=lr, steps=steps, param_groups=groups, **options)

    runs = [phase(params["lr"], params["steps"])]
    if params["refine_steps"] > 0 and not runs[0].diverged:
        if adaptive is not None:
            adaptive.offset = runs[0].n_steps
        runs.append(phase(params["lr"] * params["refine_factor"], params["refine_steps"]))
    diverged = any(r.diverged for r in runs)
    loss_curve, offset = [], 0
    for run in runs:
        loss_curve += [[offset + s, v] for s, v in zip(run.steps, run.losses)][1 if offset else 0 :]
        offset += run.n_steps

    with torch.no_grad():
        train_error = float(sample_mse_loss(net(x), y))
        test_error = float(sample_mse_loss(net(task.x_test.to(dtype)), task.y_test.to(dtype)))
    spectra = [s for s in layer_spectra(net, x) if s.name.startswith("layers.")]
    profiles = {
        name: [numerical_rank(s.centered, rtol=rtol) for s in spectra]
        for name, rtol in (
            ("rank_profile", PROFILE_RTOL),
            ("rank_profile_low", PROFILE_RTOL / 10),
            ("rank_profile_high", PROFILE_RTOL * 10),
        )
    }
    hidden = slice(0, len(spectra) - 1)  # A_1 … A_{L−1}: the output layer A_L is fitted to f*
    result: dict[str, Any] = {
        "train_error": train_error,
        "test_error": test_error,
        "objective": float(runs[-1].final_loss),
        "diverged": diverged,
        **profiles,
        **{
            name.replace("rank_profile", "bottleneck_dim"): int(min(profile[hidden]))
            for name, profile in profiles.items()
        },
        "representation_sv": [s.centered[:KEEP_SINGULAR_VALUES].tolist() for s in spectra],
        "weight_sv": [s.weight[:KEEP_SINGULAR_VALUES].tolist() for s in spectra],
        "steps_final": net.steps.tolist(),
        "steps_history": [] if adaptive is None else [rho for _, rho in adaptive.history],
        "steps_history_at": [] if adaptive is None else [s for s, _ in adaptive.history],
        "loss_curve": loss_curve,
        "grad_norm": float(runs[-1].final_grad_norm),
    }
    if diverged:
        return {**result, "seconds": time.perf_counter() - start}
    net64 = net.double()
    a, b = backward_variables(net64, task.x_train, task.y_train, lam, sample_mse_loss)
    estimates = [
        rank_estimate(hamiltonian(ai, bi, depth_tilde), depth_tilde) for ai, bi in zip(a, b)
    ]
    coi = [cost_of_identity(ai, params["gamma0"]) for ai in a]
    median = float(np.median(estimates))
    return {
        **result,
        "hamiltonian_rank": estimates,
        "hamiltonian_rank_median": median,
        "hamiltonian_spread": float((max(estimates) - min(estimates)) / max(abs(median), 1e-12)),
        "coi": coi,
        "coi_min": float(min(coi[1:-1] or coi)),
        "nuclear_ratio": [cost_of_identity_bound(ai) for ai in a],
        "seconds": time.perf_counter() - start,
    }


def _dimension_claim(rows: pd.DataFrame, spec: LeakyResNetSpec) -> Claim:
    claim = f"the bottleneck dimension is k* = {spec.rank}"
    deep = rows[rows["effective_depth"] >= spec.claim_min_effective_depth]
    statistic = (
        f"least rank over A_1..A_(L−1), median over seeds and step rules, L̃ >= "
        f"{spec.claim_min_effective_depth:g}"
    )
    if deep.empty:
        return Claim(
            "bottleneck_dimension", claim, "no finite run at these L̃", statistic, "inconclusive"
        )
    parts = []
    for lt, group in deep.groupby("effective_depth"):
        parts.append(
            f"L̃ = {lt:g}: {group['bottleneck_dim'].median():g} (thresholds 10⁻³ / 10⁻¹: "
            f"{group['bottleneck_dim_low'].median():g} / {group['bottleneck_dim_high'].median():g}; "
            f"Hamiltonian estimate {group['hamiltonian_rank_median'].median():.2f}, min COI "
            f"{group['coi_min'].median():.2f})"
        )
    per_depth = deep.groupby("effective_depth")["bottleneck_dim"].median()
    hits = int((deep["bottleneck_dim"] == spec.rank).sum())
    measurement = f"{'; '.join(parts)}; {hits} of {len(deep)} networks exactly k*"
    outcome = "reproduced" if bool((per_depth == spec.rank).all()) else "not reproduced"
    return Claim("bottleneck_dimension", claim, measurement, statistic, outcome)


def _hamiltonian_claim(rows: pd.DataFrame, spec: LeakyResNetSpec) -> Claim:
    claim = f"the Hamiltonian estimate −(2/L̃)H approaches k* = {spec.rank} from below, min_p COI from above"
    deep = rows[rows["effective_depth"] >= spec.claim_min_effective_depth]
    statistic = (
        f"median over layers of −(2/L̃)H(A_ℓ, B_ℓ), median over networks with L̃ >= "
        f"{spec.claim_min_effective_depth:g}; reproduced within ±{spec.hamiltonian_tolerance:g}"
    )
    if deep.empty:
        return Claim("hamiltonian", claim, "no finite run at these L̃", statistic, "inconclusive")
    estimate, coi = deep["hamiltonian_rank_median"].median(), deep["coi_min"].median()
    measurement = (
        f"estimate {estimate:.2f} (networks from {deep['hamiltonian_rank_median'].min():.2f} to "
        f"{deep['hamiltonian_rank_median'].max():.2f}; across layers it varies by a median "
        f"{deep['hamiltonian_spread'].median():.0%} of its value), min_p COI_γ {coi:.2f} "
        f"(γ₀ = {spec.gamma0:g})"
    )
    close = abs(estimate - spec.rank) <= spec.hamiltonian_tolerance
    return Claim(
        "hamiltonian", claim, measurement, statistic, "reproduced" if close else "not reproduced"
    )


def _steps_claim(rows: pd.DataFrame, spec: LeakyResNetSpec, rule: str) -> Claim | None:
    pivot = rows.pivot_table(
        index=["effective_depth", "seed"], columns="step_rule", values="test_error"
    ).dropna()
    claim = f"{rule} steps do not hurt the test error (vs equidistant)"
    statistic = (
        f"paired by (seed, L̃): d = log(test error {rule}) − log(equidistant), Student-t 95% "
        f"interval vs the margin log(1 + {spec.margin:g}); Wilcoxon signed-rank"
    )
    if rule not in pivot or "equidistant" not in pivot or len(pivot) < 2:
        return None
    comparison = paired_comparison(np.log(pivot["equidistant"]), np.log(pivot[rule]))
    bound = math.log1p(spec.margin)
    outcome = (
        "reproduced" if comparison.high < bound
        else "not reproduced" if comparison.low > bound
        else "inconclusive"
    )  # fmt: skip
    gain = (
        "a significant gain (as the paper's small consistent gain)" if comparison.high < 0
        else "significantly worse" if comparison.low > 0 else "no significant difference"
    )  # fmt: skip
    measurement = (
        f"mean relative change {math.expm1(comparison.mean):+.1%}, 95% "
        f"[{math.expm1(comparison.low):+.1%}, {math.expm1(comparison.high):+.1%}] over "
        f"{comparison.n} pairs, Wilcoxon p = {comparison.wilcoxon_p:.2g}: {gain}"
    )
    return Claim(f"{rule}_steps", claim, measurement, statistic, outcome)


def summarize(rows: pd.DataFrame, spec: LeakyResNetSpec) -> Summary:
    """Per (L̃, step rule) table; the claims of the module docstring."""
    finite = rows[~rows["diverged"].astype(bool)]
    cols = [
        "bottleneck_dim", "bottleneck_dim_low", "bottleneck_dim_high", "hamiltonian_rank_median",
        "hamiltonian_spread", "coi_min", "train_error", "test_error", "grad_norm", "seconds",
    ]  # fmt: skip
    table = finite.groupby(["effective_depth", "step_rule"])[cols].median().reset_index()
    table.insert(2, "networks", finite.groupby(["effective_depth", "step_rule"]).size().values)
    claims = [_dimension_claim(finite, spec)]
    claims += [c for rule in ("adaptive", "irregular") if (c := _steps_claim(finite, spec, rule))]
    claims.append(_hamiltonian_claim(finite, spec))
    preamble = (
        f"Leaky ResNets (L = {spec.depth}, width {spec.width}, {'learned' if spec.learn_maps else 'fixed'} "
        f"in/out maps, λ = {spec.lam:g}) on a teacher {spec.d_in} → {spec.rank} → {spec.d_in} "
        f"(k* = {spec.rank}), N = {spec.n_train}, L̃ in {spec.effective_depths}, rules "
        f"{spec.step_rules}, {spec.seeds} seeds; {len(rows) - len(finite)} diverged run(s) left "
        f"out. Median train / test error {finite['train_error'].median():.3g} / "
        f"{finite['test_error'].median():.3g} (targets of unit mean squared norm)."
    )
    return Summary(
        table=table,
        verdict=render(claims, preamble),
        extras={"claims": [c.as_dict() for c in claims]},
    )


EXPERIMENT = register(
    Experiment(
        name="leaky-resnet",
        description=(
            "Leaky ResNets on a 30 → 3 → 30 teacher: representation spectra along depth, "
            "bottleneck dimension vs k*, COI and Hamiltonian rank estimates, adaptive layer steps."
        ),
        spec_model=LeakyResNetSpec,
        version="1",
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
