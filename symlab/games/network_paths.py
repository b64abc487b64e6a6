"""The path decomposition of a small feed-forward network: the flows of its congestion-game view.

Vesseron, Redko & Laclau (AISTATS 2021, arXiv 2010.11024) read a deep network as a congestion game
whose strategies are the input-to-output paths of its graph. What is checkable without their text
is the decomposition every such reading starts from: for a network of Linear layers and
ReLU-type gates,

    f_k(x) = Σ_{paths p: i → j₁ → … → k} x_i · Π_{edges e ∈ p} w_e · Π_{hidden units u ∈ p} g_u(x)
             + Σ_{bias paths q: (ℓ, j) → … → k} b_{ℓ,j} · Π_{e ∈ q} w_e · Π_{u ∈ q} g_u(x),

where g_u(x) is unit u's gate at x (1 if its pre-activation is positive, else 0 for ReLU or the
negative slope for LeakyReLU; 1 for a linear network). A bias path starts at the bias of hidden
unit j of layer ℓ (or of an output unit: a path of length 0). The number of input paths is
n₀·n₁·…·n_L per output, so enumeration is for tiny nets only: :func:`path_decomposition` refuses
more than ``max_paths`` (default :data:`MAX_PATHS`) paths with one sentence.

What the paper builds on these flows (the players, the costs, the potential and its link to the
loss, Wardrop equilibria at critical points) is not implemented: the paper's body could not be
retrieved here, and symlab does not guess it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symlab.ntk.taylor_expansion import gate_values

MAX_PATHS = 200_000
LINEAR_GATES = (nn.Identity,)


@dataclass(frozen=True)
class PathDecomposition:
    """The path values of a network on inputs x.

    ``values``: (N, P) value of every path on every input (input paths first, then bias paths);
    ``units``: (P, L + 1) the unit index at each layer along the path (-1 before a bias path's
    start), layer 0 being the input; ``output``: (P,) the output unit of each path (= units[:, -1]);
    ``starts_at_bias``: (P,) True for bias paths. ``outputs()`` sums them per output unit.
    """

    values: Tensor
    units: Tensor
    starts_at_bias: Tensor

    @property
    def output(self) -> Tensor:
        return self.units[:, -1]

    def outputs(self) -> Tensor:
        """(N, K): Σ of the path values ending at each output unit, which equals f(x)."""
        k = int(self.output.max()) + 1
        out = torch.zeros(self.values.shape[0], k, dtype=self.values.dtype)
        return out.index_add_(1, self.output, self.values)


def network_layers(model: nn.Module) -> list[tuple[nn.Linear, nn.Module | None]]:
    """(Linear, the activation after it or None for the last layer) for an nn.Sequential of Linear
    layers separated by ReLU / LeakyReLU / Identity modules; anything else is refused."""
    if not isinstance(model, nn.Sequential):
        raise ValueError("model: expected an nn.Sequential of Linear layers and ReLU-type gates")
    mods = list(model)
    pairs: list[tuple[nn.Linear, nn.Module | None]] = []
    i = 0
    while i < len(mods):
        lin = mods[i]
        if not isinstance(lin, nn.Linear):
            raise ValueError(
                f"model: expected a Linear layer at position {i}, got {type(lin).__name__}"
            )
        act = mods[i + 1] if i + 1 < len(mods) else None
        if act is not None and not isinstance(act, nn.ReLU | nn.LeakyReLU | nn.Identity):
            raise ValueError(
                f"model: expected ReLU, LeakyReLU or Identity after the Linear layer at position {i}, "
                f"got {type(act).__name__}"
            )
        pairs.append((lin, act))
        i += 2
    if pairs[-1][1] is not None:
        raise ValueError("model: expected the last module to be a Linear layer (the output)")
    return pairs


def path_count(model: nn.Module) -> int:
    """Number of input paths plus bias paths (with biases) of ``model``."""
    widths = [network_layers(model)[0][0].in_features] + [
        lin.out_features for lin, _ in network_layers(model)
    ]
    total = 1
    for n in widths:
        total *= n
    for ell, (lin, _) in enumerate(network_layers(model), start=1):
        if lin.bias is not None:
            tail = 1
            for n in widths[ell:]:
                tail *= n
            total += tail
    return total


def path_decomposition(
    model: nn.Module, x: Tensor, max_paths: int = MAX_PATHS
) -> PathDecomposition:
    """Every input-to-output path of ``model`` (and every bias path) with its value on ``x``.

    ``x``: (N, n₀) floating point. Gates are evaluated at x (module docstring). Refuses networks
    with more than ``max_paths`` paths. Cost O(N · P).
    """
    layers = network_layers(model)
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 2:
        raise TypeError("x: expected a floating-point tensor of shape (N, n0)")
    count = path_count(model)
    if count > max_paths:
        raise ValueError(
            f"model: {count} paths exceed max_paths = {max_paths}; path enumeration is for tiny nets"
        )
    with torch.no_grad():
        gates, h = [], x
        for lin, act in layers:
            z = h @ lin.weight.T + (lin.bias if lin.bias is not None else 0)
            if act is None:
                gate = torch.ones_like(z)
            elif isinstance(act, nn.Identity):
                gate = torch.ones_like(z)
            else:
                slope = getattr(act, "negative_slope", 0.0)
                gate = gate_values(z > 0, slope, z)
            gates.append(gate)
            h = gate * z
        n = x.shape[0]
        widths = [x.shape[1]] + [lin.out_features for lin, _ in layers]
        depth = len(layers)
        values, units, bias_flags = [], [], []
        # a flow that starts at layer `start` (0: the inputs, else a bias) and is pushed forward
        for start in range(depth + 1):
            if start == 0:
                flow = x.clone()
            else:
                lin = layers[start - 1][0]
                if lin.bias is None:
                    continue
                flow = lin.bias.expand(n, -1) * gates[start - 1]
            for ell in range(start, depth):
                w, gate = layers[ell][0].weight, gates[ell]
                # flow (N, *path, n_ell) -> (N, *path, n_ell, n_{ell+1})
                flow = flow.unsqueeze(-1) * w.T * gate.reshape(n, *([1] * (flow.dim() - 1)), -1)
            values.append(flow.reshape(n, -1))
            grid = torch.cartesian_prod(*[torch.arange(w) for w in widths[start:]])
            grid = grid.reshape(-1, depth + 1 - start)
            pad = torch.full((grid.shape[0], start), -1, dtype=grid.dtype)
            units.append(torch.cat([pad, grid], dim=1))
            bias_flags.append(torch.full((grid.shape[0],), start > 0))
    return PathDecomposition(torch.cat(values, dim=1), torch.cat(units), torch.cat(bias_flags))
