"""symlab.bias.matern: the cost of a Matérn GP draw by Cholesky and by random Fourier features.

Run: .venv/bin/python benchmarks/bench_matern.py [--repeats 3] [--large]

The ``composition`` study draws g on n points of R^15 (3 outputs) and h on their images in R^3
(20 outputs). Timed per route, float64, one thread:

1. exact (``matern_gp_sample``): the kernel matrix (closed form for half-integer ν = 1.5, scipy's
   K_ν for ν = 1.7) and its Cholesky factor times a Gaussian matrix, at n = 1000, 2000, 4000
   (8000 and 12 500, the paper preset's pool, with ``--large``); the kernel and the
   factorization are also timed apart at the largest n;
2. random Fourier features (``matern_random_features``, F = 4096 features): drawing the function
   and evaluating it at n points, n = 4000 and 50 000 (the paper's pool).

Timings are the minimum of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import platform

import torch
from timing import best

from symlab.bias.matern import matern_gp_sample, matern_kernel, matern_random_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(torch.__config__.show().splitlines()[-1][:200])
    sizes = [1000, 2000, 4000] + ([8000, 12500] if args.large else [])
    for n in sizes:
        x = torch.randn(n, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        gen = torch.Generator().manual_seed(1)
        t, _ = best(lambda x=x, gen=gen: matern_gp_sample(x, 1.5, 3, gen), args.repeats)
        print(f"exact draw, n = {n:6d}, nu = 1.5 (closed form): {t:8.3f} s")
    n = sizes[-1]
    x = torch.randn(n, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t_closed, _ = best(lambda: matern_kernel(x, x, 1.5), args.repeats)
    t_bessel, _ = best(lambda: matern_kernel(x, x, 1.7), 1)
    kernel = matern_kernel(x, x, 1.5)
    kernel.diagonal().add_(1e-4)
    t_chol, _ = best(lambda: torch.linalg.cholesky(kernel), args.repeats)
    print(f"n = {n}: kernel nu = 1.5 {t_closed:.3f} s, nu = 1.7 (Bessel) {t_bessel:.3f} s, "
          f"Cholesky {t_chol:.3f} s")  # fmt: skip
    for n in (4000, 50000):
        x = torch.randn(n, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        gen = torch.Generator().manual_seed(1)
        t, _ = best(
            lambda x=x, gen=gen: matern_random_features(15, 1.5, 3, 4096, gen)(x), args.repeats
        )
        print(f"Fourier draw, n = {n:6d}, F = 4096: {t:8.3f} s")


if __name__ == "__main__":
    main()
