"""critical-points paper jobs: closed-form teacher–student derivatives (new) vs the generic
autograd / torch.func route (old), in one process on the same jobs.

    python benchmarks/bench_critical.py                    # 24 jobs, one per (activation, m)
    python benchmarks/bench_critical.py --per-cell 2 --control
    python benchmarks/bench_critical.py --route old        # time the old route only

Both routes run the study's own ``run_job`` on jobs drawn from the paper preset
(``symlab/configs/critical-points/paper.toml``): "new" as shipped (``train_to_critical`` with
``closed_form=True``), "old" with ``train_to_critical`` and ``hessian_inertia`` called with
``closed_form=False`` (swapped into the study module: ``torch.optim.LBFGS`` with autograd,
``torch.func`` Jacobians and Hessians, as before the closed form existed). The two
routes compute the same iterates up to floating-point rounding; ``--control`` also runs the old
route from the student initialisation scaled by (1 + 2^-50), which measures how far rounding-level
differences alone move a job's end point (L-BFGS over thousands of iterations amplifies them).
Prints one row per job, then the per-job time ratios new/old and the agreement counts.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import random
import statistics
import time

import torch

import symlab.experiments.critical_points as study
from symlab.critical.criticality import hessian_inertia, train_to_critical
from symlab.engine import load_spec


@contextlib.contextmanager
def route(name: str):
    """Run the study with the old (generic) or new (closed-form) derivatives; "control" is the
    old route from a student initialisation perturbed by a relative 2^-50."""
    saved = study.train_to_critical, study.two_layer, study.hessian_inertia
    if name in ("old", "control"):
        study.train_to_critical = functools.partial(train_to_critical, closed_form=False)
        study.hessian_inertia = functools.partial(hessian_inertia, closed_form=False)
    if name == "control":

        def perturbed(weights, outputs, activation):
            return saved[1](weights * (1 + 2.0**-50), outputs, activation)

        study.two_layer = perturbed
    try:
        yield
    finally:
        study.train_to_critical, study.two_layer, study.hessian_inertia = saved


def sample_jobs(per_cell: int, seed: int) -> list[dict]:
    spec = load_spec("critical-points", preset="paper")
    jobs = [j for j in study.expand(spec) if j["kind"] == "teacher_student"]
    rng, chosen = random.Random(seed), []
    cells = sorted({(j["activation"], j["m"]) for j in jobs})
    for activation, m in cells:
        pool = [j for j in jobs if j["activation"] == activation and j["m"] == m]
        chosen += rng.sample(pool, per_cell)
    return chosen


def same_outcome(a: dict, b: dict, loss_rtol: float = 1e-8) -> tuple[bool, bool, float]:
    """(same category, loss within rtol or both zero-loss, relative loss difference)."""
    rel = abs(a["loss"] - b["loss"]) / max(abs(a["loss"]), abs(b["loss"]), 1e-300)
    loss_ok = (a["zero_loss"] and b["zero_loss"]) or rel <= loss_rtol
    return a["category"] == b["category"], loss_ok, rel


def timed(name: str, job: dict) -> tuple[dict, float]:
    with route(name):
        start = time.perf_counter()
        row = study.run_job(job)
        return row, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-cell", type=int, default=1, help="jobs per (activation, m)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the job sample")
    parser.add_argument("--route", choices=["both", "old", "new"], default="both")
    parser.add_argument("--control", action="store_true", help="also old route, perturbed init")
    args = parser.parse_args()
    torch.set_num_threads(1)
    jobs = sample_jobs(args.per_cell, args.seed)
    routes = ["old", "new"] if args.route == "both" else [args.route]
    if args.control:
        routes.append("control")
    timed(routes[0], jobs[0])  # warm-up: imports, first-call costs
    totals = dict.fromkeys(routes, 0.0)
    ratios, agree = [], {"new": [0, 0], "control": [0, 0]}
    print(f"torch {torch.__version__}, {len(jobs)} paper jobs, routes {routes}")
    print("act       m  seed | " + " | ".join(f"{r}: s, category, L-BFGS it, loss" for r in routes))
    for i, job in enumerate(jobs):
        order = routes if i % 2 == 0 else [*routes[1::-1], *routes[2:]]  # alternate old/new
        rows = {name: timed(name, job) for name in order}
        cells = []
        for name in routes:
            row, seconds = rows[name]
            totals[name] += seconds
            cells.append(
                f"{seconds:6.2f}, {row['category']}, {row['lbfgs_iterations']}, {row['loss']:.3e}"
            )
        if "old" in rows and "new" in rows:
            ratios.append(rows["new"][1] / rows["old"][1])
        for name in ("new", "control"):
            if name in rows and "old" in rows:
                same_category, same_loss, _ = same_outcome(rows["old"][0], rows[name][0])
                agree[name][0] += same_category
                agree[name][1] += same_category and same_loss
        print(
            f"{job['activation']:8s} {job['m']:2d} {job['teacher_seed']}/{job['seed']:<2d} | "
            + " | ".join(cells),
            flush=True,
        )
    print("total seconds: " + ", ".join(f"{r} {totals[r]:.1f}" for r in routes))
    if ratios:
        geo = math.exp(statistics.fmean(math.log(r) for r in ratios))
        print(
            f"time new/old: total {totals['new'] / totals['old']:.3f} "
            f"({totals['old'] / totals['new']:.2f}x faster), per job median "
            f"{statistics.median(ratios):.3f}, geometric mean {geo:.3f}, "
            f"range {min(ratios):.3f}-{max(ratios):.3f}"
        )
    for name in ("new", "control"):
        if name in routes and "old" in routes:
            same_category, both = agree[name]
            print(
                f"{name} vs old: same category {same_category}/{len(jobs)}, same category and "
                f"loss (1e-8 relative, or both zero-loss) {both}/{len(jobs)}"
            )


if __name__ == "__main__":
    main()
