"""Certified rank (exact Jacobian + rank mod p) vs the float64 functional-dimension route.

Same process, same quantized model, same points. Certified route:
``symlab.linalg.certified``: quantize the MLP to multiples of 2^-16, exact integer Jacobian
reduced mod p, Gaussian elimination over GF(p) (``rank_mod_p``), for the small default prime
1_048_573 (float64 BLAS path) and the large prime 2_147_483_629 (int64 16-bit-limb path).
Baseline: ``functional_dimension(quantized, x)`` (float64 closed-form Jacobian, Gram + eigvalsh).
Prints times, ratios certified / float, and checks that every rank agrees.

Run: ``python benchmarks/bench_certified.py`` (1 thread for torch and BLAS by default).
"""

from __future__ import annotations

import argparse
import time

import torch
from threadpoolctl import threadpool_limits

from symlab.linalg.certified import certified_rank, exact_jacobian, quantize_mlp
from symlab.linalg.modular import DEFAULT_PRIME, rank_mod_p
from symlab.nets import mlp
from symlab.symmetry.adaptive_dimension import functional_dimension
from symlab.symmetry.batch_dimension import fd_bound

CASES = [((10, 30, 30, 30, 30, 1), 4000), ((5, 20, 20, 20, 2), 1500), ((20, 50, 50, 1), 4000)]
SMALL_PRIME = 1_048_573


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_case(widths: tuple[int, ...], n: int) -> None:
    model = mlp(widths, bias_std=0.1, seed=0)
    x = torch.randn(n, widths[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    quantized = quantize_mlp(model, 16)
    fd, t_float = timed(lambda: functional_dimension(quantized, x))
    jac_small, t_jac = timed(lambda: exact_jacobian(quantized, x, modulus=SMALL_PRIME))
    r_small, t_small = timed(lambda: rank_mod_p(jac_small.numerators, SMALL_PRIME))
    jac_large, t_jac_large = timed(lambda: exact_jacobian(quantized, x, modulus=DEFAULT_PRIME))
    r_large, t_large = timed(lambda: rank_mod_p(jac_large.numerators, DEFAULT_PRIME))
    cert, t_cert = timed(lambda: certified_rank(model, x, bits=16))
    assert r_small == r_large == cert.rank == fd.rank, (r_small, r_large, cert.rank, fd.rank)
    d = jac_small.numerators.shape[1]
    print(
        f"| {widths} | {n} | {d} | {fd_bound(widths)} | {fd.rank} | {t_float:.2f} | "
        f"{t_jac:.2f} / {t_jac_large:.2f} | {t_small:.2f} | {t_large:.2f} | {t_cert:.2f} | "
        f"{t_cert / t_float:.1f}x | {cert.exact} ({cert.lower_bound} <= rank <= {cert.upper_bound}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        "| widths | N | D | bound | rank (all routes) | float FD s | exact J mod p s (small / "
        "large p) | rank mod small p s | rank mod large p s | certified_rank s | "
        "certified / float | exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(args.threads):
        for widths, n in CASES:
            run_case(widths, n)


if __name__ == "__main__":
    main()
