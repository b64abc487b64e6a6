"""The Hamiltonian of a Leaky ResNet's representations and its rank estimate (Jacot & Kaiser 2024,
"Hamiltonian mechanics of feature learning: bottleneck structure in Leaky ResNets",
arXiv 2405.17573, Sec. 3).

Representations A_p ∈ R^{w×N} and backward variables B_p ∈ R^{w×N} (features × inputs, as in
:mod:`symlab.bias.identity_cost`; σ(A) = ([A]_+; 1ᵀ)). At a critical point of the objective
C(A_1) + (λ/(2L̃)) ∫₀¹ ‖W_p‖² dp, with B_1 = −(1/λ) ∂C/∂A_1, the optimal weights are
W_p = L̃ B_p σ(A_p)ᵀ and (A_p, B_p) follow Hamilton's equations of

    H(A, B) = (L̃/2) ‖B σ(A)ᵀ‖_F² − L̃ Tr[B Aᵀ]:
    ∂_p A = ∂H/∂B = L̃ (B σ(A)ᵀσ(A) − A),
    ∂_p B = −∂H/∂A = −L̃ (σ̇(A) ⊙ [σ(A) Bᵀ B]_{1:w} − B)     (σ̇ = 1[A > 0]),

so H is constant in p. The rank estimate −(2/L̃) H approaches the bottleneck rank k* from below
for large L̃ (the paper's Thm. 4 bounds its distance to min_p COI_γ(A_p)).

In a trained discrete net (:class:`symlab.nets.leaky_resnet.LeakyResNet`) the backward variables
are B_ℓ = −(1/λ) ∂C/∂α_ℓ (:func:`backward_variables`, one backward pass): the stationarity of the
objective in W_ℓ reads W_ℓ = L̃ B_ℓ σ(A_{ℓ−1})ᵀ exactly, and B_ℓ follows the discrete version of
the second equation, so H(A_ℓ, B_ℓ) is constant along ℓ up to the O(ρ) discretization error and
the distance to a critical point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from symlab.bias.identity_cost import identity_sigma


def _pair(a: object, b: object) -> tuple[Tensor, Tensor]:
    for name, m in (("A", a), ("B", b)):
        if not isinstance(m, Tensor) or m.dim() != 2 or 0 in m.shape:
            raise ValueError(f"{name}: expected a non-empty (w, N) matrix")
    if a.shape != b.shape:
        raise ValueError(f"B: expected the shape of A {tuple(a.shape)}, got {tuple(b.shape)}")
    return a.to(torch.float64), b.to(torch.float64)


def _effective_depth(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"effective_depth: expected a positive number, got {value!r}")
    return float(value)


def hamiltonian(a: Tensor, b: Tensor, effective_depth: float, *, bias: bool = True) -> float:
    """H(A, B) = (L̃/2) ‖B σ(A)ᵀ‖_F² − L̃ Tr[B Aᵀ] for (w, N) matrices A and B (float64)."""
    a, b = _pair(a, b)
    depth = _effective_depth(effective_depth)
    weight = b @ identity_sigma(a, bias).T  # W / L̃
    return float(depth / 2 * weight.square().sum() - depth * (b * a).sum())


def hamiltonian_flow(
    a: Tensor, b: Tensor, effective_depth: float, *, bias: bool = True
) -> tuple[Tensor, Tensor]:
    """(∂_p A, ∂_p B) from Hamilton's equations of the module docstring (float64)."""
    a, b = _pair(a, b)
    depth = _effective_depth(effective_depth)
    s = identity_sigma(a, bias)
    da = depth * (b @ s.T @ s - a)
    back = (s @ b.T @ b)[: a.shape[0]]
    db = -depth * ((a > 0).to(a.dtype) * back - b)
    return da, db


def rank_estimate(h: float, effective_depth: float) -> float:
    """−(2/L̃) H, the Hamiltonian estimate of the bottleneck rank."""
    return -2.0 * float(h) / _effective_depth(effective_depth)


def backward_variables(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    lam: float,
    loss: Callable[[Tensor, Tensor], Tensor],
) -> tuple[list[Tensor], list[Tensor]]:
    """([A_0, …, A_L], [B_0, …, B_L]) of a Leaky ResNet on (x, y): A_ℓ = α_ℓ(X)ᵀ and
    B_ℓ = −(1/λ) ∂C/∂α_ℓ (X)ᵀ with C = ``loss(model(x), y)``, all (w, N) float64. ``model`` needs
    ``embed``, ``layers`` and ``readout`` (:class:`symlab.nets.leaky_resnet.LeakyResNet`)."""
    if not lam > 0:
        raise ValueError(f"lam: expected a positive number, got {lam!r}")
    if not all(hasattr(model, name) for name in ("embed", "layers", "readout")):
        raise ValueError("model: expected a LeakyResNet (embed, layers and readout)")
    reps = [model.embed(x).detach().requires_grad_(True)]  # α_0, a leaf even with a fixed P_in
    for layer in model.layers:
        reps.append(layer(reps[-1]))
    cost = loss(model.readout(reps[-1]), y)
    grads = torch.autograd.grad(cost, reps)
    a = [r.detach().to(torch.float64).T for r in reps]
    b = [-g.detach().to(torch.float64).T / lam for g in grads]
    return a, b
