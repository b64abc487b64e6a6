"""Self-consistent (mixed) dynamics of a wide two-layer linear network (Tu, Aranguri & Jacot,
"Mixed dynamics in linear networks: unifying the lazy and active regimes", NeurIPS 2024,
arXiv 2405.17580, eq. (1) and the official code ``dynamics.ipynb``).

For A = W_2 W_1 (W_1 ∈ R^{w×d_in}, W_2 ∈ R^{d_out×w}, entries N(0, σ²) at init), gradient flow on
the parameters moves A by Ȧ = −W_2W_2ᵀ ∇C(A) − ∇C(A) W_1ᵀW_1. Tu et al. close this equation
in A alone by W_2W_2ᵀ ≈ (AAᵀ + σ⁴w² I)^{1/2} and W_1ᵀW_1 ≈ (AᵀA + σ⁴w² I)^{1/2}:

    Ȧ = −[(AAᵀ + c² I)^{1/2} ∇C(A) + ∇C(A) (AᵀA + c² I)^{1/2}],   c = σ²w.

Limits: c → 0 gives Ȧ = −[(AAᵀ)^{1/2}∇C + ∇C (AᵀA)^{1/2}], the gradient flow of a *balanced*
two-layer net (Arora, Cohen & Hazan 2018; active regime); c ≫ ‖A‖_op gives Ȧ ≈ −2c ∇C(A), the
linear (lazy, NTK) flow with the kernel 2σ²w · Id. In between, singular values s ≫ c move at a
speed ∝ s (active) and s ≪ c at a speed ∝ c (lazy).

:func:`integrate_mixed_dynamics` takes Euler steps A ← A + η Ȧ, the discretisation whose step η
matches gradient descent with step η on (W_1, W_2) (as Tu et al.'s code does), for the cost
C(A) = ½ ‖M ⊙ (A − Y)‖_F² (M = 1: all entries observed). The square roots come from one full SVD
of A: A = U diag(s) Vᵀ (U m×m, V n×n), so AAᵀ + c²I = U diag(s̄² + c²) Uᵀ with s̄ = s padded by
zeros; unlike an eigendecomposition of AAᵀ this keeps small singular values accurate (c → 0).
Cost per step: one full SVD of the m×n matrix A and O(m³ + n³) for the two roots and the
products. float32 and float64.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor


def _matrix(name: str, a: object) -> Tensor:
    if not isinstance(a, Tensor) or a.dim() != 2 or 0 in a.shape or not a.is_floating_point():
        shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
        raise ValueError(f"{name}: expected a non-empty floating 2-D tensor, got {shape}")
    return a


def _scale(scale: object) -> float:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale >= 0:
        raise ValueError(f"scale: expected σ²w >= 0, got {scale!r}")
    if not math.isfinite(scale):
        raise ValueError(f"scale: expected a finite σ²w, got {scale!r}")
    return float(scale)


def shifted_square_roots(a: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """((AAᵀ + c²I)^{1/2}, (AᵀA + c²I)^{1/2}) for c = ``scale``, from one full SVD of A."""
    a = _matrix("A", a)
    c = _scale(scale)
    u, s, vh = torch.linalg.svd(a, full_matrices=True)
    m, n = a.shape

    def root(basis: Tensor, size: int) -> Tensor:
        padded = torch.zeros(size, dtype=a.dtype, device=a.device)
        padded[: len(s)] = s
        return (basis * torch.sqrt(padded.square() + c * c)) @ basis.T

    return root(u, m), root(vh.T, n)


def mixed_dynamics_velocity(a: Tensor, gradient: Tensor, scale: float) -> Tensor:
    """Ȧ = −[(AAᵀ + c²I)^{1/2} G + G (AᵀA + c²I)^{1/2}] with G = ∇C(A) and c = σ²w = ``scale``
    (Tu et al. 2024, eq. (1))."""
    gradient = _matrix("gradient", gradient)
    if gradient.shape != a.shape:
        raise ValueError(
            f"gradient: expected the shape of A {tuple(a.shape)}, got {tuple(gradient.shape)}"
        )
    left, right = shifted_square_roots(a, scale)
    return -(left @ gradient + gradient @ right)


def _gradient(a: Tensor, observations: Tensor, mask: Tensor | None) -> Tensor:
    residual = a - observations
    return residual if mask is None else residual * mask


@dataclass(frozen=True)
class MixedTrajectory:
    """Recorded steps and the matrices A_t at those steps, stacked (R, m, n)."""

    steps: list[int]
    matrices: Tensor


def integrate_mixed_dynamics(
    a0: Tensor,
    observations: Tensor,
    *,
    scale: float,
    lr: float,
    steps: int,
    mask: Tensor | None = None,
    record_steps: Iterable[int] | None = None,
) -> MixedTrajectory:
    """Euler steps A_{t+1} = A_t + η Ȧ(A_t) of the self-consistent dynamics for
    C(A) = ½ ‖M ⊙ (A − Y)‖_F², from A_0 = ``a0`` (Y = ``observations``, M = ``mask``), recording
    A_t at ``record_steps`` (default: every step, 0..steps)."""
    a = _matrix("a0", a0)
    observations = _matrix("observations", observations).to(a.dtype)
    if observations.shape != a.shape:
        raise ValueError(
            f"observations: expected the shape of a0 {tuple(a.shape)}, got {tuple(observations.shape)}"
        )
    if mask is not None:
        if mask.shape != a.shape:
            raise ValueError(
                f"mask: expected the shape of a0 {tuple(a.shape)}, got {tuple(mask.shape)}"
            )
        mask = mask.to(a.dtype)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ValueError(f"lr: expected a positive step, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected a non-negative integer, got {steps!r}")
    scale = _scale(scale)
    wanted = set(range(steps + 1)) if record_steps is None else {int(s) for s in record_steps}
    recorded_steps, recorded = [], []
    for step in range(steps + 1):
        if step in wanted:
            recorded_steps.append(step)
            recorded.append(a.clone())
        if step == steps:
            break
        a = mixed_dynamics_step(a, observations, scale=scale, lr=lr, mask=mask)
    stacked = torch.stack(recorded) if recorded else a.new_zeros((0, *a.shape))
    return MixedTrajectory(recorded_steps, stacked)


def mixed_dynamics_step(
    a: Tensor, observations: Tensor, *, scale: float, lr: float, mask: Tensor | None = None
) -> Tensor:
    """One Euler step A + η Ȧ(A) of the self-consistent dynamics for ½ ‖M ⊙ (A − Y)‖_F² (for a
    caller that advances it beside a gradient-descent run, one step at a time)."""
    a = _matrix("A", a)
    observations = observations.to(a.dtype)
    mask = None if mask is None else mask.to(a.dtype)
    return a + lr * mixed_dynamics_velocity(a, _gradient(a, observations, mask), scale)
