"""Study ``cnn-bottleneck``: the convolution bottleneck (CBN) of deep circular CNNs trained with L2.

Wen & Jacot, "Which frequencies do CNNs need? Emergent bottleneck structure in feature learning"
(ICML 2024, arXiv 2402.08010): a deep CNN with near-optimal parameter norm maps its input to a
representation that lives on a few frequencies and channels in the middle layers (the CBN), and
the parameter norm grows like depth × CBN rank (R(f; L) ≈ L R⁽⁰⁾(f) + R⁽¹⁾(f)).

Tasks: ``frequencies`` (:func:`symlab.bias.conv_tasks.frequency_task`: y = P_S x on Gaussian
n × n images, S ∪ (−S) the kept frequencies, known) and ``digits`` (sklearn's 8 × 8 digits,
pixels scaled to unit variance, one-hot targets, a global mean over space after the last conv:
a shift-invariant classifier, frequencies unknown). Networks (:func:`circular_cnn`): ``depth``
bias-free k × k circular convolutions with ReLU between them, He init. ``kernel_size`` k = n
gives full-size filters: a k × k kernel's Ŵ(m) is a trigonometric polynomial of degree (k − 1)/2
in each coordinate of m, so ‖Ŵ(m)‖_F² is a non-negative one of degree k − 1, which vanishes at no
more than k − 1 of the n frequencies of a grid line unless it vanishes on the whole line: a 3 × 3
layer on 8 × 8 images cannot keep S = {±(1, 0), ±(0, 2)} alone (the line m_2 = 0 would need 6
zeros); only a product of layers can. Training (``symlab.train.train``, full
batch, ``optimizer`` "gd" or "adam", with a linear warm-up and a cosine decay of the learning rate
to ``lr_final`` × ``lr``, :func:`symlab.train.warmup_cosine`) on
(1/N) Σ ‖f(x_i) − y_i‖² + λ ‖θ‖². Adam and GD have the same fixed points (critical points of this
objective); measured on the quick preset, Adam with the decay reaches balanced, fitted networks
in a few thousand steps where GD does not (measured numbers in the presets' comments). With
``polish_iters`` > 0 the first-order phase (at λ = ``warm_lam``, e.g. 0: a fit without the
collapse to f = 0 that L2 from a random start can cause) is followed by an exact rebalancing of
the layers (:func:`symlab.bias.conv_tasks.balance_layers`: same function, least norm on its
rescaling orbit) and full-batch L-BFGS on the L2 objective in float64 on the task's float64
data, toward a critical point that first-order descent approaches only on the time scale
1 / (lr λ); with ``polish_stages`` > 1 along a geometric ladder of λ from ``polish_from`` up to λ
(:func:`symlab.train.l2_continuation`; from a fit without L2, L-BFGS at λ alone fell to f = 0
on a depth-16 net). Nothing certifies that the L2 minimum (or the global one) is reached: each row
records how the polish ended (``polish_stop_reason``: "tol", "stalled" = no progress at rounding
level, "steps" = all ``polish_iters`` used) and the objective's final gradient ∞-norm, and the
fit gate reads the L-BFGS trajectory at λ (the last stage of a ladder; every stage is in the row's
``polish_ladder``): its last-fifth drop is over that stage's iterations, and its imbalance is that
of the L-BFGS end point (0 at the rebalanced start, so with the polish the imbalance says how far
L-BFGS has moved, not how far first-order descent got).

Fit gate. A bottleneck is a property of near-optimal parameters, so an unfinished run tests
nothing: the claims use the networks that fit (train error ≤ ``max_train_error``), whose
objective fell by ≤ ``max_last_drop`` over the last fifth of the steps, whose objective is
within 1 + ``max_excess_objective`` of the lowest of the seeds at its task and depth (the best
known bound on the L2 minimum: a fitted, balanced run can sit at a worse critical point, seen at
depth 16 with 1.8× the objective; one seed cannot tell), and whose layers are
balanced: max_ℓ ‖K_ℓ‖² / min_ℓ ‖K_ℓ‖² − 1 ≤ ``max_imbalance``. Rescaling layer ℓ by α > 0 and
layer ℓ' by 1/α leaves a bias-free ReLU network's function unchanged, so at a critical point of
L + λ‖θ‖² every ‖K_ℓ‖² is equal; these rescalings are the slowest modes of L2 descent (the data
loss is flat along them), and under a decaying learning rate the last-fifth drop is small for any
run, so the balance is the part of the gate that a decayed, unfinished run fails. With a polish
the gate also needs L-BFGS to have reached its tolerance or used at least a fifth of
``polish_iters`` (over all stages of a ladder; one that stalls at once leaves the rebalanced
start, balanced by construction).

Measured per network (:func:`symlab.bias.conv_frequency_spectra`): each layer's per-frequency
singular values, the CBN rank (#{s > ``CBN_RTOL`` · s_max} summed over frequencies) and the
surviving frequencies, at 0.1 and with the rule at 10x / 0.1x beside it; each conv output's
per-frequency channel spectrum on the training inputs
(:func:`symlab.bias.activation_frequency_spectra`); the weights' spectral energy on S; ‖θ‖².
By Parseval, a layer's ‖K_ℓ‖² = (1/n²) Σ_m ‖Ŵ_ℓ(m)‖_F², so a middle layer whose kept singular
values are ≈ 1 costs (CBN rank)/n² and the norm's slope in depth is R⁽⁰⁾ ≈ (CBN rank)/n².

Claims: :mod:`symlab.experiments.cnn_bottleneck_verdict`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
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

from symlab.bias import CBN_RTOL, activation_frequency_spectra, conv_frequency_spectra
from symlab.bias.conv_tasks import (
    balance_layers,
    circular_cnn,
    digits_task,
    frequency_task,
)
from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.spec import distinct
from symlab.engine.verdict import render
from symlab.experiments.cnn_bottleneck_plots import converged, plot
from symlab.experiments.cnn_bottleneck_verdict import polish_words, study_claims
from symlab.ntk.data import DIGITS_SIZE
from symlab.train import l2_continuation, sample_mse_loss, train, warmup_cosine


class CnnBottleneckSpec(BaseModel):
    """Depth sweep of L2-regularized circular CNNs on a task with known frequencies (and digits)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[Literal["frequencies", "digits"]] = Field(
        ["frequencies", "digits"], min_length=1, description="tasks to run"
    )
    depths: list[conint(ge=2, le=64)] = Field([4, 6, 8], min_length=1, description="conv layers L")
    channels: conint(ge=1) = Field(4, description="hidden channels c")
    image_size: conint(ge=3, le=32) = Field(8, description="n of the frequencies task (n × n)")
    kernel_size: conint(ge=1) = Field(
        3, description="odd k of the k × k circular kernels; k = image_size: full-size filters"
    )
    frequencies: list[list[conint(ge=0)]] = Field(
        [[1, 0], [0, 2]], min_length=1, description="the task's frequencies S (conjugates added)"
    )
    n_train: conint(ge=2) = Field(32, description="training images")
    n_test: conint(ge=1) = Field(64, description="test images")
    lam: confloat(gt=0) = Field(2e-2, description="L2 regularization λ on all parameters")
    optimizer: Literal["gd", "adam"] = Field(
        "gd", description="full-batch GD or Adam on the L2 objective"
    )
    lr: confloat(gt=0) = Field(5e-2, description="peak learning rate")
    steps: conint(ge=1) = Field(1500, description="training steps (full batch)")
    warmup: conint(ge=0) = Field(0, description="linear warm-up steps of the learning rate")
    lr_final: confloat(ge=0, le=1) = Field(
        1.0, description="cosine decay of the learning rate down to lr × this (1: constant)"
    )
    seeds: conint(ge=1) = Field(1, description="seeds 0..seeds-1")
    fit_min_depth: conint(ge=2) = Field(4, description="the claims use depths >= this")
    max_train_error: confloat(gt=0) = Field(
        0.2, description="claims need a fit: train error (of unit-norm targets) at most this"
    )
    max_last_drop: confloat(gt=0) = Field(
        0.02, description="claims need convergence: objective drop over the last fifth at most this"
    )
    max_imbalance: confloat(gt=0) = Field(
        0.1, description="claims need balanced layers: max_ℓ ‖K_ℓ‖² / min_ℓ ‖K_ℓ‖² − 1 at most this"
    )
    max_excess_objective: confloat(gt=0) = Field(
        0.1, description="claims need objective <= (1 + this) × the best seed's at its depth"
    )
    warm_lam: confloat(ge=0) = Field(
        0.0, description="λ of the first-order phase when polish_iters > 0 (else lam throughout)"
    )
    polish_iters: conint(ge=0) = Field(
        0,
        description="L-BFGS iterations on the L2 objective after the first-order phase (float64; "
        "per stage of a polish_stages ladder)",
    )
    polish_from: confloat(ge=0) = Field(
        0.0, description="first λ of the polish's geometric ladder up to lam (0: lam alone)"
    )
    polish_stages: conint(ge=1) = Field(
        1, description="L-BFGS stages of the ladder, polish_iters iterations each (last at lam)"
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="training precision")

    @field_validator("depths")
    @classmethod
    def _distinct(cls, depths: list[int]) -> list[int]:
        return distinct(depths, "depths")

    @field_validator("kernel_size")
    @classmethod
    def _kernel(cls, k: int, info) -> int:
        n = info.data.get("image_size", 8)
        limit = min(n, 8) if "digits" in info.data.get("tasks", []) else n
        if k % 2 != 1 or k > limit:
            raise ValueError(
                f"expected an odd kernel size <= {limit} (the image size; digits are 8 × 8)"
            )
        return k

    @field_validator("warmup")
    @classmethod
    def _warmup(cls, warmup: int, info) -> int:
        steps = info.data.get("steps")
        if steps is not None and warmup >= steps:
            raise ValueError(f"expected fewer warm-up steps than steps = {steps}")
        return warmup

    @model_validator(mode="after")
    def _cross_fields(self) -> CnnBottleneckSpec:  # after: defaulted fields are checked too
        if "digits" in self.tasks and self.n_train + self.n_test > DIGITS_SIZE:
            raise ValueError(
                f"n_test: expected n_train + n_test <= {DIGITS_SIZE} (the digits data set), "
                f"got {self.n_train} + {self.n_test}"
            )
        if self.polish_iters == 0 and self.warm_lam:
            raise ValueError(
                f"polish_iters: expected > 0 with warm_lam = {self.warm_lam:g} (without a "
                "polish the run uses lam throughout and warm_lam is unused)"
            )
        if (self.polish_from > 0) != (self.polish_stages > 1) or (
            self.polish_stages > 1 and not (self.polish_iters and self.polish_from < self.lam)
        ):
            raise ValueError(
                "polish_from: expected a value below lam together with polish_stages > 1 and "
                f"polish_iters > 0, got polish_from = {self.polish_from:g}, polish_stages = "
                f"{self.polish_stages}, polish_iters = {self.polish_iters}, lam = {self.lam:g}"
            )
        return self

    @field_validator("frequencies")
    @classmethod
    def _pairs(cls, frequencies: list[list[int]], info) -> list[list[int]]:
        n = info.data.get("image_size", 8)
        if not all(len(m) == 2 and all(0 <= v < n for v in m) for m in frequencies):
            raise ValueError(f"expected pairs [m_1, m_2] with 0 <= m_i < image_size = {n}")
        return frequencies


