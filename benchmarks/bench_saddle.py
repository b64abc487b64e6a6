"""The saddle-to-saddle study's training loops: symlab.train against a bare torch.optim.SGD loop.

Run: .venv/bin/python benchmarks/bench_saddle.py [--steps 2000] [--repeats 3]

At the quick preset's sizes (d = 40, rank 3, float32 cells, float64 traces, one thread):

1. Phase-diagram cell: a two-layer linear net A = W_2 W_1 on Tu et al.'s noisy target (loss
   ½‖A − Y‖_F²), widths 40^1.75 = 635 and 40^2.8 = 30,342 (the narrowest and widest cells),
   full-batch GD with Tu et al.'s step: ``symlab.train.gradient_descent`` recording only the end
   points (``record_every=[0]``, ``record_grad_norm=False``) against the bare loop
   ``zero_grad; loss(model(X), y).backward(); step`` on the same model and data.
2. Trace: depth 2 and 4, width 84, 3 inits on the completion task (the study's loss with its
   mask), float64: ``symlab.train.train_ensemble`` (the study's route, vmap over the 3 stacked
   models) against 3 bare loops one after another; and ``gradient_descent`` on one model against
   one bare loop.

Final parameters are compared (same updates, so equal up to rounding). Timings are the minimum of
``--repeats`` runs in one process, the compared loops interleaved; ratio = bare time / symlab
time (>= 1: no overhead).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from symlab.bias import DeepLinearNetwork, dln_learning_rate, init_variance, low_rank_task
from symlab.engine.provenance import software_environment
from symlab.train import gradient_descent, train_ensemble


def _race(fns, repeats: int):
    """Best time and last result of each function, the runs interleaved (fair under a varying
    load on a shared machine)."""
    times = [[] for _ in fns]
    results = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [(min(t), r) for t, r in zip(times, results)]


def bare_loop(model, data, loss, lr: float, steps: int):
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(model(x), y).backward()
        optimizer.step()
    return model


@torch.no_grad()
def _gap(models_a, models_b) -> float:
    gaps = [
        float((pa - pb).abs().max() / pb.abs().max())
        for a, b in zip(models_a, models_b)
        for pa, pb in zip(a.parameters(), b.parameters())
    ]
    return max(gaps)


def cell(width: int, steps: int, repeats: int) -> None:
    d = 40
    task = low_rank_task(d, 3, noise=1.0, seed=0, dtype=torch.float32)
    s1 = float(torch.linalg.svdvals(task.target.double())[0])
    variance = d**-1.5
    lr = dln_learning_rate(2, width, variance, s1, d)
    data, loss = task.data(), task.loss()

    def fresh():
        return DeepLinearNetwork(d, d, width, 2, variance, seed=0, dtype=torch.float32)

    options = dict(lr=lr, steps=steps, loss=loss, record_every=[0], record_grad_norm=False)
    bare_loop(fresh(), data, loss, lr, 20)  # warm-up
    gradient_descent(fresh(), data, **{**options, "steps": 20})
    (t_bare, bare), (t_sym, sym) = _race(
        [
            lambda: bare_loop(fresh(), data, loss, lr, steps),
            lambda: _trained(fresh(), data, options),
        ],
        repeats,
    )
    print(
        f"cell d={d} w={width}: bare {steps / t_bare:8.0f} steps/s, symlab.train "
        f"{steps / t_sym:8.0f} steps/s, ratio {t_bare / t_sym:.2f}, max rel. parameter gap "
        f"{_gap([sym], [bare]):.1e}"
    )


def _trained(model, data, options):
    gradient_descent(model, data, **options)
    return model


def trace(depth: int, steps: int, repeats: int, seeds: int = 3) -> None:
    d, width, dtype = 40, 84, torch.float64
    task = low_rank_task(d, 3, spectrum="geometric", ratio=0.25, observed=0.8, seed=0, dtype=dtype)
    s1 = float(torch.linalg.svdvals(task.target)[0])
    variance = init_variance(1e-4, depth, width, d, s1)
    lr = dln_learning_rate(depth, width, variance, s1, d, factor=2.5)
    data, loss = task.data(), task.loss()

    def fresh(s):
        return DeepLinearNetwork(d, d, width, depth, variance, seed=s, dtype=dtype)

    def bare_all():
        return [bare_loop(fresh(s), data, loss, lr, steps) for s in range(seeds)]

    def ensemble():
        models = [fresh(s) for s in range(seeds)]
        train_ensemble(models, data, lr=lr, steps=steps, loss=loss, record_every=[0])
        return models

    options = dict(lr=lr, steps=steps, loss=loss, record_every=[0], record_grad_norm=False)
    ensemble(), bare_all()  # warm-up
    (t_bare, bare), (t_ens, ens), (t_one_bare, one_bare), (t_one, one) = _race(
        [
            bare_all,
            ensemble,
            lambda: bare_loop(fresh(0), data, loss, lr, steps),
            lambda: _trained(fresh(0), data, options),
        ],
        repeats,
    )
    print(
        f"trace L={depth} w={width} x{seeds} inits: {seeds} bare loops {seeds * steps / t_bare:7.0f} "
        f"model-steps/s, train_ensemble {seeds * steps / t_ens:7.0f} model-steps/s, ratio "
        f"{t_bare / t_ens:.2f} (gap {_gap(ens, bare):.1e}); one model: bare "
        f"{steps / t_one_bare:6.0f}, gradient_descent {steps / t_one:6.0f} steps/s, ratio "
        f"{t_one_bare / t_one:.2f} (gap {_gap([one], [one_bare]):.1e})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = software_environment()
    print(f"torch {env['torch']}, Python {platform.python_version()}, BLAS {env['blas']}, "
          f"CPU {env['cpu']}, 1 thread")  # fmt: skip
    for width in (635, 30342):
        cell(width, args.steps if width < 10000 else max(args.steps // 10, 50), args.repeats)
    for depth in (2, 4):
        trace(depth, args.steps, args.repeats)


if __name__ == "__main__":
    main()
