"""`reduce_width` (Carathéodory null-space elimination on the neurons' Gram matrix) against a
generic LP solver (scipy `linprog`, HiGHS) finding a basic feasible point of the same problem.

Problem, per hidden layer of a trained ReLU net (after dead and positively proportional neurons
are merged, which both routes share): find α ≥ 0 with V α = V 1 and few non-zeros, V = [v_i],
v_i = vec(z_i z_iᵀ, σ(z_i)σ(z_i)ᵀ). Both routes start from the Gram matrix G = VᵀV (the LP is
given the equivalent r × n system Q_rᵀ α = Q_rᵀ 1 from G's eigenvectors of non-null eigenvalues,
smaller than V's N(N+1) rows; building G and the eigendecomposition are timed in both routes).
Ours: :func:`symlab.bias.width_reduction.caratheodory_weights`. Width = non-zeros of α.

Net: ReLU MLP (10, 512, 512, 1) trained with Adam and L2 λ on N = 200 teacher–student points
(depth-3 width-10 ReLU teacher), float32 training, reduction in float64.

    PYTHONPATH=. python benchmarks/bench_reduce_width.py [--repeats 3] [--steps 3000]
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import scipy
import torch
from scipy.optimize import linprog
from timing import best

from symlab.bias import layer_activations, reduce_width
from symlab.bias.width_reduction import (
    GRAM_RTOL,
    caratheodory_weights,
    merge_proportional,
    neuron_gram,
)
from symlab.nets import mlp
from symlab.train import sample_mse_loss, train


def trained_net(n: int, width: int, steps: int, lam: float):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    teacher = mlp([10, 10, 10, 1], seed=5, dtype=torch.float32)
    with torch.no_grad():
        y = teacher(x)
    y = y / y.std()
    net = mlp([10, width, width, 1], seed=0, dtype=torch.float32)
    train(net, (x, y), method="adam", lr=1e-3, steps=steps, weight_decay=lam,
          loss=sample_mse_loss, record_every=steps)  # fmt: skip
    return net.double(), x.double(), y.double()


def ours(z: torch.Tensor) -> torch.Tensor:
    gram = neuron_gram(z, torch.relu(z))
    return caratheodory_weights(gram)


def lp(z: torch.Tensor) -> np.ndarray:
    gram = neuron_gram(z, torch.relu(z))
    values, vectors = torch.linalg.eigh(gram)
    rows = vectors[:, values > GRAM_RTOL * float(values[-1])].T.numpy()
    n = gram.shape[0]
    result = linprog(np.zeros(n), A_eq=rows, b_eq=rows.sum(1), bounds=(0, None), method="highs-ds")
    if result.status != 0:
        raise RuntimeError(f"linprog failed: {result.message}")
    return result.x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lam", type=float, default=3e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net, x, y = trained_net(200, 512, args.steps, args.lam)
    print(
        f"torch {torch.__version__}, scipy {scipy.__version__}, {platform.processor() or platform.machine()}, 1 thread"
    )
    acts = layer_activations(net, x)
    total_ours = total_lp = 0.0
    for layer, z in enumerate(acts.pre[:-1], start=1):
        kept, scale = merge_proportional(z)
        merged = z[kept] * scale[:, None]
        t_ours, alpha = best(lambda: ours(merged), args.repeats)  # noqa: B023
        t_lp, beta = best(lambda: lp(merged), args.repeats)  # noqa: B023
        total_ours, total_lp = total_ours + t_ours, total_lp + t_lp
        nnz_ours, nnz_lp = int((alpha > 0).sum()), int((beta > 1e-12).sum())
        print(
            f"layer {layer}: {z.shape[0]} neurons, {len(kept)} after merging; ours {t_ours:.3f} s "
            f"width {nnz_ours}; linprog {t_lp:.3f} s width {nnz_lp}; ratio {t_lp / t_ours:.1f}x"
        )
    t_full, result = best(lambda: reduce_width(net, x, args.lam), args.repeats)
    with torch.no_grad():
        error = float((result.model(x) - net(x)).abs().max())
    print(
        f"reduce_width end to end: {t_full:.3f} s, widths {result.widths_before} -> "
        f"{result.widths_after} (ranks {result.ranks}), max output change {error:.1e}, "
        f"λ‖θ‖² {result.penalty_before:.5f} -> {result.penalty_after:.5f}; "
        f"elimination vs linprog over both layers: {total_lp / total_ours:.1f}x"
    )


if __name__ == "__main__":
    main()
