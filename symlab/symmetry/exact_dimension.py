"""Exact functional dimension of a ReLU MLP of small input dimension, from its linear regions.

Grigsby, Lindsey, Meyerhoff, Wu 2022 (arXiv 2209.04036, Sec. 5): for a decisive set Z (n0 + 1
affinely independent points in every top-dimensional region), rank J E_Z|_theta = dim_fun(theta).
Here the regions are the activation regions R_s (open polyhedra, one per activation pattern s
of the hidden layers), enumerated by :func:`symlab.symmetry.linear_regions.enumerate_regions`.

Why n0 + 1 points per region suffice. On R_s the network is F(x) = A_s(theta) x + c_s(theta),
A_s and c_s polynomial in theta (products of masked weight matrices, plus biases). The
parameter-Jacobian row at x is dF/dtheta = (dA_s/dtheta) x + dc_s/dtheta: affine in x, of degree
1. If p_0, ..., p_n0 are affinely independent in R_s, every x in R^{n0} is an affine combination
sum_k t_k p_k (sum t_k = 1), so every row on R_s is sum_k t_k row(p_k): the n0 + 1 rows span all
rows of the region. At a smooth point on a region boundary, the Jacobian is the limit of the
Jacobian from an adjacent region (F is smooth near it), so it lies in the closed span too. The
regions cover R^{n0} up to a null set, so the rank on the decisive set is sup_Z rank J E_Z =
dim_fun(theta) (the supremum over finite smooth Z), exactly.

The points: per region a ball inside it (the witness point of the enumeration when its clearance
is at least 1e-3 of its norm, else the Chebyshev centre by an LP, radius capped at 1) and the
simplex c, c + (r / 2) e_1, ..., c + (r / 2) e_n0, checked by a forward pass to carry the region's
activation pattern. The rank is :func:`symlab.symmetry.batch_functional_dimension` on those
points (float64, scaled rows/columns, certified Gram or SVD). A region of inradius <= 1e-12 counts
as empty (``RADIUS_EMPTY``); a network with a region of inradius in (1e-12, 1e-9] (``RADIUS_MIN``)
is refused (its points cannot be trusted to carry the region's pattern, nor the region be
dropped). The value is exact up to the float64 rank rule (tolerance and gap in the result).

Cost: the enumeration's LPs (~2 ms each; about regions x width per layer: a few hundred regions
and about two thousand LPs for n0 = 3, two layers of width 8) plus one Jacobian on
(n0 + 1) x regions points. Refused beyond ``max_regions`` (default
``symlab.symmetry.linear_regions.DEFAULT_MAX_REGIONS`` = 4096).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from symlab.symmetry.kernel_proofs import ProvenKernel, proven_kernel
from symlab.symmetry.linear_regions import (
    DEFAULT_MAX_REGIONS,
    RADIUS_EMPTY,
    RADIUS_MIN,
    enumerate_regions,
)


@dataclass(frozen=True)
class ExactFD:
    """dim_fun(theta) of a ReLU MLP, exactly.

    rank: the functional dimension (rank on the decisive set); bound: fd_bound; deficit = bound -
    rank; kernel_upper: the bound minus the kernel directions proven on R^{n0} (dead /
    always-active neurons, never-co-active edges; :mod:`symlab.symmetry.kernel_proofs`):
    ``kernel_upper - rank`` is the part of the deficit those mechanisms do not explain (e.g.
    restricted hidden images); regions: activation regions; n_lps: LPs solved; points: the
    decisive set ((n0 + 1) x regions, n0); proof: the :class:`ProvenKernel`.
    """

    rank: int
    bound: int
    deficit: int
    kernel_upper: int
    regions: int
    n_lps: int
    points: torch.Tensor
    proof: ProvenKernel


def exact_functional_dimension(
    model: nn.Module, *, max_regions: int = DEFAULT_MAX_REGIONS
) -> ExactFD:
    """The functional dimension of the ReLU MLP ``model`` (with biases), exactly, from a
    decisive set built on its enumerated activation regions (module docstring).

    Raises ValueError when the network has more than ``max_regions`` activation regions.
    """
    regions = enumerate_regions(model, max_regions=max_regions)
    if regions.thin:
        raise ValueError(
            f"model: after hidden layer {regions.depth} a region of inradius between "
            f"{RADIUS_EMPTY:g} and {RADIUS_MIN:g} could be neither split nor proven empty, so no "
            "exact value is claimed; use functional_dimension's interval [lower, upper]"
        )
    if not regions.complete:
        raise ValueError(
            f"max_regions: the network has more than {max_regions} activation regions (the "
            f"enumeration stopped after hidden layer {regions.depth}); raise max_regions or use "
            "functional_dimension's interval [lower, upper]"
        )
    proof = proven_kernel(model, regions=regions)
    if proof.decisive_rank is None:
        raise ValueError(
            "model: a decisive point left its activation region (a region thinner than the "
            "LP's feasibility tolerance, or a neuron whose pre-activation is identically 0 on a "
            "region, e.g. with zero biases, so that its points are not smooth in that neuron's "
            "bias), so no exact value is claimed; use functional_dimension's interval "
            "[lower, upper]"
        )
    return ExactFD(
        rank=int(proof.decisive_rank),
        bound=proof.bound,
        deficit=proof.bound - int(proof.decisive_rank),
        kernel_upper=proof.kernel_upper,
        regions=int(proof.regions),
        n_lps=regions.n_lps,
        points=proof.decisive_points,
        proof=proof,
    )
