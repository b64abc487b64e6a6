"""Symmetries of the input space and the orbits of targets under them (the cost of symmetry).

Abbe & Boix-Adserà ("On the non-universality of deep learning: quantifying the cost of symmetry",
NeurIPS 2022, arXiv 2208.03113) bound what an *equivariant* learner can learn: if training on
(g·x, y) yields, in law, the predictor trained on (x, y) composed with g⁻¹, the learner cannot
tell f* from any member of its orbit {f*∘g}, so learning f* is as hard as learning the orbit.
On the cube {±1}^d the symmetries are the signed permutations g: (g·x)_i = s_i x_{π(i)}
(the hyperoctahedral group, 2^d d! elements); in Gaussian space, every orthogonal map. A group
element is stored as its d×d orthogonal matrix M (M_{i,π(i)} = s_i for a signed permutation), acting
on a batch of inputs as x ↦ x Mᵀ and on a first-layer weight matrix as W ↦ W Mᵀ, so that
(W Mᵀ)(M x) = W x. A Walsh character maps to χ_S(g·x) = (Π_{i∈S} s_i) χ_{π(S)}(x), so the orbit of
a degree-k parity is {±χ_T : |T| = k}: C(d, k) functions up to sign [derived]. Its
cross-predictability E_{g,g'}⟨f∘g, f∘g'⟩² (the orbit's hardness in the Abbe–Sandon sense; the
paper's exact quantity was not retrieved, this is its shape) is 1/C(d, k) for a parity [derived].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from symlab.boolean.targets import MonomialTarget, monomial_target


def signed_permutation(d: int, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random signed permutation of {±1}^d as its d×d matrix (float64, entries 0, ±1)."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d: expected a positive integer, got {d!r}")
    perm = torch.randperm(d, generator=generator)
    signs = 2.0 * torch.randint(0, 2, (d,), generator=generator).double() - 1.0
    matrix = torch.zeros(d, d, dtype=torch.float64)
    matrix[torch.arange(d), perm] = signs
    return matrix


def random_rotation(d: int, generator: torch.Generator | None = None) -> Tensor:
    """A Haar-random orthogonal d×d matrix (QR of a Gaussian matrix, signs of R's diagonal fixed;
    Mezzadri 2007), float64."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d: expected a positive integer, got {d!r}")
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def is_signed_permutation(matrix: Tensor) -> bool:
    """True iff every row and column of ``matrix`` has exactly one non-zero entry, equal to ±1."""
    nonzero = matrix != 0
    ones = (matrix.abs() == 1) | ~nonzero
    return bool(ones.all() and (nonzero.sum(0) == 1).all() and (nonzero.sum(1) == 1).all())


def act(rows: Tensor, matrix: Tensor) -> Tensor:
    """g acting on a batch of inputs (x ↦ x Mᵀ) or on a first-layer weight matrix (W ↦ W Mᵀ);
    rows of shape (n, d), ``matrix`` M of shape (d, d)."""
    if matrix.shape != (rows.shape[-1], rows.shape[-1]):
        raise ValueError(
            f"matrix: expected shape ({rows.shape[-1]}, {rows.shape[-1]}), got {tuple(matrix.shape)}"
        )
    return rows @ matrix.to(rows.dtype).T


def compose(target: MonomialTarget, matrix: Tensor) -> MonomialTarget:
    """f*∘g for a signed permutation g: (f*∘g)(x) = f*(g·x) = Σ_S ĉ_S (Π_{i∈S} s_i) χ_{π(S)}(x)."""
    if target.inputs != "boolean" or not is_signed_permutation(matrix):
        raise ValueError("matrix: expected a signed permutation acting on a Boolean target")
    perm = matrix.abs().argmax(1)  # row i has its ±1 at column π(i)
    signs = matrix[torch.arange(matrix.shape[0]), perm]
    supports, coefficients = [], []
    for support, c in zip(target.supports, target.coefficients, strict=True):
        index = sorted(support)
        supports.append([int(perm[i - 1]) + 1 for i in index])
        coefficients.append(c * float(torch.prod(signs[[i - 1 for i in index]])))
    return monomial_target(supports, coefficients)


def parity_orbit_size(d: int, k: int) -> int:
    """Number of distinct functions (up to sign) in the orbit of a degree-k parity: C(d, k)."""
    return math.comb(d, k)


def cross_predictability(
    target: MonomialTarget, d: int, pairs: int = 2000, generator: torch.Generator | None = None
) -> float:
    """Monte-Carlo estimate of E_{g,g'}[⟨f∘g, f∘g'⟩²] / ‖f‖⁴ over independent uniform signed
    permutations g, g' (``pairs`` draws). Each inner product is exact: orthonormality of the
    characters gives ⟨f∘g, f∘g'⟩ = Σ over supports mapped to the same set of the coefficient
    products. For a degree-k parity the value is 1/C(d, k)."""
    total = 0.0
    for _ in range(pairs):
        first = compose(target, signed_permutation(d, generator))
        second = compose(target, signed_permutation(d, generator))
        table = dict(zip(second.supports, second.coefficients, strict=True))
        inner = sum(
            c * table.get(s, 0.0) for s, c in zip(first.supports, first.coefficients, strict=True)
        )
        total += inner**2
    return total / pairs / target.norm_squared**2
