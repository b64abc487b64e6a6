"""Study ``beyond-ntk``: three-layer vs two-layer nets vs kernels, and how much of learning is first order.

Allen-Zhu, Li & Liang, "Learning and Generalization in Overparameterized Neural Networks, Going
Beyond Two Layers" (NeurIPS 2019, arXiv 1811.04918), §7, scaled to a CPU. Task
(:mod:`symlab.ntk.concept_tasks`): x uniform on the unit sphere of R⁴, y = (sin 3x₁ + sin 3x₂ +
sin 3x₃ − 2)² cos 7x₄ ("sin") or the tanh variant. Methods:

- ``three_layer`` / ``two_layer``: AZLL's learners (hidden weights and biases trained, output
  weights a ~ N(0, 1) fixed), SGD with momentum 0.9 (``symlab.train.heavy_ball``), batch 50, for
  ``epochs`` epochs, the learning rate divided by 10 halfway (the momentum buffer restarts there:
  two calls of the training engine), L2 weight decay (PyTorch's ``weight_decay=wd`` is the
  gradient wd·θ, i.e. λ‖θ‖² with λ = wd / 2 in :func:`symlab.train.train`'s convention);
- ``last_layer``: only the output layer of the three-layer net at init trained, to its optimum:
  ridge regression on the last hidden features (the conjugate kernel);
- ``ntk``: kernel regression with the finite-width NTK Θ₀ of the three-layer net over its hidden
  weights (:func:`symlab.ntk.empirical_ntk`, :func:`symlab.ntk.kernel_regression`).

Every method's hyper-parameter (learning rate × weight decay for the nets, the ridge for the
kernels) is chosen on an independent validation set (AZLL kept the best *test* score; choosing
on validation keeps the test error unbiased), and the test error is the MSE over Var(y).
During training the Taylor split of the function change (:func:`symlab.ntk.taylor_split`) is
recorded on training and test points: R²₁ (what the NTK / first-order term explains), R²₂ (with
the second-order term) and the fraction of ReLU gates that flipped since init.

Claims (:func:`summarize`, paired over (target, N, width, seed) cells, Student-t 95% intervals
on the mean log error ratio):

1. "three-layer networks beat two-layer networks" (AZLL Fig. 1–2);
2. "the networks beat the finite-width NTK" (three-layer vs ``ntk``);
3. "learning goes beyond the kernel regime": the first-order term explains less than half of the
   three-layer net's function change on test points in most runs (Wilson 95% lower bound of
   the share with R²₁ < 0.5 above one half; "not reproduced" when most runs are lazy, R²₁ > 0.9);
4. "the second-order, cross-layer term carries what the first order misses" (AZLL §6): most
   runs have R²₂ ≥ 0.5 > R²₁ ("opposite" when adding T₂ makes most runs worse).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint, field_validator
from scipy import stats

from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.spec import distinct
from symlab.engine.verdict import Claim, render
from symlab.experiments.beyond_ntk_plots import plot
from symlab.ntk import (
    TaylorSplitTracker,
    empirical_ntk,
    kernel_regression,
    random_sign_cancellation,
    taylor_split,
)
from symlab.ntk.concept_tasks import (
    azll_network,
    azll_task,
    last_layer_features,
    relative_error,
)
from symlab.stats import wilson_interval
from symlab.train import heavy_ball, log_spaced_steps, sample_mse_loss

NET_METHODS = ("three_layer", "two_layer")
KERNEL_METHODS = ("last_layer", "ntk")
SPLIT_POINTS = 256  # training / test points on which the Taylor split is recorded


class BeyondNTKSpec(BaseModel):
    """AZLL §7: test error against N and width per method, and the Taylor split over training."""

    model_config = ConfigDict(extra="forbid")

    targets: list[Literal["sin", "tanh"]] = Field(
        ["sin"], min_length=1, description="AZLL §7 targets"
    )
    methods: list[Literal["three_layer", "two_layer", "last_layer", "ntk"]] = Field(
        ["three_layer", "two_layer", "last_layer", "ntk"], min_length=1, description="learners"
    )
    n_values: list[conint(ge=10)] = Field([250, 500, 1000], min_length=1,
                                          description="training-set sizes N at width = width")  # fmt: skip
    widths: list[conint(ge=2)] = Field([50, 100, 200, 400], min_length=1,
                                       description="hidden widths m at N = n_fixed")  # fmt: skip
    width: conint(ge=2) = Field(200, description="the width of the N sweep")
    n_fixed: conint(ge=10) = Field(1000, description="the N of the width sweep")
    n_val: conint(ge=10) = Field(500, description="validation points (hyper-parameter choice)")
    n_test: conint(ge=10) = Field(1000, description="test points")
    epochs: conint(ge=2) = Field(40, description="SGD epochs (the learning rate drops halfway)")
    batch_size: conint(ge=1) = Field(50, description="SGD batch size")
    momentum: confloat(ge=0, lt=1) = Field(0.9, description="heavy-ball momentum")
    lrs: list[confloat(gt=0)] = Field([0.003, 0.01], min_length=1, description="learning rates")
    weight_decays: list[confloat(ge=0)] = Field([1e-4], min_length=1,
                                                description="PyTorch-style weight decays wd")  # fmt: skip
    ridges: list[confloat(gt=0)] = Field([1e-4, 1e-3, 1e-2, 1e-1], min_length=1,
                                         description="kernel ridges, relative to the mean diagonal")  # fmt: skip
    split_records: conint(ge=2) = Field(12, description="log-spaced Taylor-split records per run")
    sign_draws: list[conint(ge=1)] = Field([1, 4, 16, 64], min_length=1,
                                           description="random-sign draws (three-layer nets)")  # fmt: skip
    seeds: conint(ge=2) = Field(2, description="seeds 0..seeds-1 (data and init)")
    dtype: Literal["float32", "float64"] = Field("float32", description="training precision")

    @field_validator("n_values", "widths", "lrs", "weight_decays", "ridges", "targets", "methods")
    @classmethod
    def _distinct(cls, values: list) -> list:
        return distinct(values)


def cells(spec: BeyondNTKSpec) -> list[tuple[int, int]]:
    """(N, width) pairs: the N sweep at ``width`` and the width sweep at ``n_fixed``."""
    pairs = [(n, spec.width) for n in spec.n_values] + [(spec.n_fixed, m) for m in spec.widths]
    return sorted(set(pairs))


def count_jobs(spec: BeyondNTKSpec) -> int:
    """len(expand(spec)) without building the jobs."""
    kernels = sum(m in KERNEL_METHODS for m in spec.methods)
    nets = (len(spec.methods) - kernels) * len(spec.lrs) * len(spec.weight_decays)
    return len(spec.targets) * len(cells(spec)) * spec.seeds * (kernels + nets)


def expand(spec: BeyondNTKSpec) -> list[dict[str, Any]]:
    """One job per (target, method, N, width, seed) and, for the nets, learning rate and decay."""
    shared = spec.model_dump(
        include={"n_val", "n_test", "epochs", "batch_size", "momentum", "ridges",
                 "split_records", "sign_draws", "dtype"}
    )  # fmt: skip
    jobs = []
    for target in spec.targets:
        for n, width in cells(spec):
            for seed in range(spec.seeds):
                base = {"target": target, "n_train": n, "width": width, "seed": seed, **shared}
                for method in spec.methods:
                    if method in KERNEL_METHODS:
                        jobs.append({**base, "method": method, "lr": None, "weight_decay": None})
                        continue
                    for lr in spec.lrs:
                        for wd in spec.weight_decays:
                            jobs.append({**base, "method": method, "lr": lr, "weight_decay": wd})
    return jobs


def kernel_job(params: dict[str, Any], task, net) -> dict[str, Any]:
    """Ridge regression with the conjugate kernel (``last_layer``) or the NTK (``ntk``), the ridge
    chosen on the validation set."""
    x = torch.cat([task.x_train, task.x_val, task.x_test]).double()
    n, n_val = len(task.x_train), len(task.x_val)
    if params["method"] == "last_layer":
        feats = last_layer_features(net.double(), x)
        gram = feats @ feats.T
    else:
        gram = empirical_ntk(net.double(), x, trace=True)
    k_train = gram[:n, :n]
    scale = float(k_train.diagonal().mean())
    best: dict[str, Any] = {}
    for ridge in params["ridges"]:
        pred = kernel_regression(k_train, task.y_train.double(), gram[n:, :n], ridge * scale)
        val = relative_error(pred[:n_val], task.y_val)
        if not best or val < best["val_error"]:
            best = {"ridge": ridge, "val_error": val,
                    "test_error": relative_error(pred[n_val:], task.y_test)}  # fmt: skip
    fit = kernel_regression(k_train, task.y_train.double(), k_train, best["ridge"] * scale)
    return {**best, "train_error": relative_error(fit, task.y_train)}


def net_job(params: dict[str, Any], task, net) -> dict[str, Any]:
    """Train with heavy-ball SGD (two phases) and record the Taylor split over training."""
    steps_per_epoch = math.ceil(len(task.x_train) / params["batch_size"])
    half = max(params["epochs"] // 2 * steps_per_epoch, 1)
    probes = {"train": task.x_train[:SPLIT_POINTS], "test": task.x_test[:SPLIT_POINTS]}
    tracker = TaylorSplitTracker(net, probes)
    record_steps = set(log_spaced_steps(2 * half, params["split_records"]))
    offset = [0]

    def record(step: int, model: torch.nn.Module) -> None:
        if offset[0] + step in record_steps:
            tracker.update(offset[0] + step)

    options = {
        "momentum": params["momentum"], "batch_size": params["batch_size"], "seed": params["seed"],
        "weight_decay": params["weight_decay"] / 2, "loss": sample_mse_loss, "callback": record,
        "record_every": half, "record_grad_norm": False,
    }  # fmt: skip
    first = heavy_ball(net, (task.x_train, task.y_train), lr=params["lr"], steps=half, **options)
    offset[0] = half
    second = heavy_ball(
        net, (task.x_train, task.y_train), lr=params["lr"] / 10, steps=half, **options
    )
    diverged = bool(first.diverged or second.diverged)
    with torch.no_grad():
        errors = {
            f"{split}_error": relative_error(net(x), y)
            for split, x, y in (("train", task.x_train, task.y_train), ("val", task.x_val, task.y_val),
                                ("test", task.x_test, task.y_test))
        }  # fmt: skip
    final = taylor_split(net, tracker.params_0, probes["test"]) if not diverged else None
    row: dict[str, Any] = {
        **errors,
        "diverged": diverged,
        "steps_total": 2 * half,
        "split_curve": tracker.records,
        "r2_first": final.r2_first if final else math.nan,
        "r2_second": final.r2_second if final else math.nan,
        "flip_share": final.flip_share if final else math.nan,
        "flip_fraction": list(final.flip_fraction.values()) if final else [],
    }
    if params["method"] == "three_layer" and not diverged:
        p0 = tracker.params_0
        cancellation = random_sign_cancellation(
            net, net[0].weight.detach() - p0["0.weight"], net[2].weight.detach() - p0["2.weight"],
            probes["test"],
            draws=params["sign_draws"], seed=params["seed"],
        )  # fmt: skip
        row["sign_error_network"] = cancellation.error_network
        row["sign_error_frozen"] = cancellation.error_frozen
    return row


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Fit one learner on one (target, N, width, seed) cell and report its errors."""
    start = time.perf_counter()
    dtype = getattr(torch, params["dtype"])
    task = azll_task(params["target"], params["n_train"], params["n_val"], params["n_test"],
                     params["seed"], dtype=dtype)  # fmt: skip
    depth = 2 if params["method"] == "two_layer" else 3
    net = azll_network(depth, 4, params["width"], seed=1000 + params["seed"], dtype=dtype)
    if params["method"] in KERNEL_METHODS:
        row = {**kernel_job(params, task, net), "diverged": False}
    else:
        row = net_job(params, task, net)
    return {**row, "seconds": time.perf_counter() - start}


