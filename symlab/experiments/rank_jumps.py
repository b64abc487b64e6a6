"""Study ``rank-jumps``: one-way jumps from high to low rank under SGD in L2-regularized deep linear
networks (Wang & Jacot, "Implicit bias of SGD in L2-regularized linear DNNs: one-way jumps from
high to low rank", ICLR 2024, arXiv 2305.16038).

Claim of the paper: the loss C(A_θ) + λ‖θ‖² of a depth-L ≥ 3 linear net has local minima of
several ranks; on matrix completion GD can stay at a minimum that over-estimates the rank, while
SGD jumps from higher to lower rank with positive probability and never back (nested sets
B_1 ⊂ … ⊂ B_R absorbing for small λ, η).

Setup: a d×d rank-r* target (:func:`symlab.bias.low_rank_task`, Gaussian factors, no noise) of
which a fraction ``observed`` of the entries is seen; the data are the observed entries
(:mod:`symlab.bias.completion`, so SGD samples entries); C(A) = ½ Σ_obs (A_ij − Y_ij)²; a
:class:`symlab.bias.DeepLinearNetwork` of depth L and width w. Per task seed, ``starts`` networks
(init seeds) are trained at once (:func:`symlab.train.train_ensemble`):

1. GD at a small λ_fit for ``fit_steps`` (fits the observed entries at high rank), then GD at λ
   for ``settle_steps``: the starts, GD end points at λ, whose rank r_0 is recorded;
2. from the same starts: GD (full batch, at ``lr``) and SGD (minibatches of ``batch_size``
   entries, seeds 0..starts−1, at ``sgd_lr``) for ``steps`` steps at λ, both optionally after the
   same annealing phase of ``anneal_steps`` at (``anneal_lam``, ``anneal_lr``) (the paper's
   experiments anneal; GD follows the same schedule so that only the batch differs, and with
   annealing a third run, GD at the fixed λ throughout, tests "GD stays" as the paper states it).

Recorded every ``steps / records`` steps: the numerical rank of A = W_L ⋯ W_1, #{s_i > rtol ·
s_max} (float64 SVD), with the gap s_r / s_{r+1} beside it, and the completion test error
‖A − A*‖_F²/d². Transitions: every change of rank between consecutive records of a run, counted
in a matrix T[i, j] (from rank i to rank j).

Claims (:func:`summarize`): (1) "SGD jumps down with positive probability and never back": any
upward transition of an SGD run makes it not reproduced; no transition at all, inconclusive;
downward jumps from starts where the GD twin kept its rank, reproduced (with the fraction and its
Wilson interval); downward jumps only where GD moved too, partly reproduced. (2) "GD stays at the
over-estimating minimum": among starts with r_0 > r*, the fraction of GD runs at the fixed λ that
keep rank r_0 throughout (Wilson 95% interval): reproduced when every one stays, partly when most
(> 1/2) do, not reproduced otherwise; not measured when no start over-estimates the rank.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint, model_validator

from symlab.bias import DeepLinearNetwork, low_rank_task, numerical_rank
from symlab.bias.completion import entry_data, entry_loss
from symlab.bias.linear_net import end_to_end_matrix
from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.verdict import Claim, render
from symlab.experiments.rank_jumps_plots import plot
from symlab.stats import wilson_interval
from symlab.train import train_ensemble


class RankJumpsSpec(BaseModel):
    """Matrix completion with L2-regularized deep linear nets: GD vs SGD from the same minima."""

    model_config = ConfigDict(extra="forbid")

    dim: conint(ge=2) = Field(10, description="d: the target is d×d")
    rank: conint(ge=1) = Field(2, description="r*: the target's rank")
    observed: confloat(gt=0, le=1) = Field(0.5, description="fraction of entries observed")
    noise: confloat(ge=0) = Field(0.5, description="std of the Gaussian noise on the observations")
    depth: conint(ge=3) = Field(3, description="L >= 3 weight matrices")
    width: conint(ge=1) = Field(10, description="hidden width w")
    init_scale: confloat(gt=0) = Field(1.0, description="init variance σ² = init_scale² / w")
    lam_fit: confloat(ge=0) = Field(1e-4, description="λ of the fitting phase")
    fit_steps: conint(ge=1) = Field(2000, description="GD steps at lam_fit")
    lam: confloat(gt=0) = Field(0.05, description="λ of the minima, GD and SGD")
    lr: confloat(gt=0) = Field(0.01, description="GD learning rate (all GD phases)")
    settle_steps: conint(ge=1) = Field(3000, description="GD steps at λ to reach the starts")
    steps: conint(ge=1) = Field(3000, description="steps of the compared GD and SGD runs")
    sgd_lr: confloat(gt=0) = Field(0.01, description="SGD learning rate")
    batch_size: conint(ge=1) = Field(4, description="SGD minibatch (observed entries)")
    anneal_steps: conint(ge=0) = Field(0, description="SGD annealing steps before (0: none)")
    anneal_lam: confloat(gt=0) = Field(0.2, description="λ of the annealing phase")
    anneal_lr: confloat(gt=0) = Field(0.02, description="learning rate of the annealing phase")
    records: conint(ge=2) = Field(30, description="rank records per compared run")
    starts: conint(ge=1) = Field(6, description="init seeds per task (one ensemble)")
    tasks: conint(ge=1) = Field(1, description="task seeds 0..tasks-1")
    rank_rtol: confloat(gt=0, lt=1) = Field(1e-2, description="rank: #{s_i > rank_rtol · s_max}")

    @model_validator(mode="after")
    def _sizes(self) -> RankJumpsSpec:
        if self.rank > self.dim:
            raise ValueError(f"rank: expected at most dim = {self.dim}, got {self.rank}")
        if self.records > self.steps:
            raise ValueError(f"records: expected at most steps = {self.steps}, got {self.records}")
        return self


def count_jobs(spec: RankJumpsSpec) -> int:
    """len(expand(spec)) without building the jobs."""
    return spec.tasks


def expand(spec: RankJumpsSpec) -> list[dict[str, Any]]:
    """One job per task seed (each trains ``starts`` networks per phase as one ensemble)."""
    shared = spec.model_dump(exclude={"tasks"})
    return [{"task_seed": seed, **shared} for seed in range(spec.tasks)]


def spectra(params: dict[str, torch.Tensor], depth: int) -> torch.Tensor:
    """Singular values (S, d) of the S stacked end-to-end matrices A_s (float64; NaN rows for a
    diverged model)."""
    weights = [params[f"layers.{i}.weight"].detach().double() for i in range(depth)]
    a = end_to_end_matrix(weights)
    finite = torch.isfinite(a).flatten(1).all(1)
    values = torch.full(a.shape[:-1], float("nan"), dtype=torch.float64)
    if bool(finite.any()):
        values[finite] = torch.linalg.svdvals(a[finite])
    return values


def rank_and_gap(s: torch.Tensor, rtol: float) -> tuple[int, float]:
    """(#{s_i > rtol · s_max}, s_r / s_{r+1}) of one spectrum (gap ∞ at full rank; (−1, NaN)
    for a diverged run)."""
    if not bool(torch.isfinite(s).all()):
        return -1, float("nan")
    r = numerical_rank(s, rtol=rtol)
    if r == 0 or r >= len(s):
        return r, float("inf")
    return r, float(s[r - 1] / s[r]) if float(s[r]) > 0 else float("inf")


def _phase(models, data, loss, *, lr, steps, lam, batch=None, every=None, log=None, depth, rtol):
    """Train the ensemble one phase; ``log`` collects (step, ranks, gaps) every ``every`` steps."""

    def record(step: int, params: dict[str, torch.Tensor]) -> None:
        values = spectra(params, depth)
        pairs = [rank_and_gap(s, rtol) for s in values]
        log.append((step, [p[0] for p in pairs], [p[1] for p in pairs], values[:, :6].tolist()))

    options = {"callback": record, "callback_every": every} if log is not None else {}
    return train_ensemble(
        models, data, method="sgd", lr=lr, steps=steps, weight_decay=lam, loss=loss,
        batch_size=batch, seeds=list(range(len(models))), record_every=steps, **options,
    )  # fmt: skip


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Starts by GD, then GD and SGD from them; rank records of every run (module docstring)."""
    start = time.perf_counter()
    p = params
    task = low_rank_task(
        p["dim"], p["rank"], observed=p["observed"], noise=p["noise"], seed=p["task_seed"]
    )
    data = entry_data(task)
    loss = entry_loss(len(data[0]))
    depth, rtol = p["depth"], p["rank_rtol"]
    nets = [
        DeepLinearNetwork(p["dim"], p["dim"], p["width"], depth, p["init_scale"] ** 2 / p["width"],
                          seed=1000 * p["task_seed"] + s, dtype=torch.float64)
        for s in range(p["starts"])
    ]  # fmt: skip
    common = {"depth": depth, "rtol": rtol}
    _phase(nets, data, loss, lr=p["lr"], steps=p["fit_steps"], lam=p["lam_fit"], **common)
    settled = _phase(nets, data, loss, lr=p["lr"], steps=p["settle_steps"], lam=p["lam"], **common)
    every = max(p["steps"] // p["records"], 1)
    offset = p["anneal_steps"]
    logs, trained, finals = {}, {}, {}
    runs = [("gd", None, True), ("sgd", p["batch_size"], True)]
    if offset > 0:  # GD at the fixed λ as well: the paper's "GD stays" is at fixed λ
        runs.append(("gd_fixed", None, False))
    for name, batch, anneal in runs:
        models, log = copy.deepcopy(nets), []
        if offset > 0 and anneal:  # the same (λ, η) schedule for GD and SGD: only the batch differs
            _phase(models, data, loss, lr=p["anneal_lr"], steps=offset, lam=p["anneal_lam"],
                   batch=batch, every=max(offset // p["records"], 1), log=log, **common)  # fmt: skip
        tail: list = []
        rate = p["lr"] if batch is None else p["sgd_lr"]
        finals[name] = _phase(models, data, loss, lr=rate, steps=p["steps"], lam=p["lam"],
                              batch=batch, every=every, log=tail, **common)  # fmt: skip
        shift = offset if anneal else 0
        log += [(shift + s, r, g, v) for s, r, g, v in tail]
        stacked = {f"layers.{i}.weight": torch.stack([m.layers[i].weight for m in models])
                   for i in range(depth)}  # fmt: skip
        pairs = [rank_and_gap(s, rtol) for s in spectra(stacked, depth)]
        values = spectra(stacked, depth)
        log.append((shift + p["steps"], [q[0] for q in pairs], [q[1] for q in pairs],
                    values[:, :6].tolist()))  # fmt: skip
        logs[name], trained[name] = log, models
    gd_log, sgd_log, gd, sgd = logs["gd"], logs["sgd"], finals["gd"], finals["sgd"]
    gd_nets, sgd_nets = trained["gd"], trained["sgd"]
    start_ranks = [int(r) for r in gd_log[0][1]]
    with torch.no_grad():
        test = [[float(task.test_error(m.end_to_end().double())) for m in ms]
                for ms in (gd_nets, sgd_nets)]  # fmt: skip

    def series(log, k):
        return [[entry[k][s] for entry in log] for s in range(p["starts"])]

    return {
        "start_ranks": start_ranks,
        "settle_losses": [float(v) for v in settled.final_losses],
        "gd_steps": [int(e[0]) for e in gd_log],
        "gd_ranks": series(gd_log, 1),
        "gd_gaps": series(gd_log, 2),
        "gd_sv": series(gd_log, 3),
        "gd_fixed_ranks": series(logs["gd_fixed"], 1) if "gd_fixed" in logs else None,
        "sgd_steps": [int(e[0]) for e in sgd_log],
        "sgd_ranks": series(sgd_log, 1),
        "sgd_gaps": series(sgd_log, 2),
        "sgd_sv": series(sgd_log, 3),
        "gd_final_loss": [float(v) for v in gd.final_losses],
        "sgd_final_loss": [float(v) for v in sgd.final_losses],
        "gd_test_error": test[0],
        "sgd_test_error": test[1],
        "seconds": time.perf_counter() - start,
    }


def transition_counts(sequences: list[list[int]], size: int) -> np.ndarray:
    """T[i, j] = number of times a sequence goes from rank i to rank j ≠ i between consecutive
    records (ranks above ``size`` − 1 are clipped into the last row/column)."""
    counts = np.zeros((size, size), dtype=int)
    for seq in sequences:
        for a, b in zip(seq[:-1], seq[1:]):
            if a != b:
                counts[min(a, size - 1), min(b, size - 1)] += 1
    return counts


def _jump_claim(sgd: list[list[int]], gd: list[list[int]], counts: np.ndarray) -> Claim:
    up = int(np.triu(counts, 1).sum())
    down = int(np.tril(counts, -1).sum())
    jumped = sum(1 for seq in sgd if seq[-1] < seq[0])
    stable = [i for i, seq in enumerate(gd) if min(seq) == max(seq)]
    jumped_stable = sum(1 for i in stable if sgd[i][-1] < sgd[i][0])
    low, high = wilson_interval(jumped_stable, len(stable))
    measured = (
        f"{down} downward and {up} upward rank transitions over {len(sgd)} SGD runs; {jumped}/"
        f"{len(sgd)} runs end below their start rank, {jumped_stable}/{len(stable)} of those "
        f"whose GD twin kept its rank throughout (Wilson 95% [{low:.2f}, {high:.2f}])"
    )
    if up > 0:
        outcome = "not reproduced"
    elif down == 0:
        outcome = "inconclusive"
    else:
        outcome = "reproduced" if jumped_stable > 0 else "partly reproduced"
    return Claim(
        "sgd_one_way",
        "SGD jumps down in rank with positive probability and never back up",
        measured,
        "rank changes between consecutive records; reproduced when none is upward and SGD jumps "
        "down from at least one start where GD (same schedule) keeps its rank; partly when it "
        "jumps only where GD moves too",
        outcome,
    )


def _gd_claim(starts: list[int], gd: list[list[int]], target: int) -> Claim:
    over = [i for i, r in enumerate(starts) if r > target]
    claim = "GD stays at the rank-overestimating minimum"
    statistic = "fraction of GD runs from starts of rank > r* whose final rank equals the start's"
    if not over:
        return Claim("gd_stays", claim, f"no start over-estimates r* = {target} "
                     f"(start ranks {sorted(set(starts))})", statistic, "not measured")  # fmt: skip
    stay = sum(1 for i in over if gd[i][-1] == starts[i] and min(gd[i]) == starts[i])
    low, high = wilson_interval(stay, len(over))
    measured = (
        f"{stay}/{len(over)} GD runs from over-estimating starts (ranks "
        f"{sorted(starts[i] for i in over)}, r* = {target}) keep their rank throughout "
        f"(Wilson 95% [{low:.2f}, {high:.2f}])"
    )
    outcome = (
        "reproduced" if stay == len(over) else "partly reproduced" if stay > len(over) / 2
        else "not reproduced"
    )  # fmt: skip
    return Claim("gd_stays", claim, measured, statistic, outcome)


def summarize(rows: pd.DataFrame, spec: RankJumpsSpec) -> Summary:
    """Per-task table of ranks; the transition matrix and the two claims (module docstring)."""
    starts, gd, sgd = [], [], []
    fixed_starts, fixed = [], []  # GD at the fixed λ does not need its SGD twin to converge
    diverged = 0
    for _, row in rows.iterrows():
        at_fixed = row.get("gd_fixed_ranks")
        at_fixed = (
            row["gd_ranks"] if at_fixed is None or not isinstance(at_fixed, list) else at_fixed
        )
        for start, g, s, f in zip(row["start_ranks"], row["gd_ranks"], row["sgd_ranks"], at_fixed):
            if start >= 0 and min(f) >= 0:
                fixed_starts.append(int(start))
                fixed.append(list(f))
            if min(g) < 0 or min(s) < 0 or start < 0:
                diverged += 1
                continue
            starts.append(int(start))
            gd.append(list(g))
            sgd.append(list(s))
    size = spec.dim + 1
    counts = transition_counts(sgd, size)
    gd_counts = transition_counts(gd, size)
    table = pd.DataFrame(
        {
            "task_seed": rows["task_seed"],
            "start_rank_median": [float(np.median(r)) for r in rows["start_ranks"]],
            "gd_final_rank_median": [
                float(np.median([s[-1] for s in r])) for r in rows["gd_ranks"]
            ],
            "sgd_final_rank_median": [
                float(np.median([s[-1] for s in r])) for r in rows["sgd_ranks"]
            ],
            "gd_test_error_median": [float(np.median(v)) for v in rows["gd_test_error"]],
            "sgd_test_error_median": [float(np.median(v)) for v in rows["sgd_test_error"]],
            "seconds": rows["seconds"],
        }
    )
    claims = [_jump_claim(sgd, gd, counts), _gd_claim(fixed_starts, fixed, spec.rank)]
    preamble = (
        f"Depth-{spec.depth} width-{spec.width} linear nets on {spec.dim}×{spec.dim} completion "
        f"(rank r* = {spec.rank}, {spec.observed:.0%} observed), λ = {spec.lam:g}, {len(sgd)} "
        f"starts; start ranks {dict(sorted(pd.Series(fixed_starts).value_counts().items()))}; GD made "
        f"{int(gd_counts.sum())} rank change(s); {diverged} diverged run pair(s) left out."
    )
    extras = {
        "claims": [c.as_dict() for c in claims],
        "sgd_transitions": counts.tolist(),
        "gd_transitions": gd_counts.tolist(),
    }
    return Summary(table=table, verdict=render(claims, preamble), extras=extras)


EXPERIMENT = register(
    Experiment(
        name="rank-jumps",
        description=(
            "L2-regularized deep linear nets on matrix completion: GD stays at rank-overestimating "
            "minima, SGD jumps down in rank and never back (Wang & Jacot, ICLR 2024)."
        ),
        spec_model=RankJumpsSpec,
        version="1",
        expand=expand,
        count_jobs=count_jobs,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
    )
)
