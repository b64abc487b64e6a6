"""Accordion networks (AccNets) of Jacot, Choi & Wen (ICLR 2025, arXiv 2407.05664).

An AccNet is a composition f = f_L ∘ … ∘ f_1 of shallow blocks f_ℓ(z) = W_ℓ^out σ(W_ℓ^in z + b_ℓ)
that widen and narrow again: W_ℓ^in maps the narrow width (the input dimension for ℓ = 1) to the
wide one, W_ℓ^out maps it back (to the output dimension for ℓ = L). It is built as an
``nn.Sequential`` of (Linear, ReLU, Linear) per block with no activation between blocks, so every
``symlab.train`` loop trains it. Biases: b_ℓ on W_ℓ^in as in the paper's formula, none on the
W_ℓ^out of inner blocks, one on the last (an output offset). The authors' code applies the ReLU
after the narrow layers too (a ReLU MLP of alternating widths); this module follows the formula.
Initialization: W ~ N(0, 2 / fan_in) for every matrix (He; a ReLU precedes every W^out), zero
biases, all from one generator seeded with ``seed`` (in float64, rounded to ``dtype``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import skip_init


def _linear(fan_in: int, fan_out: int, bias: bool, generator, dtype) -> nn.Linear:
    layer = skip_init(nn.Linear, fan_in, fan_out, bias=bias, dtype=dtype)
    with torch.no_grad():
        # drawn in float64 and rounded: float32 and float64 nets of one seed start at one point
        weight = torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64)
        layer.weight.copy_(weight * (2 / fan_in) ** 0.5)
        if bias:
            layer.bias.zero_()
    return layer


def accordion_net(
    d_in: int,
    wide: int,
    narrow: int,
    d_out: int,
    blocks: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> nn.Sequential:
    """An AccNet d_in → (wide → narrow) × (blocks − 1) → wide → d_out (module docstring)."""
    for name, value in (("d_in", d_in), ("wide", wide), ("narrow", narrow), ("d_out", d_out),
                        ("blocks", blocks)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    generator = torch.Generator().manual_seed(int(seed))
    layers: list[nn.Module] = []
    for block in range(blocks):
        last = block == blocks - 1
        layers.append(_linear(d_in if block == 0 else narrow, wide, True, generator, dtype))
        layers.append(nn.ReLU())
        layers.append(_linear(wide, d_out if last else narrow, last, generator, dtype))
    return nn.Sequential(*layers)
