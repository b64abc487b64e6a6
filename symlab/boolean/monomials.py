"""Supports and the orthonormal monomials on the Boolean cube and on Gaussian space.

Boolean: on {±1}^d with the uniform measure, the Walsh characters χ_S(x) = Π_{i∈S} x_i, one per
support S ⊆ {1, ..., d} (1-based coordinates, as in the papers), are an orthonormal basis:
E[χ_S χ_T] = 1[S = T] (O'Donnell, "Analysis of Boolean Functions", 2014, ch. 1).
Gaussian: on R^d with x ~ N(0, I_d), the normalized Hermite monomials
H_α(x) = Π_i He_{α_i}(x_i) / √(α_i!), one per multi-index α ∈ N^d (probabilists' Hermite
polynomials He_k), are orthonormal: E[H_α H_β] = 1[α = β]. A Gaussian support is given as a
mapping {coordinate: degree} (1-based coordinates, degrees ≥ 1).
Abbe, Boix-Adserà & Misiakiewicz (COLT 2022, 2023) state the merged-staircase property and the leap
in these terms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

BooleanSupport = frozenset[int]
GaussianSupport = tuple[tuple[int, int], ...]  # sorted ((coordinate, degree), ...)


def boolean_support(support: Iterable[int], name: str = "supports") -> BooleanSupport:
    """A support as a frozenset of 1-based coordinates; duplicates or coordinates < 1 refused."""
    coords = list(support)
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in coords):
        raise ValueError(f"{name}: expected 1-based integer coordinates (>= 1), got {coords!r}")
    if len(set(coords)) != len(coords):
        raise ValueError(f"{name}: expected distinct coordinates in a support, got {coords!r}")
    return frozenset(coords)


def gaussian_support(support: Mapping[int, int], name: str = "supports") -> GaussianSupport:
    """A Hermite multi-index {coordinate: degree} as a sorted tuple of pairs (degrees ≥ 1)."""
    if not isinstance(support, Mapping):
        raise ValueError(f"{name}: expected a mapping {{coordinate: degree}}, got {support!r}")
    for coord, degree in support.items():
        bad_coord = isinstance(coord, bool) or not isinstance(coord, int) or coord < 1
        if bad_coord or isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ValueError(
                f"{name}: expected 1-based coordinates with degrees >= 1, got {dict(support)!r}"
            )
    return tuple(sorted(support.items()))


def check_dimension(supports: Iterable, d: int, name: str = "d") -> None:
    """One-sentence ValueError unless every coordinate of ``supports`` is ≤ d."""
    largest = max(
        (max((c if isinstance(c, int) else c[0]) for c in s) for s in supports if len(s)),
        default=0,
    )
    if isinstance(d, bool) or not isinstance(d, int) or d < max(largest, 1):
        raise ValueError(
            f"{name}: expected an integer >= the largest coordinate {largest}, got {d!r}"
        )


def character(x: Tensor, support: Iterable[int]) -> Tensor:
    """χ_S(x) = Π_{i∈S} x_i for x of shape (n, d) with ±1 entries (1 for the empty support)."""
    index = torch.tensor(sorted(boolean_support(support)), dtype=torch.long) - 1
    if len(index) == 0:
        return torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
    return x[..., index.to(x.device)].prod(dim=-1)


def characters(x: Tensor, supports: Iterable[Iterable[int]]) -> Tensor:
    """(n, m) matrix of χ_{S_j}(x_i) for the supports S_1..S_m."""
    return torch.stack([character(x, s) for s in supports], dim=-1)


def hermite(k: int, z: Tensor) -> Tensor:
    """Probabilists' Hermite polynomial He_k(z): He_0 = 1, He_1 = z, He_{k+1} = z He_k − k He_{k−1}."""
    previous, current = torch.ones_like(z), z
    if k == 0:
        return previous
    for j in range(1, k):
        previous, current = current, z * current - j * previous
    return current


def hermite_monomial(x: Tensor, support: Mapping[int, int]) -> Tensor:
    """H_α(x) = Π_i He_{α_i}(x_i) / √(α_i!) for x of shape (n, d), α = {coordinate: degree}."""
    out = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
    for coord, degree in gaussian_support(support):
        out = out * hermite(degree, x[..., coord - 1]) / math.sqrt(math.factorial(degree))
    return out


def uniform_cube(
    n: int, d: int, generator: torch.Generator | None = None, dtype=torch.float32
) -> Tensor:
    """n points drawn uniformly from {±1}^d, shape (n, d). The draws are those of
    ``torch.randint(0, 2, (n, d))`` (the same stream), made in ``dtype`` directly (4x faster than
    going through int64; an online sampler calls this every step)."""
    bits = torch.empty(n, d, dtype=dtype).random_(0, 2, generator=generator)
    return bits.mul_(2).sub_(1)
