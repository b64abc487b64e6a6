"""Study ``composition``: learning rates of compositions h∘g by accordion, deep and shallow nets.

Jacot, Choi & Wen, "How DNNs break the Curse of Dimensionality: Compositionality and Symmetry
Learning" (ICLR 2025, arXiv 2407.05664): deep networks learn f* = h∘g from few samples when g
reduces the dimension (d_mid < d_in) and g, h are regular; their scaling laws show phases set by
whichever of g and h is harder. Setting, the paper's scaled to a 2-core CPU: X ~ N(0, I_{d_in}),
g: R^{d_in} → R^{d_mid}, h: R^{d_mid} → R^{d_out} draws of Matérn GPs of smoothness ν_g, ν_h
(:mod:`symlab.bias.matern`; RMS distance, length scale 1, drawn once per (ν_g, ν_h) on the pooled
train + test points with the fixed ``data_seed``, exactly by Cholesky or by random Fourier
features: ``sampler``; X and g are the same for every ν_h of one ν_g, so cells of one row of the
grid differ only in h). Models: an accordion net (:func:`symlab.nets.accordion_net`, ``blocks``
blocks d → wide → narrow), a plain deep ReLU MLP and a shallow wide one
(:func:`symlab.nets.mlp`, He init). Training (``symlab.train.train``, Adam on the mean squared
error, minibatches of N / ``batches_per_epoch`` points, at most ``max_batch_size``) in stages of
``steps_per_stage`` steps with
learning rates ``lrs`` and coupled weight decay ``weight_decays`` (the authors' torch Adam
``weight_decay`` = wd adds wd·θ to the gradient, i.e. the L2 term (wd/2)‖θ‖² of ``symlab.train``);
each stage starts a fresh Adam (the authors keep its moments across stages).

Per (ν_g, ν_h, model, N, seed) one network is trained on N points, a nested random subset (per
seed) of the training pool, and measured on the fixed ``n_test`` held-out points: relative test
error = test MSE / the test targets' variance (1 = predicting the mean). Per (model, ν_g, ν_h):
least-squares slope of log error against log N with one intercept per seed and its Student-t 95%
interval (``symlab.stats.fit_slope``) on the cell's learning regime (the N above the last one
whose median test error is at least ``fit_max_error``); the decay exponent is −slope. Claims:
:mod:`symlab.experiments.composition_verdict`.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    confloat,
    conint,
    field_validator,
    model_validator,
)

from symlab.bias.matern import composition_task
from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.spec import distinct
from symlab.engine.verdict import render
from symlab.experiments.composition_plots import plot
from symlab.experiments.composition_verdict import slope_table, verdict
from symlab.nets import accordion_net, mlp
from symlab.train import mse_loss, train

MODELS = ("accordion", "deep", "shallow")
MAX_CHOLESKY_POINTS = 15_000  # K + εI of 15 000 points: 1.8 GB in float64


class CompositionSpec(BaseModel):
    """Test error against N of three architectures on h∘g, per (ν_g, ν_h); the defaults are the
    quick preset's."""

    model_config = ConfigDict(extra="forbid")

    nu_g: list[confloat(gt=0, le=50)] = Field(
        [1.5, 10.5], min_length=1, description="Matérn smoothness values ν_g of g (grid with nu_h)"
    )
    nu_h: list[confloat(gt=0, le=50)] = Field(
        [0.5, 5.5], min_length=1, description="Matérn smoothness values ν_h of h"
    )
    d_in: conint(ge=2, le=256) = Field(15, description="input dimension d_in")
    d_mid: conint(ge=1, le=255) = Field(3, description="dimension d_mid of g's output (< d_in)")
    d_out: conint(ge=1, le=256) = Field(20, description="output dimension d_out")
    n_train: list[conint(ge=10)] = Field(
        [100, 300, 1000, 3000], min_length=3, description="training-set sizes N (three or more)"
    )
    n_test: conint(ge=10) = Field(1000, description="held-out test points")
    models: list[Literal["accordion", "deep", "shallow"]] = Field(
        list(MODELS), min_length=1, description="architectures"
    )
    accordion_wide: conint(ge=1) = Field(128, description="accordion net: wide width")
    accordion_narrow: conint(ge=1) = Field(24, description="accordion net: narrow width")
    accordion_blocks: conint(ge=1, le=64) = Field(3, description="accordion net: blocks L")
    deep_width: conint(ge=1) = Field(64, description="deep MLP: hidden width")
    deep_layers: conint(ge=2, le=64) = Field(5, description="deep MLP: weight matrices")
    shallow_width: conint(ge=1) = Field(1000, description="shallow net: hidden width")
    lrs: list[confloat(gt=0)] = Field([2e-3, 4e-4], min_length=1, description="Adam lr per stage")
    weight_decays: list[confloat(ge=0)] = Field(
        [0.0, 0.002], min_length=1, description="torch-style coupled weight decay per stage"
    )
    steps_per_stage: conint(ge=1) = Field(350, description="Adam steps per training stage")
    batches_per_epoch: conint(ge=1) = Field(5, description="minibatches per epoch (batch N / this)")
    max_batch_size: conint(ge=1) = Field(
        128, description="minibatch size at most this (caps a job's cost at large N)"
    )
    seeds: conint(ge=1) = Field(2, description="seeds 0..seeds-1 (network init and subset)")
    data_seed: conint(ge=0) = Field(0, description="seed of X, g and h (one draw per (ν_g, ν_h))")
    sampler: Literal["cholesky", "fourier"] = Field("cholesky", description="GP sampler")
    fourier_features: conint(ge=1) = Field(4096, description="sampler 'fourier': features")
    min_gap: confloat(gt=0) = Field(
        0.05, description="cells compared when their predicted exponents differ by more"
    )
    exponent_tolerance: confloat(gt=0) = Field(
        0.1,
        description="slack for log factors: an exponent is consistent with the bound's rate r "
        "when its interval reaches r − this; cells with r <= this are not tested",
    )
    error_ratio_tolerance: confloat(gt=1) = Field(
        1.25,
        description="deep beats shallow: 'reproduced' when the error ratio's interval lies above "
        "this, 'not reproduced' when it lies within 1/this..this",
    )
    max_last_drop: confloat(gt=0) = Field(
        0.02,
        description="rate claims decided only where the median relative drop of the training "
        "MSE over the last fifth of the last stage, at the largest N, is at most this",
    )
    fit_max_error: confloat(gt=0) = Field(
        1.0,
        description="slope fits use the N above the largest N whose median relative test error "
        "is at least this (1: no better than the mean; small-N over-fitting left out)",
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="training precision")

    @field_validator("nu_g", "nu_h", "n_train")
    @classmethod
    def _distinct(cls, values: list) -> list:
        return distinct(values)

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, values: list[str]) -> list[str]:
        return distinct(values, "models")

    @model_validator(mode="after")
    def _consistent(self) -> CompositionSpec:
        if self.d_mid >= self.d_in:
            raise ValueError(
                f"d_mid: expected a value < d_in = {self.d_in} (g reduces the dimension), got {self.d_mid}"
            )
        if len(self.weight_decays) != len(self.lrs):
            raise ValueError(
                f"weight_decays: expected one value per stage ({len(self.lrs)} lrs), got {len(self.weight_decays)}"
            )
        pool = max(self.n_train) + self.n_test
        if self.sampler == "cholesky" and pool > MAX_CHOLESKY_POINTS:
            raise ValueError(
                f"n_train: expected max(n_train) + n_test <= {MAX_CHOLESKY_POINTS} with sampler 'cholesky' (got {pool}; use sampler = 'fourier')"
            )
        return self  # fmt: skip


