"""symlab.ntk.layerwise_ntk against empirical_ntk(method="structured") (whose summands it returns).

Run: PYTHONPATH=. python benchmarks/bench_layerwise_ntk.py [--points 128] [--repeats 5]
     [--dtype float32]

ReLU MLP 64 → 512 → 512 → 512 → 10 (He init), ``--points`` Gaussian inputs, one thread; the two
calls are interleaved in one process and the best of ``--repeats`` kept. The sum of the per-layer
kernels is compared with the full kernel (max difference relative to max |Θ|).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from symlab.nets import mlp
from symlab.ntk import empirical_ntk, layerwise_ntk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    model = mlp([64, 512, 512, 512, 10], seed=0, dtype=dtype)
    x = torch.randn(args.points, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    times = {"empirical_ntk structured": [], "layerwise_ntk": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        full = empirical_ntk(model, x, method="structured")
        times["empirical_ntk structured"].append(time.perf_counter() - start)
        start = time.perf_counter()
        parts = layerwise_ntk(model, x)
        times["layerwise_ntk"].append(time.perf_counter() - start)
    error = float((sum(parts.values()) - full).abs().max() / full.abs().max())
    base = min(times["empirical_ntk structured"])
    print(
        f"MLP 64-512-512-512-10, N = {args.points}, K = 10, {args.dtype}, 1 thread; torch "
        f"{torch.__version__}, {platform.machine()}, best of {args.repeats} (interleaved)"
    )
    for name, values in times.items():
        print(f"{name:<28}{min(values):>8.3f} s{min(values) / base:>7.2f}x")
    print(f"max |Σ Θ_l − Θ| / max |Θ| = {error:.1e} ({len(parts)} layers)")


if __name__ == "__main__":
    main()
