"""Study ``sparsity``: how many neurons an L2-regularized network needs (Jacot, Golikov, Hongler &
Gabriel, "Feature learning in L2-regularized DNNs: attraction/repulsion and sparsity", NeurIPS
2022, arXiv 2205.15809).

Claims of the paper: (i) any local minimum of the L2-regularized loss is reached with at most
N(N+1) neurons per layer (N training points), so the loss is constant in the width from N(N+1) on,
and in practice the plateau starts far earlier (near width 10 on MNIST and a teacher–student
task, N = 1000); (ii) the bound is tight up to a constant: on X = I_N with the target
Y_N = EᵀE of the complete bipartite graph K_{N/2,N/2} (depth 2, ReLU, no bias) every global
minimizer of the representation cost needs N²/4 neurons (Prop. 14).

Parts (one job each, ``symlab.train.adam`` full batch with ``weight_decay`` λ on every weight,
loss (1/N) Σ_n ‖f(x_n) − y_n‖² = :func:`symlab.train.sample_mse_loss`):

- ``tight``: for even N, X = I_N, Y_N = [[(N/2) I, 1], [1, (N/2) I]], a bias-free ReLU net of
  width ``tight_width_factor`` · N(N+1) (above the bound) at λ = ``tight_lam``; then
  :func:`symlab.bias.reduce_width`. Its width is an upper bound of Rank_σ of the trained net's (K, K^σ), and the count of neurons
  with incoming norm above 10⁻³ of the largest is the trained net's own width: the claim is read
  on the net of least objective per N (the best reached minimum).
- ``width``: depth-3 ReLU MLPs (biases) of each width on a teacher–student task (x ~ N(0, I_d),
  y from a random depth-3 width-10 ReLU teacher, normalized to unit variance) and on N digits of
  scikit-learn (inputs standardized, one-hot targets; the paper uses MNIST and cross-entropy),
  at λ = ``lam``; final objective per width (minimum over seeds, as the paper), then
  :func:`symlab.bias.reduce_width` of every net.

Plateau onset: the least width whose minimum objective has made all but ``plateau_rtol`` of the
fall from the narrowest width's objective to the least one; when that is the widest width
trained, the onset is only a lower bound (the loss may still fall). Claims (:func:`summarize`): (1) "the loss plateaus far
below N(N+1)": for every (task, N) the onset is ≤ ``far_fraction`` · N(N+1) and is not the widest
width (reproduced), an onset above that (not reproduced), or only a lower bound below it
(inconclusive); (2) "the tight example needs N²/4 neurons": a best net reduced below N²/4 refutes
it (not reproduced); it is reproduced when every best net is reduced below the generic count
min(width, N(N+1)) (the net is sparse, so the count measures its minimum) yet not below N²/4,
partly when only some are, inconclusive when no net is sparser than the generic count (the
reduction then says nothing about N²/4).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint, field_validator

from symlab.bias import reduce_width
from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.verdict import Claim, render
from symlab.experiments.sparsity_plots import plot
from symlab.nets import mlp
from symlab.train import adam, sample_mse_loss

ALIVE_RTOL = 1e-3  # a neuron is alive when its incoming weight norm exceeds this · the largest


class SparsitySpec(BaseModel):
    """The tight K_{N/2,N/2} example and loss-vs-width sweeps with width reduction."""

    model_config = ConfigDict(extra="forbid")

    tight_n: list[conint(ge=2)] = Field([4, 6, 8], description="even N of the tight example")
    tight_width_factor: confloat(gt=0) = Field(
        1.2, description="trained width = factor · N(N+1) (above the bound: the reduction acts)"
    )
    tight_lam: confloat(gt=0) = Field(1e-2, description="λ of the tight example")
    tight_steps: conint(ge=1) = Field(3000, description="Adam steps, tight example")
    tight_lr: confloat(gt=0) = Field(1e-2, description="Adam learning rate, tight example")
    tasks: list[Literal["teacher", "digits"]] = Field(
        ["teacher", "digits"], description="width-sweep tasks (empty: tight example only)"
    )
    n_train: list[conint(ge=2)] = Field([40, 100], description="training points N per task")
    widths: list[conint(ge=1)] = Field([1, 2, 4, 8, 16, 48], description="hidden widths")
    input_dim: conint(ge=1) = Field(10, description="teacher task input dimension d")
    teacher_width: conint(ge=1) = Field(10, description="teacher hidden width (depth 3)")
    lam: confloat(gt=0) = Field(1e-6, description="λ of the width sweeps (paper: 1e-6)")
    steps: conint(ge=1) = Field(2000, description="Adam steps per width-sweep net")
    lr: confloat(gt=0) = Field(3e-3, description="Adam learning rate of the width sweeps")
    seeds: conint(ge=1) = Field(2, description="init seeds 0..seeds-1 (minimum over seeds)")
    plateau_rtol: confloat(gt=0) = Field(
        0.1, description="onset: objective within this of the best"
    )
    far_fraction: confloat(gt=0, le=1) = Field(
        0.01, description="far below: onset <= this · N(N+1)"
    )

    @field_validator("tight_n")
    @classmethod
    def _even(cls, values: list[int]) -> list[int]:
        if any(v % 2 for v in values):
            raise ValueError(f"expected even N (K_(N/2,N/2)), got {values}")
        return sorted(set(values))

    @field_validator("widths", "n_train")
    @classmethod
    def _sorted(cls, values: list[int]) -> list[int]:
        return sorted(set(values))


def count_jobs(spec: SparsitySpec) -> int:
    """len(expand(spec)) without building the jobs."""
    tight = len(spec.tight_n) * spec.seeds
    return tight + len(spec.tasks) * len(spec.n_train) * len(spec.widths) * spec.seeds


def expand(spec: SparsitySpec) -> list[dict[str, Any]]:
    """Tight jobs per (N, seed); width jobs per (task, N, width, seed)."""
    jobs = [
        {"part": "tight", "n": n, "seed": seed, "width_factor": spec.tight_width_factor,
         "lam": spec.tight_lam, "steps": spec.tight_steps, "lr": spec.tight_lr}
        for n in spec.tight_n for seed in range(spec.seeds)
    ]  # fmt: skip
    jobs += [
        {"part": "width", "task": task, "n": n, "width": width, "seed": seed, "lam": spec.lam,
         "steps": spec.steps, "lr": spec.lr, "input_dim": spec.input_dim,
         "teacher_width": spec.teacher_width}
        for task in spec.tasks for n in spec.n_train for width in spec.widths
        for seed in range(spec.seeds)
    ]  # fmt: skip
    return jobs


def bipartite_target(n: int) -> torch.Tensor:
    """Y_N = [[(N/2) I, 1], [1, (N/2) I]] = EᵀE for the edge–vertex matrix E of K_{N/2,N/2}."""
    h = n // 2
    eye, ones = (h * torch.eye(h, dtype=torch.float64)), torch.ones(h, h, dtype=torch.float64)
    return torch.cat([torch.cat([eye, ones], 1), torch.cat([ones, eye], 1)], 0)


def width_task(task: str, n: int, input_dim: int, teacher_width: int, seed: int):
    """(x, y) of the teacher–student task (seeded by ``seed``) or the first N digits."""
    if task == "digits":
        from symlab.ntk.data import load_digits_split

        data = load_digits_split()
        x = data.x_train[:n]
        y = torch.nn.functional.one_hot(data.y_train[:n], 10).double()
        return x, y
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randn(n, input_dim, generator=g, dtype=torch.float64)
    teacher = mlp([input_dim, teacher_width, teacher_width, 1], seed=20_000 + seed)
    with torch.no_grad():
        y = teacher(x)
    return x, (y - y.mean()) / y.std()


def _alive(net: torch.nn.Module) -> list[int]:
    linears = [m for m in net if isinstance(m, torch.nn.Linear)][:-1]
    counts = []
    for m in linears:
        norms = m.weight.detach().norm(dim=1)
        counts.append(int((norms > ALIVE_RTOL * float(norms.max())).sum()))
    return counts


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Train one net with L2 λ, then reduce its width (module docstring)."""
    start = time.perf_counter()
    n, seed, lam = int(params["n"]), int(params["seed"]), float(params["lam"])
    if params["part"] == "tight":
        x, y = torch.eye(n, dtype=torch.float64), bipartite_target(n)
        width = int(round(params["width_factor"] * n * (n + 1)))
        net = mlp([n, width, n], seed=seed, bias=False)
    else:
        x, y = width_task(params["task"], n, params["input_dim"], params["teacher_width"], seed)
        width = int(params["width"])
        net = mlp([x.shape[1], width, width, y.shape[1]], seed=seed)
    trajectory = adam(net, (x, y), lr=params["lr"], steps=params["steps"], weight_decay=lam,
                      loss=sample_mse_loss, record_every=max(params["steps"] // 20, 1))  # fmt: skip
    with torch.no_grad():
        mse = float(sample_mse_loss(net(x), y))
    result = reduce_width(net, x, lam)
    with torch.no_grad():
        change = float((result.model(x) - net(x)).abs().max())
    losses = trajectory.losses
    return {
        "trained_width": width,
        "objective": float(losses[-1]),
        "train_mse": mse,
        "last_drop": float((losses[-2] - losses[-1]) / abs(losses[-2])) if len(losses) > 1 else 0.0,
        "alive": _alive(net),
        "reduced_widths": result.widths_after,
        "reduced_width": max(result.widths_after),
        "ranks": result.ranks,
        "output_change": change,
        "penalty_before": result.penalty_before,
        "penalty_after": result.penalty_after,
        "bound": n * (n + 1),
        "tight_bound": n * n // 4,
        "seconds": time.perf_counter() - start,
    }


def plateau_onsets(width_rows: pd.DataFrame, rtol: float) -> pd.DataFrame:
    """Per (task, N): the least objective per width (min over seeds), the onset (least width whose
    objective has made all but ``rtol`` of the fall from the narrowest width's to the least,
    L(w) ≤ L_min + rtol · (L(w_min) − L_min)) and whether it is only a lower bound (the widest
    width: the loss may still fall beyond it)."""
    out = []
    for (task, n), group in width_rows.groupby(["task", "n"]):
        best = group.groupby("width")["objective"].min().sort_index()
        floor = float(best.min())
        level = floor + rtol * (float(best.iloc[0]) - floor)
        onset = int(best.index[np.flatnonzero(best.values <= level)[0]])
        widest = int(best.index.max())
        reduced = group[group["width"] == widest]["reduced_width"]
        out.append({"task": task, "n": int(n), "onset": onset, "lower_bound": onset == widest,
                    "best_objective": floor, "bound": int(n) * (int(n) + 1),
                    "widest": widest, "reduced_width_widest": int(reduced.max())})  # fmt: skip
    return pd.DataFrame(out)


def _plateau_claim(onsets: pd.DataFrame, spec: SparsitySpec) -> Claim:
    claim = "the loss plateaus at a width far below N(N+1)"
    statistic = (
        f"onset = least width whose min-over-seeds objective made all but {spec.plateau_rtol:g} "
        f"of its fall over the widths; far below: ≤ {spec.far_fraction:g} · N(N+1)"
    )
    if onsets.empty:
        return Claim("plateau", claim, "no width sweep run", statistic, "not measured")
    cells = "; ".join(
        f"{r.task} N = {r.n}: onset {'≥ ' if r.lower_bound else ''}{r.onset} vs N(N+1) = {r.bound}"
        for r in onsets.itertuples()
    )
    far = onsets["onset"] <= spec.far_fraction * onsets["bound"]
    if bool((~far).any()):
        outcome = "not reproduced"
    elif bool(onsets["lower_bound"].any()):
        outcome = "inconclusive"
    else:
        outcome = "reproduced"
    return Claim("plateau", claim, cells, statistic, outcome)


def _tight_claim(tight: pd.DataFrame) -> Claim:
    claim = "the K_(N/2,N/2) example needs N²/4 neurons"
    statistic = (
        "width after reduce_width of the least-objective net per N (an upper bound of its "
        "Rank_σ) against N²/4; it tests the claim only where the net is sparser than the generic "
        "Carathéodory count min(width, rank of its neurons' vectors)"
    )
    if tight.empty:
        return Claim("tight", claim, "no tight example run", statistic, "not measured")
    best = tight.loc[tight.groupby("n")["objective"].idxmin()]
    cells = "; ".join(
        f"N = {int(r.n)}: {int(r.reduced_width)} after reduction ({max(r.alive)} alive of "
        f"{int(r.trained_width)}, generic count {int(generic(r))}) vs N²/4 = {int(r.tight_bound)}"
        for r in best.itertuples()
    )
    below = best["reduced_width"] < best["tight_bound"]
    sparse = best.apply(lambda r: r["reduced_width"] < generic(r), axis=1)
    if bool(below.any()):
        outcome = "not reproduced"
    elif bool(sparse.all()):
        outcome = "reproduced"
    elif bool(sparse.any()):
        outcome = "partly reproduced"
    else:
        outcome = "inconclusive"
    return Claim("tight", claim, cells, statistic, outcome)


def generic(row) -> int:  # noqa: ANN001 - a row of the tight part
    """min(trained width, N(N+1)): the width a reduction reaches with neurons in general position."""
    return min(int(row.trained_width), int(row.bound))


def summarize(rows: pd.DataFrame, spec: SparsitySpec) -> Summary:
    """Per-(task, N) plateau table and the two claims (module docstring)."""
    tight = rows[rows["part"] == "tight"]
    width_rows = rows[rows["part"] == "width"]
    onsets = (
        plateau_onsets(width_rows, spec.plateau_rtol) if not width_rows.empty else pd.DataFrame()
    )
    claims = [_plateau_claim(onsets, spec), _tight_claim(tight)]
    change = float(rows["output_change"].max())
    preamble = (
        f"{len(rows)} nets; every reduce_width kept the training outputs to {change:.1e} (max "
        f"abs change). Width sweeps at λ = {spec.lam:g}, {spec.steps} Adam steps; tight example at "
        f"λ = {spec.tight_lam:g}, {spec.tight_steps} steps."
    )
    extras = {"claims": [c.as_dict() for c in claims], "onsets": onsets.to_dict("records")}
    table = onsets if not onsets.empty else tight[["n", "seed", "objective", "reduced_width"]]
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


EXPERIMENT = register(
    Experiment(
        name="sparsity",
        description=(
            "L2-regularized nets need few neurons: loss vs width (plateau onset) and Carathéodory "
            "width reduction against N(N+1); the tight K_(N/2,N/2) example needing N²/4 "
            "(Jacot, Golikov, Hongler & Gabriel, NeurIPS 2022)."
        ),
        spec_model=SparsitySpec,
        version="1",
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
