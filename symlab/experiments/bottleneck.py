"""Study ``bottleneck``: the bottleneck structure of deep ReLU networks trained with L2 regularization.

Jacot, "Implicit bias of large depth networks: a notion of rank for nonlinear functions"
(ICLR 2023, arXiv 2209.15055) and "Bottleneck structure in learned features: low-dimension vs
regularity tradeoff" (NeurIPS 2023, arXiv 2305.19008). The representation cost of a function f
under depth-L ReLU nets, R(f; L) = min {‖θ‖² : f_θ = f}, grows like R(f; L) = L R⁽⁰⁾(f) + R⁽¹⁾(f)
+ O(1/L), where R⁽⁰⁾ is (conjecturally everywhere, provably on a large set) the bottleneck rank
k of f (the least k with f = h ∘ g through R^k). For near-optimal parameters, almost all hidden
representations are k-dimensional and almost all W_ℓ have k singular values ≈ 1, the others
O(L^{-1/2}).

Task (:func:`symlab.bias.tasks.latent_bottleneck_task`, the paper's): z ~ N(0, I_8), x = g(z) ∈
R^20, y = h(z_1, z_2) ∈ R^20 with random shallow ReLU nets g, h, so k = 2; targets normalized to
(1/N) Σ‖y_i‖² = 1. Network: a ReLU MLP with widths (20, w, …, w, 20) and L weight matrices
(He init, zero biases, float32), objective (1/N) Σ_i ‖f_θ(x_i) − y_i‖² + λ‖θ‖² with λ on every
weight and bias. The paper's settings are L = 25, width 200, λ = 2e-4 with unknown optimizer, N
and loss normalization; here λ is in units of a unit mean squared target norm and is larger (the
presets say which) so that Adam reaches the regularized optimum within the CPU budget.

Training (``symlab.train.train``, full batch, both phases on the same objective): Adam at lr for
``steps`` steps, then Adam at lr · ``refine_factor`` for at most ``refine_steps`` steps, stopped
when the objective falls by less than ``plateau_rtol`` (relative) over ``plateau_window`` steps.
Convergence is reported, not assumed: the final gradient ∞-norm, the objective's relative
decrease over the last window, and the layer balance defect max_ℓ |‖W_ℓ‖² + ‖b_ℓ‖² − ‖W_{ℓ+1}‖²| /
mean_ℓ ‖W_ℓ‖² (zero at every critical point of an L2-regularized ReLU net: the rescaling
symmetry of each hidden neuron makes ‖incoming‖² = ‖outgoing‖² there).

Measured per network (:func:`symlab.bias.layer_spectra` on the training inputs): the singular
values of every W_ℓ and of every centered hidden representation (after the ReLU); the rank profile
under the rule of :func:`symlab.bias.bottleneck_profile` (#{s_i > 10⁻² s_max}, and at 10⁻³ and
10⁻¹ for its sensitivity); the middle rank (median over the middle half of the hidden layers,
L/4 ≤ ℓ ≤ 3L/4), the middle weights' s_k and s_{k+1}; ‖θ‖². Claims (:func:`summarize`):

1. "the middle-layer rank is k": the median middle rank of the deep networks (depth ≥
   ``fit_min_depth``) equals k at every such depth;
2. "‖θ‖² grows with slope R⁽⁰⁾ = k": the slope a of ‖θ‖² = a L + b_seed (least squares, one
   intercept per seed, depths ≥ ``fit_min_depth``) with its 95% t interval. R⁽⁰⁾ is a rank, an
   integer: the claim is reproduced when the interval meets [k − ``slope_tolerance``,
   k + ``slope_tolerance``] and excludes both neighbouring ranks k ± 1 (the slope singles out k),
   not reproduced when it misses [k − tol, k + tol], and inconclusive otherwise (too wide).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint, field_validator

from symlab.bias import PROFILE_RTOL, layer_spectra, numerical_rank
from symlab.bias.tasks import latent_bottleneck_task
from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.spec import distinct
from symlab.engine.verdict import Claim, render
from symlab.experiments.bottleneck_plots import plot
from symlab.nets import mlp
from symlab.stats import fit_slope, wilson_interval
from symlab.train import adam, sample_mse_loss

KEEP_SINGULAR_VALUES = 16  # per layer, in the rows (figures show the top ones)


class BottleneckSpec(BaseModel):
    """Depth sweep of L2-regularized deep ReLU MLPs on a task of bottleneck rank k."""

    model_config = ConfigDict(extra="forbid")

    depths: list[conint(ge=2)] = Field(
        [6, 8, 10, 12, 14], min_length=1, description="numbers L of weight matrices"
    )
    width: conint(ge=1) = Field(32, description="hidden width w")
    n_train: conint(ge=2) = Field(256, description="training points N")
    n_test: conint(ge=1) = Field(512, description="test points")
    latent: conint(ge=1) = Field(8, description="latent dimension m (z ~ N(0, I_m))")
    rank: conint(ge=1) = Field(2, description="bottleneck rank k: y = h(z_1..z_k)")
    d_in: conint(ge=1) = Field(20, description="input dimension of x = g(z)")
    d_out: conint(ge=1) = Field(20, description="output dimension of y")
    teacher_hidden: conint(ge=1) = Field(100, description="hidden width of g and h")
    lam: confloat(gt=0) = Field(7e-3, description="L2 regularization λ on all parameters")
    lr: confloat(gt=0) = Field(3e-3, description="Adam learning rate of the first phase")
    steps: conint(ge=1) = Field(2000, description="Adam steps of the first phase")
    refine_factor: confloat(gt=0, le=1) = Field(
        0.1, description="learning rate of the second phase, relative to lr"
    )
    refine_steps: conint(ge=1) = Field(3000, description="at most this many second-phase steps")
    plateau_window: conint(ge=1) = Field(500, description="steps of the plateau test")
    plateau_rtol: confloat(gt=0) = Field(
        1e-3, description="stop the second phase when the objective falls by less than this"
    )
    seeds: conint(ge=1) = Field(2, description="seeds 0..seeds-1 (task, data and init)")
    fit_min_depth: conint(ge=2) = Field(
        10, description="the claims use the depths >= this (the bottleneck needs depth)"
    )
    slope_tolerance: confloat(gt=0, lt=1) = Field(
        0.5, description="slope claim: the 95% interval must meet k ± this (and exclude k ± 1)"
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="training precision")

    @field_validator("depths")
    @classmethod
    def _distinct(cls, depths: list[int]) -> list[int]:
        return distinct(depths, "depths")


def expand(spec: BottleneckSpec) -> list[dict[str, Any]]:
    """One job per (depth, seed)."""
    shared = spec.model_dump(exclude={"depths", "seeds", "fit_min_depth", "slope_tolerance"})
    return [
        {"depth": depth, "seed": seed, **shared}
        for depth in spec.depths
        for seed in range(spec.seeds)
    ]


def middle_layers(count: int, depth: int) -> list[int]:
    """Positions i (0-based) of the middle half of ``count`` layers numbered ℓ = i + 1 in a
    depth-L net: L/4 ≤ ℓ ≤ 3L/4 (hidden representations: count = L − 1; weights: count = L)."""
    chosen = [i for i in range(count) if depth / 4 <= i + 1 <= 3 * depth / 4]
    return chosen or [count // 2]


def balance_defect(layers: list[torch.nn.Linear]) -> float:
    """max_ℓ |‖W_ℓ‖² + ‖b_ℓ‖² − ‖W_{ℓ+1}‖²| / mean_ℓ ‖W_ℓ‖² (0 at critical points, module doc)."""
    weights = [float(m.weight.detach().double().square().sum()) for m in layers]
    biases = [float(m.bias.detach().double().square().sum()) for m in layers]
    incoming = [w + b for w, b in zip(weights[:-1], biases[:-1])]
    outgoing = weights[1:]
    scale = float(np.mean(weights))
    return float(max(abs(i - o) for i, o in zip(incoming, outgoing)) / scale)


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Train one depth-L network to the regularized optimum and measure its spectra and norm."""
    start = time.perf_counter()
    depth, seed, k = int(params["depth"]), int(params["seed"]), int(params["rank"])
    dtype = getattr(torch, params["dtype"])
    task = latent_bottleneck_task(
        params["n_train"], params["n_test"], seed, latent=params["latent"], rank=k,
        d_in=params["d_in"], d_out=params["d_out"], hidden=params["teacher_hidden"],
    )  # fmt: skip
    widths = [params["d_in"]] + [params["width"]] * (depth - 1) + [params["d_out"]]
    net = mlp(widths, seed=1000 + seed, dtype=dtype)
    x, y = task.x_train.to(dtype), task.y_train.to(dtype)
    lam, window = params["lam"], params["plateau_window"]
    norms: list[tuple[int, float]] = []
    offset = [0]

    def track_norm(step: int, model: torch.nn.Module) -> None:
        total = sum(float(p.detach().double().square().sum()) for p in model.parameters())
        norms.append((offset[0] + step, total))

    every = max(window // 5, 1)
    options = {"weight_decay": lam, "loss": sample_mse_loss, "record_every": every}
    options.update(callback=track_norm, callback_every=every)
    first = adam(net, (x, y), lr=params["lr"], steps=params["steps"], **options)
    offset[0] = first.n_steps
    second = adam(
        net, (x, y), lr=params["lr"] * params["refine_factor"], steps=params["refine_steps"],
        plateau=(window, params["plateau_rtol"]), **options,
    )  # fmt: skip
    losses = first.losses + second.losses[1:]
    steps = first.steps + [first.n_steps + s for s in second.steps[1:]]
    recent = [loss for s, loss in zip(steps, losses) if s <= steps[-1] - window]
    last_drop = (recent[-1] - losses[-1]) / recent[-1] if recent else math.nan

    spectra = layer_spectra(net, x)
    linears = [s for s in spectra if s.weight is not None]
    hidden = [s for s in spectra if s.kind == "ReLU"]
    profile = {
        name: [numerical_rank(s.centered, rtol=rtol) for s in hidden]
        for name, rtol in (
            ("rank_profile", PROFILE_RTOL),
            ("rank_profile_low", PROFILE_RTOL / 10),
            ("rank_profile_high", PROFILE_RTOL * 10),
        )
    }
    middle = middle_layers(len(hidden), depth)
    middle_weights = middle_layers(len(linears), depth)
    s_k = [float(linears[i].weight[k - 1]) for i in middle_weights]
    s_k1 = [
        float(linears[i].weight[k]) if len(linears[i].weight) > k else 0.0 for i in middle_weights
    ]
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        train_error = float(sample_mse_loss(net(x), y))
        test_error = float(sample_mse_loss(net(task.x_test.to(dtype)), task.y_test.to(dtype)))
    norm_sq = sum(float(p.detach().double().square().sum()) for p in net.parameters())
    return {
        "param_norm_sq": norm_sq,
        "norm_per_layer": norm_sq / depth,
        "layer_norms_sq": [
            sum(float(p.detach().double().square().sum()) for p in m.parameters()) for m in layers
        ],
        "objective": float(losses[-1]),
        "train_error": train_error,
        "test_error": test_error,
        **profile,
        "middle_rank": float(np.median([profile["rank_profile"][i] for i in middle])),
        "middle_rank_low": float(np.median([profile["rank_profile_low"][i] for i in middle])),
        "middle_rank_high": float(np.median([profile["rank_profile_high"][i] for i in middle])),
        "weight_s_k": float(np.median(s_k)),
        "weight_s_k1": float(np.median(s_k1)),
        "weight_sv": [s.weight[:KEEP_SINGULAR_VALUES].tolist() for s in linears],
        "representation_sv": [s.centered[:KEEP_SINGULAR_VALUES].tolist() for s in hidden],
        "balance_defect": balance_defect(layers),
        "grad_norm": float(second.final_grad_norm),
        "last_window_drop": float(last_drop),
        "steps_total": int(steps[-1]),
        "stop_reason": second.stop_reason,
        "diverged": bool(first.diverged or second.diverged),
        "loss_curve": [[int(s), float(v)] for s, v in zip(steps, losses)],
        "norm_curve": [[int(s), float(v)] for s, v in norms],
        "seconds": time.perf_counter() - start,
    }


def _rank_claim(deep: pd.DataFrame, spec: BottleneckSpec) -> Claim:
    k = spec.rank
    per_depth = deep.groupby("depth")["middle_rank"].median()
    hits = int((deep["middle_rank"] == k).sum())
    low, high = wilson_interval(hits, len(deep))
    sensitivity = (
        f"at thresholds 10⁻³ / 10⁻¹ · s_max the medians are "
        f"{deep['middle_rank_low'].median():g} / {deep['middle_rank_high'].median():g}"
    )
    depths = ", ".join(f"L = {d}: {r:g}" for d, r in per_depth.items())
    s_k, s_k1 = deep["weight_s_k"].median(), deep["weight_s_k1"].median()
    outcome = "reproduced" if bool((per_depth == k).all()) else "not reproduced"
    return Claim(
        name="middle_rank",
        claim=f"the middle hidden representations have rank k = {k}",
        measured=(
            f"median middle-layer rank (#s_i > 10⁻² s_max, centered) per depth: {depths}; "
            f"{hits} of {len(deep)} networks exactly k (Wilson 95% [{low:.2f}, {high:.2f}]); "
            f"{sensitivity}; middle weights' s_k = {s_k:.3g}, s_(k+1) = {s_k1:.3g} (medians)"
        ),
        statistic=f"median over the middle half of the layers and over seeds, depths >= {spec.fit_min_depth}",
        outcome=outcome,
    )


def _slope_claim(deep: pd.DataFrame, spec: BottleneckSpec) -> tuple[Claim, dict[str, Any]]:
    k, tol = spec.rank, spec.slope_tolerance
    statistic = (
        f"least squares ‖θ‖² = a L + b_seed over {len(deep)} networks at depths "
        f"{sorted(int(d) for d in deep['depth'].unique())}, Student-t 95% interval; reproduced when it "
        f"meets k ± {tol:g} and excludes k ± 1"
    )
    if deep["depth"].nunique() < 2 or len(deep) < deep["seed"].nunique() + 2:
        return Claim("slope", f"‖θ‖² grows with depth with slope R⁽⁰⁾ = k = {k}",
                     "fewer than two depths to fit", statistic, "inconclusive"), {}  # fmt: skip
    fit = fit_slope(deep["depth"], deep["param_norm_sq"], deep["seed"])
    apart = fit.high < k - tol or fit.low > k + tol
    singles_out = k - 1 < fit.low and fit.high < k + 1
    outcome = "not reproduced" if apart else "reproduced" if singles_out else "inconclusive"
    measurement = (
        f"slope a = {fit.slope:.2f}, 95% [{fit.low:.2f}, {fit.high:.2f}] (nearest integer "
        f"{round(fit.slope)}), intercepts R⁽¹⁾ ≈ {np.median(list(fit.intercepts.values())):.1f}"
    )
    extras = {
        "slope": fit.slope,
        "slope_low": fit.low,
        "slope_high": fit.high,
        "intercepts": fit.intercepts,
    }
    return Claim("slope", f"‖θ‖² grows with depth with slope R⁽⁰⁾ = k = {k}", measurement,
                 statistic, outcome), extras  # fmt: skip


def summarize(rows: pd.DataFrame, spec: BottleneckSpec) -> Summary:
    """Per-depth table; claims on the depths >= ``fit_min_depth`` (module docstring)."""
    finite = rows[~rows["diverged"].astype(bool)]
    cols = [
        "param_norm_sq", "norm_per_layer", "middle_rank", "middle_rank_low", "middle_rank_high",
        "weight_s_k", "weight_s_k1", "train_error", "test_error", "balance_defect",
        "last_window_drop", "grad_norm", "steps_total", "seconds",
    ]  # fmt: skip
    table = finite.groupby("depth")[cols].median().reset_index()
    table.insert(1, "networks", finite.groupby("depth").size().values)
    deep = finite[finite["depth"] >= spec.fit_min_depth]
    preamble = (
        f"Deep ReLU MLPs (width {spec.width}, L2 λ = {spec.lam:g} on all parameters) on the "
        f"latent task x = g(z ∈ R^{spec.latent}), y = h(z_1..z_{spec.rank}) (k = {spec.rank}), "
        f"N = {spec.n_train}, depths {spec.depths}, {spec.seeds} seed(s); {len(rows) - len(finite)} "
        f"diverged run(s) left out. Convergence: objective drop over the last "
        f"{spec.plateau_window} steps ≤ {finite['last_window_drop'].max():.1e} (relative), "
        f"layer balance defect ≤ {finite['balance_defect'].max():.2g}, train error "
        f"{finite['train_error'].median():.3g}, test error {finite['test_error'].median():.3g} "
        f"(medians; targets of unit mean squared norm)."
    )
    if deep.empty:
        claims = [
            Claim("middle_rank", f"the middle hidden representations have rank k = {spec.rank}",
                  f"no finite run at depth >= {spec.fit_min_depth}", "none", "inconclusive"),
            Claim("slope", f"‖θ‖² grows with depth with slope R⁽⁰⁾ = k = {spec.rank}",
                  f"no finite run at depth >= {spec.fit_min_depth}", "none", "inconclusive"),
        ]  # fmt: skip
        extras: dict[str, Any] = {}
    else:
        slope_claim, extras = _slope_claim(deep, spec)
        claims = [_rank_claim(deep, spec), slope_claim]
    extras["claims"] = [c.as_dict() for c in claims]
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


EXPERIMENT = register(
    Experiment(
        name="bottleneck",
        description=(
            "Deep ReLU MLPs with L2 regularization on a task of bottleneck rank k: rank profile "
            "across layers, weight and representation spectra, and ‖θ‖² against depth (slope k)."
        ),
        spec_model=BottleneckSpec,
        version="1",
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
