"""Study ``critical-points``: where does training go in a mildly overparameterised teacher–student?

Şimşek, Ged, Jacot, Spadaro, Hongler, Gerstner, Brea, "Geometry of the Loss Landscape in
Overparameterized Neural Networks: Symmetries and Invariances" (ICML 2021): for a bias-free
two-layer student f(x) = Σ_{j≤m} a_j σ(w_j·x) of an irreducible width-r* teacher, the zero-loss set
is a union of T(r*, m) affine subspaces and every width-r critical point (r < r*) gives G(r, m)
symmetry-induced subspaces of critical points (Fukumizu & Amari 2000; Zhang et al. 2021). The
paper reports that with mild overparameterisation h = m − r* gradient training reaches zero loss
only for a fraction of initialisations, growing with h as global-minimum subspaces outnumber
saddle subspaces. This study trains students of widths m = r* − 1 … r* + h_max from many seeds to
a critical point in float64 (L-BFGS, then damped Newton, gradient ∞-norm ≤ ``grad_tol``) and
classifies each end point from its neurons and Hessian inertia:

- ``global minimum``: loss ≈ 0; each neuron duplicates a teacher neuron (label i) or is zero-type
  (a_j = 0) or sits in a zero-sum group; ``global minimum (other)`` if a neuron matches nothing;
- ``symmetry-induced saddle`` / ``symmetry-induced minimum``: loss > 0 and merging duplicate
  neurons and dropping zero-output groups gives a narrower critical net (width ``reduced_width``);
- ``other saddle`` / ``other minimum``: loss > 0 and irreducible; ``not converged`` otherwise.

Activations: ``g`` = sigmoid(4z) + softplus(z) (Şimşek et al. 2021; Martinelli et al. 2024) meets
the paper's assumptions (σ(0) ≠ 0, infinitely many non-zero odd and even derivatives at 0).
``softplus`` misses them (softplus(z) − z/2 is even, so ±w pairs add a linear function: extra,
non-permutation degeneracies). ``relu`` is a contrast outside the theory: it is not
differentiable (Hessians and the duplicate/saddle calculus hold only piecewise), its positive
homogeneity σ(cz) = cσ(z) gives continuous rescaling families (neurons are compared after moving
‖w_j‖ into a_j), and dead neurons (never active on the data) are flat without being zero-type; moreover
relu(z) − relu(−z) = z, so pairs of opposite neurons add linear functions and many zero-loss
points are not duplicates of teacher neurons (they appear as ``global minimum (other)``).
``tanh`` is odd, a σ(w·x) = (−a) σ(−w·x): its neurons are compared up to this sign flip.

Training (``symlab.critical.train_to_critical``): L-BFGS, then Levenberg–Marquardt on the
residuals, then damped Newton on ∇L = 0. A zero-loss point (loss ≤ ``zero_loss_tol`` · mean y²)
is a global minimum whatever its gradient; a positive-loss point counts only if its gradient
∞-norm is ≤ ``grad_tol``, else it is ``not converged`` (slow, degenerate approaches; ReLU kinks).

A second job type measures condensation (Luo et al. 2021; Zhou et al. 2022): a wide tanh net
with biases, trained by Adam from small initialisation on a 1-D target; the number of effective
neurons (orientation clusters, ``symlab.critical.condensation``; u and −u are one orientation
since tanh is odd) is tracked over training.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats
from torch import nn

from symlab.critical.condensation import effective_neuron_count, neuron_orientations
from symlab.critical.counts import count_global_minima_subspaces, count_symmetry_induced_subspaces
from symlab.critical.criticality import hessian_inertia, train_to_critical
from symlab.critical.teacher_student import (
    CATEGORIES,
    classify,
    make_teacher,
    reduced_gradient_norm,
    two_layer,
)
from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.figures import save_figure
from symlab.stats import wilson_interval
from symlab.train import adam, mse_loss

Activation = Literal["g", "softplus", "tanh", "relu"]
PositiveInt = Annotated[int, Field(ge=1)]


class CriticalPointsSpec(BaseModel):
    """Teacher–student grid (bias-free two-layer nets) and the condensation run."""

    model_config = ConfigDict(extra="forbid")

    input_dim: PositiveInt = Field(description="input dimension d")
    teacher_width: int = Field(ge=2, description="teacher width r* (irreducible teacher)")
    max_overparameterization: int = Field(
        ge=0, description="largest h = m - r*; student widths m = r*-1 .. r*+h"
    )
    activations: list[Activation] = Field(
        min_length=1, description="activations (g, softplus, tanh, relu)"
    )
    teachers: PositiveInt = Field(description="teacher draws (seeds 0 .. teachers-1)")
    seeds: PositiveInt = Field(description="student initialisations per teacher and width")
    n_samples: PositiveInt = Field(description="training inputs x ~ N(0, I_d)")
    max_iter: PositiveInt = Field(
        default=3000, description="L-BFGS iterations before Newton polishing"
    )
    grad_tol: float = Field(
        default=1e-10, gt=0, description="critical point: gradient inf-norm <= grad_tol"
    )
    zero_loss_tol: float = Field(
        default=1e-10, gt=0, description="zero loss: loss <= zero_loss_tol * mean(y^2)"
    )
    duplicate_tol: float = Field(
        default=1e-4, gt=0, description="relative inf-distance for equal neurons / zero outputs"
    )
    condensation_width: int = Field(
        default=100, ge=0, description="width of the condensation net (0: skip)"
    )
    condensation_steps: int = Field(
        default=3000, ge=1, description="Adam steps of the condensation run"
    )
    condensation_seeds: int = Field(default=1, ge=0, description="condensation runs")


def expand(spec: CriticalPointsSpec) -> list[dict]:
    """One job per (activation, teacher, width, seed), plus the condensation runs."""
    jobs: list[dict] = []
    r = spec.teacher_width
    widths = range(r - 1, r + spec.max_overparameterization + 1)
    for activation, teacher, m, seed in itertools.product(
        spec.activations, range(spec.teachers), widths, range(spec.seeds)
    ):
        jobs.append({
            "kind": "teacher_student", "activation": activation, "teacher_seed": teacher,
            "m": m, "seed": seed, "input_dim": spec.input_dim, "teacher_width": r,
            "n_samples": spec.n_samples, "max_iter": spec.max_iter, "grad_tol": spec.grad_tol,
            "zero_loss_tol": spec.zero_loss_tol, "duplicate_tol": spec.duplicate_tol,
        })  # fmt: skip
    if spec.condensation_width > 0:
        for seed in range(spec.condensation_seeds):
            jobs.append({
                "kind": "condensation", "activation": "tanh", "m": spec.condensation_width,
                "seed": seed, "steps": spec.condensation_steps,
            })  # fmt: skip
    return jobs


def run_job(params: dict) -> dict:
    """Train one student to a critical point and classify it, or run one condensation job."""
    torch.set_num_threads(1)  # tiny dense problems: threads only add contention between workers
    if params["kind"] == "condensation":
        return _condensation(params)
    start = time.perf_counter()
    d, r, m = params["input_dim"], params["teacher_width"], params["m"]
    activation = params["activation"]
    teacher = make_teacher(d, r, activation, params["teacher_seed"])
    g = torch.Generator().manual_seed(20_000 + params["teacher_seed"])
    x = torch.randn(params["n_samples"], d, generator=g, dtype=torch.float64)
    y = teacher(x).detach()
    g = torch.Generator().manual_seed(
        1_000_003 * params["teacher_seed"] + 7919 * m + params["seed"]
    )
    student = two_layer(
        torch.randn(m, d, generator=g, dtype=torch.float64),
        torch.randn(m, generator=g, dtype=torch.float64) / m**0.5,
        activation,
    )
    result = train_to_critical(student, (x, y), tol=params["grad_tol"], max_iter=params["max_iter"])
    zero_loss = result.loss <= params["zero_loss_tol"] * float((y**2).mean())
    inertia = hessian_inertia(student, (x, y), return_eigenvalues=False)
    row = classify(
        student, teacher, activation, zero_loss=zero_loss, converged=result.converged,
        negative=inertia.negative, tol=params["duplicate_tol"], inputs=x,
    )  # fmt: skip
    row.update({
        "h": m - r, "converged": result.converged, "loss": result.loss, "grad_norm": result.grad_norm,
        "zero_loss": bool(zero_loss), "n_negative": inertia.negative,
        "n_zero": inertia.zero, "n_positive": inertia.positive, "inertia_gap": inertia.gap,
        "lbfgs_iterations": result.lbfgs_iterations, "newton_iterations": result.newton_iterations,
        "max_abs_output_weight": float(student[2].weight.detach().abs().max()),
        "reduced_grad_norm": reduced_gradient_norm(student, activation, (x, y), params["duplicate_tol"])
        if result.converged or zero_loss else math.nan,
        "seconds": time.perf_counter() - start,
    })  # fmt: skip
    return row


def _condensation(params: dict) -> dict:
    """Wide tanh net with biases, init N(0, 1/m²) (γ = 2, small), Adam on y = tanh(3x) − x/2."""
    m, steps = params["m"], params["steps"]
    g = torch.Generator().manual_seed(params["seed"])
    x = torch.linspace(-2, 2, 64, dtype=torch.float64)[:, None]
    y = torch.tanh(3 * x) - 0.5 * x
    first, second = nn.Linear(1, m, dtype=torch.float64), nn.Linear(m, 1, dtype=torch.float64)
    with torch.no_grad():
        for p in (*first.parameters(), *second.parameters()):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / m)
    model = nn.Sequential(first, nn.Tanh(), second)
    history: dict[str, list] = {"step": [], "effective_neurons": [], "loss": []}

    def track(step: int, net: nn.Module) -> None:
        history["step"].append(step)
        history["effective_neurons"].append(effective_neuron_count(net))
        with torch.no_grad():
            history["loss"].append(float(mse_loss(net(x), y)))

    every = max(steps // 30, 1)
    trajectory = adam(
        model,
        (x, y),
        lr=5e-3,
        steps=steps,
        record_every=steps,
        callback=track,
        callback_every=every,
    )
    track(steps, model)
    u, amplitude = neuron_orientations(model)
    return {
        "steps_tracked": history["step"], "effective_neurons_tracked": history["effective_neurons"],
        "loss_tracked": history["loss"], "effective_neurons_final": history["effective_neurons"][-1],
        "loss": trajectory.final_loss, "orientation_angle": torch.atan2(u[:, 1], u[:, 0]).tolist(),
        "amplitude": amplitude.tolist(),
    }  # fmt: skip


def _teacher_rows(rows: pd.DataFrame) -> pd.DataFrame:
    if "kind" not in rows:
        return rows
    return rows[rows["kind"] == "teacher_student"]


def summarize(rows: pd.DataFrame, spec: CriticalPointsSpec) -> Summary:
    """Per (activation, m): zero-loss fraction with Wilson 95% interval and category counts; T, G."""
    runs = _teacher_rows(rows)
    r = spec.teacher_width
    records = []
    for (activation, m), cell in runs.groupby(["activation", "m"], sort=True):
        hits, n = int(cell["zero_loss"].sum()), len(cell)
        low, high = wilson_interval(hits, n)
        record = {
            "activation": activation, "m": int(m), "h": int(m) - r, "runs": n,
            "converged": int(cell["converged"].sum()), "zero_loss": hits,
            "fraction_zero_loss": hits / n, "ci_low": low, "ci_high": high,
            "T(r*,m)": count_global_minima_subspaces(r, int(m)),
            "G(r*-1,m)": count_symmetry_induced_subspaces(r - 1, int(m)),
        }  # fmt: skip
        counts = cell["category"].value_counts()
        record.update({c: int(counts.get(c, 0)) for c in CATEGORIES})
        records.append(record)
    table = pd.DataFrame.from_records(records)
    clauses = []
    for activation, part in runs[runs["h"] >= 0].groupby("activation", sort=True):
        zero = part["zero_loss"].astype(float)
        if zero.nunique() > 1 and part["h"].nunique() > 1:
            rho, p = stats.spearmanr(part["h"], zero, alternative="greater")
        else:
            rho, p = 0.0, 1.0
        cells = table[(table["activation"] == activation) & (table["h"] >= 0)].sort_values("h")
        fractions = ", ".join(f"{v:.2f}" for v in cells["fraction_zero_loss"])
        hs = ", ".join(str(int(v)) for v in cells["h"])
        clauses.append(
            f"{activation}: {fractions} at h = {hs} (one-sided Spearman ρ = {rho:+.2f}, "
            f"p = {p:.2g}, {len(part)} runs)"
        )
    saddles = int(runs["category"].str.startswith("symmetry-induced").sum())
    unconverged = ", ".join(
        f"{int((part['category'] == 'not converged').sum())} of {len(part)} {activation}"
        for activation, part in runs.groupby("activation", sort=True)
    )
    verdict = (
        f"Fraction of students (teacher width r* = {r}, d = {spec.input_dim}, "
        f"{spec.teachers} teacher(s) × {spec.seeds} seeds) reaching zero loss vs "
        f"overparameterisation h = m − r* ≥ 0: " + "; ".join(clauses) + ". "
        f"The test is Spearman's rank correlation between h and the zero-loss indicator over runs, "
        f"one-sided for an increase; a positive ρ with p < 0.05 supports the paper's claim that "
        f"zero loss becomes more likely as h grows, otherwise the grid does not show it. "
        f"{saddles} of {len(runs)} end points were symmetry-induced critical points (duplicated "
        f"or zero-output neurons of a narrower critical net); runs that did not reach gradient ≤ "
        f"{spec.grad_tol:g} at positive loss: {unconverged} (counted as not at zero loss). The "
        f"trend need not be monotone cell by cell. Runs of one teacher are not independent "
        f"draws of the landscape, so the p-value ignores teacher-to-teacher variation."
    )
    extras: dict = {}
    if "kind" in rows and (rows["kind"] == "condensation").any():
        cond = rows[rows["kind"] == "condensation"].iloc[0]
        tracked = list(cond["effective_neurons_tracked"])
        extras["condensation"] = {
            "effective_neurons_start": tracked[0],
            "effective_neurons_max": max(tracked),
            "effective_neurons_final": int(cond["effective_neurons_final"]),
            "width": int(cond["m"]),
        }
        verdict += (
            f" Condensation: a width-{int(cond['m'])} tanh net from small initialisation ends with "
            f"{int(cond['effective_neurons_final'])} effective neurons (orientation clusters at "
            f"distance 1 − |cos| ≤ 0.01: tanh is odd, so u and −u are one orientation)."
        )
    return Summary(table=table, verdict=verdict, extras=extras)


def plot(rows: pd.DataFrame, spec: CriticalPointsSpec, out_dir: Path) -> list[Path]:
    """Zero-loss fraction vs h (with category composition), T and G vs m, condensation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = summarize(rows, spec).table
    r, paths = spec.teacher_width, []

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = list(table.groupby("activation", sort=True))
    for index, (activation, part) in enumerate(groups):
        part = part.sort_values("h")
        # Wilson bounds can miss the estimate by rounding (~1e-16) at 0 and 1: clip to >= 0
        err = np.clip(
            [
                part["fraction_zero_loss"] - part["ci_low"],
                part["ci_high"] - part["fraction_zero_loss"],
            ],
            0.0,
            None,
        )
        shift = 0.06 * (index - (len(groups) - 1) / 2)  # dodge overlapping error bars
        left.errorbar(
            part["h"] + shift,
            part["fraction_zero_loss"],
            yerr=err,
            marker="o",
            capsize=3,
            label=activation,
        )
    left.set(xlabel="overparameterisation h = m − r*  (neurons)", ylabel="fraction of runs at zero loss",
             title=f"Zero-loss fraction (r* = {r}, d = {spec.input_dim}; Wilson 95% CI)", ylim=(-0.05, 1.05))  # fmt: skip
    left.legend(title="activation")
    main = table[table["activation"] == table["activation"].iloc[0]].sort_values("h")
    bottom = np.zeros(len(main))
    for category in CATEGORIES:
        values = main[category].to_numpy() / main["runs"].to_numpy()
        if values.any():
            right.bar(
                main["h"],
                values,
                bottom=bottom,
                label=category,
                color=f"C{CATEGORIES.index(category)}",
            )
            bottom += values
    right.set(xlabel="overparameterisation h = m − r*  (neurons)", ylabel="fraction of runs",
              title=f"End-point types ({main['activation'].iloc[0]})")  # fmt: skip
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    paths += save_figure(fig, out_dir, "zero_loss_fraction")

    fig, ax = plt.subplots(figsize=(6, 4.2))
    ms = np.arange(r, r + max(spec.max_overparameterization, 8) + 1)
    ax.semilogy(
        ms,
        [count_global_minima_subspaces(r, int(m)) for m in ms],
        "o-",
        label=f"T(r*={r}, m) global-minimum subspaces",
    )
    for rr in range(max(1, r - 2), r):
        ax.semilogy(
            ms,
            [count_symmetry_induced_subspaces(rr, int(m)) for m in ms],
            "s--",
            label=f"G({rr}, m) saddle subspaces per width-{rr} critical point",
        )
    ax.set(
        xlabel="student width m  (neurons)",
        ylabel="number of affine subspaces",
        title="Counts of critical subspaces (Şimşek et al. 2021)",
    )
    ax.legend(fontsize=8)
    paths += save_figure(fig, out_dir, "subspace_counts")

    if "kind" in rows and (rows["kind"] == "condensation").any():
        cond = rows[rows["kind"] == "condensation"].iloc[0]
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
        fig.subplots_adjust(wspace=0.45)
        left.plot(
            cond["steps_tracked"],
            cond["effective_neurons_tracked"],
            "o-",
            color="C0",
            label="effective neurons",
        )
        left.set(
            xlabel="Adam step",
            ylabel="effective neurons (orientation clusters)",
            title=f"Condensation, width {int(cond['m'])} tanh, small init",
        )
        twin = left.twinx()
        twin.semilogy(
            cond["steps_tracked"], cond["loss_tracked"], color="C1", label="training loss"
        )
        twin.set_ylabel("training loss (MSE)")
        left.legend(loc="upper left", fontsize=8)
        twin.legend(loc="upper right", fontsize=8)
        # tanh is odd: (w, b) and (−w, −b) are one orientation, so fold the angle modulo π
        angle = np.asarray(cond["orientation_angle"], dtype=float)
        right.scatter(np.mod(angle + np.pi / 2, np.pi) - np.pi / 2, cond["amplitude"], s=10)
        right.set(
            xlabel="orientation angle atan2(b_j, w_j) mod π  (rad; ±(w_j, b_j) coincide)",
            ylabel="amplitude |a_j| ‖(w_j, b_j)‖",
            title="Neurons after training",
            yscale="log",
        )
        paths += save_figure(fig, out_dir, "condensation")
    return paths


EXPERIMENT = register(
    Experiment(
        name="critical-points",
        description="Teacher–student training to critical points: zero-loss fraction vs "
        "overparameterisation, symmetry-induced saddles, T/G counts, condensation (Şimşek et al. 2021).",
        spec_model=CriticalPointsSpec,
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
