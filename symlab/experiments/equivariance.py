"""Study ``equivariance``: the cost of symmetry (Abbe & Boix-Adserà, "On the non-universality of deep
learning: quantifying the cost of symmetry", NeurIPS 2022, arXiv 2208.03113).

(a) Exact equivariance. A learner is G-equivariant when training on (g·x, y) gives the model
trained on (x, y) composed with g⁻¹. For a two-layer net f(x) = (1/N) Σ_j a_j σ(⟨w_j, x⟩) whose
first-layer law is invariant under g (here √d·w ~ N(0, I), invariant under every orthogonal g), the
coupling "start B at W_B(0) = W_A(0) gᵀ, train A on (x, y) and B on (g·x, y) with the same seed"
makes W_B(t) = W_A(t) gᵀ and a_B(t) = a_A(t) for every t when the update commutes with g [derived]:
SGD and GD for every orthogonal g; Adam only for signed permutations (its update is elementwise);
noisy GD when B's noise draws are A's transformed by g (equal in law). Measured: the relative
discrepancy max(‖W_B g − W_A‖, ‖a_B − a_A‖)/‖θ_A‖ after training, in float64, against rounding
(≤ ``rounding`` = 1e-9) and against "broken" (≥ ``broken`` = 1e-3). A fixed random 0/1 mask on the
first layer (not moved by g) makes the architecture non-equivariant, and so do independent noise
draws pathwise.
(b) Orbit hardness. An equivariant learner learns every member of the orbit {f∘g} in the same time
in law: online SGD on f and on f∘g (one fixed signed permutation g per cell, independent seeds)
gives learning-time samples compared by Mann–Whitney and two-sample Kolmogorov–Smirnov tests. For
a degree-k parity the orbit has C(d, k) members (cross-predictability 1/C(d, k)); the samples·d
(time) to learn it are set against C(d, k). The characterisation of weak learning on the cube
(recalled, not retrieved: weakly learnable iff non-negligible Fourier weight at some degree ≤ k)
is compared with the measured samples to weak learning (relative test error ≤ 1 − ``weak_gain``),
beside each target's degree profile W^k = Σ_{|S|=k} f̂(S)². Network and SGD settings as in the
``staircase`` study (shifted sigmoid s, per-sample step lr/d, batch; secondary or chosen there);
part (b) trains each cell's seeds at once by ``train_ensemble``'s fused closed-form SGD step
(:mod:`symlab.train.two_layer_sgd`), part (a) one run at a time by ``train`` (autograd), the loop
whose equivariance is claimed. With the per-sample step 0.1/d the degree-3 parity is learned from
fewer samples than d² (the staircase study's docstring: ≈ d^{1.5} at this step size), so its
orbit-size and weak-learning exponents fall below the predicted ones for that reason.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from symlab.boolean.mean_field import (
    MeanFieldNet,
    first_passage,
    layer_learning_rates,
    train_on_target,
)
from symlab.boolean.monomials import uniform_cube
from symlab.boolean.orbits import (
    act,
    compose,
    parity_orbit_size,
    random_rotation,
    signed_permutation,
)
from symlab.boolean.targets import MonomialTarget, monomial_target
from symlab.engine.experiment import Experiment, Summary, register
from symlab.train import log_spaced, train

ORBIT_TARGETS: dict[str, tuple[list[list[int]], list[float]]] = {
    "parity2": ([[1, 2]], [1.0]),
    "parity3": ([[1, 2, 3]], [1.0]),
    "mixed": ([[1, 2, 3], [4]], [1.0, 0.5]),  # weak learning through x4, full learning slow
}
EXACT_TARGET = ([[1], [1, 2], [1, 2, 3]], [1.0, 1.0, 1.0])


class EquivarianceSpec(BaseModel):
    """Part (a): exact equivariance of training runs; part (b): learning times over orbits."""

    model_config = ConfigDict(extra="forbid")

    methods: list[Literal["sgd", "adam", "noisy_gd"]] = Field(
        ["sgd", "adam", "noisy_gd"], min_length=1
    )
    groups: list[Literal["signed_permutation", "rotation"]] = Field(
        ["signed_permutation", "rotation"], min_length=1
    )
    architectures: list[Literal["fc", "masked"]] = Field(["fc", "masked"], min_length=1)
    exact_seeds: int = Field(
        3, ge=1, description="coupled pairs of runs per (method, group, arch.)"
    )
    exact_dim: int = Field(12, ge=2, description="d in part (a)")
    exact_width: int = Field(32, ge=1, description="N in part (a)")
    exact_samples: int = Field(128, ge=2, description="training points in part (a)")
    exact_steps: int = Field(200, ge=1, description="training steps in part (a)")
    exact_batch: int = Field(16, ge=1, description="minibatch of SGD and Adam in part (a)")
    exact_lr: float = Field(0.05, gt=0, description="particle step size in part (a)")
    noise_std: float = Field(0.02, gt=0, description="gradient noise τ of noisy GD")
    rounding: float = Field(1e-9, gt=0, description="discrepancy counted as rounding (float64)")
    broken: float = Field(1e-3, gt=0, description="discrepancy counted as broken equivariance")
    orbit_dims: list[int] = Field(min_length=2, description="d in part (b) (>= 6)")
    orbit_targets: list[Literal["parity2", "parity3", "mixed"]] = Field(min_length=1)
    orbit_seeds: int = Field(8, ge=3, description="seeds per orbit member and d")
    width: int = Field(64, ge=1)
    batch: int = Field(16, ge=1)
    lr: float = Field(0.1, gt=0, description="per-sample particle step, times 1/d")
    sigmoid_shift: float = Field(1.5)
    budget: float = Field(400.0, gt=0, description="sample budget per run, in units of d²")
    n_records: int = Field(50, ge=10)
    test_size: int = Field(4096, ge=256)
    learn_fraction: float = Field(0.5, gt=0, lt=1, description="c_S/ĉ_S for 'learned'")
    weak_gain: float = Field(0.1, gt=0, lt=1, description="weak learning: error ≤ (1 − gain)‖f*‖²")
    alpha: float = Field(0.05, gt=0, lt=1, description="test level (Bonferroni over cells)")

    def model_post_init(self, context: Any) -> None:
        if min(self.orbit_dims) < 6 or len(set(self.orbit_dims)) < 2:
            raise ValueError(
                f"orbit_dims: expected two or more distinct values >= 6, got {self.orbit_dims}"
            )


def expand(spec: EquivarianceSpec) -> list[dict[str, Any]]:
    """Part (a): one job per (method, group, architecture); part (b): one per (d, target, member)."""
    exact = spec.model_dump(
        include={n for n in EquivarianceSpec.model_fields if n.startswith("exact_")}
    )
    exact |= {"noise_std": spec.noise_std, "sigmoid_shift": spec.sigmoid_shift}
    orbit = spec.model_dump(
        include={"orbit_seeds", "width", "batch", "lr", "sigmoid_shift", "budget", "n_records",
                 "test_size", "learn_fraction", "weak_gain"}
    )  # fmt: skip
    jobs = [
        {"part": "exact", "method": m, "group": g, "architecture": a, **exact}
        for m in spec.methods for g in spec.groups for a in spec.architectures
    ]  # fmt: skip
    jobs += [
        {"part": "orbit", "d": d, "target": t, "member": member, **orbit}
        for t in spec.orbit_targets for d in spec.orbit_dims for member in ("f", "f∘g")
    ]  # fmt: skip
    return jobs


def count_jobs(spec: EquivarianceSpec) -> int:
    """len(expand(spec)) from the grid sizes, without building the jobs."""
    exact = len(spec.methods) * len(spec.groups) * len(spec.architectures)
    return exact + len(spec.orbit_targets) * len(spec.orbit_dims) * 2


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(1)
    return exact_job(params) if params["part"] == "exact" else orbit_job(params)


def coupled_runs(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Train A on (x, y) and B on (g·x, y) from W_B(0) = W_A(0) gᵀ; discrepancies after training."""
    d, width = params["exact_dim"], params["exact_width"]
    generator = torch.Generator().manual_seed(1000 + seed)
    target = monomial_target(*EXACT_TARGET)
    x = uniform_cube(params["exact_samples"], d, generator, torch.float64)
    y = target(x)[:, None]
    g = (
        signed_permutation(d, generator)
        if params["group"] == "signed_permutation"
        else random_rotation(d, generator)
    )
    mask = (
        (torch.rand(width, d, generator=generator) < 0.5).double()
        if params["architecture"] == "masked"
        else None
    )
    model_a = MeanFieldNet(
        d, width, shift=params["sigmoid_shift"], mask=mask, seed=seed, dtype=torch.float64
    )
    model_b = copy.deepcopy(model_a)
    with torch.no_grad():
        model_b.w.copy_(act(model_a.w, g))
    start = torch.cat([model_a.w.detach().flatten(), model_a.a.detach()])
    method = params["method"]
    options = {
        "method": "adam" if method == "adam" else "sgd", "lr": params["exact_lr"], "steps": params["exact_steps"],
        "param_groups": layer_learning_rates(width, params["exact_lr"], params["exact_lr"]),
        "seed": seed, "record_every": [0],
        "batch_size": None if method == "noisy_gd" else params["exact_batch"],
        "noise_std": params["noise_std"] if method == "noisy_gd" else 0.0,
    }  # fmt: skip
    if method == "adam":  # Adam's steps are not rescaled by N: one step moves each weight by ≈ lr
        options["param_groups"] = None
        options["lr"] = params["exact_lr"] / 10
    independent = copy.deepcopy(model_b)
    train(model_a, (x, y), **options)
    transform = (
        (lambda name, xi: act(xi, g) if name == "w" else xi) if method == "noisy_gd" else None
    )
    train(model_b, (act(x, g), y), noise_transform=transform, **options)
    out = {"discrepancy": relative_gap(model_a, model_b, g)}
    if method == "noisy_gd":  # the same seed, noise draws not moved by g: equal in law only
        train(independent, (act(x, g), y), **options)
        out["discrepancy_independent_noise"] = relative_gap(model_a, independent, g)
    end = torch.cat([model_a.w.detach().flatten(), model_a.a.detach()])
    out["moved"] = float((end - start).norm() / start.norm())
    x_test = uniform_cube(512, d, generator, torch.float64)
    with torch.no_grad():
        gap = (model_b(act(x_test, g)) - model_a(x_test)).abs().max() / model_a(x_test).std()
    out["function_discrepancy"] = float(gap)
    return out


