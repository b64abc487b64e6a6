"""Study ``spectral-bias``: layer-wise spectral bias of deep ReLU networks on the sphere.

Dandi & Jacot, "Understanding layer-wise contributions in deep neural networks through spectral
analysis" (arXiv 2111.03972): split the NTK by layer, Θ = Σ_ℓ Θ_ℓ (:func:`symlab.ntk.layerwise_ntk`);
under gradient flow on ½‖f − y‖² the error falls at rate −dL/dt = Σ_ℓ ⟨r, Θ_ℓ r⟩, so ⟨r, Θ_ℓ r⟩ is
layer ℓ's share of the error reduction. On the sphere each Θ_ℓ is (at infinite width) a
dot-product kernel with eigenvalue λ_{ℓ,k} on the degree-k harmonics; the paper's claim is that
early layers are more biased toward high frequencies than late ones: λ_{ℓ,k} / λ_{ℓ',k} grows with
the degree k when ℓ < ℓ'.

Setting: inputs uniform on S^{d−1}; ReLU MLP (d, w, …, w, 1) with L weight matrices (He init, zero
biases); targets the zonal harmonics f_k(x) = √N(d,k) P_k(⟨x, e_1⟩) of unit norm and pure degree
k = ``degrees`` (:mod:`symlab.ntk.spherical`). Per (degree, seed) one network is trained by
``symlab.train.adam`` (full batch, (1/N)Σ(f − y)²) on N points, and measured at init and after
training on an evaluation rule: the S² product quadrature (d = 3; exact for polynomial kernels
up to the rule's degree, a close approximation for the ReLU NTK: :mod:`symlab.ntk.spherical`) or
``eval_points`` uniform points (U-statistic):

- λ_{ℓ,k} = E[Θ_ℓ(x, x') P_k(⟨x, x'⟩)] (:func:`symlab.ntk.spherical.degree_projections`): the mean
  eigenvalue of layer ℓ's kernel on the degree-k harmonics;
- the share of the error reduction on the target of degree k, ⟨f_k, Θ_ℓ f_k⟩ / ⟨f_k, Θ f_k⟩ (the
  population inner product of the rule: the residual when the output is zero).

Claims (:func:`summarize`), each a least-squares slope of log(early / late) against k with one
intercept per seed (the trained networks of one seed share it) and its Student-t 95% interval (``symlab.stats.fit_slope``),
early = the first weight layer, late = the last: "reproduced" when the interval lies above
``min_log_slope`` (a growth the study resolves), "partly reproduced" when it lies above 0 but not
above that, "opposite" below 0, "not reproduced" when it lies within ±``min_log_slope`` (no growth
at that resolution), "inconclusive" otherwise.

1. ``eigenvalue_ratio_init``: log(λ_{1,k} / λ_{L,k}) at init;
2. ``eigenvalue_ratio_trained``: the same after training on the degree-k target, at its degree;
3. ``share_ratio_trained``: log of the first layer's share of ⟨f_k, Θ f_k⟩ over the last layer's,
   on the kernels after training on f_k (where they have aligned with it). At init this ratio is
   claim 1 again (a rotation-invariant Θ_ℓ has ⟨f_k, Θ_ℓ f_k⟩ = λ_{ℓ,k} on a unit-norm degree-k f_k;
   the quick preset's init shares differ from the eigenvalue ratios by 0-0.3 in the log), so
   it is drawn in the figure but not counted as a claim of its own.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint, field_validator

from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.spec import distinct
from symlab.engine.verdict import Claim, interval_outcome, render
from symlab.experiments.spectral_bias_plots import plot
from symlab.nets import mlp
from symlab.ntk import error_reduction_shares, layerwise_ntk
from symlab.ntk.spherical import (
    MAX_DEGREE,
    degree_projections,
    sphere_quadrature,
    uniform_sphere,
    zonal_harmonic,
)
from symlab.stats import fit_slope
from symlab.train import adam, sample_mse_loss


class SpectralBiasSpec(BaseModel):
    """Deep ReLU MLPs on the sphere, one target harmonic degree per network."""

    model_config = ConfigDict(extra="forbid")

    dim: conint(ge=2, le=64) = Field(3, description="input dimension d (inputs on S^(d-1))")
    degrees: list[conint(ge=1, le=MAX_DEGREE)] = Field(
        [1, 2, 3, 4, 5, 6], min_length=3, description="target degrees k (at least three)"
    )
    depth: conint(ge=2) = Field(4, description="number L of weight matrices")
    width: conint(ge=1) = Field(128, description="hidden width w")
    n_train: conint(ge=2) = Field(200, description="training points N")
    quadrature_nodes: conint(ge=2) = Field(
        16, description="d = 3: Gauss-Legendre nodes n of the S² rule (2n² points)"
    )
    eval_points: conint(ge=10) = Field(600, description="d != 3: uniform evaluation points")
    lr: confloat(gt=0) = Field(1e-3, description="Adam learning rate")
    steps: conint(ge=1) = Field(600, description="Adam steps (full batch)")
    seeds: conint(ge=1) = Field(2, description="seeds 0..seeds-1 (network and data)")
    min_log_slope: confloat(gt=0) = Field(
        0.05,
        description="resolution of the slope: 'reproduced' when its interval lies above this, "
        "'not reproduced' when it lies within ± this",
    )
    dtype: Literal["float32", "float64"] = Field("float64", description="precision")

    @field_validator("degrees")
    @classmethod
    def _distinct(cls, degrees: list[int]) -> list[int]:
        return distinct(degrees, "degrees")


def expand(spec: SpectralBiasSpec) -> list[dict[str, Any]]:
    """One job per (target degree, seed), seed outermost; every job measures all ``degrees``.

    Seeds vary slowest, so a sweep stopped part-way has every target degree for seeds 0..k
    (the degree trend the verdict tests), not all seeds of the low degrees and none of the
    high ones."""
    shared = spec.model_dump(exclude={"seeds", "min_log_slope"})
    return [
        {"degree": k, "seed": seed, **shared} for seed in range(spec.seeds) for k in spec.degrees
    ]


def evaluation_rule(dim: int, nodes: int, points: int, seed: int, dtype) -> tuple:
    """(points, weights or None): the S² product quadrature for d = 3, else uniform points."""
    if dim == 3:
        return sphere_quadrature(nodes, dtype=dtype)
    return uniform_sphere(points, dim, seed=5000 + seed, dtype=dtype), None


def measure(net: torch.nn.Module, x: torch.Tensor, w, degrees: list[int], target: torch.Tensor):
    """(λ_{ℓ,k} as L lists over ``degrees``, shares of ⟨f, Θ_ℓ f⟩ for the target f, layer names)."""
    kernels = layerwise_ntk(net, x, trace=True)
    lam = [list(degree_projections(theta, x, degrees, w).values()) for theta in kernels.values()]
    weights = torch.full((x.shape[0],), 1 / x.shape[0], dtype=x.dtype) if w is None else w
    root = weights.sqrt().to(x.dtype)  # ⟨f, Θ f⟩_w = (√w f)ᵀ Θ_w (√w f), Θ_w = diag(√w) Θ diag(√w)
    scaled = {n: root[:, None] * t * root[None, :] for n, t in kernels.items()}
    if w is None:  # the U-statistic's rule: leave the diagonal out
        scaled = {n: t - torch.diag(torch.diagonal(t)) for n, t in scaled.items()}
    shares = error_reduction_shares(scaled, root * target)
    return lam, list(shares.values()), list(kernels)


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Train one network on the degree-k harmonic; λ_{ℓ,k'} and shares at init and at the end."""
    start = time.perf_counter()
    d, k, seed = int(params["dim"]), int(params["degree"]), int(params["seed"])
    degrees = [int(v) for v in params["degrees"]]
    dtype = getattr(torch, params["dtype"])
    net = mlp([d] + [params["width"]] * (params["depth"] - 1) + [1], seed=seed, dtype=dtype)
    x_eval, w = evaluation_rule(d, params["quadrature_nodes"], params["eval_points"], seed, dtype)
    target_eval = zonal_harmonic(x_eval, k)
    lam_init, share_init, names = measure(net, x_eval, w, degrees, target_eval)
    x = uniform_sphere(params["n_train"], d, seed=1000 + seed, dtype=dtype)
    y = zonal_harmonic(x, k)[:, None]
    traj = adam(net, (x, y), lr=params["lr"], steps=params["steps"], loss=sample_mse_loss,
                record_every=max(params["steps"] // 50, 1))  # fmt: skip
    if traj.diverged or not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
        return {"layers": names, "lam_init": lam_init, "share_init": share_init, "diverged": True,
                "seconds": time.perf_counter() - start}  # fmt: skip
    lam_final, share_final, _ = measure(net, x_eval, w, degrees, target_eval)
    with torch.no_grad():
        residual = net(x_eval)[:, 0] - target_eval
        weights = torch.full_like(residual, 1 / len(residual)) if w is None else w
        test_error = float((weights * residual.square()).sum())
    return {
        "layers": names,
        "lam_init": lam_init,
        "lam_final": lam_final,
        "share_init": share_init,
        "share_final": share_final,
        "train_loss": float(traj.losses[-1]),
        "initial_loss": float(traj.losses[0]),
        "test_error": test_error,
        "diverged": bool(traj.diverged),
        "seconds": time.perf_counter() - start,
    }


def log_ratio(values_first: float, values_last: float) -> float:
    """log(first / last), NaN unless both are positive (a projection below its noise)."""
    if values_first > 0 and values_last > 0:
        return math.log(values_first / values_last)
    return math.nan


def slope_claim(name: str, claim: str, points: pd.DataFrame, tol: float, what: str) -> Claim:
    """The slope of ``points["value"]`` against ``points["degree"]`` (one intercept per group)."""
    finite = points[np.isfinite(points["value"])]
    dropped = len(points) - len(finite)
    statistic = (
        f"least squares {what} = a k + b_group over {len(finite)} points, Student-t 95% interval; "
        f"reproduced when it lies above {tol:g}, partly when above 0 only, opposite below 0, "
        f"not reproduced within ±{tol:g}"
    )
    try:
        fit = fit_slope(finite["degree"], finite["value"], finite["group"])
    except ValueError:
        return Claim(
            name, claim, f"too few finite points ({len(finite)})", statistic, "inconclusive"
        )
    per_degree = finite.groupby("degree")["value"].median()
    rising = int((np.diff(per_degree.values) > 0).sum())
    outcome = interval_outcome(fit.low, fit.high, band=tol, reproduced_above=tol)
    ratios = ", ".join(f"k = {int(k)}: {math.exp(v):.3g}" for k, v in per_degree.items())
    measured = (
        f"slope a = {fit.slope:.3f} per degree, 95% [{fit.low:.3f}, {fit.high:.3f}] "
        f"(×{math.exp(fit.slope):.2f} per degree); median ratio per degree {ratios}; "
        f"{rising} of {len(per_degree) - 1} consecutive steps rise"
        + (f"; {dropped} point(s) with a non-positive projection left out" if dropped else "")
    )
    return Claim(name, claim, measured, statistic, outcome)


def _points(rows: pd.DataFrame, column: str, diagonal: bool, degrees: list[int]) -> pd.DataFrame:
    records = []
    for _, row in rows.iterrows():
        values = row[column]
        first, last = values[0], values[-1]
        if diagonal:  # the trained network's own degree
            j = degrees.index(int(row["degree"]))
            records.append({"degree": degrees[j], "group": int(row["seed"]),
                            "value": log_ratio(first[j], last[j])})  # fmt: skip
        else:
            for j, k in enumerate(degrees):
                records.append({"degree": k, "group": int(row["seed"]),
                                "value": log_ratio(first[j], last[j])})  # fmt: skip
    return pd.DataFrame(records)


def summarize(rows: pd.DataFrame, spec: SpectralBiasSpec) -> Summary:
    """Per-degree table and the three claims (module docstring)."""
    finite = rows[~rows["diverged"].astype(bool)].copy()
    degrees = list(spec.degrees)
    finite["share_first_init"] = [s[0] for s in finite["share_init"]]
    finite["share_last_init"] = [s[-1] for s in finite["share_init"]]
    finite["share_first_final"] = [s[0] for s in finite["share_final"]]
    finite["share_last_final"] = [s[-1] for s in finite["share_final"]]
    at_own = [degrees.index(int(k)) for k in finite["degree"]]
    finite["ratio_init"] = [
        math.exp(log_ratio(v[0][j], v[-1][j]))
        if np.isfinite(log_ratio(v[0][j], v[-1][j]))
        else np.nan
        for v, j in zip(finite["lam_init"], at_own)
    ]
    finite["ratio_final"] = [
        math.exp(log_ratio(v[0][j], v[-1][j]))
        if np.isfinite(log_ratio(v[0][j], v[-1][j]))
        else np.nan
        for v, j in zip(finite["lam_final"], at_own)
    ]
    cols = ["ratio_init", "ratio_final", "share_first_init", "share_last_init",
            "share_first_final", "share_last_final", "train_loss", "test_error", "seconds"]  # fmt: skip
    table = finite.groupby("degree")[cols].median().reset_index()
    rule = "S² product quadrature" if spec.dim == 3 else f"{spec.eval_points} uniform points"
    preamble = (
        f"ReLU MLPs (d = {spec.dim}, width {spec.width}, L = {spec.depth} weight matrices) on "
        f"zonal harmonics of degrees {degrees}, N = {spec.n_train}, {spec.steps} Adam steps, "
        f"{spec.seeds} seed(s); projections on the {rule}; {len(rows) - len(finite)} diverged "
        f"run(s) left out; test error (unit-norm targets) median {finite['test_error'].median():.3g}. "
        f"Early = the first weight layer, late = the last."
    )
    if finite.empty:
        claims = [Claim(n, "early/late ratio grows with the degree", "no finite run", "none",
                        "inconclusive") for n in ("eigenvalue_ratio_init", "eigenvalue_ratio_trained",
                                                  "share_ratio_trained")]  # fmt: skip
    else:
        init_rows = finite.drop_duplicates("seed")  # the init is the same network for every k
        tol = spec.min_log_slope
        claims = [
            slope_claim("eigenvalue_ratio_init",
                        "at init the early/late ratio λ_{1,k}/λ_{L,k} of the layer NTKs' eigenvalues grows with the degree k",
                        _points(init_rows, "lam_init", False, degrees), tol, "log(λ_1,k / λ_L,k)"),
            slope_claim("eigenvalue_ratio_trained",
                        "after training on the degree-k harmonic the early/late ratio at degree k grows with k",
                        _points(finite, "lam_final", True, degrees), tol, "log(λ_1,k / λ_L,k)"),
            slope_claim("share_ratio_trained",
                        "after training on the degree-k harmonic f_k, the first layer's share of ⟨f_k, Θ f_k⟩ (the error reduction on f_k) relative to the last layer's grows with k",
                        _share_points(finite, "share_final"), tol, "log(share_1 / share_L)"),
        ]  # fmt: skip
    extras: dict[str, Any] = {"claims": [c.as_dict() for c in claims]}
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


def _share_points(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "degree": rows["degree"].astype(int).values,
            "group": rows["seed"].astype(int).values,
            "value": [log_ratio(s[0], s[-1]) for s in rows[column]],
        }
    )


EXPERIMENT = register(
    Experiment(
        name="spectral-bias",
        description=(
            "Layer-wise NTKs of deep ReLU MLPs on the sphere: per-layer eigenvalues on each "
            "harmonic degree at init and after training, each layer's share of the error "
            "reduction, and whether the early/late ratio grows with the degree."
        ),
        spec_model=SpectralBiasSpec,
        version="1",
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