def count_jobs(spec: CompositionSpec) -> int:
    """len(expand(spec)) without building the jobs."""
    return len(spec.nu_g) * len(spec.nu_h) * len(spec.models) * len(spec.n_train) * spec.seeds


VERDICT_FIELDS = {"seeds", "min_gap", "exponent_tolerance", "error_ratio_tolerance", "models",
                  "nu_g", "nu_h", "n_train", "fit_max_error", "max_last_drop"}  # fmt: skip


def expand(spec: CompositionSpec) -> list[dict[str, Any]]:
    """One job per (ν_g, ν_h, model, N, seed); cells of one (ν_g, ν_h) are adjacent (data cache)."""
    shared = spec.model_dump(exclude=VERDICT_FIELDS)
    shared["pool"] = max(spec.n_train) + spec.n_test
    grid = itertools.product(spec.nu_g, spec.nu_h, spec.models, spec.n_train, range(spec.seeds))
    return [
        {"nu_g": nu_g, "nu_h": nu_h, "model": model, "n": n, "seed": seed, **shared}
        for nu_g, nu_h, model, n, seed in grid
    ]


@functools.lru_cache(maxsize=2)
def _task(nu_g, nu_h, d_in, d_mid, d_out, pool, seed, sampler, features):
    return composition_task(pool, nu_g, nu_h, d_in=d_in, d_mid=d_mid, d_out=d_out, seed=seed,
                            sampler=sampler, n_features=features)  # fmt: skip


