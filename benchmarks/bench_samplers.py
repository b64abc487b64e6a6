"""Functional dimension at n0 = width >= 10: the region-seeking ``boundary`` sampler vs the others.

The hidden-symmetries study's paper cells (n0 = width = 10, depth 4-6, one output, He init,
bias_std 0.1, seeds 0..9) with ``functional_dimension(model, sampler=..., seed=seed,
max_points=40000)`` (region compression on). Per cell and sampler: networks at the bound,
plateaued below it, still rising at max_points; median rank; median wall time per network.
Also per cell: networks whose deficit equals the number of parameters with an all-zero Jacobian
column on the sample ("unseen": weights W_l[i, j] whose neurons never co-activate on a path to
the output), and the summed deficit and unseen counts. Then, per network, which sampler found
the higher rank (all samplers' points are valid inputs, so the higher rank is the tighter lower
bound on dim_fun), checked never to exceed the bound.

Run: ``python benchmarks/bench_samplers.py`` (``--n0 15`` for the n0 = width = 15 cells,
``--seeds``, ``--max-points``, ``--samplers``). One thread; about 5 minutes at the defaults,
15 with ``--n0 15``, on a loaded 2-core CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from threadpoolctl import threadpool_limits

from symlab.linalg import parameter_jacobian
from symlab.nets import mlp
from symlab.symmetry.adaptive_dimension import functional_dimension


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n0", type=int, default=10)
    parser.add_argument("--depths", type=int, nargs="+", default=[4, 5, 6])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--max-points", type=int, default=40000)
    parser.add_argument("--samplers", nargs="+", default=["gaussian", "multiscale", "boundary"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, 1 thread, n0 = width = {args.n0}, max_points {args.max_points}"
    )
    print(
        "depth sampler     bound  at_bound plateau rising  median_rank  median_s  "
        "deficit=unseen  sum_deficit sum_unseen"
    )
    wins = {}
    for depth in args.depths:
        widths = [args.n0] + [args.n0] * depth + [1]
        ranks = {}
        for sampler in args.samplers:
            rows = []
            for seed in range(args.seeds):
                model = mlp(widths, init="he", bias_std=0.1, seed=seed, dtype=torch.float64)
                start = time.perf_counter()
                with threadpool_limits(1):
                    fd = functional_dimension(
                        model, sampler=sampler, seed=seed, max_points=args.max_points
                    )
                seconds = time.perf_counter() - start
                assert fd.rank <= fd.bound
                # parameters whose Jacobian column vanishes on every point: weights W_l[i, j]
                # whose neurons j (layer l-1) and i (layer l, with a live path) never co-activate
                jac = parameter_jacobian(model, fd.points, dtype=torch.float64)
                unseen = int((jac.abs().amax(dim=0) == 0).sum())
                rows.append((fd.rank, fd.bound, fd.saturated, seconds, unseen))
            ranks[sampler] = [r[0] for r in rows]
            bound = rows[0][1]
            count = {s: sum(r[2] == s for r in rows) for s in ("bound", "plateau", "max_points")}
            print(
                f"{depth:5d} {sampler:11s} {bound:5d} {count['bound']:8d} {count['plateau']:7d} "
                f"{count['max_points']:6d} {statistics.median(ranks[sampler]):12.1f} "
                f"{statistics.median(r[3] for r in rows):9.2f}  "
                f"{sum(r[1] - r[0] == r[4] for r in rows):14d}  "
                f"{sum(r[1] - r[0] for r in rows):11d} {sum(r[4] for r in rows):10d}",
                flush=True,
            )
        for a in args.samplers:
            for b in args.samplers:
                if a < b:
                    key = (a, b)
                    higher = sum(x > y for x, y in zip(ranks[a], ranks[b], strict=True))
                    lower = sum(x < y for x, y in zip(ranks[a], ranks[b], strict=True))
                    old = wins.get(key, (0, 0, 0))
                    wins[key] = (old[0] + higher, old[1] + lower, old[2] + len(ranks[a]))
    for (a, b), (higher, lower, n) in wins.items():
        print(f"{a} vs {b}: higher rank on {higher} of {n} networks, lower on {lower}")


if __name__ == "__main__":
    main()
