"""Functional dimension of a network: the rank of its parameter Jacobian on a batch of points.

Grigsby, Lindsey, Meyerhoff, Wu 2022 ("Functional dimension of feedforward ReLU neural
networks", arXiv 2209.04036) define the batch functional dimension of Z = {z_1, ..., z_N} as
rank J E_Z|_theta, the rank of the (N*K, D) Jacobian of theta -> (F_theta(z_1), ..., F_theta(z_N));
dim_fun(theta) is its supremum over finite smooth Z, attained on a decisive set. For ReLU (and
any positively homogeneous activation) the positive scaling at each hidden neuron gives one
direction in ker J for every Z, hence the bound (note §2)

    dim_fun(theta) <= fd_bound(widths) = D - sum_{l=1}^{L-1} n_l.

A rank above the bound is a bug, never a result: it raises RuntimeError.

Numerics (hidden-symmetries note §7): float64 Jacobians (recomputed from a float64 copy of a
float32 model), rows and columns scaled to unit norm (diagonal scalings do not change the rank),
and :func:`symlab.linalg.numerical_rank`'s rule (tol = sigma_max * max(m, n) * eps, gap at the
cut, ``"auto"`` = Gram + eigvalsh with an SVD fallback). For positively homogeneous MLPs the
known scaling null space is removed before the rank: the relation J v_h = 0 for hidden neuron h
(v_h = +incoming row (W_l[h], b_l[h]), -outgoing column W_{l+1}[:, h]) makes one column of
neuron h's incoming row a combination of the others, so that column is dropped. The dropped
columns' coefficient matrix is block-triangular over layers with nonzero diagonal, so the rank
is unchanged exactly while the matrix shrinks by the number of hidden neurons.

Region compression (piecewise-linear MLPs, :mod:`symlab.symmetry.regions`): inside one
activation region every Jacobian row is affine in x, so n0 + 1 affinely independent points per
activation pattern span the rows of all the pattern's points, and rank J E_{Z'} = rank J E_Z for
the representatives Z' of Z. Patterns cost a forward pass, so the adaptive sample is classified
in full and only its representatives are differentiated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from symlab.linalg.jacobian import parameter_jacobian
from symlab.linalg.rank import (
    RANK_METHODS,
    RankResult,
    equilibrate_columns,
    gram_upper,
    numerical_rank,
    rank_from_gram,
    rank_from_singular_values,
    significant,
)
from symlab.nets import activation_of, is_mlp, linear_layers, parameter_count
from symlab.symmetry.regions import (
    RegionTally,
    activation_patterns,
    decisive_subset,
    is_piecewise_linear,
)
from symlab.symmetry.samplers import Sampler, get_sampler

START_FACTOR = 1.5  # first sample: ceil(1.5 * bound / K) points
PLATEAU_DOUBLINGS = 2  # rank unchanged over this many doublings -> "plateau"
MAX_DOUBLINGS = 3  # default max_points = start * 2**MAX_DOUBLINGS
COMPRESSED_POINTS_FACTOR = 16  # x the default max_points when region compression is on
# Representatives per activation pattern = factor * (n0 + 1). 1 is exact; on slivers 1e-6 thin
# the kept rows had the full set's rank and a singular-value gap no smaller (tests), so a
# margin of 2 (n0 + 1) bought nothing but rows.
REGION_POINTS_FACTOR = 1
_BLOCK_POINTS = 2048  # points per Jacobian block when the Gram is accumulated


@dataclass(frozen=True)
class FDResult:
    """Batch functional dimension and how far it can be trusted.

    rank: numerical rank of J E_Z; bound: the upper bound (fd_bound for positively homogeneous
    MLPs, else the parameter count D); deficit = bound - rank; n_points: |Z|; tol, gap,
    singular_values, ambiguous, method: from the rank computation (of the row- and
    column-scaled Jacobian, without the dropped scaling columns); saturated: ``"bound"`` (the
    rank reached the bound, so it is dim_fun), ``"plateau"`` (unchanged over
    ``PLATEAU_DOUBLINGS`` doublings of the sample), ``"max_points"`` (stopped by max_points: a
    lower bound only) or ``"batch"`` (explicit inputs below the bound: the batch value);
    points: a set with the row space of J E_Z, on which e.g. :func:`symlab.symmetry.diagnose`
    attributes the deficit: Z itself for explicit inputs, else (region compression, see
    :mod:`symlab.symmetry.regions`) the representatives Z' whose Jacobian rows were computed
    (Z itself without compression); ``len(points)`` is the number of points differentiated.
    regions: the number of distinct activation patterns met in Z (None when the regions were
    not computed: smooth activations, generic modules, or ``compress_regions=False``).
    certificate: :class:`symlab.linalg.RankResult`'s null-space certificate of the reported
    rank (<= 1 proves the Gram rank equals the SVD rule's rank; None when the rank came from an
    SVD or from the uncertified Gram at the bound, where the blind spot cannot lower it).
    """

    rank: int
    bound: int
    deficit: int
    n_points: int
    tol: float
    gap: float
    singular_values: torch.Tensor
    saturated: str
    ambiguous: bool
    method: str
    points: torch.Tensor | None = field(default=None, repr=False, compare=False)
    regions: int | None = None
    certificate: float | None = None


def fd_bound(widths: Sequence[int]) -> int:
    """D - (number of hidden neurons) for widths (n_0, ..., n_L), D = sum n_l (n_{l-1} + 1)."""
    widths = list(widths)
    if len(widths) < 2 or any(not isinstance(w, int | np.integer) or w < 1 for w in widths):
        raise ValueError(f"widths: expected at least two positive integers, got {widths}")
    widths = [int(w) for w in widths]
    return parameter_count(widths) - sum(widths[1:-1])


def _homogeneous(model: nn.Module) -> bool:
    """Positively homogeneous activation: sigma(c z) = c sigma(z) for c > 0."""
    return isinstance(activation_of(model), nn.ReLU | nn.LeakyReLU | nn.Identity)


def _scaling_columns(model: nn.Module, column_norms: torch.Tensor) -> torch.Tensor:
    """One column per hidden neuron to drop: the largest |theta_p| * ||J_p|| in its incoming row."""
    drop, offset = [], 0
    layers = linear_layers(model)
    for index, layer in enumerate(layers):
        n_out, n_in = layer.weight.shape
        has_bias = layer.bias is not None
        if index < len(layers) - 1:
            # row h of (W_l | b_l) and its column indices in J
            rows = layer.weight.detach().to(torch.float64)
            cols = offset + torch.arange(n_out * n_in).view(n_out, n_in)
            if has_bias:
                rows = torch.cat([rows, layer.bias.detach().to(torch.float64)[:, None]], 1)
                cols = torch.cat([cols, offset + n_out * n_in + torch.arange(n_out)[:, None]], 1)
            score = rows.abs() * column_norms[cols]
            best = score.argmax(dim=1)
            live = score.max(dim=1).values > 0
            drop.append(cols[torch.arange(n_out), best][live])
        offset += n_out * (n_in + int(has_bias))
    return torch.cat(drop) if drop else torch.zeros(0, dtype=torch.long)


class _ScaledJacobian:
    """Jacobian rows for new points: float64, rows scaled to unit norm, scaling columns dropped."""

    def __init__(self, model: nn.Module, reduce: bool):
        self.model, self.reduce, self.keep = model, reduce, None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        jac = parameter_jacobian(self.model, x, dtype=torch.float64)
        norms = torch.linalg.vector_norm(jac, dim=1, keepdim=True)
        rows = significant(norms[:, 0], max(jac.shape))
        jac = jac[rows] / norms[rows]
        if self.keep is None:
            keep = torch.ones(jac.shape[1], dtype=torch.bool)
            if self.reduce:
                keep[_scaling_columns(self.model, torch.linalg.vector_norm(jac, dim=0))] = False
            self.keep = keep
        return jac if bool(self.keep.all()) else jac[:, self.keep]


def _check_bound(rank: int, bound: int) -> None:
    if rank > bound:
        raise RuntimeError(
            f"functional dimension {rank} exceeds its upper bound {bound}: the Jacobian or the "
            "rank computation is wrong"
        )


def _result(
    rank: RankResult,
    bound: int,
    points: torch.Tensor,
    saturated: str,
    n_points: int | None = None,
    regions: int | None = None,
) -> FDResult:
    _check_bound(rank.rank, bound)
    n_points = points.shape[0] if n_points is None else n_points
    return FDResult(
        rank.rank,
        bound,
        bound - rank.rank,
        n_points,
        rank.tol,
        rank.gap,
        rank.singular_values,
        saturated,
        rank.ambiguous,
        rank.method,
        points.detach(),
        regions,
        rank.certificate,
    )


def _rank_of_rows(jac: torch.Tensor, rank_method: str) -> RankResult:
    return numerical_rank(jac, method=rank_method)


def _equilibrated_gram(gram: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The Gram of the column-scaled matrix (columns that are zero to working precision dropped,
    see :func:`symlab.linalg.rank.significant`) and the kept-column mask."""
    diag = np.sqrt(np.maximum(np.diag(gram), 0))
    live = significant(diag, max(n_rows, gram.shape[0]))
    return gram[np.ix_(live, live)] / np.outer(diag[live], diag[live]), live


