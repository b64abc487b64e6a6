"""The random-sign cancellation of Allen-Zhu, Li & Liang (NeurIPS 2019, arXiv 1811.04918, Lemma 6.10).

The three-layer learner is f(x; W, V) = a·σ(V σ(W x + b₁) + b₂) with ReLU σ, W (m₁ × d) and
V (m₂ × m₁) trained, a fixed. AZLL move the weights to W₀ + ΣW′ and V₀ + V′Σ, with Σ a random
diagonal ±1 matrix over the m₁ first-layer units. With the gates frozen at their signs under
(W₀, V₀) (diagonal 0/1 matrices D_w, D_v), the network is bilinear in (W, V):

    g(W₀ + ΣW′, V₀ + V′Σ) = f₀ + a D_v V₀ D_w ΣW′x + a D_v V′Σ D_w (W₀x + b₁) + a D_v V′ΣD_wΣW′x.

The two first-order (NTK) terms are linear in Σ and average to zero over E[Σ] = 0, while
ΣD_wΣ = D_w (diagonal matrices commute and Σ² = I) keeps the cross-layer second-order term:

    E_Σ f(x; W₀ + ΣW′, V₀ + V′Σ) ≈ f₀ + a D_v V′ D_w W′ x,

exactly for the frozen-gate network (and for every antithetic pair Σ, −Σ), and up to the gates
that flip for the real one. :func:`random_sign_cancellation` measures the gap as the number of
sign draws grows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class SignCancellation:
    """The Monte-Carlo average over sign draws against the cross-layer prediction.

    ``draws[i]``: number of sign matrices averaged; ``error_network[i]`` / ``error_frozen[i]``:
    ‖mean_Σ f − (f₀ + cross)‖ / ‖cross‖ for the real network and the frozen-gate one;
    ``first_order_norm``: ‖first-order terms at one Σ‖ / ‖cross‖ (what the signs cancel).
    """

    draws: list[int]
    error_network: list[float]
    error_frozen: list[float]
    first_order_norm: float
    cross_term: Tensor


def check_three_layer(model: nn.Module) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
    """The three Linear layers of Sequential(Linear, ReLU, Linear, ReLU, Linear), else one sentence."""
    layers = list(model) if isinstance(model, nn.Sequential) else []
    kinds = [type(m) for m in layers]
    if kinds != [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]:
        raise ValueError(
            "model: expected nn.Sequential(Linear, ReLU, Linear, ReLU, Linear), AZLL's three-layer net"
        )
    return layers[0], layers[2], layers[4]


def three_layer_output(
    layers: tuple[nn.Linear, nn.Linear, nn.Linear],
    w: Tensor,
    v: Tensor,
    x: Tensor,
    gates: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """a·σ(V σ(W x + b₁) + b₂) + c on x (N, d) → (N, K); with ``gates`` (D_w, D_v as (N, m) 0/1
    tensors) the gates are frozen to them instead of recomputed."""
    first, second, last = layers
    z1 = x @ w.T + first.bias
    d1 = (z1 > 0).to(x.dtype) if gates is None else gates[0]
    z2 = (d1 * z1) @ v.T + second.bias
    d2 = (z2 > 0).to(x.dtype) if gates is None else gates[1]
    return (d2 * z2) @ last.weight.T + last.bias


def random_sign_cancellation(
    model: nn.Module,
    w_change: Tensor,
    v_change: Tensor,
    x: Tensor,
    draws: list[int] | None = None,
    seed: int = 0,
) -> SignCancellation:
    """Average f(x; W₀ + ΣW′, V₀ + V′Σ) over i.i.d. sign matrices Σ and compare with
    f₀ + a D_v V′ D_w W′ x (module docstring) after each count in ``draws`` (ascending).

    ``w_change`` W′ is shaped like W, ``v_change`` V′ like V; ``seed`` seeds the sign draws.
    """
    layers = check_three_layer(model)
    first, second, last = layers
    if w_change.shape != first.weight.shape or v_change.shape != second.weight.shape:
        raise ValueError(
            f"w_change, v_change: expected shapes {tuple(first.weight.shape)} and "
            f"{tuple(second.weight.shape)}, got {tuple(w_change.shape)} and {tuple(v_change.shape)}"
        )
    for name, t in (("w_change", w_change), ("v_change", v_change), ("x", x)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: expected finite values")
    draws = sorted(draws or [1, 4, 16, 64, 256])
    if draws[0] < 1:
        raise ValueError(f"draws: expected positive counts, got {draws}")
    with torch.no_grad():
        w0, v0 = first.weight.detach(), second.weight.detach()
        z1 = x @ w0.T + first.bias
        d_w = (z1 > 0).to(x.dtype)
        d_v = ((d_w * z1) @ v0.T + second.bias > 0).to(x.dtype)
        f0 = three_layer_output(layers, w0, v0, x)
        cross = (d_v * ((d_w * (x @ w_change.T)) @ v_change.T)) @ last.weight.T
        target = f0 + cross
        scale = float(cross.double().norm())
        g = torch.Generator().manual_seed(seed)
        m1 = w0.shape[0]
        sum_net = torch.zeros_like(f0)
        sum_frozen = torch.zeros_like(f0)
        err_net, err_frozen, first_norm = [], [], float("nan")
        done = 0
        for count in draws:
            while done < count:
                sign = torch.randint(0, 2, (m1,), generator=g).to(x.dtype) * 2 - 1
                w, v = w0 + sign[:, None] * w_change, v0 + v_change * sign[None, :]
                sum_net += three_layer_output(layers, w, v, x)
                frozen = three_layer_output(layers, w, v, x, gates=(d_w, d_v))
                sum_frozen += frozen
                if done == 0:
                    first_norm = float((frozen - target).double().norm()) / scale
                done += 1
            err_net.append(float((sum_net / done - target).double().norm()) / scale)
            err_frozen.append(float((sum_frozen / done - target).double().norm()) / scale)
    return SignCancellation(draws, err_net, err_frozen, first_norm, cross)
