"""Hessian inertia: symlab dense (torch.func) and Lanczos (ARPACK on HVPs) vs the obvious baseline.

Baseline: ``torch.autograd.functional.hessian`` (default, one backward pass per row) of the loss
over the flat parameter vector, then ``torch.linalg.eigvalsh``. Each model is a narrow softplus
net trained to a critical point (gradient ≤ 1e-10) and embedded into a wider one by random
neuron splits (``symlab.critical.embed``): a degenerate critical point with many zero and few
negative eigenvalues, the case the study needs. Prints times, ratios vs the baseline, and whether
the three (negative, zero, positive) counts agree.

    .venv/bin/python benchmarks/bench_hessian.py [--large]
"""

from __future__ import annotations

import sys
import time
from functools import partial

import torch

from symlab.critical.criticality import hessian_inertia, train_to_critical
from symlab.critical.embeddings import embed
from symlab.nets import flatten_params, mlp


def baseline_inertia(model, data, tol):
    x, y = data
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss(theta):
        chunks = torch.split(theta, [s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return ((torch.func.functional_call(model, params, (x,)) - y) ** 2).mean()

    lam = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flatten_params(model)))
    return int((lam < -tol).sum()), int((lam.abs() <= tol).sum()), int((lam > tol).sum())


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, float64")
    print(
        f"{'narrow -> wide':<28}{'D':>6}{'baseline s':>12}{'dense s':>10}{'x':>7}"
        f"{'lanczos s':>11}{'x':>7}  counts (neg, zero, pos)"
    )
    cases = [([4, 6, 1], [4, 16, 1]), ([4, 6, 1], [4, 48, 1]), ([4, 6, 6, 1], [4, 16, 16, 1])]
    if "--large" in sys.argv:  # ~5 more minutes: shows Lanczos hitting its k cap (complete=False)
        cases.append(([4, 6, 6, 1], [4, 28, 28, 1]))
    for narrow_widths, widths in cases:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(200, widths[0], generator=g, dtype=torch.float64)
        y = mlp([widths[0], 8, 1], "softplus", seed=1)(x).detach()
        narrow = mlp(narrow_widths, "softplus", seed=2)
        train_to_critical(narrow, (x, y), tol=1e-10)
        model = embed(narrow, widths, alpha="random", seed=3)  # a degenerate critical point
        data = (x, y)
        dense, t_dense = timed(partial(hessian_inertia, model, data, method="dense"), repeat=2)
        tol = dense.tol
        base, t_base = timed(partial(baseline_inertia, model, data, tol))
        lanczos, t_lanczos = timed(
            partial(hessian_inertia, model, data, method="lanczos", k=16, tol=tol)
        )
        agree = base == dense.as_tuple() == lanczos.as_tuple()
        dim = sum(p.numel() for p in model.parameters())
        print(
            f"{str(narrow_widths) + ' -> ' + str(widths):<28}{dim:>6}{t_base:>12.3f}"
            f"{t_dense:>10.3f}{t_base / t_dense:>7.1f}{t_lanczos:>11.3f}{t_base / t_lanczos:>7.1f}"
            f"  {dense.as_tuple()} "
            f"{'agree' if agree else f'DIFFER: baseline {base}, lanczos {lanczos.as_tuple()}'}"
            f"{'' if lanczos.complete else ' (lanczos complete=False)'}"
        )


if __name__ == "__main__":
    main()
