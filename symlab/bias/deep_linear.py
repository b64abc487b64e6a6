"""Deep linear networks: the L2 representation cost of a matrix and its balanced factorization.

For a depth-L linear network A_θ = W_L ⋯ W_1 with hidden widths ≥ rank A, the least parameter
norm that represents A is a Schatten quasi-norm (Dai, Karzand & Srebro 2021; Jacot, ICLR 2023,
"Implicit bias of large depth networks: a notion of rank for nonlinear functions"):

    R(A; L) = min_{W_L ⋯ W_1 = A} Σ_ℓ ‖W_ℓ‖_F² = L · Σ_i s_i(A)^{2/L},

attained by the balanced factorization, in which every W_ℓ has the rank(A) singular values
s_i(A)^{1/L} (aligned singular vectors) and all others exactly 0 (the linear "bottleneck
structure"). Expanding s^{2/L} = exp((2/L) log s) gives (Jacot, NeurIPS 2023, "Bottleneck
structure in learned features: low-dimension vs regularity tradeoff")

    R(A; L) = L R⁽⁰⁾ + R⁽¹⁾ + R⁽²⁾ / L + O(L⁻²),
    R⁽⁰⁾ = rank A,  R⁽¹⁾ = 2 log pdet A = 2 Σ log s_i,  R⁽²⁾ = 2 ‖log₊ s‖² = 2 Σ (log s_i)²,

sums over the nonzero singular values. All in float64; rank by the SVD rule
#{s_i > s_max · max(m, n) · eps} with the eps of A's dtype (a float32 A has float32 rounding
noise) unless ``rtol`` is given. Cost: one SVD of A.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def _matrix(a: object) -> Tensor:
    if not isinstance(a, Tensor) or a.dim() != 2 or 0 in a.shape:
        shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
        raise ValueError(f"A: expected a non-empty 2-D tensor (a matrix), got {shape}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError("A: expected finite entries")
    return a.detach().to(torch.float64)


def _depth(depth: object) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth: expected an integer >= 1, got {depth!r}")
    return depth


def nonzero_singular_values(a: Tensor, rtol: float | None = None) -> Tensor:
    """The singular values of A above the rank cut (s_max · max(m, n) · eps, or rtol · s_max)."""
    s = torch.linalg.svdvals(_matrix(a))
    if len(s) == 0 or float(s[0]) == 0.0:
        return s[:0]
    dtype = a.dtype if a.is_floating_point() else torch.float64
    rtol = max(a.shape) * torch.finfo(dtype).eps if rtol is None else rtol
    return s[s > rtol * s[0]]


def dln_representation_cost(a: Tensor, depth: int, rtol: float | None = None) -> float:
    """R(A; L) = L Σ_i s_i(A)^{2/L}: the least Σ‖W_ℓ‖_F² of a depth-L linear net equal to A."""
    depth = _depth(depth)
    s = nonzero_singular_values(a, rtol)
    return float(depth * s.pow(2.0 / depth).sum())


@dataclass
class CostExpansion:
    """R⁽⁰⁾ = rank, R⁽¹⁾ = 2 log pdet, R⁽²⁾ = 2‖log₊ s‖²; :meth:`truncated` is L R⁽⁰⁾ + R⁽¹⁾ + R⁽²⁾/L."""

    r0: int
    r1: float
    r2: float

    def truncated(self, depth: int, order: int = 2) -> float:
        terms = [depth * self.r0, self.r1, self.r2 / depth]
        return float(sum(terms[: order + 1]))


def representation_cost_expansion(a: Tensor, rtol: float | None = None) -> CostExpansion:
    """The large-depth expansion of R(A; L) (module docstring)."""
    log_s = nonzero_singular_values(a, rtol).log()
    return CostExpansion(len(log_s), float(2 * log_s.sum()), float(2 * log_s.square().sum()))


def balanced_factorization(
    a: Tensor, depth: int, widths: Sequence[int] | None = None, rtol: float | None = None
) -> list[Tensor]:
    """[W_1, ..., W_L] with W_L ⋯ W_1 = A and Σ‖W_ℓ‖_F² = R(A; L): with A = U_r S V_rᵀ (rank r),
    W_1 = E_1 S^{1/L} V_rᵀ, W_ℓ = E_ℓ S^{1/L} E_{ℓ−1}ᵀ, W_L = U_r S^{1/L} E_{L−1}ᵀ, where E_ℓ is the
    n_ℓ × r embedding into the first r coordinates. ``widths`` = (n_1, ..., n_{L−1}), each
    ≥ rank A (default: all equal to rank A, at least 1). Returned in float64; singular values
    below the rank cut are dropped (depth 1 gives the rank-r truncation of A)."""
    matrix, depth = _matrix(a), _depth(depth)
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    rank = len(nonzero_singular_values(a, rtol))
    widths = [max(rank, 1)] * (depth - 1) if widths is None else list(widths)
    if len(widths) != depth - 1:
        raise ValueError(
            f"widths: expected {depth - 1} hidden widths (depth - 1), got {len(widths)}"
        )
    if any(isinstance(w, bool) or not isinstance(w, int) or w < max(rank, 1) for w in widths):
        raise ValueError(f"widths: expected integers >= rank A = {rank}, got {widths!r}")
    root = torch.diag(s[:rank].pow(1.0 / depth))
    dims = [matrix.shape[1], *widths, matrix.shape[0]]
    factors = []
    for layer in range(depth):
        left = (
            u[:, :rank] if layer == depth - 1 else torch.eye(dims[layer + 1], rank, dtype=s.dtype)
        )
        right = vh[:rank].T if layer == 0 else torch.eye(dims[layer], rank, dtype=s.dtype)
        factors.append(left @ root @ right.T)
    return factors


def penalized_dln_optimum(a: Tensor, depth: int, penalty: float) -> float:
    """min over B of R(B; L) + penalty ‖B − A‖_F², the optimum of Σ‖W_ℓ‖² + penalty ‖W_L⋯W_1 − A‖²
    (widths ≥ rank A). By von Neumann's trace inequality an optimal B shares A's singular
    vectors, so the problem splits into min_{b ≥ 0} L b^{2/L} + penalty (b − s_i)² per singular
    value (a grid over [0, s_i] then bounded scalar minimization around its best point; b = 0,
    where the concave term L b^{2/L} has its other local minimum, is compared as well)."""
    from scipy.optimize import minimize_scalar

    depth = _depth(depth)
    if not penalty > 0:
        raise ValueError(f"penalty: expected a positive number, got {penalty!r}")
    total = 0.0
    for s in torch.linalg.svdvals(_matrix(a)).tolist():
        if s == 0:
            continue

        def cost(b: float, s: float = s) -> float:
            return depth * max(b, 0.0) ** (2.0 / depth) + penalty * (b - s) ** 2

        grid = [s * k / 256 for k in range(257)]  # at most one interior minimum, plus b = 0
        k = min(range(257), key=lambda i: cost(grid[i]))
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, 256)]
        best = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-15})
        total += min(cost(0.0), cost(grid[k]), float(best.fun))
    return total
