"""An upper bound on the functional dimension proven on all of R^{n0}, not only on a sample.

dim_fun(theta) = sup_Z rank J E_Z|_theta over finite sets Z of smooth points (Grigsby, Lindsey,
Meyerhoff, Wu 2022, arXiv 2209.04036). Every vector v with J_x v = 0 at every smooth point x of
R^{n0} lies in ker J E_Z for every such Z, so

    dim_fun(theta) <= upper = D - dim span(V)

for any set V of such vectors. The positive scalings of the hidden neurons give D - #hidden
(:func:`symlab.symmetry.fd_bound`; Grigsby, Lindsey, Rolnick 2023, "Hidden Symmetries of ReLU
Networks", ICML, arXiv 2306.06179). :func:`proven_kernel` adds the directions of
:mod:`symlab.symmetry.neuron_mechanisms` whose hypotheses it proves for every x, not on a sample:

- **dead** neuron: z^l_i(x) <= 0 on all of R^{n0}. At a smooth point its incoming, bias and
  outgoing columns vanish (z < 0: relu' = 0 and a = 0; z = 0 at a smooth point: the one-sided
  derivatives in b^l_i agree only if the downstream gradient through it is 0, and a = 0);
- **always active**: z^l_i(x) > 0 on all of R^{n0}: the group kernel dU V + U dV + db e^T = 0
  of the always-active neurons of a layer is an identity in the input, so it holds at every x;
- **never co-active edge** W_l[i, j] (l >= 2): no open set where z^{l-1}_j > 0 and z^l_i > 0; its
  column g^l_i(x) relu(z^{l-1}_j(x)) vanishes on every region, hence at every smooth point (the
  Jacobian at a smooth point is the limit of the Jacobian on an adjacent region);
- **no live path**: every successor of neuron (l, i) with a nonzero weight from it is dead or has
  no live path: g^l_i = 0 everywhere, so its incoming weights and bias are unused.

How the hypotheses are proven (``how`` per hidden layer):

- ``"regions"``: :func:`symlab.symmetry.linear_regions.enumerate_regions` enumerates the
  activation regions of layers < l (LPs, HiGHS); a neuron of layer l positive on none of them is
  dead, negative on none always active, and an edge is co-active iff some region has neuron j of
  layer l-1 active and neuron i positive in it. A thin side (inradius in (1e-12, 1e-9])
  counts as nonempty, so it proves nothing; emptiness is as decided by HiGHS (sides of
  inradius <= ``RADIUS_EMPTY`` = 1e-12, below its feasibility tolerance, count as empty).
- ``"signs"`` (layers beyond the region budget ``max_regions``): exact sign arguments, since
  a^{l-1} >= 0: b_i <= 0 and W_l[i, j] <= 0 for every not-dead j gives dead; b_i > 0 and
  W_l[i, j] >= 0 for every not-dead j gives always active.

When the enumeration is complete (all hidden layers within ``max_regions``) the unused
parameters are found exactly by the 0/1 indicator test of
:mod:`symlab.symmetry.kernel_directions` on one Chebyshev centre per region (the indicators are
constant on a region), and the rank on the decisive set (n0 + 1 affinely independent points per
region, see :mod:`symlab.symmetry.exact_dimension`) is the functional dimension itself, so
``upper`` = that rank. The span's dimension uses a float64 SVD (tol sigma_max max(shape) eps, gap
reported). If a whole hidden layer is dead, F is constant and upper = K (the output biases).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from symlab.symmetry.batch_dimension import batch_functional_dimension, fd_bound
from symlab.symmetry.kernel_directions import (
    _Index,
    _kernel_directions,
    _restricted_rank,
    _unused_coordinates,
)
from symlab.symmetry.linear_regions import (
    LinearRegions,
    chebyshev_centre,
    check_relu_mlp,
    enumerate_regions,
    float64_parameters,
)
from symlab.symmetry.regions import activation_patterns

PROOF_REGIONS = 32  # default region budget of the proof inside functional_dimension


@dataclass(frozen=True)
class ProvenKernel:
    """Kernel directions of J proven on all of R^{n0} and the upper bound they give.

    upper: proven upper bound on dim_fun (min of ``kernel_upper`` and, when the enumeration is
    complete, ``decisive_rank``); bound: fd_bound; dead / always_active: per hidden layer, the
    neurons proven dead / always active on R^{n0}; unused: flat (D,) mask of parameters whose
    column is proven zero at every smooth point (dead neurons' included); how: per hidden layer
    ``"regions"`` or ``"signs"``; complete: every activation region enumerated and its decisive
    points verified to carry its pattern (then
    ``decisive_points`` holds n0 + 1 points per region, ``decisive_rank`` their Jacobian rank =
    dim_fun, and ``regions`` the region count); n_lps: LPs solved.
    """

    upper: int
    bound: int
    kernel_upper: int
    dead: tuple[torch.Tensor, ...]
    always_active: tuple[torch.Tensor, ...]
    unused: torch.Tensor
    how: tuple[str, ...]
    complete: bool
    regions: int | None
    n_lps: int
    kernel_gap: float
    decisive_rank: int | None = None
    decisive_points: torch.Tensor | None = None

    @property
    def n_dead(self) -> int:
        return int(sum(int(d.sum()) for d in self.dead))

    @property
    def n_always_active(self) -> int:
        return int(sum(int(a.sum()) for a in self.always_active))

    @property
    def n_unused(self) -> int:
        return int(self.unused.sum())


def _facts_from_regions(
    regions: LinearRegions, layer: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(dead, always active, co-active (n_l x n_{l-1}) or None for l = 1) of hidden layer l."""
    positive, negative = regions.positive[layer - 1], regions.negative[layer - 1]
    dead, always = ~positive.any(0), ~negative.any(0)
    if layer == 1:
        return dead, always, None
    parents = np.array([pattern[-1] for pattern in regions.parent_patterns[layer - 1]])
    coactive = (positive.astype(np.int64).T @ parents.astype(np.int64)) > 0
    return dead, always, coactive


def _facts_from_signs(
    weight: np.ndarray, bias: np.ndarray, dead_before: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(dead, always active) by sign arguments (module docstring); layer 1: zero rows only."""
    if dead_before is None:
        zero = ~(weight != 0).any(1)
        return zero & (bias <= 0), zero & (bias > 0)
    live = weight[:, ~dead_before]
    return (live <= 0).all(1) & (bias <= 0), (live >= 0).all(1) & (bias > 0)


def _decisive_points(regions: LinearRegions) -> torch.Tensor:
    """n0 + 1 points per region: its Chebyshev centre c and c + (r / 2) e_k, k = 1..n0."""
    blocks = []
    for cell in regions.cells:
        centre, radius = chebyshev_centre(cell)
        simplex = np.vstack([centre, centre + 0.5 * radius * np.eye(centre.shape[0])])
        blocks.append(simplex)
    return torch.from_numpy(np.vstack(blocks))


def _carry_their_patterns(model: nn.Module, regions: LinearRegions, points: torch.Tensor) -> bool:
    """Whether every decisive point has its region's activation pattern (a cell thinner than
    the LP's feasibility tolerance, ~1e-7, can fail this; then no exact value is claimed)."""
    n0 = points.shape[1]
    expected = np.array([np.concatenate(cell.pattern) for cell in regions.cells])
    found = activation_patterns(model, points).numpy().reshape(len(regions.cells), n0 + 1, -1)
    return bool((found == expected[:, None, :]).all())


def proven_kernel(
    model: nn.Module, *, max_regions: int = PROOF_REGIONS, regions: LinearRegions | None = None
) -> ProvenKernel:
    """Upper bound on dim_fun of a ReLU MLP from kernel directions proven on all of R^{n0}.

    Args:
        model: a ReLU MLP with biases (:func:`symlab.nets.mlp`).
        max_regions: region budget of the enumeration (module docstring); layers beyond it are
            proven by sign arguments only.
        regions: a precomputed :func:`enumerate_regions` of ``model`` (then max_regions is not
            used).

    Cost: the enumeration's LPs (~2 ms each, about regions x width per layer), one LP per region
    and a Jacobian on (n0 + 1) x regions points when complete, plus an SVD of the kernel span.
    """
    layers = check_relu_mlp(model, "proven_kernel")
    if regions is None:
        regions = enumerate_regions(model, max_regions=max_regions)
    weights, biases = float64_parameters(layers)
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    n_hidden, index = len(widths) - 2, _Index(widths)
    dead, always, how, unused = [], [], [], torch.zeros(index.size, dtype=torch.bool)
    for layer in range(1, n_hidden + 1):
        if layer <= regions.tested:
            d, a, coactive = _facts_from_regions(regions, layer)
            how.append("regions")
            if coactive is not None:
                never = ~coactive
                start = index.w_off[layer - 1]
                flat = unused[start : start + never.size]
                unused[start : start + never.size] = flat | torch.from_numpy(never.reshape(-1))
        else:
            d, a = _facts_from_signs(weights[layer - 1], biases[layer - 1], dead[-1])
            how.append("signs")
        dead.append(d)
        always.append(a)
    # no live path: backwards from the outputs through not-dead neurons and nonzero weights
    live = np.ones(widths[-1], dtype=bool)
    for layer in range(n_hidden, 0, -1):
        live = ~dead[layer - 1] & ((weights[layer][live] != 0).any(0))
        for i in np.nonzero(~live)[0]:
            i1 = torch.tensor([i])
            unused[index.weight(layer, i1, torch.arange(widths[layer - 1])).reshape(-1)] = True
            unused[index.bias(layer, i1)] = True
    w_t = [torch.from_numpy(w) for w in weights]
    b_t = [torch.from_numpy(b) for b in biases]
    dead_t = [torch.from_numpy(d) for d in dead]
    always_t = [torch.from_numpy(a) for a in always]
    decisive_rank = decisive = None
    decisive = _decisive_points(regions) if regions.complete else None
    if decisive is not None and not _carry_their_patterns(model, regions, decisive):
        decisive = None  # a numerically thin cell: keep the table facts, claim no exact value
    if decisive is not None:
        centres = decisive[:: widths[0] + 1]
        pre, a = [], centres
        for w, b in zip(w_t[:-1], b_t[:-1], strict=True):
            pre.append(a @ w.T + b)
            a = torch.relu(pre[-1])
        # an input coordinate vanishes on no open set: its indicator is 1 on every region
        unused = unused | _unused_coordinates(w_t, torch.ones_like(centres), pre)[0]
        decisive_rank = batch_functional_dimension(model, decisive, compress_regions=False).rank
    bound = fd_bound(model)
    if any(bool(d.all()) for d in dead_t):
        kernel_upper, gap = widths[-1], float("inf")  # F is constant
    else:
        coords, rows = _kernel_directions(w_t, b_t, dead_t, always_t)
        coords = coords | unused
        rank, _, gap = _restricted_rank(coords, rows)
        kernel_upper = index.size - int(coords.sum()) - rank
    kernel_upper = min(kernel_upper, bound)
    if decisive_rank is not None and decisive_rank > kernel_upper:
        raise RuntimeError(
            f"decisive-set rank {decisive_rank} exceeds the proven kernel bound {kernel_upper}: "
            "a proof or a rank is wrong"
        )
    upper = kernel_upper if decisive_rank is None else decisive_rank
    return ProvenKernel(
        upper=upper,
        bound=bound,
        kernel_upper=kernel_upper,
        dead=tuple(dead_t),
        always_active=tuple(always_t),
        unused=unused,
        how=tuple(how),
        complete=decisive is not None,
        regions=len(regions.cells) if decisive is not None else None,
        n_lps=regions.n_lps,
        kernel_gap=gap,
        decisive_rank=decisive_rank,
        decisive_points=decisive,
    )
