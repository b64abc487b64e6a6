"""The adaptive functional dimension with and without the block route of its failed certificates.

Networks of the hidden-symmetries study (ReLU, He init, one output, seed 0, multiscale sampler,
max_points 40000: the paper preset's setting) whose Schur certificate fails on a singular value
in the Gram's blind spot. ``block``: :func:`symlab.linalg.block_rank.block_rank` decides
(``BLOCK_ROUTE = True``, the default); ``svd``: the full SVD of the stored scaled rows
(``BLOCK_ROUTE = False``, the code before). The two runs alternate (interleaved repeats, best
CPU time of each) and must give the same rank.

Run: PYTHONPATH=. python benchmarks/bench_block_rank.py [--cells 5,20,4 5,15,5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

import symlab.symmetry.adaptive_dimension as adaptive
from symlab.nets import mlp
from symlab.symmetry import functional_dimension


def run(model: torch.nn.Module, block: bool) -> tuple[float, float, object]:
    """(CPU seconds, wall seconds, FDResult) of the adaptive estimate with the route on/off."""
    adaptive.BLOCK_ROUTE = block
    cpu, wall = time.process_time(), time.perf_counter()
    fd = functional_dimension(model, sampler="multiscale", seed=0, max_points=40000)
    return time.process_time() - cpu, time.perf_counter() - wall, fd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["5,20,4", "5,15,5", "5,20,5"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; CPU seconds, best of {args.repeats}")
    print("cell (n0, width, depth) | points x parameters | rank | method | svd s | block s | ratio")
    for cell in args.cells:
        n0, width, depth = (int(v) for v in cell.split(","))
        model = mlp([n0] + [width] * depth + [1], bias_std=0.1, seed=0, dtype=torch.float64)
        best = {True: float("inf"), False: float("inf")}
        results = {}
        for _ in range(args.repeats):
            for block in (False, True):
                cpu, _, fd = run(model, block)
                best[block] = min(best[block], cpu)
                results[block] = fd
        adaptive.BLOCK_ROUTE = True
        old, new = results[False], results[True]
        if old.rank != new.rank:
            raise SystemExit(f"{cell}: rank {new.rank} with the block route, {old.rank} by SVD")
        shape = f"{new.points.shape[0]} x {sum(p.numel() for p in model.parameters())}"
        print(
            f"({n0}, {width}, {depth}) | {shape} | {new.rank} | {new.method} / {old.method} | "
            f"{best[False]:.2f} | {best[True]:.2f} | {best[False] / best[True]:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
