"""The functional-dimension interval on the referee's case: sampled rank vs proven values.

n0 = 3, two hidden layers of width 8, one output, He init with bias_std 0.1 (the study's
networks, seeds 0..15). Per network:

- ``sampled``: the batch rank on a fixed sample of ``--points`` multiscale (and Gaussian) inputs
  (region-compressed: every point is classified, n0 + 1 per activation pattern differentiated);
- ``plateau``: the study's former rule (adaptive, stop on a rank unchanged over two doublings,
  ``proof_regions=0, plateau=True``) at the quick preset's max_points;
- ``adaptive``: the new rule (stop at lower == upper or the budget) with the default proof;
- ``kernel upper``: the bound minus the kernel directions proven on all of R^3
  (:func:`symlab.symmetry.kernel_proofs.proven_kernel`), and ``exact``: the rank on a decisive
  set from the enumerated regions (:func:`symlab.symmetry.exact_functional_dimension`).

Run: PYTHONPATH=. python benchmarks/bench_fd_interval.py [--networks 16] [--points 1000000]
"""

from __future__ import annotations

import argparse
import time

import torch

from symlab.nets import mlp
from symlab.symmetry import batch_functional_dimension, functional_dimension
from symlab.symmetry.exact_dimension import exact_functional_dimension
from symlab.symmetry.samplers import gaussian, multiscale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--n0", type=int, default=3)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--max-points", type=int, default=128_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    widths = [args.n0] + [args.width] * args.depth + [1]
    totals = dict.fromkeys(
        ["multiscale", "gaussian", "plateau", "adaptive", "kernel", "exact", "exact_cases"], 0
    )
    print(f"widths {widths}, {args.networks} networks, {args.points} sampled points")
    print(
        "seed bound | sampled: multiscale gaussian | plateau (points) | adaptive (points, stop) "
        "| kernel upper | exact (regions, LPs, s)"
    )
    for seed in range(args.networks):
        model = mlp(widths, bias_std=0.1, seed=seed, dtype=torch.float64)
        generator = torch.Generator().manual_seed(seed)
        ranks = {}
        for name, draw in [("multiscale", multiscale), ("gaussian", gaussian)]:
            x = draw(args.points, args.n0, generator, torch.float64)
            ranks[name] = batch_functional_dimension(model, x).rank
        old = functional_dimension(
            model, seed=seed, max_points=args.max_points, proof_regions=0, plateau=True
        )
        new = functional_dimension(model, seed=seed, max_points=args.max_points)
        start = time.perf_counter()
        exact = exact_functional_dimension(model)
        seconds = time.perf_counter() - start
        bound = exact.bound
        print(
            f"{seed:4d} {bound:5d} | {ranks['multiscale']:5d} {ranks['gaussian']:5d} | "
            f"{old.rank:4d} ({old.n_points}) | {new.rank:4d} ({new.n_points}, {new.saturated}) | "
            f"{exact.kernel_upper:4d} | {exact.rank:4d} ({exact.regions}, {exact.n_lps}, "
            f"{seconds:.1f})",
            flush=True,
        )
        totals["multiscale"] += ranks["multiscale"] == bound
        totals["gaussian"] += ranks["gaussian"] == bound
        totals["plateau"] += old.rank == bound
        totals["adaptive"] += new.rank == bound
        totals["kernel"] += exact.kernel_upper == bound
        totals["exact"] += exact.rank == bound
        totals["exact_cases"] += exact.rank == ranks["multiscale"]
    n = args.networks
    print(
        f"at the bound: sampled multiscale {totals['multiscale']}/{n}, gaussian "
        f"{totals['gaussian']}/{n}; plateau rule {totals['plateau']}/{n}; new adaptive "
        f"{totals['adaptive']}/{n}; not proven below it (kernel upper = bound) "
        f"{totals['kernel']}/{n}; exact {totals['exact']}/{n}; the {args.points}-point "
        f"multiscale rank equals the exact value on {totals['exact_cases']}/{n}"
    )


if __name__ == "__main__":
    main()
