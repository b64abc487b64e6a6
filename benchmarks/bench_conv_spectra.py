"""symlab.bias.conv_frequency_spectra against the SVD of the layer's dense matrix.

Run: PYTHONPATH=. python benchmarks/bench_conv_spectra.py [--channels 64] [--sizes 4 6 8]
     [--target-size 32] [--repeats 3]

A 3×3 circular Conv2d with ``--channels`` input and output channels, float64, one thread:

- dense: the (c n²) × (c n²) matrix of the layer (``dense_conv_matrix``, built by applying the
  layer to the standard basis; its construction is not timed) and ``torch.linalg.svdvals`` of it;
- dft: ``conv_frequency_spectra``, n² SVDs of c × c matrices after one einsum.

At each image size of ``--sizes`` both routes are timed (best of ``--repeats``, interleaved in one
process) and their sorted singular values compared (max absolute difference relative to s_max).
At ``--target-size`` (32: the dense matrix would be 65536² float64 numbers, 34 GB, out of reach
here) only the dft route is timed; the dense time there is extrapolated from the measured sizes
by the SVD's (c n²)³ cost, fitted as t = a (c n²)^3 on the largest measured size, and reported
as an estimate.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from symlab.bias import conv_frequency_spectra, dense_conv_matrix


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 6, 8])
    parser.add_argument("--target-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    c = args.channels
    conv = nn.Conv2d(c, c, 3, padding=1, padding_mode="circular", dtype=torch.float64)
    print(
        f"Conv2d {c}->{c}, 3x3, circular, float64, 1 thread; torch {torch.__version__}, "
        f"{platform.machine()}, best of {args.repeats} (interleaved)"
    )
    print(
        f"{'n':>4}{'dense rows':>12}{'dense s':>10}{'dft s':>10}{'speedup':>9}{'max |Δs|/s_max':>16}"
    )
    last = None
    for n in args.sizes:
        matrix = dense_conv_matrix(conv, n)
        t_dense, t_dft = [], []
        for _ in range(args.repeats):
            seconds, dense = timed(lambda matrix=matrix: torch.linalg.svdvals(matrix))
            t_dense.append(seconds)
            seconds, spectrum = timed(lambda n=n: conv_frequency_spectra(conv, n))
            t_dft.append(seconds)
        error = float((spectrum.all_values() - dense).abs().max() / dense[0])
        best_dense, best_dft = min(t_dense), min(t_dft)
        print(
            f"{n:>4}{matrix.shape[0]:>12}{best_dense:>10.4f}{best_dft:>10.4f}"
            f"{best_dense / best_dft:>8.0f}x{error:>16.1e}"
        )
        last = (matrix.shape[0], best_dense)
        del matrix
    n = args.target_size
    t_dft = min(timed(lambda: conv_frequency_spectra(conv, n))[0] for _ in range(args.repeats))
    rows = c * n * n
    estimate = last[1] * (rows / last[0]) ** 3
    print(
        f"{n:>4}{rows:>12}{'~' + format(estimate, '.0f'):>10}{t_dft:>10.4f}"
        f"{estimate / t_dft:>8.0f}x  (dense time estimated as t ∝ rows³ from n = {args.sizes[-1]})"
    )


if __name__ == "__main__":
    main()
