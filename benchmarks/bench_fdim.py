"""Batch functional dimension: symlab's route vs the generic route, same process, same points.

symlab route: ``symlab.symmetry.functional_dimension(model, x)`` =
closed-form MLP Jacobian (float64) + row/column scaling + one dropped scaling column per hidden
neuron + Gram (dsyrk) and eigvalsh with SVD fallback (``rank_method="auto"``).

generic route (an autodiff Jacobian and an SVD rank, as ``torch.linalg.matrix_rank``):
``torch.func`` ``vmap(jacrev)`` Jacobian in float64 + ``torch.linalg.svdvals`` + tol =
sigma_max max(m, n) eps.

Run: ``python benchmarks/bench_fdim.py`` (add ``--large`` for (20,64,64,64,64,64,1) on 20000
points: about 3 GB per Jacobian copy and a 20000 x 18049 SVD, far beyond a few minutes on 2 cores).
Prints per case the times, the ratio generic / symlab, and checks the ranks are identical.

``--regions``: adaptive mode (no inputs, ``--sampler``, default multiscale) on the hidden-symmetries study's
deep cells (n0 = width in {5, 10}, depth 4-6, seeds 0-2), region compression against the
uncompressed route: rank, stop reason, candidates |Z|, Jacobian rows (points differentiated),
activation regions met, time. "plain" = ``compress_regions=False`` (default max_points 8 x
start), "plain@40k" and "comp@40k" = both with max_points 40000 (the same candidates, so the
ranks must agree: checked), "comp" = compressed with its default max_points (128 x start).
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
from threadpoolctl import threadpool_limits

from symlab.linalg import numerical_rank, parameter_jacobian
from symlab.nets import mlp
from symlab.symmetry.adaptive_dimension import functional_dimension
from symlab.symmetry.batch_dimension import fd_bound

CASES = [
    ((10, 30, 30, 30, 30, 1), 4000),
    ((5, 20, 20, 20, 2), 1500),
    ((20, 50, 50, 1), 4000),
]
LARGE = [((20, 64, 64, 64, 64, 64, 1), 20000)]


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_case(widths, n_points, repeats):
    model = mlp(widths, "relu", init="he", bias_std=0.1, seed=0)
    x = torch.randn(
        n_points, widths[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )

    t_closed, _ = timed(lambda: parameter_jacobian(model, x, method="closed_form"), repeats)
    t_symlab, fd = timed(lambda: functional_dimension(model, x), repeats)
    t_noreduce, fd_full = timed(lambda: functional_dimension(model, x, reduce_scaling=False), 1)

    t_generic_jac, jac = timed(lambda: parameter_jacobian(model, x, method="generic"))
    t_svd, svd = timed(lambda: numerical_rank(jac, method="svd"))
    t_gram, gram = timed(lambda: numerical_rank(jac, method="auto"))
    t_generic = t_generic_jac + t_svd
    return {
        "widths": widths,
        "N": n_points,
        "D": sum(p.numel() for p in model.parameters()),
        "bound": fd_bound(widths),
        "rank_symlab": fd.rank,
        "rank_noreduce": fd_full.rank,
        "rank_generic": svd.rank,
        "rank_auto_on_raw_J": gram.rank,
        "method": fd.method,
        "gap_symlab": fd.gap,
        "gap_generic": svd.gap,
        "t_closed_jac": t_closed,
        "t_generic_jac": t_generic_jac,
        "t_svd": t_svd,
        "t_auto_on_raw_J": t_gram,
        "t_symlab": t_symlab,
        "t_symlab_noreduce": t_noreduce,
        "t_generic": t_generic,
    }


REGION_CELLS = [(n0, depth) for n0 in (5, 10) for depth in (4, 5, 6)]
REGION_RUNS = {
    "plain": {"compress_regions": False},
    "plain@40k": {"compress_regions": False, "max_points": 40000},
    "comp@40k": {"max_points": 40000},
    "comp": {},
}


def run_regions(seeds: int, sampler: str) -> None:
    print(
        f"{'widths':<24}{'seed':>5}{'bound':>6}  "
        + "  ".join(f"{name + ' rank/stop/|Z|/rows/regions/s':<44}" for name in REGION_RUNS)
    )
    totals = {name: [0.0, 0, 0] for name in REGION_RUNS}  # seconds, rows, rank sum
    for n0, depth in REGION_CELLS:
        widths = (n0,) + (n0,) * depth + (1,)
        for seed in range(seeds):
            model = mlp(widths, "relu", init="he", bias_std=0.1, seed=seed)
            results = {}
            for name, kwargs in REGION_RUNS.items():
                call = functools.partial(
                    functional_dimension, model, seed=seed, sampler=sampler, **kwargs
                )
                t, fd = timed(call)
                results[name] = fd
                totals[name][0] += t
                totals[name][1] += len(fd.points)
                totals[name][2] += fd.rank
                results[name + " t"] = t
            if results["plain@40k"].rank != results["comp@40k"].rank:
                raise SystemExit("compressed and plain ranks differ on the same candidates")
            cells = []
            for name in REGION_RUNS:
                fd = results[name]
                cells.append(
                    f"{fd.rank}/{fd.saturated[:4]}/{fd.n_points}/{len(fd.points)}/"
                    f"{fd.regions if fd.regions is not None else '-'}/{results[name + ' t']:.2f}"
                )
            print(
                f"{str(widths):<24}{seed:>5}{fd.bound:>6}  " + "  ".join(f"{c:<44}" for c in cells),
                flush=True,
            )
    for name, (t, rows, ranks) in totals.items():
        print(f"total {name:<10} time {t:8.2f} s, Jacobian rows {rows:>8}, sum of ranks {ranks}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also run the large case")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--regions", action="store_true", help="only the region-compression runs")
    parser.add_argument("--seeds", type=int, default=3, help="networks per cell for --regions")
    parser.add_argument("--sampler", default="multiscale", help="input sampler for --regions")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.regions:
        print(f"torch {torch.__version__}, {args.threads} threads (torch and BLAS)")
        with threadpool_limits(limits=args.threads):
            run_regions(args.seeds, args.sampler)
        return
    cases = CASES + (LARGE if args.large else [])
    print(f"torch {torch.__version__}, {args.threads} threads (torch and BLAS)")
    header = (
        f"{'widths':<26}{'N':>6}{'D':>6}{'bound':>6}{'rank':>6}{'same':>5}"
        f"{'J cf':>7}{'J gen':>7}{'svd':>7}{'auto':>7}{'symlab':>8}{'generic':>8}{'ratio':>7}"
    )
    print(header)
    with threadpool_limits(limits=args.threads):
        for widths, n_points in cases:
            r = run_case(widths, n_points, args.repeats)
            same = r["rank_symlab"] == r["rank_generic"] == r["rank_noreduce"]
            same = same and r["rank_auto_on_raw_J"] == r["rank_generic"]
            print(
                f"{str(widths):<26}{r['N']:>6}{r['D']:>6}{r['bound']:>6}{r['rank_symlab']:>6}"
                f"{'yes' if same else 'NO':>5}{r['t_closed_jac']:>7.2f}{r['t_generic_jac']:>7.2f}"
                f"{r['t_svd']:>7.2f}{r['t_auto_on_raw_J']:>7.2f}{r['t_symlab']:>8.2f}"
                f"{r['t_generic']:>8.2f}{r['t_generic'] / r['t_symlab']:>7.1f}"
            )
            print(
                f"    rank method {r['method']}, gap symlab {r['gap_symlab']:.3g} / generic "
                f"{r['gap_generic']:.3g}; symlab without the scaling-column drop "
                f"{r['t_symlab_noreduce']:.2f} s; ranks symlab/no-drop/generic/auto-raw = "
                f"{r['rank_symlab']}/{r['rank_noreduce']}/{r['rank_generic']}/"
                f"{r['rank_auto_on_raw_J']}"
            )
            if not same:
                raise SystemExit("ranks differ between routes")


if __name__ == "__main__":
    main()
