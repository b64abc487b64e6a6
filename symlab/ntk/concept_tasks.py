"""The tasks and learners of Allen-Zhu, Li & Liang's experiments (NeurIPS 2019, arXiv 1811.04918, §7).

Inputs are normalised Gaussians x = g/‖g‖, g ~ N(0, I_d) (d = 4), and the targets are

    "sin":  y = (sin 3x₁ + sin 3x₂ + sin 3x₃ − 2)² · cos 7x₄,
    "tanh": y = (tanh 8x₁ + tanh 8x₂ + tanh 8x₃ − 2)² · tanh 8x₄.

The learners (AZLL §3–4, their §7 initialisation): a two-layer ReLU net Σ_i a_i σ(⟨w_i, x⟩ + b_i)
and a three-layer one Σ_i a_i σ(n_i(x) + b₂ᵢ), n_i = Σ_j v_ij σ(⟨w_j, x⟩ + b₁ⱼ), with W, V, b ~
N(0, 1/m) and a ~ N(0, 1); the hidden weights and biases are trained and the output layer a is
held fixed ("last": only a is trained, the conjugate-kernel model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

TARGETS = ("sin", "tanh")


def azll_target(name: str, x: Tensor) -> Tensor:
    """The target of AZLL §7 named ``name`` ("sin" or "tanh") on inputs x (N, ≥ 4) → (N, 1)."""
    if name == "sin":
        s = torch.sin(3 * x[:, 0]) + torch.sin(3 * x[:, 1]) + torch.sin(3 * x[:, 2])
        y = (s - 2) ** 2 * torch.cos(7 * x[:, 3])
    elif name == "tanh":
        s = torch.tanh(8 * x[:, 0]) + torch.tanh(8 * x[:, 1]) + torch.tanh(8 * x[:, 2])
        y = (s - 2) ** 2 * torch.tanh(8 * x[:, 3])
    else:
        raise ValueError(f"target: expected one of {', '.join(TARGETS)}, got {name!r}")
    return y[:, None]


@dataclass(frozen=True)
class ConceptTask:
    """Train, validation and test splits drawn independently from one distribution."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def sphere_inputs(n: int, dim: int, generator: torch.Generator, dtype=torch.float64) -> Tensor:
    """n points g/‖g‖ with g ~ N(0, I_dim): uniform on the unit sphere."""
    g = torch.randn(n, dim, generator=generator, dtype=dtype)
    return g / g.norm(dim=1, keepdim=True)


def azll_task(
    target: str, n_train: int, n_val: int, n_test: int, seed: int, dim: int = 4, dtype=torch.float32
) -> ConceptTask:
    """AZLL §7's task: inputs on the unit sphere of R^dim, labels from :func:`azll_target`.

    The test set depends on ``seed`` only (not on n_train), so error curves over N share it."""
    if dim < 4:
        raise ValueError(f"dim: expected at least 4 input coordinates, got {dim}")
    test_gen = torch.Generator().manual_seed(10_000 + seed)
    x_test = sphere_inputs(n_test, dim, test_gen)
    gen = torch.Generator().manual_seed(seed)
    x_val = sphere_inputs(n_val, dim, gen)
    x_train = sphere_inputs(n_train, dim, gen)
    splits = [(x, azll_target(target, x)) for x in (x_train, x_val, x_test)]
    return ConceptTask(*[t.to(dtype) for pair in splits for t in pair])


def azll_network(depth: int, dim: int, width: int, seed: int, dtype=torch.float32) -> nn.Sequential:
    """AZLL's learner with ``depth`` = 2 or 3 layers, hidden width m = ``width``: hidden weights
    and biases ~ N(0, 1/m), output weights a ~ N(0, 1) and output bias 0, both held fixed
    (``requires_grad=False``); train the rest."""
    if depth not in (2, 3):
        raise ValueError(f"depth: expected 2 or 3 (AZLL's learners), got {depth}")
    gen = torch.Generator().manual_seed(seed)
    sizes = [dim] + [width] * (depth - 1)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        lin = nn.Linear(fan_in, fan_out).to(dtype)
        with torch.no_grad():
            std = 1 / math.sqrt(width)
            lin.weight.copy_(std * torch.randn(lin.weight.shape, generator=gen, dtype=dtype))
            lin.bias.copy_(std * torch.randn(lin.bias.shape, generator=gen, dtype=dtype))
        layers += [lin, nn.ReLU()]
    out = nn.Linear(width, 1).to(dtype)
    with torch.no_grad():
        out.weight.copy_(torch.randn(out.weight.shape, generator=gen, dtype=dtype))
        out.bias.zero_()
    out.weight.requires_grad_(False)
    out.bias.requires_grad_(False)
    return nn.Sequential(*layers, out)


def last_layer_features(net: nn.Sequential, x: Tensor) -> Tensor:
    """The last hidden representation of ``net`` on x (the conjugate-kernel features), with a
    column of ones for the output bias."""
    with torch.no_grad():
        h = net[:-1](x)
    return torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype)], dim=1)


def relative_error(prediction: Tensor, y: Tensor) -> float:
    """Mean squared error over the variance of y (1: as good as predicting the mean)."""
    y = y.double()
    return float(((prediction.double() - y) ** 2).mean() / y.var())
