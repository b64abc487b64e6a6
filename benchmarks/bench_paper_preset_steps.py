"""The hidden-symmetries paper preset's costly steps, each against its baseline in one process.

1. **One-neuron forward of the boundary sampler** (``neuron_preactivations``: each
   point's pass stops at its neuron's layer, points by cache-sized blocks) against the full pass
   it replaced (every hidden layer's pre-activations of every point, concatenated, then the
   point's neuron gathered), on the shapes the sampler calls it with: the grid search (2048 lines
   x 65 grid points) and a bisection step (20000 lines). The values must be equal bit for bit.
2. **Kept Jacobian columns** (the scaling columns dropped, ``ScaledJacobian``): one
   ``torch.index_select`` against ``numpy.take(axis=1)``, each into fresh memory as in the
   adaptive loop (the loop keeps every block of rows for the certificate).
3. (``--certificate``) **The final certificate of a capped network**: ``functional_dimension``
   with ``certify_budget_stop`` True and False on the same network (a (n0, 20 x 6, 1) network
   at 40000 points): CPU seconds and the two ranks.

CPU seconds of this one-thread process (``time.process_time``), best of ``--repeats``, so that
other work on the machine moves them less than wall time. Run:
``python benchmarks/bench_paper_preset_steps.py [--certificate]``.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

from symlab.nets import mlp
from symlab.symmetry.adaptive_dimension import functional_dimension
from symlab.symmetry.boundary_sampler import hidden_preactivations, neuron_preactivations
from symlab.symmetry.samplers import multiscale


def best_cpu(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def full_pass(model, x: torch.Tensor, neuron: torch.Tensor) -> torch.Tensor:
    """The replaced route: every hidden pre-activation of every point, then its neuron's."""
    flat = x.reshape(-1, x.shape[-1])
    z = hidden_preactivations(model, flat).view(*x.shape[:-1], -1)
    index = neuron.view(-1, *([1] * (x.dim() - 2))).expand(*x.shape[:-1])
    return z.gather(-1, index[..., None])[..., 0]


def forward_section(repeats: int) -> None:
    print("1. one-neuron forward: shape, network, full pass s, one-neuron s, ratio, equal")
    for widths in ([10] + [20] * 6 + [1], [5] + [20] * 5 + [1], [15] + [15] * 4 + [1]):
        model = mlp(widths, init="he", bias_std=0.1, seed=0, dtype=torch.float64)
        hidden = sum(widths[1:-1])
        generator = torch.Generator().manual_seed(0)
        for name, shape in (("grid 2048 x 65", (2048, 65)), ("bisection 20000", (20000,))):
            x = multiscale(int(np.prod(shape)), widths[0], generator).view(*shape, widths[0])
            neuron = torch.randint(hidden, (shape[0],), generator=generator)
            full = functools.partial(full_pass, model, x, neuron)
            one = functools.partial(neuron_preactivations, model, x, neuron)
            with torch.no_grad():
                old_s, old = best_cpu(full, repeats)
                new_s, new = best_cpu(one, repeats)
            print(
                f"   {name:16s} {tuple(widths[:2])}x{len(widths) - 2}  {old_s:.4f}  {new_s:.4f}  "
                f"{old_s / new_s:.2f}x  {torch.equal(old, new)}"
            )


def columns_section(repeats: int) -> None:
    print("2. kept columns of a 2048 x 2341 block into fresh memory: numpy.take s, index_select s")
    generator = torch.Generator().manual_seed(0)
    columns = torch.sort(torch.randperm(2341, generator=generator)[:2221]).values
    blocks = [torch.randn(2048, 2341, dtype=torch.float64, generator=generator) for _ in range(8)]
    kept: list = []  # keep every result alive, as the adaptive loop keeps its rows

    def take():
        kept.extend(np.take(b.numpy(), columns.numpy(), axis=1) for b in blocks)

    def select():
        kept.extend(torch.index_select(b, 1, columns) for b in blocks)

    take_s, _ = best_cpu(take, repeats)
    kept.clear()
    select_s, _ = best_cpu(select, repeats)
    same = all(np.array_equal(np.take(b.numpy(), columns.numpy(), axis=1),
                              torch.index_select(b, 1, columns).numpy()) for b in blocks[:2])  # fmt: skip
    print(f"   per block: {take_s / 8 * 1e3:.1f} ms  {select_s / 8 * 1e3:.1f} ms  "
          f"ratio {take_s / select_s:.2f}x  equal {same}")  # fmt: skip


def certificate_section(n0s: list[int]) -> None:
    print("3. capped (n0, 20 x 6, 1) networks at 40000 points: certified s, count s, ranks")
    for n0 in n0s:
        model = mlp([n0] + [20] * 6 + [1], init="he", bias_std=0.1, seed=1, dtype=torch.float64)
        rows = []
        for certify in (True, False):
            start = time.process_time()
            fd = functional_dimension(
                model, sampler="gaussian", seed=1, max_points=40000, certify_budget_stop=certify
            )
            rows.append((time.process_time() - start, fd.rank, fd.method, fd.upper))
        (cert_s, cert_rank, cert_method, upper), (count_s, count_rank, count_method, _) = rows
        print(f"   n0 = {n0:2d}: {cert_s:.2f} s ({cert_method}, rank {cert_rank})  "
              f"{count_s:.2f} s ({count_method}, rank {count_rank})  upper {upper}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--certificate", action="store_true", help="also time section 3")
    parser.add_argument("--n0", type=int, nargs="+", default=[5, 10], help="section 3's n0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, numpy {np.__version__}, 1 thread, CPU seconds")
    forward_section(args.repeats)
    columns_section(args.repeats)
    if args.certificate:
        certificate_section(args.n0)


if __name__ == "__main__":
    main()