def count_jobs(spec: CnnBottleneckSpec) -> int:
    """len(expand(spec)) without building the jobs."""
    return len(spec.tasks) * len(spec.depths) * spec.seeds


def expand(spec: CnnBottleneckSpec) -> list[dict[str, Any]]:
    """One job per (task, depth, seed); without a ladder its fields stay out of the params, so
    stores written before they existed keep their job keys (and ``symlab report`` reads them)."""
    shared = spec.model_dump(exclude={"tasks", "depths", "seeds", "fit_min_depth", "max_train_error",
                                      "max_last_drop", "max_imbalance", "max_excess_objective"}
                             | ({"polish_from", "polish_stages"} if spec.polish_stages == 1 else set()))  # fmt: skip
    return [
        {"task": task, "depth": depth, "seed": seed, **shared}
        for task in spec.tasks
        for depth in spec.depths
        for seed in range(spec.seeds)
    ]


def middle_layers(depth: int) -> list[int]:
    """0-based positions of the middle half of ``depth`` layers ℓ = 1..L: L/4 ≤ ℓ ≤ 3L/4."""
    chosen = [i for i in range(depth) if depth / 4 <= i + 1 <= 3 * depth / 4]
    return chosen or [depth // 2]


def _data(params: dict[str, Any]):
    if params["task"] == "frequencies":
        task = frequency_task(params["n_train"], params["n_test"], params["image_size"],
                              params["frequencies"], params["seed"])  # fmt: skip
        return task, False
    return digits_task(params["n_train"], params["n_test"], params["seed"]), True


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Train one depth-L circular CNN with L2 and measure its per-frequency spectra and norm."""
    start = time.perf_counter()
    dtype = getattr(torch, params["dtype"])
    task, pool = _data(params)
    kept = task.frequencies
    x, y, x_test, y_test = (
        t.to(dtype) for t in (task.x_train, task.y_train, task.x_test, task.y_test)
    )
    net = circular_cnn(params["depth"], params["channels"], 1, y.shape[1], pool=pool,
                       kernel_size=params["kernel_size"], seed=1000 + params["seed"],
                       dtype=dtype)  # fmt: skip
    steps, polish = params["steps"], params.get("polish_iters", 0)
    schedule = None
    if params["warmup"] or params["lr_final"] < 1:
        schedule = warmup_cosine(steps, warmup=params["warmup"], final=params["lr_final"])
    traj = train(net, (x, y), method="sgd" if params["optimizer"] == "gd" else "adam",
                 lr=params["lr"], steps=steps, lr_schedule=schedule,
                 weight_decay=params.get("warm_lam", 0.0) if polish else params["lam"],
                 loss=sample_mse_loss, record_every=max(steps // 100, 1))  # fmt: skip
    rebalance_factor, polish_ladder = math.nan, []
    if polish and not traj.diverged:
        # rebalanced (free), then L-BFGS on L + λ_i‖θ‖² in float64; the gate reads the last stage
        net = net.double()
        x, y, x_test, y_test = (
            t.double() for t in (task.x_train, task.y_train, task.x_test, task.y_test)
        )
        rebalance_factor = balance_layers(net)
        stages = params.get("polish_stages", 1)
        lams = np.geomspace(params.get("polish_from") or params["lam"], params["lam"], stages)
        ladder = l2_continuation(net, (x, y), lams.tolist(), max_iter=polish, tol=1e-12,
                                 loss=sample_mse_loss, record_every=max(polish // 100, 1))  # fmt: skip
        traj = ladder[-1]
        # each L-BFGS stage of the ladder: [λ, start objective, end objective, iterations, end]
        polish_ladder = [[float(lam), t.losses[0], t.losses[-1], t.n_steps, t.stop_reason]
                         for lam, t in zip(lams, ladder)]  # fmt: skip
    tail = [v for s, v in zip(traj.steps, traj.losses) if s <= 0.8 * traj.steps[-1]]
    last_drop = (tail[-1] - traj.losses[-1]) / tail[-1] if tail else float("nan")
    n = x.shape[-1]
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    finite = all(bool(torch.isfinite(p).all()) for p in net.parameters())
    if traj.diverged or not finite:  # no spectra of non-finite weights: a flagged row
        return {"diverged": True, "objective": float("nan"), "last_fifth_drop": float("nan"),
                "train_error": float("nan"), "test_error": float("nan"),
                "param_norm_sq": float("nan"), "imbalance": float("nan"),
                "seconds": time.perf_counter() - start}  # fmt: skip
    outputs: list[torch.Tensor] = []
    handles = [c.register_forward_hook(lambda _m, _i, o: outputs.append(o.detach())) for c in convs]
    with torch.no_grad():
        train_error = float(sample_mse_loss(net(x), y))
        for h in handles:
            h.remove()
        test_error = float(sample_mse_loss(net(x_test), y_test))
    weights = [conv_frequency_spectra(c, n) for c in convs]
    acts = [activation_frequency_spectra(o.double()) for o in outputs]
    kept_set = set(kept or [])
    allowed = kept_set | {(0, 0)}  # the task's frequencies and the constant (module docstring)
    energy_on_s = []
    for s in weights:
        energy = s.singular.double().square().sum(dim=1)
        on = sum(float(energy[a * n + b]) for a, b in kept_set)
        energy_on_s.append(on / float(energy.sum()) if kept else float("nan"))
    surviving = [s.surviving_frequencies() for s in weights]
    layer_norms = [float(c.weight.detach().double().square().sum()) for c in convs]
    middle = middle_layers(params["depth"])
    return {
        "cbn_rank": [s.cbn_rank() for s in weights],
        "cbn_rank_low": [s.cbn_rank(CBN_RTOL / 10) for s in weights],
        "cbn_rank_high": [min(s.cbn_rank(min(CBN_RTOL * 10, 0.99)), 10**9) for s in weights],
        "activation_cbn_rank": [s.cbn_rank() for s in acts],
        "surviving": [[list(m) for m in f] for f in surviving],
        "n_surviving": [len(f) for f in surviving],
        "middle_subset_of_task": bool(kept) and all(set(surviving[i]) <= allowed for i in middle),
        "middle_keeps_task": bool(kept) and all(set(surviving[i]) >= kept_set for i in middle),
        "middle_cbn_rank": float(np.median([weights[i].cbn_rank() for i in middle])),
        "middle_n_surviving": float(np.median([len(surviving[i]) for i in middle])),
        "energy_on_task": energy_on_s,
        "middle_energy_on_task": float(np.median([energy_on_s[i] for i in middle])),
        "top_singular_map": [s.singular[:, 0].reshape(n, n).tolist() for s in weights],
        "activation_top_map": [s.singular[:, 0].reshape(n, n).tolist() for s in acts],
        "task_frequencies": [list(m) for m in kept] if kept else [],
        "param_norm_sq": sum(float(p.detach().double().square().sum()) for p in net.parameters()),
        "layer_norms_sq": layer_norms,
        "imbalance": max(layer_norms) / min(layer_norms) - 1 if min(layer_norms) > 0 else math.inf,
        "train_error": train_error,
        "test_error": test_error,
        "objective": float(traj.losses[-1]),
        "last_fifth_drop": float(last_drop),
        "diverged": bool(traj.diverged),
        "loss_curve": [[int(s), float(v)] for s, v in zip(traj.steps, traj.losses)],
        # the polish_* fields are the last L-BFGS stage's (at lam): iterations, the objective
        # where it started (the rebalanced start, or the previous stage's end; see polish_ladder)
        "polish_iterations": int(traj.n_steps) if polish else 0,
        "polish_start_objective": float(traj.losses[0]) if polish else float("nan"),
        # how the polish ended ("tol", "stalled": no progress, "steps": used them all), the
        # objective's gradient ∞-norm there, and the factor by which the rebalancing cut ‖θ‖²
        "polish_stop_reason": traj.stop_reason if polish else "",
        "polish_grad_norm": float(traj.final_grad_norm) if polish else float("nan"),
        "polish_rebalance_factor": float(rebalance_factor),
        "polish_ladder": polish_ladder,
        "seconds": time.perf_counter() - start,
    }


def summarize(rows: pd.DataFrame, spec: CnnBottleneckSpec) -> Summary:
    """Per (task, depth) table and the claims (module docstring)."""
    finite = rows[~rows["diverged"].astype(bool)]
    cols = ["param_norm_sq", "middle_cbn_rank", "middle_n_surviving", "middle_energy_on_task",
            "train_error", "test_error", "imbalance", "seconds"]  # fmt: skip
    table = finite.groupby(["task", "depth"])[cols].median().reset_index()
    deep = finite[finite["depth"] >= spec.fit_min_depth]
    passed = converged(deep, spec)
    unconverged = deep[~passed]
    deep = deep[passed]
    gate = (f"{len(unconverged)} deep network(s) did not reach a converged fit (train error > "
            f"{spec.max_train_error:g}, objective drop over the last fifth > {spec.max_last_drop:g}"
            f", layer imbalance > {spec.max_imbalance:g} or objective > (1 + "
            f"{spec.max_excess_objective:g}) × the best seed's at its depth) and are left out of "
            "the claims")  # fmt: skip
    claims = study_claims(deep, spec, f"no converged deep run: {gate}")
    preamble = (
        f"Circular bias-free ReLU CNNs ({spec.channels} channels, {spec.kernel_size} × "
        f"{spec.kernel_size} kernels, depths {spec.depths}), L2 λ = {spec.lam:g}, {spec.steps} "
        f"full-batch {'Adam' if spec.optimizer == 'adam' else 'gradient-descent'} steps "
        f"(lr {spec.lr:g}, {spec.warmup} warm-up steps, cosine decay to {spec.lr_final:g} × lr)"
        f"{polish_words(spec, finite)}, "
        f"N = {spec.n_train}, "
        f"{spec.seeds} seed(s); {len(rows) - len(finite)} diverged run(s) left out; objective drop "
        f"over the last fifth of the {'L-BFGS iterations' if spec.polish_iters else 'steps'} "
        f"up to {finite['last_fifth_drop'].max():.1e} (relative; "
        f"far from 0 means the L2 optimum is not reached), layer imbalance up to "
        f"{finite['imbalance'].max():.2g}; train error median "
        f"{finite['train_error'].median():.3g}, test error {finite['test_error'].median():.3g}; "
        f"{gate}."
    )
    extras = {"claims": [c.as_dict() for c in claims]}
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


EXPERIMENT = register(
    Experiment(
        name="cnn-bottleneck",
        description=(
            "Deep circular CNNs trained with L2 on a task with known frequencies and on digits: "
            "per-layer frequency × singular-value maps, CBN-rank profile, ‖θ‖² against depth."
        ),
        spec_model=CnnBottleneckSpec,
        version="2",
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
