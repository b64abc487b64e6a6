"""Study ``hidden-symmetries``: functional dimension of ReLU networks at initialization.

Reproduces the experiment of Grigsby, Lindsey & Rolnick, "Hidden Symmetries of ReLU Networks"
(ICML 2023): for random MLPs (n0, w, ..., w, 1) with ``depth`` hidden layers, estimate the
functional dimension (rank of the parameter Jacobian of the evaluation map on a growing input
sample) and compare it with the bound D − (number of hidden neurons). A network below the bound has
hidden symmetries; one at the bound has none near θ (full FD is a proxy for "no hidden symmetries",
not an equivalence; see ``symlab.symmetry.functional_dimension``).

The paper reports that the probability of "no hidden symmetries" decreases towards 0 with depth and
increases towards 1 with width and input dimension. Its protocol is unknown; the paper's cells are
reported as input dimension = width ∈ {5, 10, 15}, depth 4–6, one output, inputs i.i.d. N(0, I).
The study runs every cell with the plain Gaussian sampler, the multi-scale sampler and (paper
preset) the region-seeking ``boundary`` sampler (:mod:`symlab.symmetry.boundary_sampler`), so the
effect of the sampler is visible (every sample gives a lower bound on dim_fun: the highest rank is
the tightest), and attributes each deficit to mechanisms (dead / always-active neurons and
parameters unused on the sample, e.g. never-co-active edges) with ``symlab.symmetry.diagnose``.

``bias_std`` is a no-op for the multi-scale sampler: a ReLU net is positively homogeneous in
(inputs, biases) jointly, f(c x; W, c b) = c f(x; W, b), so multiplying every bias by c gives the
network that sees the inputs divided by c. The multi-scale sampler draws inputs at every scale, so
its sample (and the rank it measures) does not depend on c; only the fixed-scale Gaussian sampler
sees a change. The claims (:mod:`symlab.experiments.hidden_symmetries_verdict`) test depth, the
paper's diagonal n0 = width, and width and n0 separately.

Every network gets an interval [lower, upper] for its functional dimension: the sampled rank and
an upper bound proven on all inputs (``symlab.symmetry.kernel_proofs``; exact when the activation
regions are all enumerated within ``proof_regions``); the sample grows until the two meet or the
budget is spent, and P(full FD) is reported as the bracket [proven at the bound, not proven
below it]. With ``certify_budget_stops = false`` (paper preset) a network the budget stops more
than 16 below its upper bound reports its certified count (``rank_method = "gram (count)"``), a
lower bound on its sample's rank (mean 0.3 below it on 803 such networks), at up to 70% less
time for that network. The bracket's lower side could differ only where a certificate would
lift a count by more than 16 (the largest lift measured is 9).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.verdict import Claim, as_records, render
from symlab.experiments.hidden_symmetries_plots import plot_figures
from symlab.experiments.hidden_symmetries_verdict import hidden_symmetry_claims
from symlab.stats import stratified_trend, wilson_interval

PositiveInt = Annotated[int, Field(ge=1)]


class HiddenSymmetriesSpec(BaseModel):
    """Grid of architectures (n0, width, ..., width, output_dim) and seeds, at initialization."""

    model_config = ConfigDict(extra="forbid")

    input_dims: list[PositiveInt] = Field(
        min_length=1, description="input dimensions n0 (each >= 1)"
    )
    widths: list[PositiveInt] = Field(min_length=1, description="hidden-layer widths (each >= 1)")
    depths: list[PositiveInt] = Field(
        min_length=1, description="numbers of hidden layers (each >= 1)"
    )
    seeds: int = Field(ge=1, description="networks per cell (seeds 0 .. seeds-1)")
    samplers: list[Literal["gaussian", "multiscale", "boundary"]] = Field(
        default=["multiscale"],
        min_length=1,
        description="input samplers to compare (boundary: region-seeking, reads the network)",
    )
    output_dim: int = Field(default=1, ge=1, description="number of outputs n_L")
    init: Literal["he", "pytorch"] = Field(default="he", description="weight initialization")
    bias_std: float = Field(
        default=0.1,
        ge=0,
        description="std of the bias for init='he'; matters only for the gaussian sampler "
        "(multiscale: scaling every bias is a rescaling of the inputs it already samples)",
    )
    max_points: int = Field(default=20000, ge=1, description="largest input sample for one network")
    diagonal_only: bool = Field(
        default=False, description="only cells with input dimension == width (the paper's cells)"
    )
    proof_regions: int = Field(
        default=32,
        ge=0,
        description="region budget of the proven upper bound per network (0: none; a complete "
        "enumeration gives the exact value)",
    )

    certify_budget_stops: bool = Field(
        default=True,
        description="certify a network's count into its sample's exact rank where the budget "
        "stopped it below its upper bound (false: report the certified count, a lower bound on "
        "that rank, at about half the time of a capped network)",
    )


def expand(spec: HiddenSymmetriesSpec) -> list[dict]:
    """One job per (sampler, n0, width, depth, seed), seed outermost.

    Seeds vary slowest so that a sweep stopped part-way has the same number of networks in every
    cell (each cell's bracket is then from seeds 0..k, not some cells full and others empty).
    """
    jobs = []
    for seed, sampler, n0, width, depth in itertools.product(
        range(spec.seeds), spec.samplers, spec.input_dims, spec.widths, spec.depths
    ):
        if spec.diagonal_only and n0 != width:
            continue
        jobs.append(
            {
                "sampler": sampler,
                "n0": n0,
                "width": width,
                "depth": depth,
                "seed": seed,
                "output_dim": spec.output_dim,
                "init": spec.init,
                "bias_std": spec.bias_std,
                "max_points": spec.max_points,
                "proof_regions": spec.proof_regions,
                "certify_budget_stop": spec.certify_budget_stops,
            }
        )
    return jobs


def run_job(params: dict) -> dict:
    """Functional dimension and mechanism diagnosis of one network at initialization."""
    from symlab.nets import mlp
    from symlab.symmetry import diagnose, functional_dimension

    widths = [params["n0"]] + [params["width"]] * params["depth"] + [params["output_dim"]]
    model = mlp(
        widths,
        init=params["init"],
        bias_std=params["bias_std"] if params["init"] == "he" else 0.0,
        seed=params["seed"],
        dtype=torch.float64,
    )
    start = time.perf_counter()
    fd = functional_dimension(
        model,
        sampler=params["sampler"],
        seed=params["seed"],
        max_points=params["max_points"],
        proof_regions=params.get("proof_regions", 32),
        certify_budget_stop=params.get("certify_budget_stop", True),
    )
    fd_seconds = time.perf_counter() - start
    # Attribute the deficit on exactly the sample the rank was computed on.
    report = diagnose(model, fd.points, fd=fd)
    return {
        "bound": fd.bound,
        "rank": fd.rank,
        "deficit": fd.deficit,
        "full": fd.deficit == 0,  # proven at the bound (the sampled rank reaches it)
        "upper": fd.upper,  # proven upper bound on dim_fun (symlab.symmetry.kernel_proofs)
        "exact": fd.exact,  # lower == upper: the value is proven
        "full_possible": fd.upper == fd.bound,  # not proven below the bound
        "proof_complete": bool(fd.proof is not None and fd.proof.complete),
        "proven_dead": report.n_proven_never_active,
        "proven_always_active": report.n_proven_always_active,
        "n_points": fd.n_points,
        "regions": fd.regions,  # activation patterns met in the sample (None: not compressed)
        "jacobian_points": int(fd.points.shape[0]),  # points differentiated (representatives)
        "log10_gap": float(np.log10(fd.gap)) if np.isfinite(fd.gap) else None,
        "tol": fd.tol,
        "saturated": str(fd.saturated),
        "ambiguous": bool(fd.ambiguous),
        "rank_method": fd.method,
        "fd_seconds": fd_seconds,
        "never_active": report.n_never_active,
        "always_active": report.n_always_active,
        "narrow_layers": len(report.narrow_layers),
        "unused_parameters": report.n_unused,  # zero Jacobian columns on the sample
        "unused_beyond_dead": report.n_unused_beyond_dead,  # e.g. never-co-active edges
        "dead_deficit": report.dead_deficit,
        "unused_deficit": report.unused_deficit,  # beyond the dead neurons' share
        "always_active_deficit": report.always_active_deficit,
        "predicted_deficit": report.predicted_deficit,
        "unexplained_deficit": fd.deficit - report.predicted_deficit,
    }


CELL = ["sampler", "n0", "width", "depth"]


def summarize(rows: pd.DataFrame, spec: HiddenSymmetriesSpec) -> Summary:
    """Fraction at full FD and mean deficit per cell; trend tests over depth, n0 and width."""
    records = []
    for cell, group in rows.groupby(CELL):
        n_full, n = int(group["full"].sum()), len(group)
        low, high = wilson_interval(n_full, n)
        records.append(
            dict(
                zip(CELL, cell),
                networks=n,
                bound=int(group["bound"].iloc[0]),
                frac_full=n_full / n,
                frac_full_lo=low,
                frac_full_hi=high,
                # P(full FD) bracket: [proven at the bound, not proven below it]
                frac_full_upper=float(group["full_possible"].mean()),
                n_exact=int(group["exact"].sum()),
                mean_deficit=float(group["deficit"].mean()),
                mean_predicted=float(group["predicted_deficit"].mean()),
                mean_unexplained=float(group["unexplained_deficit"].mean()),
                mean_never_active=float(group["never_active"].mean()),
                frac_saturated_bound=float((group["saturated"] == "bound").mean()),
                ambiguous=int(group["ambiguous"].sum()),
                mean_points=float(group["n_points"].mean()),
            )
        )
    table = pd.DataFrame.from_records(records)
    claims = [*hidden_symmetry_claims(rows), _interval_claim(rows)]
    verdict = render(claims, _verdict(rows, table, spec))
    return Summary(table=table, verdict=verdict, extras={"claims": as_records(claims)})


PAPER_TRENDS = {"depth": "decreasing", "n0": "increasing", "width": "increasing"}


def _verdict(rows: pd.DataFrame, table: pd.DataFrame, spec: HiddenSymmetriesSpec) -> str:
    frame = rows.assign(full=rows["full"].astype(float))
    if spec.diagonal_only:  # n0 = width: the two factors move together
        frame = frame.assign(**{"n0 = width": frame["n0"]})
        factors = {"depth": ["n0 = width"], "n0 = width": ["depth"]}
    else:
        factors = {f: [c for c in ("n0", "width", "depth") if c != f] for f in PAPER_TRENDS}
    parts = []
    for sampler in sorted(frame["sampler"].unique()):
        sub = frame[frame["sampler"] == sampler]
        clauses = []
        for factor, strata in factors.items():
            trend = stratified_trend(sub, factor, "full", strata)
            if not trend.n_strata:
                continue
            clauses.append(trend.sentence("P(full FD)"))
        deficits = sub.groupby(CELL)["deficit"].mean()
        parts.append(
            f"With the {sampler} sampler, {sub['full'].mean():.0%} of {len(sub)} networks reach "
            f"the bound (mean deficit per cell {deficits.min():.1f} to {deficits.max():.1f})"
            + "".join(f"; {clause}" for clause in clauses)
            + "."
        )
    head = (
        "Probability of full functional dimension (a proxy for no hidden symmetries) per cell; "
        "the paper's claims are tested below on the most refined sampler, the paper's diagonal "
        "design (n0 = width) being the headline for width and input dimension."
    )
    parts += _sampler_comparisons(frame)
    capped = int((rows["saturated"] == "max_points").sum())
    counted = int((rows["rank_method"] == "gram (count)").sum())
    if capped:
        counts = (
            f"; {counted} of them report the certified count, a lower bound on their sample's "
            "rank (certify_budget_stops = false)"
            if counted
            else ""
        )
        parts.append(
            f"{capped} of {len(rows)} estimates stopped at max_points = {spec.max_points} "
            "below their proven upper bound (lower bounds: raise max_points or proof_regions "
            f"to tighten the interval){counts}."
        )
    unexplained = rows["unexplained_deficit"]
    counted_rows = rows["rank_method"] == "gram (count)"  # deficits that may exceed the sample's
    total = max(rows["deficit"].sum(), 1)
    explained = 1 - unexplained.sum() / total
    parts.append(
        f"Dead and always-active neurons and parameters unused on the sample (never-co-active "
        f"edges) explain {explained:.0%} of the total deficit {int(rows['deficit'].sum())} "
        f"(dead neurons {rows['dead_deficit'].sum() / total:.0%}, "
        f"further unused parameters {rows['unused_deficit'].sum() / total:.0%}, always-active "
        f"groups {rows['always_active_deficit'].sum() / total:.0%}; counted on the sample: every "
        f"counted direction lies in ker J there, so this is a lower bound on the share of the "
        f"sample's deficit, which itself may exceed the network's where the estimate is not "
        f"exact{', and counted deficits may exceed those of their samples' if counted else ''}); "
        f"{int(((unexplained > 0) & ~counted_rows).sum())} of {int((~counted_rows).sum())} "
        f"networks{' with a certified sample rank' if counted else ''} keep a part these "
        f"mechanisms do not explain (e.g. restricted hidden images). "
        f"{int(rows['ambiguous'].sum())} ranks had an ambiguous singular-value gap."
    )
    return head + " " + " ".join(parts)


def _interval_claim(rows: pd.DataFrame) -> Claim:
    """How many networks' values are proven (lower == upper), and the P(full FD) bracket."""
    n, exact = len(rows), int(rows["exact"].sum())
    low, high = float(rows["full"].mean()), float(rows["full_possible"].mean())
    outcome = "reproduced" if exact == n else "partly reproduced" if exact else "inconclusive"
    return Claim(
        name="interval",
        claim="every network's functional dimension is pinned (sampled rank = proven upper bound)",
        measured=f"{exact} of {n} networks are exact, {n - exact} are not proven exact; P(full "
        f"FD) lies in [{low:.0%}, {high:.0%}] ({int(rows['full'].sum())} networks proven at the "
        f"bound, {int(rows['full_possible'].sum())} not proven below it)",
        statistic="lower: rank on the sample; upper: the bound minus kernel directions proven "
        "on all of R^n0 (dead / always-active neurons, never-co-active edges by LP region "
        "enumeration within proof_regions, sign arguments beyond; the decisive-set rank when "
        "every region is enumerated)",
        outcome=outcome,
    )


SAMPLER_ORDER = ["boundary", "multiscale", "gaussian"]


def _sampler_comparisons(frame: pd.DataFrame) -> list[str]:
    """One sentence per pair of samplers: on how many shared networks each finds the higher rank.

    A higher rank is counted only where it is certain: the other side's rank is the sample's own
    (certified), not a certified count (``"gram (count)"``, a lower bound on it); pairs that
    differ otherwise are reported apart."""
    frame = frame.assign(counted=frame["rank_method"] == "gram (count)")
    index = CELL[1:] + ["seed"]
    pivot = frame.pivot_table(index=index, columns="sampler", values="deficit")
    counted = frame.pivot_table(index=index, columns="sampler", values="counted", aggfunc="max")
    names = {"gaussian": "Gaussian", "multiscale": "multi-scale", "boundary": "boundary"}
    order = [s for s in SAMPLER_ORDER if s in pivot.columns]  # the more refined sampler first
    sentences = []
    for first, second in itertools.combinations(order, 2):
        pair = pivot[[first, second]].dropna()
        if pair.empty:
            continue
        exact = ~counted.loc[pair.index, [first, second]].astype(bool)
        higher_rank = pair[first] < pair[second]  # a smaller deficit at the same bound
        lower_rank = pair[first] > pair[second]
        higher = int((higher_rank & exact[second]).sum())
        lower = int((lower_rank & exact[first]).sum())
        open_ = int((higher_rank | lower_rank).sum()) - higher - lower
        sentences.append(
            f"On the same networks the {names[first]} sampler finds a higher rank than the "
            f"{names[second]} one "
            f"for {higher} of {len(pair)} networks and a lower rank for {lower}"
            + (
                f" ({open_} more differ where the lower rank is a certified count, a lower bound)."
                if open_
                else "."
            )
        )
    return sentences


def plot(rows: pd.DataFrame, spec: HiddenSymmetriesSpec, out_dir: Path) -> list[Path]:
    """The study's figures (:mod:`symlab.experiments.hidden_symmetries_plots`) from its table."""
    return plot_figures(rows, summarize(rows, spec).table, spec, out_dir)


EXPERIMENT = register(
    Experiment(
        name="hidden-symmetries",
        description="Functional dimension of ReLU MLPs at init vs depth, width, input dim "
        "(Grigsby-Lindsey-Rolnick 2023).",
        spec_model=HiddenSymmetriesSpec,
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
        version="3",  # 3: proven upper bound, stop at lower == upper (2: unused parameters)
    )
)
