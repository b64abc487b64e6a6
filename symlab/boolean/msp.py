"""The leap of a Fourier support and the merged-staircase property, exactly.

For supports S_1..S_m (Walsh supports on the cube or Hermite multi-indices on Gaussian space)
Leap = min over orderings π of max_i new(S_π(i), U_{i−1}), with U_{i−1} = ∪_{j<i} supp S_π(j) and
new(S, U) = Σ_{k ∈ supp S \\ U} S_k the new coordinates counted with multiplicity (|S \\ U| for a
set). The merged-staircase property (MSP) is Leap ≤ 1: an ordering in which each support adds at
most one new coordinate (Abbe, Boix-Adserà & Misiakiewicz, COLT 2022, arXiv 2202.08658). Online
SGD on two-layer nets is conjectured to need Θ̃(d^{max(Leap−1, 1)}) steps, proved for Gaussian data
under extra assumptions (Abbe, Boix-Adserà & Misiakiewicz, COLT 2023, arXiv 2302.11055).
Examples: x1 + x1x2 + x1x2x3 and x1 + x2 + x1x2x3 have leap 1, x1 + x1x2x3 and
x1x2 + x2x3 + x3x4 leap 2, x1x2x3 leap 3; He_3(z1) leap 3, He_2(z1) + z1z2 leap 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from symlab.boolean.monomials import GaussianSupport, boolean_support, gaussian_support
from symlab.boolean.walsh import WalshExpansion

Support = GaussianSupport  # ((coordinate, degree), ...), sorted; a set has every degree 1


@dataclass(frozen=True)
class LeapResult:
    """The leap, an ordering achieving it, and the new-coordinate count of each step.

    ``ordering`` holds the distinct supports (frozensets, or {coordinate: degree} dicts for
    Gaussian supports); ``new_coordinates[i]`` = new(ordering[i], ∪_{j<i} supp ordering[j]), whose
    maximum is ``leap``; ``merged_staircase`` is leap ≤ 1.
    """

    leap: int
    ordering: tuple
    new_coordinates: tuple[int, ...]
    gaussian: bool
    merged_staircase: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "merged_staircase", self.leap <= 1)


def new_coordinates(support: Support, covered: set[int]) -> int:
    """new(S, U) = Σ_{k ∈ supp S, k ∉ U} S_k: the coordinates S adds to U, with multiplicity."""
    return sum(degree for coord, degree in support if coord not in covered)


def canonical_supports(
    supports: Iterable[Iterable[int] | Mapping[int, int]] | WalshExpansion,
) -> tuple[list[Support], bool]:
    """Distinct supports as sorted (coordinate, degree) pairs in a canonical order, and whether
    they are Gaussian (all mappings) rather than Boolean (all sets of coordinates)."""
    if isinstance(supports, WalshExpansion):
        supports = supports.supports
    if not isinstance(supports, Iterable) or isinstance(supports, (str, bytes)):
        raise ValueError(f"supports: expected a list of supports, got {supports!r}")
    items = list(supports)
    if not items:
        raise ValueError("supports: expected at least one support, got an empty list")
    is_mapping = [isinstance(s, Mapping) for s in items]
    if any(is_mapping) and not all(is_mapping):
        raise ValueError(
            "supports: expected all sets of coordinates (Boolean) or all mappings "
            "{coordinate: degree} (Gaussian), got a mix"
        )
    gaussian = all(is_mapping)
    if gaussian:
        pairs = {gaussian_support(s) for s in items}
    else:
        for s in items:
            if not isinstance(s, Iterable) or isinstance(s, (str, bytes)):
                raise ValueError(
                    f"supports: expected each support to be a set of coordinates, got {s!r}"
                )
        pairs = {tuple((c, 1) for c in sorted(boolean_support(s))) for s in items}
    return sorted(pairs, key=lambda s: (sum(k for _, k in s), s)), gaussian


def leap(supports: Iterable[Iterable[int] | Mapping[int, int]] | WalshExpansion) -> LeapResult:
    """The exact leap of a family of supports, with an optimal (canonical) ordering.

    ``supports``: sets of 1-based coordinates (Boolean: x1x3 is {1, 3}), or mappings
    {coordinate: degree} (Gaussian: He_2(z1) z3 is {1: 2, 3: 1}), or a :class:`WalshExpansion`.
    Duplicates count once; the empty support (the constant) adds nothing.

    Algorithm (bottleneck greedy): from U = ∅, repeatedly append the remaining support with the
    least new(S, U), ties broken by (total degree, coordinates); Leap = the largest count met.
    Proof: new(S, U) only decreases as U grows. Let π* achieve Leap = L. When the greedy has
    picked a set C (union U) and T is the first support of π* outside C, every π*-predecessor of T
    is in C, so new(T, U) ≤ new(T, U^{π*}) ≤ L: each greedy pick costs ≤ L, hence exactly L.
    The same argument shows the threshold-k closure (add any S with new(S, U) ≤ k) covers all
    supports iff k ≥ L. No ordering is enumerated: O(m² s) time for m distinct supports of at
    most s coordinates, O(m s) memory.
    """
    remaining, gaussian = canonical_supports(supports)
    covered: set[int] = set()
    ordering, counts = [], []
    while remaining:
        step = min(range(len(remaining)), key=lambda i: new_coordinates(remaining[i], covered))
        support = remaining.pop(step)  # min keeps the first of ties: the canonical order
        counts.append(new_coordinates(support, covered))
        covered.update(coord for coord, _ in support)
        ordering.append(dict(support) if gaussian else frozenset(c for c, _ in support))
    return LeapResult(max(counts), tuple(ordering), tuple(counts), gaussian)


def is_merged_staircase(
    supports: Iterable[Iterable[int] | Mapping[int, int]] | WalshExpansion,
) -> bool:
    """Whether the supports have the merged-staircase property: Leap ≤ 1 (see :func:`leap`)."""
    return leap(supports).merged_staircase
