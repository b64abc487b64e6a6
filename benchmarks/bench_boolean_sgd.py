"""Online SGD on the staircase task: a batch of seeds through symlab.train vs a plain torch loop.

Run: PYTHONPATH=. python benchmarks/bench_boolean_sgd.py [--dim 128] [--width 512] [--batches 1 64]
     [--seeds 1 8 32] [--steps 400] [--repeats 3] [--routes fused autograd]

Task: f*(x) = x1 + x1x2 + x1x2x3 on x ~ Unif{±1}^d, fresh samples every step (online SGD), the
mean-field two-layer net f(x) = (1/N) Σ_j a_j σ(⟨w_j, x⟩) of :mod:`symlab.boolean.mean_field`
(shifted sigmoid, float32), per-layer step sizes 0.01·N.

- plain: one model at a time, ``torch.optim.SGD`` with the two layers' groups, a fresh batch per
  step from the same sampler, zero_grad / forward / MSE / backward / step, nothing else;
- fused: ``train_ensemble`` on S copies (S = ``--seeds``), one independent fresh batch per model
  (``data_per_model=True``), recording only the end points, with its default fused closed-form
  step (:mod:`symlab.train.two_layer_sgd`: 3 passes over the stacked first layer, no autograd);
- autograd: the same with ``closed_form=False`` (vmap + autograd + ``torch.optim.SGD``: 5 passes).

Reported: model-steps per second (S × steps / time) and the ratio to the plain loop. Timings are
the minimum over ``--repeats`` interleaved runs, one thread, in one process.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from symlab.boolean.mean_field import MeanFieldNet, layer_learning_rates
from symlab.boolean.targets import monomial_sampler, monomial_target
from symlab.train import train_ensemble

TARGET = monomial_target([[1], [1, 2], [1, 2, 3]])
LR = 0.01


def plain_loop(d: int, width: int, batch: int, steps: int) -> float:
    model = MeanFieldNet(d, width, seed=0)
    groups = layer_learning_rates(width, LR, LR)
    optimizer = torch.optim.SGD(
        [{"params": [model.w], "lr": groups[0]["lr"]}, {"params": [model.a], "lr": groups[1]["lr"]}]
    )
    sampler = monomial_sampler(TARGET, d, batch)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for step in range(steps):
        x, y = sampler(step, generator)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return time.perf_counter() - start


def ensemble(d: int, width: int, batch: int, steps: int, count: int, route: str) -> float:
    models = [MeanFieldNet(d, width, seed=s) for s in range(count)]
    groups = layer_learning_rates(width, LR, LR)
    sampler = monomial_sampler(TARGET, d, batch, models=count)
    start = time.perf_counter()
    train_ensemble(
        models, None, sampler=sampler, lr=groups[0]["lr"], steps=steps, param_groups=groups,
        data_per_model=True, record_every=[0], closed_form=route == "fused",
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--routes", nargs="+", default=["fused", "autograd"])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    blas = "MKL" if torch.backends.mkl.is_available() else "no MKL"
    print(f"torch {torch.__version__} ({blas}), {platform.machine()}, 1 thread")
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"staircase x1 + x1x2 + x1x2x3, d = {args.dim}, width {args.width}, {args.steps} steps")
    for batch in args.batches:
        plain_loop(args.dim, args.width, batch, 20)  # warm-up
        for route in args.routes:
            ensemble(args.dim, args.width, batch, 20, 2, route)
        cases = [(route, count) for route in args.routes for count in args.seeds]
        plain, times = [], {case: [] for case in cases}
        for _ in range(args.repeats):  # interleaved, so that load changes hit every route
            plain.append(plain_loop(args.dim, args.width, batch, args.steps))
            for route, count in cases:
                seconds = ensemble(args.dim, args.width, batch, args.steps, count, route)
                times[route, count].append(seconds)
        base = args.steps / min(plain)
        print(f"batch {batch}: plain torch.optim.SGD loop      {base:8.0f} model-steps/s")
        for (route, count), seconds in times.items():
            rate = count * args.steps / min(seconds)
            print(
                f"batch {batch}: {route:8s} {count:3d} seeds        {rate:8.0f} model-steps/s"
                f"   ratio {rate / base:5.2f}x"
            )
    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