def relative_gap(model_a: MeanFieldNet, model_b: MeanFieldNet, g: torch.Tensor) -> float:
    """‖(W_B g, a_B) − (W_A, a_A)‖ / ‖(W_A, a_A)‖: zero when B is A transformed by g."""
    back = act(model_b.w.detach(), g.T)  # W_B g
    diff = torch.cat(
        [(back - model_a.w.detach()).flatten(), model_b.a.detach() - model_a.a.detach()]
    )
    return float(diff.norm() / torch.cat([model_a.w.detach().flatten(), model_a.a.detach()]).norm())


def exact_job(params: dict[str, Any]) -> dict[str, Any]:
    """Coupled pairs for ``exact_seeds`` seeds; the largest discrepancy over them."""
    runs = [coupled_runs(params, seed) for seed in range(params["exact_seeds"])]
    keys = runs[0].keys()
    return {key: float(max(r[key] for r in runs)) for key in keys}


def orbit_target(name: str, d: int, member: str) -> tuple[MonomialTarget, MonomialTarget]:
    """(f, the member trained): f itself, or f∘g for one signed permutation g fixed by (name, d)."""
    f = monomial_target(*ORBIT_TARGETS[name])
    if member == "f":
        return f, f
    seed = 7 * d + sorted(ORBIT_TARGETS).index(name)
    return f, compose(f, signed_permutation(d, torch.Generator().manual_seed(seed)))


