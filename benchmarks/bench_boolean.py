"""symlab.boolean: the fast Walsh–Hadamard transform and the exact leap against their baselines.

Run: .venv/bin/python benchmarks/bench_boolean.py [--repeats 5] [--dense-dims 12 13] [--large]

1. FWHT (float64, one vector). ``fwht`` (radix-16 constant geometry: ⌈d/4⌉ passes, each a
   batched product with the 16 × 16 Hadamard block) at d = 20, against
   - the dense product H_{2^d} v: at d = 20 the matrix has 2^40 entries (8 TiB), so it is timed
     at ``--dense-dims`` (12, 13; 14 with ``--large``, a 2 GiB matrix; the matrix is built
     before the clock starts) and extrapolated to d = 20 by its 4^d operation count; the FWHT
     is also timed at those d for a measured ratio;
   - radix-2 butterflies (this script's reference: d passes, each one add and one subtract
     into a ping-pong buffer), the textbook FWHT;
   - the memory-bandwidth floor of a radix-2 FWHT: d passes of a plain copy (and of a plain
     add) over 2^d float64 entries, measured in the same run.
   Also the end-to-end exact transform of a black box at d = 20: ``walsh_coefficients`` of a
   two-layer tanh net 20 -> 64 -> 1 (float64), 2^20 evaluations in chunks of 2^16.
2. Leap. ``leap`` on random families of 12 supports over 16 coordinates (each support 1–5
   coordinates drawn uniformly), against the exact reference "brute force":
   - a dynamic programme over the 2^12 subsets (best[A] = min over the last support S of A of
     max(best[A − S], new(S, ∪(A − S)))), which returns the same minimum as all 12! orderings;
   - enumeration of all m! orderings, timed at m = 6, 7, 8 on the first m supports and
     extrapolated to m = 12 by the m!·m count.
   The three values are checked equal wherever they are computed.

Timings are the minimum of ``--repeats`` runs, one thread (torch.set_num_threads(1)).
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import random

import torch
from timing import best

from symlab.boolean import fwht, hadamard, leap, walsh_coefficients


def radix2_fwht(values: torch.Tensor) -> torch.Tensor:
    """The textbook FWHT: d passes; pass j pairs entries 2^j apart (add into one half of a
    second buffer, subtract into the other), then the buffers swap."""
    n = values.shape[-1]
    x, y = values.clone(), torch.empty_like(values)
    for j in range(n.bit_length() - 1):
        h = 1 << j
        xv, yv = x.view(-1, 2, h), y.view(-1, 2, h)
        torch.add(xv[:, 0], xv[:, 1], out=yv[:, 0])
        torch.sub(xv[:, 0], xv[:, 1], out=yv[:, 1])
        x, y = y, x
    return x


def dense_hadamard(d: int) -> torch.Tensor:
    """H_{2^d} = H_2 ⊗ … ⊗ H_2 (Sylvester), built by Kronecker products."""
    matrix = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(d):
        matrix = torch.kron(hadamard(1), matrix)
    return matrix


def bench_fwht(d: int, dense_dims: list[int], repeats: int) -> None:
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(1 << d, dtype=torch.float64, generator=generator)
    t_fwht, fast = best(lambda: fwht(v), repeats)
    t_radix2, textbook = best(lambda: radix2_fwht(v), repeats)
    assert torch.allclose(fast, textbook, atol=1e-9), "radix-16 and radix-2 disagree"
    a, out = torch.randn_like(v), torch.empty_like(v)

    def copies():
        for _ in range(d):
            out.copy_(a)

    def adds():
        for _ in range(d):
            torch.add(a, v, out=out)

    t_copy, _ = best(copies, repeats)
    t_add, _ = best(adds, repeats)
    print(f"FWHT at d = {d} (2^{d} float64 entries):")
    print(f"  fwht (radix-16, {math.ceil(d / 4)} passes)      {t_fwht * 1e3:9.2f} ms")
    print(f"  radix-2 butterflies ({d} passes)     {t_radix2 * 1e3:9.2f} ms")
    print(f"  floor: {d} copies of 2^{d} entries     {t_copy * 1e3:9.2f} ms")
    print(f"  floor: {d} adds of 2^{d} entries       {t_add * 1e3:9.2f} ms")
    print(
        f"  fwht / copy floor = {t_fwht / t_copy:.2f}, fwht / add floor = {t_fwht / t_add:.2f}, "
        f"radix-2 / copy floor = {t_radix2 / t_copy:.2f}"
    )
    for k in dense_dims:
        matrix = dense_hadamard(k)
        w = torch.randn(1 << k, dtype=torch.float64, generator=generator)
        t_dense, dense = best(lambda m=matrix, w=w: m @ w, repeats)
        t_small, small = best(lambda w=w: fwht(w), repeats)
        assert torch.allclose(dense, small, atol=1e-8), "dense product and fwht disagree"
        extrapolated = t_dense * 4 ** (d - k)
        print(
            f"  dense H v at d = {k}: {t_dense * 1e3:9.2f} ms (fwht {t_small * 1e3:.3f} ms, "
            f"ratio {t_dense / t_small:.0f}x); extrapolated to d = {d} by 4^d: "
            f"{extrapolated:.0f} s = {extrapolated / t_fwht:.1e} x fwht"
        )
        del matrix
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    net = net.double()
    t_exact, _ = best(lambda: walsh_coefficients(net, d), max(1, repeats // 2))
    print(f"  walsh_coefficients of a {d}->64->1 tanh net: {t_exact:.2f} s (evaluation + fwht)")


def subset_dp(supports: list[frozenset[int]]) -> int:
    """Exact leap by dynamic programming over the 2^m subsets of supports."""
    m = len(supports)
    union = [frozenset()] * (1 << m)
    best_cost = [0] * (1 << m)
    for a in range(1, 1 << m):
        low = (a & -a).bit_length() - 1
        union[a] = union[a & (a - 1)] | supports[low]
        best_cost[a] = min(
            max(best_cost[a ^ (1 << i)], len(supports[i] - union[a ^ (1 << i)]))
            for i in range(m)
            if a >> i & 1
        )
    return best_cost[-1]


def all_orderings(supports: list[frozenset[int]]) -> int:
    """Exact leap by enumerating the m! orderings."""
    best_cost = len(set().union(*supports))
    for order in itertools.permutations(supports):
        covered, worst = set(), 0
        for s in order:
            worst = max(worst, len(s - covered))
            covered |= s
        best_cost = min(best_cost, worst)
    return best_cost


def bench_leap(repeats: int, instances: int = 5) -> None:
    rng = random.Random(0)
    calls = 200  # leap() is timed over this many calls, per call
    print("leap of 12 supports over 16 coordinates (sizes 1-5), per instance:")
    for i in range(instances):
        supports = list(
            {frozenset(rng.sample(range(1, 17), rng.randint(1, 5))) for _ in range(40)}
        )[:12]
        rng.shuffle(supports)
        t_leap, result = best(lambda s=supports: [leap(s) for _ in range(calls)][-1], repeats)
        t_leap /= calls
        t_dp, dp_value = best(lambda s=supports: subset_dp(s), max(1, repeats // 2))
        assert result.leap == dp_value, (result.leap, dp_value)
        line = (
            f"  #{i}: leap {result.leap}: leap() {t_leap * 1e3:.3f} ms, "
            f"DP over 2^12 subsets {t_dp * 1e3:.0f} ms ({t_dp / t_leap:.0f}x)"
        )
        if i == 0:
            per_ordering = []
            for m in (6, 7, 8):
                t_m, value = best(lambda s=supports[:m]: all_orderings(s), 1)
                assert value == leap(supports[:m]).leap == subset_dp(supports[:m])
                per_ordering.append(t_m / (math.factorial(m) * m))
                line += f"; {m}! orderings {t_m * 1e3:.0f} ms"
            estimate = min(per_ordering) * math.factorial(12) * 12
            line += f"; 12! orderings extrapolated: {estimate:.0f} s"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--dense-dims", type=int, nargs="+", default=[12, 13])
    parser.add_argument("--large", action="store_true", help="also the dense product at d = 14")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}")
    dense_dims = sorted(set(args.dense_dims) | ({14} if args.large else set()))
    bench_fwht(args.dim, dense_dims, args.repeats)
    bench_leap(args.repeats)


if __name__ == "__main__":
    main()
