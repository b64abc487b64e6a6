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
is a global minimum whatever its gradient. A positive-loss point is sorted by its gradient ∞-norm
g into tiers (:func:`critical_tier`): ``critical`` (g ≤ ``grad_tol``), ``polished`` (g ≤
``near_grad_tol`` and a damped-Newton polish reached ``grad_tol``), ``near-critical`` (g ≤
``near_grad_tol``, the polish did not: slow, degenerate approaches to duplicate or zero-output
neurons), each classified as above, or ``not converged`` (g > ``near_grad_tol``; ReLU kinks).

A second job type measures condensation (Luo et al. 2021; Zhou et al. 2022): a wide tanh net
with biases, trained by Adam from small initialisation on a 1-D target; the number of effective
neurons (orientation clusters, ``symlab.critical.condensation``; u and −u are one orientation
since tanh is odd) is tracked over training.

This module holds the spec and the jobs; the summary table, verdict and figures are in
:mod:`symlab.experiments.critical_points_report`.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from symlab.critical.condensation import effective_neuron_count, neuron_orientations
from symlab.critical.criticality import hessian_inertia, train_to_critical
from symlab.critical.teacher_student import classify, make_teacher, reduced_gradient_norm, two_layer
from symlab.engine.experiment import Experiment, register
from symlab.experiments.critical_points_report import CRITICAL_TIERS, plot, summarize
from symlab.train import adam, loss_and_grad_norm, mse_loss, newton

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
    near_grad_tol: float = Field(
        default=1e-6,
        gt=0,
        description="near-critical: gradient inf-norm <= near_grad_tol (a Newton polish to "
        "grad_tol is attempted; classified, and counted apart)",
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
            "near_grad_tol": spec.near_grad_tol,
            "zero_loss_tol": spec.zero_loss_tol, "duplicate_tol": spec.duplicate_tol,
        })  # fmt: skip
    if spec.condensation_width > 0:
        for seed in range(spec.condensation_seeds):
            jobs.append({
                "kind": "condensation", "activation": "tanh", "m": spec.condensation_width,
                "seed": seed, "steps": spec.condensation_steps,
            })  # fmt: skip
    return jobs


def count_jobs(spec: CriticalPointsSpec) -> int:
    """len(expand(spec)) from the grid sizes, without building the jobs."""
    widths = max(0, spec.max_overparameterization + 2)  # m = r - 1 .. r + max_overparameterization
    students = len(spec.activations) * spec.teachers * widths * spec.seeds
    return students + (spec.condensation_seeds if spec.condensation_width > 0 else 0)


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
    tier, loss_value, grad_norm, polish_steps = critical_tier(
        student, (x, y), result, zero_loss, params["grad_tol"], params["near_grad_tol"]
    )
    zero_loss = zero_loss or loss_value <= params["zero_loss_tol"] * float((y**2).mean())
    converged = tier in CRITICAL_TIERS
    inertia = hessian_inertia(student, (x, y), return_eigenvalues=False)
    row = classify(
        student, teacher, activation, zero_loss=zero_loss, converged=converged,
        negative=inertia.negative, tol=params["duplicate_tol"], inputs=x,
    )  # fmt: skip
    row.update({
        "h": m - r, "converged": converged, "tier": tier, "polish_steps": polish_steps,
        "loss": loss_value, "grad_norm": grad_norm,
        "zero_loss": bool(zero_loss), "n_negative": inertia.negative,
        "n_zero": inertia.zero, "n_positive": inertia.positive, "inertia_gap": inertia.gap,
        "lbfgs_iterations": result.lbfgs_iterations, "newton_iterations": result.newton_iterations,
        "max_abs_output_weight": float(student[2].weight.detach().abs().max()),
        "reduced_grad_norm": reduced_gradient_norm(student, activation, (x, y), params["duplicate_tol"])
        if converged or zero_loss else math.nan,
        "seconds": time.perf_counter() - start,
    })  # fmt: skip
    return row


def critical_tier(
    model: nn.Module, data, result, zero_loss: bool, grad_tol: float, near_grad_tol: float
) -> tuple[str, float, float, int]:
    """Tier of an end point of :func:`train_to_critical` (modifies ``model`` by the polish):
    "zero loss"; "critical" (g ≤ grad_tol); "polished" (grad_tol < g ≤ near_grad_tol, and up to
    200 damped Newton steps, :func:`symlab.train.newton`, bring g ≤ grad_tol); "near-critical"
    (g ≤ near_grad_tol, the polish did not reach grad_tol); "not converged" (g > near_grad_tol).
    Returns (tier, loss, g, Newton steps of the polish)."""
    if zero_loss:
        return "zero loss", result.loss, result.grad_norm, 0
    if result.converged:
        return "critical", result.loss, result.grad_norm, 0
    if not result.grad_norm <= near_grad_tol:
        return "not converged", result.loss, result.grad_norm, 0
    snapshot = [p.detach().clone() for p in model.parameters()]
    polish = newton(model, data, tol=grad_tol * 1e-3, max_iter=200)
    loss_value, grad_norm = loss_and_grad_norm(model, data)
    if math.isfinite(grad_norm) and grad_norm <= grad_tol:
        return "polished", loss_value, grad_norm, polish.n_steps
    with torch.no_grad():  # keep the better of the two points
        if not (math.isfinite(grad_norm) and grad_norm < result.grad_norm):
            for p, old in zip(model.parameters(), snapshot):
                p.copy_(old)
            loss_value, grad_norm = result.loss, result.grad_norm
    return "near-critical", loss_value, grad_norm, polish.n_steps


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


EXPERIMENT = register(
    Experiment(
        name="critical-points",
        description="Teacher–student training to critical points: zero-loss fraction vs "
        "overparameterisation, symmetry-induced saddles, T/G counts, condensation (Şimşek et al. 2021).",
        spec_model=CriticalPointsSpec,
        version="2",  # 2: tiers of the end points (near-critical ones polished and classified)
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