def _svd_fallback(points: torch.Tensor, scaled: _ScaledJacobian, live: np.ndarray) -> RankResult:
    """SVD of the row- and column-scaled Jacobian on ``points`` (recomputed, not stored)."""
    jac = scaled(points)[:, torch.from_numpy(live)]
    jac = equilibrate_columns(jac)
    fallback = rank_from_singular_values(torch.linalg.svdvals(jac), tuple(jac.shape))
    return dataclasses.replace(fallback, method="svd (fallback)")


def functional_dimension(
    model: nn.Module,
    inputs: torch.Tensor | None = None,
    *,
    sampler: str | Sampler = "multiscale",
    seed: int = 0,
    max_points: int | None = None,
    rank_method: str = "auto",
    reduce_scaling: bool = True,
    compress_regions: bool = True,
) -> FDResult:
    """Batch functional dimension rank J E_Z|_theta (GLMW22), with its bound and saturation.

    With ``inputs`` (N, n0): the batch functional dimension on those points. Without: an
    adaptive sample Z from ``sampler`` (default ``"multiscale"``, see
    :mod:`symlab.symmetry.samplers`; model-aware samplers such as ``"boundary"``, which seeks
    the regions where deep neurons switch on, are bound to ``model``; MLPs only) seeded by
    ``seed``: start with ceil(1.5 * bound / K) points and double until the rank reaches the
    bound (``saturated="bound"``), stays the same over ``PLATEAU_DOUBLINGS`` = 2 doublings
    (``"plateau"``), or ``max_points`` is reached (``"max_points"``). Only the new points'
    Jacobian rows are computed at each doubling; their Gram is added to the running Gram (BLAS
    dsyrk), so a doubling costs one block of Jacobian rows plus one eigvalsh of the (D' x D')
    Gram. With ``rank_method="auto"`` the stopping rule
    reads the Gram rank; when the final Gram cut is not trusted, the reported rank is the SVD of
    the scaled Jacobian on all differentiated points (recomputed), and a final rank below the
    bound is recomputed by :func:`symlab.linalg.numerical_rank` ("auto": Gram with its
    null-space certificate, else the SVD), so no deficit comes from the Gram's blind spot.

    Region compression (``compress_regions=True``, piecewise-linear MLPs: ReLU, LeakyReLU,
    Identity; see :mod:`symlab.symmetry.regions`): within one activation region every Jacobian
    row is an affine function of x, so n0 + 1 affinely independent points per activation
    pattern span the rows of all of that pattern's points (``REGION_POINTS_FACTOR``). Patterns
    cost one forward pass, so every candidate of Z is classified and only the first points of
    each pattern (counted across doublings) are differentiated: rank J E_{Z'} = rank J E_Z, with
    ``n_points`` = |Z| and ``points`` = Z'. Candidates being cheap, the default ``max_points``
    is then ``COMPRESSED_POINTS_FACTOR`` = 16 times larger (start x 2^MAX_DOUBLINGS x 16, against
    start x 2^MAX_DOUBLINGS without compression), while the differentiated points keep the
    uncompressed default's budget (start x 2^MAX_DOUBLINGS; reaching it also stops with
    ``"max_points"``; it is checked after each doubling, so the last doubling can take the rows
    up to about twice the uncompressed default's): where most candidates fall in new regions
    (large n0) it behaves like the old route. The doubling, plateau and max_points rules count
    candidates. Explicit ``inputs`` are compressed the same way (the rank is the same; ``points``
    stays ``inputs``). Smooth activations and generic modules are never compressed.

    Args:
        model: an MLP (closed-form Jacobian) or any ``nn.Module`` (generic Jacobian; then
            ``inputs`` is required and the bound is the parameter count D).
        rank_method: ``"auto"`` (Gram with SVD fallback), ``"gram"`` or ``"svd"``.
        reduce_scaling: drop one known scaling-null-space column per hidden neuron (positively
            homogeneous MLPs only); the rank is unchanged and the Gram is smaller.
        compress_regions: differentiate only region representatives (above); False gives the
            uncompressed route (every point differentiated, default max_points 8 x start).

    Float32 models are differentiated in float64 (patterns too). Cost per evaluation: O(N K D)
    for J, N K D'^2 / 2 for the Gram, 4/3 D'^3 for eigvalsh (D' = D - #hidden with
    reduce_scaling), N = the number of differentiated points; plus O(|Z| sum n_l n_{l-1}) for the
    patterns when compressing.
    """
    if rank_method not in RANK_METHODS:
        raise ValueError(
            f"rank_method: expected one of {', '.join(RANK_METHODS)}, got {rank_method!r}"
        )
    if not isinstance(seed, int):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    mlp_like = is_mlp(model)
    homogeneous = mlp_like and _homogeneous(model)
    compress = bool(compress_regions) and is_piecewise_linear(model)
    d = sum(p.numel() for p in model.parameters())
    hidden = sum(layer.out_features for layer in linear_layers(model)[:-1]) if mlp_like else 0
    bound = d - hidden if homogeneous else d
    scaled = _ScaledJacobian(model, reduce_scaling and homogeneous)
    n0 = linear_layers(model)[0].in_features if mlp_like else 0
    per_region = REGION_POINTS_FACTOR * (n0 + 1)

    if inputs is not None:
        regions, decisive = None, inputs
        if compress:
            subset = decisive_subset(model, inputs, per_region=per_region)
            regions, decisive = subset.regions, inputs[subset.indices]
        rank = _rank_of_rows(scaled(decisive), rank_method)
        saturated = "bound" if rank.rank == bound else "batch"
        return _result(rank, bound, inputs, saturated, regions=regions)
    if not mlp_like:
        raise ValueError("inputs: expected a tensor of points for a model that is not an MLP")
    draw = get_sampler(sampler, model)  # binds the model of a model-aware sampler
    k = linear_layers(model)[-1].out_features
    start = max(1, math.ceil(START_FACTOR * bound / k))
    # default budget: the uncompressed route's 8 x start differentiated points, and with
    # compression up to 16 times as many candidates (cheap) as long as that budget lasts
    point_budget = start * 2**MAX_DOUBLINGS if max_points is None and compress else None
    if max_points is None:
        max_points = start * 2**MAX_DOUBLINGS * (COMPRESSED_POINTS_FACTOR if compress else 1)
    if not isinstance(max_points, int) or max_points < 1:
        raise ValueError(f"max_points: expected a positive integer or None, got {max_points!r}")
    generator = torch.Generator().manual_seed(seed)
    tally = RegionTally(per_region) if compress else None
    points = torch.empty(0, n0, dtype=torch.float64)  # the differentiated points (Z' or Z)
    seen, gram, n_rows, history, target = 0, None, 0, [], min(start, max_points)
    rank = trusted = live = None
    while True:
        count = target - seen
        new = draw(count, n0, generator, torch.float64)
        if new.shape != (count, n0):
            raise ValueError(
                f"sampler: expected a tensor of shape ({count}, {n0}), got {tuple(new.shape)}"
            )
        new, seen = new.to(torch.float64), target
        if tally is not None:
            new = new[tally.update(activation_patterns(model, new))]
        points = torch.cat([points, new])
        if rank is not None and new.shape[0] == 0:
            pass  # no new representative: the row space, hence the rank, is unchanged
        elif rank_method == "svd":
            rank, trusted = _rank_of_rows(scaled(points), "svd"), True
        else:
            for block in torch.split(new, _BLOCK_POINTS):
                rows = scaled(block)
                n_rows += rows.shape[0]
                if gram is None:
                    gram = np.zeros((rows.shape[1], rows.shape[1]), order="F")
                gram = gram_upper(rows, out=gram)
            equilibrated, live = _equilibrated_gram(gram, n_rows)
            rank, trusted = rank_from_gram(equilibrated, (n_rows, int(live.sum())))
            trusted = trusted and not rank.ambiguous  # an ambiguous verdict needs the SVD
            if rank_method == "gram":
                trusted = True
            elif not trusted and rank.rank == bound:
                # never stop at the bound on an uncertain cut
                rank, trusted = _svd_fallback(points, scaled, live), True
        _check_bound(rank.rank, bound)
        history.append(rank.rank)
        if rank.rank == bound:
            reason = "bound"
        elif len(history) > PLATEAU_DOUBLINGS and len(set(history[-PLATEAU_DOUBLINGS - 1 :])) == 1:
            reason = "plateau"
        elif seen >= max_points or (point_budget and points.shape[0] >= point_budget):
            reason = "max_points"
        else:
            target = min(2 * seen, max_points)
            continue
        if not trusted:
            # the stopping rule used the Gram estimate; the reported rank is the SVD's
            rank = _svd_fallback(points, scaled, live)
            reason = "bound" if rank.rank == bound else reason
        elif rank_method == "auto" and rank.rank < bound and rank.method == "gram":
            # a deficit is the finding: certify it (the accumulated Gram cannot see singular
            # values between tol and ~1e-8 sigma_max; numerical_rank's null-space certificate
            # does, falling back to the SVD), on the differentiated points
            rank = _rank_of_rows(scaled(points), "auto")
            reason = "bound" if rank.rank == bound else reason
        regions = None if tally is None else tally.regions
        return _result(rank, bound, points, reason, n_points=seen, regions=regions)