def orbit_job(params: dict[str, Any]) -> dict[str, Any]:
    """Online SGD on f or f∘g for all seeds at once: samples to weak and to full learning."""
    d, batch = int(params["d"]), int(params["batch"])
    f, target = orbit_target(params["target"], d, params["member"])
    coefficients = np.array(target.coefficients)
    budget_steps = max(1, math.ceil(params["budget"] * d * d / batch))
    weak_level = (1 - params["weak_gain"]) * target.norm_squared
    first_done: list[int] = []

    def done(tracker) -> bool:
        learned = (tracker.coefficients[-1] / coefficients >= params["learn_fraction"]).all()
        if not first_done and learned:
            first_done.append(tracker.steps[-1])
        return bool(first_done and tracker.steps[-1] >= 1.2 * first_done[0])

    step = params["lr"] * batch / d
    offset = 0 if params["member"] == "f" else 10_000  # independent seeds for the two members
    start = time.perf_counter()
    run = train_on_target(
        target, d, width=params["width"], seeds=range(offset, offset + params["orbit_seeds"]),
        steps=budget_steps, lr_first=step, lr_second=step, batch=batch,
        shift=params["sigmoid_shift"], test_size=params["test_size"],
        record_every=log_spaced(budget_steps, params["n_records"]), stop_when=done,
    )  # fmt: skip
    samples = run.steps * batch
    ratio = run.coefficients / coefficients  # (T, S, m)
    full, weak = [], []
    for s in range(params["orbit_seeds"]):
        passages = [
            first_passage(samples, ratio[:, s, k], params["learn_fraction"])
            for k in range(len(coefficients))
        ]
        censored = any(c for _, c in passages)
        full.append((samples[-1] if censored else max(t for t, _ in passages), censored))
        weak.append(first_passage(samples, run.test_errors[:, s], weak_level, above=False))
    return {
        "supports": [sorted(s) for s in target.supports],
        "coefficients": list(target.coefficients),
        "full_time": [t for t, _ in full], "full_censored": [c for _, c in full],
        "weak_time": [t for t, _ in weak], "weak_censored": [c for _, c in weak],
        "samples": samples.tolist(),
        "relative_errors": np.round(run.test_errors / target.norm_squared, 5).tolist(),
        "degree_profile": degree_profile(f),
        "orbit_size": orbit_size(f, d),
        "budget_samples": budget_steps * batch,
        "seconds": time.perf_counter() - start,
    }  # fmt: skip


