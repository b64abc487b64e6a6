"""Hessian inertia: symlab dense (torch.func) and Lanczos (ARPACK on HVPs) vs the obvious baseline.

Baseline: ``torch.autograd.functional.hessian`` (default, one backward pass per row) of the loss
over the flat parameter vector, then ``torch.linalg.eigvalsh``. Each model is first trained by
L-BFGS for a few hundred iterations (near a minimum, few negative directions), so Lanczos only needs
the bottom of the spectrum. Prints times, ratios vs the baseline, and whether the counts agree.

    .venv/bin/python benchmarks/bench_hessian.py
"""

from __future__ import annotations

import time

import torch

from symlab.critical.criticality import hessian_inertia
from symlab.nets import flatten_params, mlp
from symlab.train import lbfgs


def baseline_inertia(model, data, tol):
    x, y = data
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss(theta):
        chunks = torch.split(theta, [s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
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
        f"{'widths':<16}{'D':>6}{'baseline s':>12}{'dense s':>10}{'x':>7}{'lanczos s':>11}{'x':>7}  counts (neg, zero, pos)"
    )
    for widths in ([4, 16, 1], [8, 32, 1], [8, 32, 32, 1], [8, 48, 48, 1]):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(200, widths[0], generator=g, dtype=torch.float64)
        teacher = mlp([widths[0], 8, 1], "tanh", seed=1)
        y = teacher(x).detach()
        model = mlp(widths, "tanh", seed=2)
        lbfgs(model, (x, y), max_iter=300, tol=1e-10)
        dense, t_dense = timed(lambda: hessian_inertia(model, (x, y), method="dense"), repeat=2)
        tol = dense.tol
        base, t_base = timed(lambda: baseline_inertia(model, (x, y), tol))
        lanczos, t_lanczos = timed(
            lambda: hessian_inertia(model, (x, y), method="lanczos", k=16, tol=tol)
        )
        agree = base == dense.as_tuple() == lanczos.as_tuple() and lanczos.complete
        dim = sum(p.numel() for p in model.parameters())
        print(
            f"{str(widths):<16}{dim:>6}{t_base:>12.3f}{t_dense:>10.3f}{t_base / t_dense:>7.1f}"
            f"{t_lanczos:>11.3f}{t_base / t_lanczos:>7.1f}  {dense.as_tuple()} "
            f"{'agree' if agree else f'DIFFER: baseline {base}, lanczos {lanczos.as_tuple()}'}"
        )


if __name__ == "__main__":
    main()
