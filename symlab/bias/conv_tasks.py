"""Circular CNNs and a task whose output depends on a known set of spatial frequencies.

Wen & Jacot, "Which frequencies do CNNs need? Emergent bottleneck structure in feature learning"
(ICML 2024, arXiv 2402.08010): deep CNNs with near-optimal parameter norm keep only a few
frequencies and channels in their middle layers. The task here makes the needed frequencies
known: images x ∈ R^{n × n} with i.i.d. N(0, 1) pixels and the target y = P_S x, the orthogonal
projection onto the frequencies S ∪ (−S) (the 2-D DFT of x kept on those frequencies, the rest set
to zero), scaled so that (1/N) Σ ‖y_i‖² = 1. A network representing it needs, per layer, the
frequencies of S (and their conjugates) and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from symlab.ntk.data import DIGITS_SIZE


@dataclass
class FrequencyTask:
    """Training and test images (N, 1, n, n), their targets, and the frequency set (with the
    conjugates) the targets depend on."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    frequencies: list[tuple[int, int]] | None


def frequency_set(frequencies, n: int) -> list[tuple[int, int]]:
    """S ∪ (−S) mod n, sorted, from pairs (m_1, m_2) with 0 ≤ m_i < n."""
    out = set()
    for pair in frequencies:
        m = tuple(int(v) for v in pair)
        if len(m) != 2 or not all(0 <= v < n for v in m):
            raise ValueError(
                f"frequencies: expected pairs (m_1, m_2) with 0 <= m_i < {n}, got {pair!r}"
            )
        out.add(m)
        out.add(((-m[0]) % n, (-m[1]) % n))
    if not out:
        raise ValueError("frequencies: expected at least one frequency")
    return sorted(out)


def frequency_task(n_train: int, n_test: int, n: int, frequencies, seed: int) -> FrequencyTask:
    """y = P_S x on Gaussian images (module docstring), float64."""
    kept = frequency_set(frequencies, n)
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n_train + n_test, 1, n, n, generator=g, dtype=torch.float64)
    mask = torch.zeros(n, n, dtype=torch.float64)
    for m in kept:
        mask[m] = 1.0
    y = torch.fft.ifft2(torch.fft.fft2(x) * mask).real
    y = y / y[:n_train].square().sum(dim=(1, 2, 3)).mean().sqrt()
    return FrequencyTask(x[:n_train], y[:n_train], x[n_train:], y[n_train:], kept)


def digits_task(n_train: int, n_test: int, seed: int) -> FrequencyTask:
    """scikit-learn's 8 × 8 digits (shipped with the package): a random split of
    ``n_train + n_test`` images (permutation seeded by ``seed``), pixels shifted and scaled by
    one mean and standard deviation for all pixels (so that circular shifts commute with the
    scaling), both of the training images', one-hot targets (N, 10), float64; the frequencies
    the labels need are unknown."""
    from sklearn.datasets import load_digits

    if n_train < 1 or n_test < 0 or n_train + n_test > DIGITS_SIZE:
        raise ValueError(
            f"n_train: expected n_train >= 1, n_test >= 0 and n_train + n_test <= {DIGITS_SIZE} "
            f"digits, got {n_train} + {n_test}"
        )
    digits = load_digits()
    order = np.random.default_rng(int(seed)).permutation(len(digits.target))
    pick = order[: n_train + n_test]
    images = torch.as_tensor(digits.images[pick], dtype=torch.float64)[:, None]
    train = images[:n_train]  # the test images do not enter the scaling
    images = (images - train.mean()) / (train.std() if n_train > 1 else 1.0)
    labels = torch.nn.functional.one_hot(torch.as_tensor(digits.target[pick]), 10).double()
    return FrequencyTask(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
                         None)  # fmt: skip


class GlobalMean(nn.Module):
    """Mean over the spatial axes: (N, C, n_1, n_2) → (N, C) (frequency 0 of each channel)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


def circular_cnn(
    depth: int,
    channels: int,
    in_channels: int = 1,
    out_channels: int = 1,
    *,
    kernel_size: int = 3,
    pool: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> nn.Sequential:
    """``depth`` bias-free stride-1 circular Conv2d layers (in → channels → … → out) with ReLU
    between them, He init N(0, 2 / (c_in k²)); ``pool`` appends a global mean over space (a
    shift-invariant classifier head). Bias-free so that every layer is linear up to the ReLU and
    its per-frequency spectra describe it whole."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
        raise ValueError(f"depth: expected an integer number of conv layers >= 2, got {depth!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels: expected a positive integer, got {channels!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size: expected an odd kernel size, got {kernel_size!r}")
    g = torch.Generator().manual_seed(int(seed))
    layers: list[nn.Module] = []
    for i in range(depth):
        c_in = in_channels if i == 0 else channels
        c_out = out_channels if i == depth - 1 else channels
        conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False,
                         padding_mode="circular", dtype=dtype)  # fmt: skip
        with torch.no_grad():
            std = math.sqrt(2.0 / (c_in * kernel_size**2))
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=dtype) * std)
        layers.append(conv)
        if i < depth - 1:
            layers.append(nn.ReLU())
    if pool:
        layers.append(GlobalMean())
    return nn.Sequential(*layers)


def balance_layers(net: nn.Sequential) -> float:
    """Rescale the bias-free layers of a ReLU network in place to equal norms; return the factor
    by which ‖θ‖² fell (≥ 1).

    W_ℓ → (g / ‖W_ℓ‖) W_ℓ with g the geometric mean of the ‖W_ℓ‖: the scales multiply to 1 and
    ReLU is positively homogeneous, so the function is unchanged, and by the AM-GM inequality
    Σ_ℓ ‖W_ℓ‖² = L g² is the least norm on this rescaling orbit, the balance that every critical
    point of L(f) + λ‖θ‖² has (the module docstring of ``symlab.experiments.cnn_bottleneck``).
    Only the one scale per layer is chosen: the finer symmetry that rescales one hidden channel's
    incoming filters by α and its outgoing ones by 1/α is left as it is (at a critical point
    each channel is balanced too; the L-BFGS polish, not this function, approaches that).
    Zero layers leave the network unchanged (f = 0)."""
    if not isinstance(net, nn.Sequential):
        raise ValueError(f"net: expected an nn.Sequential, got {type(net).__name__}")
    layers = [m for m in net if isinstance(m, nn.Conv2d | nn.Linear)]
    if not layers:
        raise ValueError("net: expected at least one convolution or linear layer, got none")
    if any(m.bias is not None for m in layers):
        raise ValueError("net: expected bias-free layers (a bias breaks the rescaling symmetry)")
    if any(not isinstance(m, nn.Conv2d | nn.Linear | nn.ReLU | GlobalMean) for m in net):
        raise ValueError("net: expected convolutions or linear layers, ReLU and a global mean only")
    with torch.no_grad():
        norms = torch.stack([m.weight.double().norm() for m in layers])
        if not bool((norms > 0).all()):
            return 1.0
        before = float(norms.square().sum())
        target = norms.log().mean().exp()
        for m, norm in zip(layers, norms, strict=True):
            m.weight.mul_((target / norm).to(m.weight.dtype))
        return before / (len(layers) * float(target) ** 2)
