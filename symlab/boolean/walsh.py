"""Functions on the Boolean cube given by their Walsh (Fourier) expansion.

Every f: {±1}^d → R is uniquely f(x) = Σ_{S ⊆ [d]} f̂(S) χ_S(x) with χ_S(x) = Π_{i∈S} x_i and
f̂(S) = E_x[f(x) χ_S(x)] under the uniform measure (O'Donnell, "Analysis of Boolean Functions",
2014, Thm 1.1). :class:`WalshExpansion` holds the non-zero f̂(S): the Fourier support whose
merged-staircase property and leap (:mod:`symlab.boolean.msp`) govern SGD learnability
(Abbe, Boix-Adserà & Misiakiewicz, COLT 2022, arXiv 2202.08658; COLT 2023, arXiv 2302.11055).
The staircase x_1 + x_1x_2 + … + x_1⋯x_k is from Abbe, Boix-Adserà, Brennan, Bresler & Nagaraj
(NeurIPS 2021, arXiv 2108.10573).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from symlab.boolean.monomials import BooleanSupport, boolean_support, character, uniform_cube


def support_order(support: BooleanSupport) -> tuple[int, tuple[int, ...]]:
    """Sort key of a support: by degree |S|, then by its sorted coordinates."""
    return len(support), tuple(sorted(support))


@dataclass(frozen=True, init=False)
class WalshExpansion:
    """f(x) = Σ_S f̂(S) χ_S(x): a function on {±1}^d from its Walsh coefficients.

    ``coefficients`` maps supports (iterables of 1-based coordinates; the empty support is the
    constant term) to real coefficients; zero coefficients are dropped, so :attr:`supports` is
    the Fourier support. Parseval: E_x f(x)² = Σ_S f̂(S)².
    """

    coefficients: Mapping[BooleanSupport, float]

    def __init__(self, coefficients: Mapping[Iterable[int], float]) -> None:
        if not isinstance(coefficients, Mapping):
            raise ValueError(
                f"coefficients: expected a mapping {{support: coefficient}}, got {coefficients!r}"
            )
        normalized: dict[BooleanSupport, float] = {}
        for support, value in coefficients.items():
            key = boolean_support(support, name="coefficients")
            if key in normalized:
                raise ValueError(
                    f"coefficients: expected each support once, got {sorted(key)} twice"
                )
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(
                    f"coefficients: expected finite numbers, got {value!r} for {sorted(key)}"
                )
            if number != 0.0:
                normalized[key] = number
        ordered = dict(sorted(normalized.items(), key=lambda item: support_order(item[0])))
        object.__setattr__(self, "coefficients", ordered)

    @classmethod
    def parity(cls, support: Iterable[int], coefficient: float = 1.0) -> WalshExpansion:
        """The parity χ_S(x) = Π_{i∈S} x_i (times ``coefficient``)."""
        return cls({frozenset(boolean_support(support, name="support")): coefficient})

    @classmethod
    def staircase(cls, k: int, coefficients: Sequence[float] | None = None) -> WalshExpansion:
        """The staircase Σ_{i=1}^k α_i x_1⋯x_i (α_i = 1 unless ``coefficients`` are given)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        alphas = [1.0] * k if coefficients is None else list(coefficients)
        if len(alphas) != k:
            raise ValueError(f"coefficients: expected {k} numbers (one per step), got {alphas!r}")
        return cls({frozenset(range(1, i + 1)): a for i, a in enumerate(alphas, start=1)})

    @property
    def supports(self) -> tuple[BooleanSupport, ...]:
        """The Fourier support {S : f̂(S) ≠ 0}, ordered by degree then coordinates."""
        return tuple(self.coefficients)

    @property
    def degree(self) -> int:
        """max |S| over the Fourier support (0 for a constant or the zero function)."""
        return max((len(s) for s in self.coefficients), default=0)

    @property
    def dim(self) -> int:
        """The largest coordinate used: the least d with f defined on {±1}^d (0 if constant)."""
        return max((max(s) for s in self.coefficients if s), default=0)

    def __call__(self, x: Tensor) -> Tensor:
        """f(x) for x of shape (n, d) with ±1 entries (d ≥ :attr:`dim`): shape (n,), x's dtype."""
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] < self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x: expected a tensor of shape (n, d) with d >= {self.dim}, got {shape}"
            )
        if not x.is_floating_point():
            raise ValueError(f"x: expected a floating-point tensor, got {x.dtype}")
        out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for support, value in self.coefficients.items():
            out = out + value * character(x, support)
        return out

    def sample(
        self,
        n: int,
        d: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """(x, f(x)): n points drawn uniformly from {±1}^d, shapes (n, d) and (n,)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected an integer >= 1, got {n!r}")
        if isinstance(d, bool) or not isinstance(d, int) or d < max(self.dim, 1):
            raise ValueError(
                f"d: expected an integer >= the largest coordinate {self.dim}, got {d!r}"
            )
        x = uniform_cube(n, d, generator, dtype)
        return x, self(x)

    def __hash__(self) -> int:
        return hash(frozenset(self.coefficients.items()))

    def __add__(self, other: WalshExpansion) -> WalshExpansion:
        if not isinstance(other, WalshExpansion):
            return NotImplemented
        total = dict(self.coefficients)
        for support, value in other.coefficients.items():
            total[support] = total.get(support, 0.0) + value
        return WalshExpansion(total)

    def __mul__(self, scalar: float) -> WalshExpansion:
        if isinstance(scalar, bool) or not isinstance(scalar, (int, float)):
            return NotImplemented
        return WalshExpansion({s: scalar * v for s, v in self.coefficients.items()})

    __rmul__ = __mul__
