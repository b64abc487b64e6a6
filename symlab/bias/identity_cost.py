"""The cost of identity of a representation and its nuclear-ratio lower bound (Jacot & Kaiser 2024,
"Hamiltonian mechanics of feature learning: bottleneck structure in Leaky ResNets",
arXiv 2405.17573, Sec. 3).

A representation is A ∈ R^{w×N} (features × inputs: column i is α(x_i), the paper's orientation;
a torch batch (N, w) is its transpose). With σ(A) = ([A]_+; 1ᵀ) ∈ R^{(w+1)×N} (ReLU and the
appended constant row; ``bias=False`` drops the row) and K = σ(A)ᵀσ(A) ∈ R^{N×N},

    COI(A) = ‖A‖²_K = Tr[A K⁺ Aᵀ] = ‖A σ(A)⁺‖_F²,

the squared Frobenius norm of the smallest W with W σ(A) = A (infinite when Im Aᵀ ⊄ Im σ(A)ᵀ).
For non-negative A and ``bias=False``, σ(A) = A and COI = rank A. Prop. 1: for ``bias=False``,

    COI(A) ≥ ‖A‖_*² / ‖A‖_F²     (‖A‖_* = ‖W σ(A)‖_* ≤ ‖W‖_F ‖σ(A)‖_F ≤ ‖W‖_F ‖A‖_F),

the nuclear ratio, between 1 and rank A. With the constant row the bound can fail (A = c 1ᵀ, c
small: W = (0, c) gives COI ≤ c² < 1 = the ratio), so it is a proxy there, not a bound.

The pseudo-inverse is never formed: the stable version of Thm. 4,

    COI_γ(A) = Tr[A (K + γ I)⁻¹ Aᵀ],   γ = γ₀ ‖σ(A)‖²_op,

is computed by one Cholesky factorization of K + γI and a triangular solve (float64). COI_γ
increases to COI as γ → 0 (equal in the limit when Im Aᵀ ⊂ Im σ(A)ᵀ; else it grows like 1/γ).
Cost O(N³ + N² w) time, O(N²) memory.
"""

from __future__ import annotations

import torch
from torch import Tensor

from symlab.bias.spectra import nuclear_ratio


def _representation(a: object) -> Tensor:
    if not isinstance(a, Tensor) or a.dim() != 2 or 0 in a.shape:
        shape = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
        raise ValueError(f"A: expected a non-empty (w, N) matrix, got {shape}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError("A: expected finite entries")
    return a.detach().to(torch.float64)


def identity_sigma(a: Tensor, bias: bool = True) -> Tensor:
    """σ(A) = ([A]_+; 1ᵀ) ∈ R^{(w+1)×N} (rows: features), or [A]_+ when ``bias=False``."""
    relu = torch.relu(a)
    return torch.cat([relu, torch.ones_like(a[:1])], dim=0) if bias else relu


def cost_of_identity(a: Tensor, gamma0: float = 1e-8, *, bias: bool = True) -> float:
    """COI_γ(A) = Tr[A (σ(A)ᵀσ(A) + γI)⁻¹ Aᵀ], γ = ``gamma0`` · ‖σ(A)‖²_op (module docstring), by a
    Cholesky solve in float64; ``a`` is (w, N). An all-zero σ(A) with ``bias=False`` gives
    COI = 0 for A = 0."""
    a = _representation(a)
    if not gamma0 > 0:
        raise ValueError(f"gamma0: expected a positive number, got {gamma0!r}")
    s = identity_sigma(a, bias)
    scale = float(torch.linalg.matrix_norm(s, ord=2)) ** 2
    if scale == 0:
        if bool((a != 0).any()):
            raise ValueError("A: σ(A) = 0 while A ≠ 0: no W maps σ(A) to A (infinite cost)")
        return 0.0
    gram = s.T @ s
    gram.diagonal().add_(gamma0 * scale)
    factor = torch.linalg.cholesky(gram)
    half = torch.linalg.solve_triangular(factor, a.T, upper=False)  # L⁻¹ Aᵀ: Tr = ‖L⁻¹Aᵀ‖²
    return float(half.square().sum())


def cost_of_identity_bound(a: Tensor) -> float:
    """‖A‖_*² / ‖A‖_F² (Prop. 1; a lower bound of COI(A) without the constant row)."""
    return nuclear_ratio(torch.linalg.svdvals(_representation(a)))