def build_model(params: dict[str, Any], dtype: torch.dtype) -> torch.nn.Module:
    """The job's network, seeded with its seed."""
    d_in, d_out, seed = params["d_in"], params["d_out"], 1000 + params["seed"]
    if params["model"] == "accordion":
        return accordion_net(d_in, params["accordion_wide"], params["accordion_narrow"], d_out,
                             params["accordion_blocks"], seed=seed, dtype=dtype)  # fmt: skip
    if params["model"] == "deep":
        widths = [d_in] + [params["deep_width"]] * (params["deep_layers"] - 1) + [d_out]
        return mlp(widths, seed=seed, dtype=dtype)
    return mlp([d_in, params["shallow_width"], d_out], seed=seed, dtype=dtype)


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Train one network on N points of h∘g; relative train and test error; over the last fifth
    of the last stage (T steps), the relative drop (e(0.8 T) − e(T)) / e(0.8 T) of the training
    MSE e (``last_fifth_drop``: is the fit still improving?) and the same drop of the whole
    objective, MSE + L2 term (``objective_last_fifth_drop``: it also falls while weight decay
    shrinks the norm, a time scale of 1 / (lr · wd) steps)."""
    start = time.perf_counter()
    dtype = getattr(torch, params["dtype"])
    task = _task(params["nu_g"], params["nu_h"], params["d_in"], params["d_mid"], params["d_out"],
                 params["pool"], params["data_seed"], params["sampler"], params["fourier_features"])  # fmt: skip
    n_test, n = params["n_test"], params["n"]
    x_test, y_test = task.x[:n_test].to(dtype), task.y[:n_test].to(dtype)
    order = torch.randperm(params["pool"] - n_test, generator=torch.Generator().manual_seed(
        5000 + params["seed"]))[:n] + n_test  # fmt: skip
    x, y = task.x[order].to(dtype), task.y[order].to(dtype)
    net = build_model(params, dtype)
    batch = min(math.ceil(n / params["batches_per_epoch"]), params["max_batch_size"])
    steps, last = params["steps_per_stage"], len(params["lrs"]) - 1
    diverged, train_loss, fit_at = False, math.nan, {}
    tail_step = max(steps - max(steps // 5, 1), 0)  # the last fifth of the last stage starts here

    def fit_before_last_fifth(step: int, model: torch.nn.Module) -> None:
        with torch.no_grad():
            fit_at["mse"] = float(mse_loss(model(x), y))

    for stage, (lr, wd) in enumerate(zip(params["lrs"], params["weight_decays"])):
        traj = train(net, (x, y), method="adam", lr=lr, steps=steps, batch_size=batch,
                     seed=100 * params["seed"] + stage, weight_decay=wd / 2, loss=mse_loss,
                     record_every=[tail_step] if stage == last else steps,  # and the end
                     record_grad_norm=False,
                     callback=fit_before_last_fifth if stage == last else None,
                     callback_every=[tail_step])  # fmt: skip
        if traj.diverged:
            diverged = True
            break
    # the full training objective (MSE + L2 term) at 4/5 of the last stage and at its end
    tail = [v for s, v in zip(traj.steps, traj.losses) if s <= tail_step]
    objective_drop = (tail[-1] - traj.losses[-1]) / tail[-1] if tail and not diverged else math.nan
    with torch.no_grad():
        test_mse = float(mse_loss(net(x_test), y_test))
        train_loss = float(mse_loss(net(x), y))
    variance = float(y_test.double().var(dim=0).mean())
    diverged = diverged or not math.isfinite(test_mse)
    return {
        "test_error": test_mse / variance if not diverged else math.nan,
        "train_error": train_loss / variance if not diverged else math.nan,
        "last_fifth_drop": (fit_at["mse"] - train_loss) / fit_at["mse"]
        if "mse" in fit_at and not diverged
        else math.nan,
        "objective_last_fifth_drop": float(objective_drop),
        "diverged": diverged,
        "parameters": sum(p.numel() for p in net.parameters()),
        "seconds": time.perf_counter() - start,
    }


def summarize(rows: pd.DataFrame, spec: CompositionSpec) -> Summary:
    """Median errors per cell, fitted slopes per (model, ν_g, ν_h) and the claims."""
    finite = rows[~rows["diverged"].astype(bool)]
    table = (
        finite.groupby(["model", "nu_g", "nu_h", "n"])[["test_error", "train_error", "seconds"]]
        .median()
        .reset_index()
    )
    slopes = slope_table(finite, spec)
    claims, preamble = verdict(rows, slopes, spec)
    extras: dict[str, Any] = {
        "claims": [c.as_dict() for c in claims],
        "slopes": slopes.to_dict(orient="records"),
    }
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


EXPERIMENT = register(
    Experiment(
        name="composition",
        description=(
            "Accordion, deep and shallow nets on h∘g with Matérn-GP g (R^15 → R^3) and h: test "
            "error against N on log-log axes, fitted slopes per (ν_g, ν_h), and whether the deep "
            "nets' rate follows the harder of g and h."
        ),
        spec_model=CompositionSpec,
        version="1",
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
