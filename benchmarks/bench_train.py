"""symlab.train: the shared loop's overhead, and a batch of seeds trained at once.

Run: .venv/bin/python benchmarks/bench_train.py [--steps 3000] [--seeds 256] [--repeats 3]
     [--points 32 256]

1. Overhead. An MLP 64 -> 128 -> 128 -> 10 (ReLU, float32) on scikit-learn's digits (1437
   training images), minibatch SGD (batch 32, lr 0.05, cross-entropy), ``--steps`` steps:
   - bare: a ``torch.optim.SGD`` loop (zero_grad, forward, backward, step) on the same seeded
     batches, nothing else;
   - shared: ``symlab.train.sgd`` recording only the end points (``record_every=[0]``; the end
     point θ_T is always recorded: two full-batch passes), i.e. what the bare loop does plus the
     finiteness check of every step's loss;
   - like-for-like: both loops record the full-batch loss and gradient ∞-norm at the same 20
     log-spaced steps (``record_every=log_spaced(steps, 20)``).
   Final parameters of bare and shared are checked equal (same batches, same updates).
2. Ensemble. ``--seeds`` two-layer tanh nets 16 -> 64 -> 1 (float32) on one regression task
   (N = 32, an online-SGD-sized batch, and N = 256; ``--points``), full-batch GD for 200 steps: ``train_ensemble`` (vmap over stacked parameters)
   against the same runs one after another with ``train``; losses per seed compared.

Timings are the minimum of ``--repeats`` runs, one thread, in one process (ratios are between runs
of the same process); the overhead variants are timed in turn, round-robin.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from timing import best

from symlab.nets import mlp
from symlab.ntk.data import load_digits_split
from symlab.train import log_spaced, sgd, train, train_ensemble
from symlab.train.optimizers import MinibatchOrder


def _digits_mlp():
    return mlp([64, 128, 128, 10], "relu", seed=0, dtype=torch.float32)


def bare_loop(data, steps: int, record_steps: set[int] | None = None):
    x, y = data
    model = _digits_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = MinibatchOrder(len(y), 32, seed=0)
    loss_fn = torch.nn.functional.cross_entropy
    for step in range(steps + 1):
        if record_steps is not None and step in record_steps:
            grads = torch.autograd.grad(loss_fn(model(x), y), list(model.parameters()))
            max(float(g.abs().max()) for g in grads)
        if step == steps:
            break
        index = batches.next()
        optimizer.zero_grad()
        loss_fn(model(x[index]), y[index]).backward()
        optimizer.step()
    return model


def shared_loop(data, steps: int, record_every):
    model = _digits_mlp()
    sgd(
        model, data, lr=0.05, steps=steps, batch_size=32, seed=0,
        loss=torch.nn.functional.cross_entropy, record_every=record_every,
    )  # fmt: skip
    return model


def _interleaved(runs: dict, repeats: int) -> dict:
    """{name: (best time, last result)}, the variants timed in turn (round-robin), so that load
    changes on a shared machine hit all of them alike."""
    times: dict = {name: [] for name in runs}
    results: dict = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), results[name]) for name in runs}


def overhead(steps: int, repeats: int) -> None:
    split = load_digits_split(dtype=torch.float32)
    data = (split.x_train, split.y_train)
    log = log_spaced(steps, 20)
    bare_loop(data, 50), shared_loop(data, 50, [0])  # warm-up
    timed = _interleaved(
        {
            "bare": lambda: bare_loop(data, steps),
            "shared": lambda: shared_loop(data, steps, [0]),
            "bare_rec": lambda: bare_loop(data, steps, log.steps),
            "shared_rec": lambda: shared_loop(data, steps, log),
        },
        repeats,
    )
    (t_bare, bare), (t_shared, shared) = timed["bare"], timed["shared"]
    t_bare_rec, t_shared_rec = timed["bare_rec"][0], timed["shared_rec"][0]
    same = all(torch.equal(a, b) for a, b in zip(bare.parameters(), shared.parameters()))
    print(f"overhead: MLP 64-128-128-10 on digits, SGD batch 32, {steps} steps, 1 thread")
    print(f"  bare torch.optim loop         {t_bare:7.3f} s  ({steps / t_bare:7.0f} steps/s)")
    print(
        f"  symlab.train.sgd (end points) {t_shared:7.3f} s  ({steps / t_shared:7.0f} steps/s)"
        f"  overhead {100 * (t_shared / t_bare - 1):+.1f}%  same parameters: {same}"
    )
    print(
        f"  both recording 20 log-spaced: bare {t_bare_rec:.3f} s, symlab {t_shared_rec:.3f} s, "
        f"overhead {100 * (t_shared_rec / t_bare_rec - 1):+.1f}%"
    )


def ensemble(count: int, repeats: int, n_points: int, steps: int = 200) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_points, 16, generator=g)
    y = torch.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3]

    def nets():
        return [mlp([16, 64, 1], "tanh", seed=s, dtype=torch.float32) for s in range(count)]

    options = {"lr": 0.05, "steps": steps, "record_every": 10}
    train_ensemble(nets()[:4], (x, y), **options)  # warm-up (vmap tracing, allocator)
    t_batched, result = best(lambda: train_ensemble(nets(), (x, y), **options), repeats)
    t_sequential, runs = best(lambda: [train(net, (x, y), **options) for net in nets()], 1)
    worst = max(
        max(abs(a - b) / abs(b) for a, b in zip(t.losses, r.losses, strict=True))
        for t, r in zip(result.trajectories, runs, strict=True)
    )
    print(
        f"ensemble: {count} nets 16-64-1 (tanh, float32), N = {n_points}, GD {steps} steps, "
        f"1 thread"
    )
    print(f"  one after another {t_sequential:7.2f} s")
    print(
        f"  train_ensemble    {t_batched:7.2f} s   speed-up {t_sequential / t_batched:.1f}x; "
        f"max relative loss difference per seed {worst:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} thread")
    overhead(args.steps, args.repeats)
    for n_points in args.points:
        ensemble(args.seeds, args.repeats, n_points)


if __name__ == "__main__":
    main()