def degree_profile(target: MonomialTarget) -> dict[str, float]:
    """W^k = Σ_{|S|=k} f̂(S)² from the target's Walsh expansion (its supports and coefficients),
    by :func:`symlab.boolean.fourier_weight_by_degree`; the degrees with nonzero weight."""
    from symlab.boolean import fourier_weight_by_degree

    expansion = {
        frozenset(s): float(c) for s, c in zip(target.supports, target.coefficients, strict=True)
    }
    d = max((max(s) for s in expansion if s), default=1)
    weights = fourier_weight_by_degree(expansion, d).tolist()
    return {str(k): w for k, w in enumerate(weights) if w != 0}


def orbit_size(target: MonomialTarget, d: int) -> int | None:
    """C(d, k) for a single monomial of degree k (up to sign); None otherwise."""
    return parity_orbit_size(d, len(target.supports[0])) if len(target.supports) == 1 else None


def summarize(rows: pd.DataFrame, spec: EquivarianceSpec) -> Summary:
    from symlab.experiments.equivariance_report import summarize_all

    return summarize_all(rows, spec)


def plot(rows: pd.DataFrame, spec: EquivarianceSpec, out_dir: Path) -> list[Path]:
    from symlab.experiments.equivariance_report import plot_all

    return plot_all(rows, spec, Path(out_dir))


EXPERIMENT = register(
    Experiment(
        name="equivariance",
        description=(
            "Cost of symmetry: exact equivariance of SGD, Adam and noisy GD under signed "
            "permutations and rotations (and its failure for a masked first layer), and equal "
            "learning times over the orbit {f∘g} (Abbe & Boix-Adserà 2022)."
        ),
        spec_model=EquivarianceSpec,
        version="1",
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
