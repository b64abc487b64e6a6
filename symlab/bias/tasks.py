"""Regression tasks of known bottleneck rank: compositions of random shallow ReLU networks.

- :func:`latent_bottleneck_task` (Jacot, NeurIPS 2023, arXiv 2305.19008, Sec. 5): a latent
  z ~ N(0, I_m), inputs x = g(z) ∈ R^{d_in}, targets y = h(z_1, …, z_k) ∈ R^{d_out}, with g and h
  random one-hidden-layer ReLU nets. When g is injective the target function x ↦ y factors through
  the k coordinates (z_1, …, z_k) = π(g⁻¹(x)): its bottleneck rank is k (the paper: m = 8, k = 2,
  d_in = d_out = 20).
- :func:`composite_teacher_task` (Jacot & Kaiser 2024, arXiv 2405.17573, App. B): x ~ N(0, I_d),
  y = g_2(g_1(x)) with random one-hidden-layer ReLU nets g_1: R^d → R^k, g_2: R^k → R^{d_out}
  (the paper: 30 → 3 → 30, k* = 3).

The random nets are :func:`symlab.nets.mlp` with He weights and N(0, ``bias_std``²) biases
(``bias_std`` = 0.5 so that the hidden units cut the data at different places). Inputs are
standardized per coordinate and targets centered and scaled so that (1/N) Σ_i ‖y_i‖² = 1, both
with the training set's statistics (the paper: "demeaned and normalized"), so that a
regularization λ is measured against a target of unit mean squared norm. Every draw comes from
generators seeded by ``seed``; training and test points are i.i.d. from the same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from symlab.nets import mlp

TEACHER_BIAS_STD = 0.5


@dataclass
class Task:
    """Training and test sets (float64) and the bottleneck rank of the target function."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    rank: int

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[Tensor, Tensor]:
        return self.x_test, self.y_test


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def _normalized(x: Tensor, y: Tensor, n_train: int, rank: int) -> Task:
    mean_x, std_x = x[:n_train].mean(0), x[:n_train].std(0).clamp_min(1e-12)
    x = (x - mean_x) / std_x
    y = y - y[:n_train].mean(0)
    y = y / y[:n_train].square().sum(1).mean().sqrt()
    return Task(x[:n_train], y[:n_train], x[n_train:], y[n_train:], rank)


def _shallow(d_in: int, hidden: int, d_out: int, seed: int):
    return mlp([d_in, hidden, d_out], bias_std=TEACHER_BIAS_STD, seed=seed).requires_grad_(False)


def latent_bottleneck_task(
    n_train: int,
    n_test: int,
    seed: int = 0,
    *,
    latent: int = 8,
    rank: int = 2,
    d_in: int = 20,
    d_out: int = 20,
    hidden: int = 100,
) -> Task:
    """x = g(z), y = h(z_1, …, z_rank) with z ~ N(0, I_latent) (module docstring)."""
    for name, value in (("n_train", n_train), ("n_test", n_test), ("latent", latent)):
        _positive(name, value)
    for name, value in (("rank", rank), ("d_in", d_in), ("d_out", d_out), ("hidden", hidden)):
        _positive(name, value)
    if rank > latent:
        raise ValueError(f"rank: expected at most latent = {latent}, got {rank}")
    if n_train < 2:
        raise ValueError(f"n_train: expected at least 2 points to normalize, got {n_train}")
    generator = torch.Generator().manual_seed(int(seed))
    g = _shallow(latent, hidden, d_in, seed=3 * seed + 1)
    h = _shallow(rank, hidden, d_out, seed=3 * seed + 2)
    z = torch.randn(n_train + n_test, latent, generator=generator, dtype=torch.float64)
    return _normalized(g(z), h(z[:, :rank]), n_train, rank)


def composite_teacher_task(
    n_train: int,
    n_test: int,
    seed: int = 0,
    *,
    d_in: int = 30,
    rank: int = 3,
    d_out: int = 30,
    hidden: int = 100,
) -> Task:
    """x ~ N(0, I_{d_in}), y = g_2(g_1(x)) with g_1: R^{d_in} → R^rank (module docstring)."""
    for name, value in (("n_train", n_train), ("n_test", n_test), ("rank", rank)):
        _positive(name, value)
    for name, value in (("d_in", d_in), ("d_out", d_out), ("hidden", hidden)):
        _positive(name, value)
    if n_train < 2:
        raise ValueError(f"n_train: expected at least 2 points to normalize, got {n_train}")
    generator = torch.Generator().manual_seed(int(seed))
    g1 = _shallow(d_in, hidden, rank, seed=3 * seed + 1)
    g2 = _shallow(rank, hidden, d_out, seed=3 * seed + 2)
    x = torch.randn(n_train + n_test, d_in, generator=generator, dtype=torch.float64)
    return _normalized(x, g2(g1(x)), n_train, rank)
