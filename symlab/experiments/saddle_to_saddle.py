"""Study ``saddle-to-saddle``: deep linear networks from small to large initialization.

Two papers, two parts:

- **Traces** (Jacot, Ged, Şimşek, Hongler & Gabriel 2021, "Saddle-to-saddle dynamics in deep
  linear networks", arXiv 2106.15933). Depth-L linear nets A_θ = W_L ⋯ W_1 (L = 2–4, width
  w = d^{γ_w}) complete a d×d target of rank k with separated singular values (s_i ∝ ρ^{i−1},
  a random fraction of entries observed) by gradient descent, from a small, a medium and a large
  initialization. The init scale ε is the root-mean-square singular value of A_0 over ‖A*‖_op
  (σ² from :func:`symlab.bias.init_variance`). Claim: at small init, GD visits saddles of rank
  0, 1, 2, … — one loss plateau per rank, the number of large singular values stepping up by one
  at each drop — and ends at the sparse (rank-k) global minimum; at large init it is lazy (NTK):
  no plateaus and no low-rank bias. Recorded at log-spaced steps: train/test error and the
  singular values of A_θ; plateaus by :func:`symlab.bias.detect_plateaus` with the rank
  #{s_i(A_θ) > ``rank_threshold`` · s_k(A*)}. A trace stops once every init's train error is
  below ``converge_tol`` · s_k(A*)²/d² (the weakest target mode learned; no plateau is counted
  below that level) or after ``trace_steps`` steps.
- **Phase diagram** (Tu, Aranguri & Jacot 2024, "Mixed dynamics in linear networks", arXiv
  2405.17580, code ``main.ipynb``). Two-layer nets, w = d^{γ_w}, σ² = d^{γ_σ²}, on the noisy
  target Y = A* + E (A* = C Dᵀ, C, D entries N(0, k^{−1/2}), E i.i.d. N(0, 1)); GD with
  η = 1/(50σ²w) if γ_w + γ_σ² > 1 else 1/(50‖A*‖_op), at most ``max_steps`` steps, stopped as in
  the code: train error < 1e−3, or the test error rose on two consecutive steps, or the train
  error moved by < 2e−4 in a step after falling by > 1e−2. Per cell: the minimum test error, the
  stable rank ‖A‖_F²/‖A‖_op² and the numerical rank #{s_i > s_1/5} of A at that minimum, the
  steps to reach it, and the largest distance max_t ‖A_t^GD − A_t^SC‖_F / ‖A*‖_F to the
  self-consistent dynamics (:mod:`symlab.bias.mixed_dynamics`) integrated beside it from the
  same A_0 with the same step. Claim: the lazy corner (σ²w > d) over-estimates the rank, the
  active/mixed region recovers it.

All training goes through :mod:`symlab.train`: the seeds of a trace through ``train_ensemble``,
a phase-diagram cell through ``gradient_descent`` with a callback that records every step and
stops the run. The verdict is in :mod:`symlab.experiments.saddle_to_saddle_verdict`, the figures in
:mod:`symlab.experiments.saddle_to_saddle_plots`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from symlab.bias import (
    DeepLinearNetwork,
    MatrixTask,
    detect_plateaus,
    dln_learning_rate,
    end_to_end_matrix,
    init_variance,
    integrate_mixed_dynamics,
    is_saddle_to_saddle,
    low_rank_task,
    mixed_dynamics_step,
    numerical_rank,
    stable_rank,
)
from symlab.engine.experiment import Experiment, register
from symlab.experiments.saddle_to_saddle_plots import plot
from symlab.experiments.saddle_to_saddle_verdict import summarize
from symlab.train import gradient_descent, log_spaced, train_ensemble

PositiveFloat = Annotated[float, Field(gt=0)]
INITS = ("small", "medium", "large")
TU_RANK_RTOL = 0.2  # Tu et al.'s code: matrix_rank(A, atol = s_1 / 5)


class SaddleToSaddleSpec(BaseModel):
    """Sizes, init scales and rules of both parts (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(40, ge=2, description="d: the target is d x d")
    rank: int = Field(3, ge=1, description="k: rank of the target")
    dtype: Literal["float32", "float64"] = Field(
        "float32", description="precision of the phase-diagram cells (Tu et al.: float32)"
    )
    trace_dtype: Literal["float32", "float64"] = Field(
        "float64", description="precision of the traces (a tiny init needs float64 round-off)"
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="where the networks train")
    # traces (Jacot et al. 2021)
    trace_depths: list[Annotated[int, Field(ge=2)]] = Field(
        [2, 3, 4], min_length=1, description="depths L of the traced networks"
    )
    trace_small_scales: list[PositiveFloat] = Field(
        [1e-12, 1e-5, 1e-4], min_length=1, description="small init scale ε, one per depth"
    )
    trace_medium_scale: PositiveFloat = Field(0.1, description="medium init scale ε")
    trace_large_scale: PositiveFloat = Field(1.0, description="large init scale ε")
    trace_width_exponent: float = Field(1.2, gt=0, description="γ_w of the traces: w = d^γ_w")
    trace_spectrum_ratio: float = Field(
        0.25, gt=0, lt=1, description="ρ: target singular values s_i ∝ ρ^(i-1)"
    )
    trace_observed: float = Field(0.8, gt=0, le=1, description="fraction of entries observed")
    trace_steps: int = Field(20000, ge=10, description="most GD steps of a trace")
    trace_records: int = Field(150, ge=10, description="log-spaced records of a trace")
    trace_lr_factor: PositiveFloat = Field(
        2.5, description="η = 1/(factor ...): η λ_max ≈ 0.8 at the fit (Tu et al.'s figure 1: 5)"
    )
    trace_seeds: int = Field(3, ge=1, description="initializations per trace (one ensemble)")
    converge_tol: PositiveFloat = Field(
        0.03, description="a trace stops once every train error is below this times s_k(A*)²/d²"
    )
    # phase diagram (Tu et al. 2024)
    gamma_sigma2: tuple[float, float] = Field((-2.2, -0.8), description="γ_σ² range (low, high)")
    gamma_sigma2_points: int = Field(6, ge=1, description="grid points of γ_σ²")
    gamma_w: tuple[float, float] = Field((1.75, 2.8), description="γ_w range (low, high)")
    gamma_w_points: int = Field(6, ge=1, description="grid points of γ_w")
    noise: float = Field(1.0, ge=0, description="standard deviation of the noise E")
    max_steps: int = Field(750, ge=2, description="most GD steps of a cell")
    lr_factor: PositiveFloat = Field(50.0, description="η = 1/(factor ...) (Tu et al.: 50)")
    phase_seeds: int = Field(1, ge=1, description="initializations per cell")
    # rules of the verdict
    rank_threshold: float = Field(
        0.5, gt=0, lt=1, description="trace rank: #{s_i(A) > threshold * s_k(A*)}"
    )
    flat_fraction: PositiveFloat = Field(0.25, description="plateau: loss change per decade below")
    min_decades: PositiveFloat = Field(0.2, description="plateau: shortest length in decades")
    active_margin: float = Field(
        0.5, ge=0, description="active/mixed cells: γ_σ² + γ_w <= 1 - margin and σ⁴w <= 1"
    )
    sc_tolerance: PositiveFloat = Field(
        0.1, description="GD follows the self-consistent dynamics: max distance below this"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SaddleToSaddleSpec:
        if self.rank > self.dim:
            raise ValueError(f"rank: expected at most dim = {self.dim}, got {self.rank}")
        if len(self.trace_small_scales) != len(self.trace_depths):
            raise ValueError(
                f"trace_small_scales: expected one scale per depth ({len(self.trace_depths)}), "
                f"got {len(self.trace_small_scales)}"
            )
        for name in ("gamma_sigma2", "gamma_w"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: expected (low, high) with low <= high, got {low, high}")
        return self


def grid(low_high: tuple[float, float], points: int) -> list[float]:
    """``points`` evenly spaced values from low to high (Tu et al.: np.linspace)."""
    return [float(v) for v in np.linspace(low_high[0], low_high[1], points)]


def expand(spec: SaddleToSaddleSpec) -> list[dict[str, Any]]:
    """One trace job per (depth, init) with all its seeds, one cell job per (γ_σ², γ_w, seed)."""
    shared = spec.model_dump(
        include={"dim", "rank", "dtype", "device", "rank_threshold", "flat_fraction", "min_decades"}
    )
    trace = spec.model_dump(include={n for n in SaddleToSaddleSpec.model_fields if "trace" in n})
    trace = {k: v for k, v in trace.items() if k not in ("trace_depths", "trace_small_scales")}
    jobs: list[dict[str, Any]] = []
    for depth, small in zip(spec.trace_depths, spec.trace_small_scales):
        scales = {
            "small": small,
            "medium": spec.trace_medium_scale,
            "large": spec.trace_large_scale,
        }
        for init in INITS:
            jobs.append(
                {"part": "trace", "depth": depth, "init": init, "scale": scales[init],
                 "converge_tol": spec.converge_tol, **shared, **trace}
            )  # fmt: skip
    cell = spec.model_dump(include={"noise", "max_steps", "lr_factor"})
    for gs in grid(spec.gamma_sigma2, spec.gamma_sigma2_points):
        for gw in grid(spec.gamma_w, spec.gamma_w_points):
            for seed in range(spec.phase_seeds):
                jobs.append(
                    {"part": "cell", "depth": 2, "gamma_sigma2": gs, "gamma_w": gw, "seed": seed,
                     **shared, **cell}
                )  # fmt: skip
    return jobs


def saddle_loss(s_star: torch.Tensor, rank: int, d: int) -> float:
    """Error per entry at the rank-r saddle that has learned the r largest target modes,
    Σ_{i>r} s_i(A*)² / d² (exact at full observation; the plateau level of saddle-to-saddle)."""
    return float(s_star[rank:].square().sum()) / d**2


def count_jobs(spec: SaddleToSaddleSpec) -> int:
    """len(expand(spec)) from the grid sizes, without building the jobs."""
    traces = min(len(spec.trace_depths), len(spec.trace_small_scales)) * len(INITS)
    return traces + spec.gamma_sigma2_points * spec.gamma_w_points * spec.phase_seeds


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """A trace (:func:`run_trace`) or a phase-diagram cell (:func:`run_cell`)."""
    return run_trace(params) if params["part"] == "trace" else run_cell(params)


def _dtype(name: str) -> torch.dtype:
    return torch.float64 if name == "float64" else torch.float32


def run_trace(params: dict[str, Any]) -> dict[str, Any]:
    """``trace_seeds`` networks of one depth and init scale, trained at once (``train_ensemble``)
    on one completion task; records at log-spaced steps; plateaus and end point per seed."""
    d, k, depth = int(params["dim"]), int(params["rank"]), int(params["depth"])
    dtype = _dtype(params["trace_dtype"])
    task = low_rank_task(
        d, k, spectrum="geometric", ratio=params["trace_spectrum_ratio"],
        observed=params["trace_observed"], seed=0, dtype=dtype,
    ).to(params["device"])  # fmt: skip
    s_star = torch.linalg.svdvals(task.target.double())
    width = max(1, round(d ** params["trace_width_exponent"]))
    variance = init_variance(params["scale"], depth, width, d, float(s_star[0]))
    lr = dln_learning_rate(depth, width, variance, float(s_star[0]), d, params["trace_lr_factor"])
    seeds = list(range(int(params["trace_seeds"])))
    models = [
        DeepLinearNetwork(d, d, width, depth, variance, seed=s, dtype=dtype).to(params["device"])
        for s in seeds
    ]
    steps_max = int(params["trace_steps"])
    schedule = log_spaced(steps_max, int(params["trace_records"]))
    steps, train, test, spectra, first = [], [], [], [], []

    def record(step: int, a: torch.Tensor) -> None:
        a = a.detach().double()
        steps.append(step)
        train.append(task.train_error(a).tolist())
        test.append(task.test_error(a).tolist())
        spectra.append(torch.linalg.svdvals(a).tolist())
        first.append(a[0].clone())

    # converged: the weakest target mode is learned (its loss share s_k(A*)²/d² mostly gone)
    floor = params["converge_tol"] * float(s_star[k - 1]) ** 2 / d**2

    def callback(step: int, stacked: dict[str, torch.Tensor]) -> bool:
        record(step, end_to_end_matrix([stacked[f"layers.{i}.weight"] for i in range(depth)]))
        return step > 0 and max(train[-1]) <= floor

    result = train_ensemble(
        models, task.data(), lr=lr, steps=steps_max, loss=task.loss(), seeds=seeds,
        record_every=[0], callback=callback, callback_every=schedule,
    )  # fmt: skip
    n_steps = result.trajectories[0].n_steps
    if steps[-1] != n_steps:
        record(
            n_steps, end_to_end_matrix([result.params[f"layers.{i}.weight"] for i in range(depth)])
        )
    spectra_arr = np.asarray(spectra)  # (records, seeds, d)
    threshold = params["rank_threshold"] * float(s_star[k - 1])
    ranks = (spectra_arr > threshold).sum(axis=2)  # (records, seeds)
    train_arr, test_arr = np.asarray(train), np.asarray(test)
    plateaus, sequences, s2s = [], [], []
    for s in seeds:
        found = detect_plateaus(
            steps, train_arr[:, s], ranks[:, s], flat_fraction=params["flat_fraction"],
            min_decades=params["min_decades"], floor=floor,
        )  # fmt: skip
        plateaus.append(
            [{**p.__dict__, "predicted_loss": saddle_loss(s_star, p.rank, d)} for p in found]
        )
        sequences.append([p.rank for p in found])
        s2s.append(is_saddle_to_saddle(found, k))
    end = spectra_arr[-1]
    row = {
        "width": width,
        "variance": variance,
        "gamma_sigma2_equiv": math.log(variance) / math.log(d),
        "lr": lr,
        "n_steps": n_steps,
        "stop_reason": result.trajectories[0].stop_reason,
        "target_singular_values": s_star[: k + 2].tolist(),
        "target_stable_rank": stable_rank(s_star),
        "steps": steps,
        "train_error": train_arr.T.tolist(),  # per seed
        "test_error": test_arr.T.tolist(),
        "singular_values": spectra_arr[:, :, : k + 3].transpose(1, 0, 2).tolist(),
        "ranks": ranks.T.tolist(),
        "plateaus": plateaus,
        "plateau_ranks": sequences,
        "saddle_to_saddle": s2s,
        "end_rank": ranks[-1].tolist(),
        "end_numerical_rank": [numerical_rank(s, rtol=TU_RANK_RTOL) for s in end],
        "end_stable_rank": [stable_rank(s) for s in end],
        "end_test_error": test_arr[-1].tolist(),
        "end_train_error": train_arr[-1].tolist(),
        "sc_distance_max": math.nan,
        "sc_singular_values": [],
    }
    if depth == 2:  # the self-consistent dynamics beside the first seed, same A_0 and step
        sc = integrate_mixed_dynamics(
            first[0], task.observations.double(), scale=variance * width, lr=lr, steps=n_steps,
            mask=task.mask, record_steps=steps,
        )  # fmt: skip
        gaps = (torch.stack(first) - sc.matrices).flatten(1).norm(dim=1) / task.target.norm()
        row["sc_distance_max"] = float(gaps.max())
        row["sc_singular_values"] = torch.linalg.svdvals(sc.matrices)[:, : k + 3].tolist()
    return row


class CellMonitor:
    """The callback of a phase-diagram cell: at every step t it records the train and test
    errors of A_t, keeps the A_t of least test error, measures ‖A_t − B_t‖_F / ‖A*‖_F against
    the self-consistent dynamics B_t (advanced here one Euler step per GD step), and asks to stop
    by Tu et al.'s rule (module docstring)."""

    def __init__(self, task: MatrixTask, scale: float, lr: float):
        self.task, self.scale, self.lr = task, scale, lr
        self.train: list[float] = []
        self.test: list[float] = []
        self.sc: torch.Tensor | None = None
        self.sc_distance = 0.0
        self.best: tuple[float, int, torch.Tensor | None] = (math.inf, -1, None)
        self.norm = float(task.target.double().norm())

    def __call__(self, step: int, model: DeepLinearNetwork) -> bool:
        with torch.no_grad():
            a = model.end_to_end().double()
        self.train.append(float(self.task.train_error(a)))
        self.test.append(float(self.task.test_error(a)))
        if self.test[-1] < self.best[0]:
            self.best = (self.test[-1], step, a.clone())
        self.sc = a.clone() if self.sc is None else self.sc
        self.sc_distance = max(self.sc_distance, float((a - self.sc).norm()) / self.norm)
        self.sc = mixed_dynamics_step(
            self.sc, self.task.observations.double(), scale=self.scale, lr=self.lr,
            mask=self.task.mask,
        )  # fmt: skip
        return self.stop()

    def stop(self) -> bool:
        """Tu et al.'s early stopping, as in their ``main.ipynb``."""
        train, test = self.train, self.test
        if train[-1] < 1e-3:
            return True
        if len(train) > 4 and test[-3] < test[-2] < test[-1]:
            return True
        return len(train) > 4 and abs(train[-1] - train[-2]) < 2e-4 and train[0] - train[-1] > 1e-2


def run_cell(params: dict[str, Any]) -> dict[str, Any]:
    """One two-layer net at (γ_σ², γ_w): GD through :func:`symlab.train.gradient_descent`."""
    d, k = int(params["dim"]), int(params["rank"])
    gs, gw = float(params["gamma_sigma2"]), float(params["gamma_w"])
    task = low_rank_task(d, k, noise=params["noise"], seed=0, dtype=_dtype(params["dtype"]))
    task = task.to(params["device"])
    s_star = torch.linalg.svdvals(task.target.double())
    width, variance = int(d**gw), d**gs  # Tu et al.: w = int(d ** gamma_w)
    lr = dln_learning_rate(2, width, variance, float(s_star[0]), d, params["lr_factor"])
    model = DeepLinearNetwork(d, d, width, 2, variance, seed=1000 + int(params["seed"]),
                              dtype=_dtype(params["dtype"])).to(params["device"])  # fmt: skip
    monitor = CellMonitor(task, variance * width, lr)
    trajectory = gradient_descent(
        model, task.data(), lr=lr, steps=int(params["max_steps"]), loss=task.loss(),
        record_every=[0], record_grad_norm=False, callback=monitor,
    )  # fmt: skip
    best_error, best_step, best = monitor.best
    s = torch.linalg.svdvals(best)
    return {
        "width": width,
        "variance": variance,
        "lr": lr,
        "lazy": bool(gs + gw > 1),
        "below_noise_line": bool(2 * gs + gw < 0),
        "min_test_error": best_error,
        "best_step": best_step,
        "stable_rank": stable_rank(s),
        "numerical_rank": numerical_rank(s, rtol=TU_RANK_RTOL),
        "gap_ratio": float(s[k - 1] / s[k]) if float(s[k]) > 0 else math.inf,
        "target_stable_rank": stable_rank(s_star),
        "n_steps": trajectory.n_steps,
        "stop_reason": trajectory.stop_reason,
        "final_train_error": monitor.train[-1],
        "final_test_error": monitor.test[-1],
        "sc_distance_max": monitor.sc_distance,
    }


EXPERIMENT = register(
    Experiment(
        name="saddle-to-saddle",
        description=(
            "Deep linear nets from small to large init: saddle-to-saddle plateaus and the rank "
            "sequence (Jacot et al. 2021); lazy/active phase diagram, rank at the best test error "
            "and the self-consistent dynamics (Tu, Aranguri & Jacot 2024)."
        ),
        spec_model=SaddleToSaddleSpec,
        version="1",
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