def best_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (target, method, N, width, seed): the run with the least validation error."""
    rows = rows.reset_index(drop=True)
    ok = rows[~rows["diverged"].astype(bool) & np.isfinite(rows["val_error"].astype(float))]
    keys = ["target", "method", "n_train", "width", "seed"]
    return ok.loc[ok.groupby(keys)["val_error"].idxmin()].reset_index(drop=True)


def paired_claim(best: pd.DataFrame, winner: str, loser: str, name: str, claim: str) -> Claim:
    """``winner`` has lower test error than ``loser``: mean log(err_loser / err_winner) over
    paired cells with a t interval; reproduced when it excludes 0 above, opposite below."""
    keys = ["target", "n_train", "width", "seed"]
    a = best[best["method"] == winner].set_index(keys)["test_error"]
    b = best[best["method"] == loser].set_index(keys)["test_error"]
    both = a.index.intersection(b.index)
    statistic = "paired over (target, N, width, seed) cells, mean log error ratio, Student-t 95%"
    if len(both) < 2:
        return Claim(name, claim, f"{len(both)} paired cell(s)", statistic, "not measured")
    ratio = np.log(b[both].astype(float).values / a[both].astype(float).values)
    mean, sd = float(ratio.mean()), float(ratio.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(ratio) - 1)) * sd / math.sqrt(len(ratio))
    low, high = mean - half, mean + half
    outcome = "reproduced" if low > 0 else "opposite" if high < 0 else "inconclusive"
    wins = int((ratio > 0).sum())
    measured = (
        f"test error of {loser} / {winner}: geometric mean {math.exp(mean):.2f}x, 95% "
        f"[{math.exp(low):.2f}, {math.exp(high):.2f}]; {winner} lower in {wins} of {len(ratio)} cells "
        f"(median test errors {a[both].median():.3f} vs {b[both].median():.3f})"
    )
    return Claim(name, claim, measured, statistic, outcome)


def first_order_claim(best: pd.DataFrame) -> Claim:
    """The NTK term explains less than half of the three-layer nets' function change (module doc):
    the share of runs with R²₁ < 0.5 on test points, with its Wilson interval (R² is unbounded
    below, so a mean is meaningless)."""
    three = best[best["method"] == "three_layer"]
    claim = "learning goes beyond the kernel (first-order) regime for three-layer networks"
    statistic = (
        "share of runs whose NTK term explains less than half of Δf on test points (R²₁ < 0.5) "
        "at the end of training, Wilson 95%; not reproduced when most runs are lazy (R²₁ > 0.9)"
    )
    r2 = three["r2_first"].astype(float).dropna().values
    if len(r2) < 2:
        return Claim("beyond_first_order", claim, f"{len(r2)} run(s)", statistic, "not measured")
    beyond = int((r2 < 0.5).sum())
    lazy = int((r2 > 0.9).sum())
    low, high = wilson_interval(beyond, len(r2))
    lazy_low, _ = wilson_interval(lazy, len(r2))
    outcome = "reproduced" if low > 0.5 else "not reproduced" if lazy_low > 0.5 else "inconclusive"
    r2b = three["r2_second"].astype(float).dropna()
    flips = three["flip_share"].astype(float).dropna()
    measured = (
        f"R²₁ < 0.5 in {beyond} of {len(r2)} runs (95% [{low:.2f}, {high:.2f}]), R²₁ > 0.9 in "
        f"{lazy}; median R²₁ {np.median(r2):.2f}, with the second-order term median R²₂ "
        f"{r2b.median():.2f}; the flipped gates' share ‖Δf_flips‖²/‖Δf‖² median {flips.median():.2f}"
    )
    return Claim("beyond_first_order", claim, measured, statistic, outcome)


def second_order_claim(best: pd.DataFrame) -> Claim:
    """AZLL's mechanism: the cross-layer second-order term carries what the NTK term misses. The
    share of three-layer runs where first + second order explain most of Δf (R²₂ ≥ 0.5) although
    the NTK term alone does not (R²₁ < 0.5); "opposite" when adding T₂ makes most runs worse."""
    three = best[best["method"] == "three_layer"][["r2_first", "r2_second"]].astype(float).dropna()
    claim = "the second-order (cross-layer) term explains the change the NTK term misses"
    statistic = (
        "share of three-layer runs with R²₂ ≥ 0.5 > R²₁ on test points, Wilson 95%; opposite when "
        "R²₂ < R²₁ in most runs (the quadratic model is worse than the linear one)"
    )
    if len(three) < 2:
        return Claim("second_order", claim, f"{len(three)} run(s)", statistic, "not measured")
    carried = int(((three["r2_second"] >= 0.5) & (three["r2_first"] < 0.5)).sum())
    worse = int((three["r2_second"] < three["r2_first"]).sum())
    low, high = wilson_interval(carried, len(three))
    worse_low, _ = wilson_interval(worse, len(three))
    outcome = ("reproduced" if low > 0.5 else "opposite" if worse_low > 0.5
               else "not reproduced" if high < 0.5 else "inconclusive")  # fmt: skip
    measured = (
        f"R²₂ ≥ 0.5 > R²₁ in {carried} of {len(three)} runs (95% [{low:.2f}, {high:.2f}]); R²₂ < R²₁ "
        f"in {worse}: after the weights move this far, flipped gates carry the change (see the "
        f"flip share), not the frozen-gate quadratic term"
    )
    return Claim("second_order", claim, measured, statistic, outcome)


def summarize(rows: pd.DataFrame, spec: BeyondNTKSpec) -> Summary:
    """Test error per (target, method, N, width) (medians over seeds of the validated runs) and
    the three claims (module docstring)."""
    best = best_runs(rows)
    table = (
        best.groupby(["target", "method", "n_train", "width"])[["test_error", "train_error"]]
        .median().reset_index()
    )  # fmt: skip
    table.insert(4, "runs", best.groupby(["target", "method", "n_train", "width"]).size().values)
    claims = [
        paired_claim(best, "three_layer", "two_layer", "three_beats_two",
                     "three-layer networks reach lower test error than two-layer networks"),
        paired_claim(best, "three_layer", "ntk", "net_beats_ntk",
                     "three-layer networks reach lower test error than the finite-width NTK"),
        first_order_claim(best),
        second_order_claim(best),
    ]  # fmt: skip
    diverged = int(rows["diverged"].astype(bool).sum())
    preamble = (
        f"AZLL §7 on CPU: targets {spec.targets}, N in {spec.n_values} (width {spec.width}) and "
        f"width in {spec.widths} (N = {spec.n_fixed}), {spec.seeds} seeds, {spec.epochs} epochs of "
        f"SGD (momentum {spec.momentum}, batch {spec.batch_size}); hyper-parameters chosen on "
        f"{spec.n_val} validation points; {diverged} diverged run(s) left out."
    )
    extras = {"claims": [c.as_dict() for c in claims]}
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


EXPERIMENT = register(
    Experiment(
        name="beyond-ntk",
        description=(
            "Allen-Zhu-Li-Liang §7: three-layer vs two-layer nets vs the conjugate kernel and the "
            "NTK on sin/tanh concept targets, with the Taylor split (R²₁, R²₂, gate flips) of training."
        ),
        spec_model=BeyondNTKSpec,
        version="1",
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
