"""Functional dimension by an adaptive sample: grow Z until the batch rank saturates.

The batch functional dimension rank J E_Z|_theta (Grigsby, Lindsey, Meyerhoff, Wu 2022,
arXiv 2209.04036) is a lower bound on dim_fun(theta), its supremum over finite smooth Z, and
:func:`symlab.symmetry.fd_bound` (D - #hidden for positively homogeneous MLPs, Grigsby, Lindsey,
Rolnick 2023, "Hidden Symmetries of ReLU Networks", ICML) bounds it from above; see
:mod:`symlab.symmetry.batch_dimension` for both and for the numerics. :func:`functional_dimension`
draws a sample, doubles it until the rank (a lower bound) meets a proven upper bound
(:mod:`symlab.symmetry.kernel_proofs`) or the point budget is spent, and reports the rank of
:func:`symlab.symmetry.batch_dimension.batch_functional_dimension` on the points it
differentiated (from the incremental Gram, certified, or else recomputed). Explicit inputs go
straight to the batch function.

Region compression (piecewise-linear MLPs, :mod:`symlab.symmetry.regions`): n0 + 1 points per
activation pattern span the Jacobian rows of all the pattern's points, and patterns cost a
forward pass, so the adaptive sample is classified in full and only its representatives are
differentiated.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from symlab.linalg.block_rank import block_rank
from symlab.linalg.rank import (
    GAP_THRESHOLD,
    RANK_METHODS,
    RankResult,
    equilibrate_columns,
    gram_upper,
    rank_from_gram,
    rank_from_singular_values,
    significant,
)
from symlab.linalg.schur_certificate import schur_certify
from symlab.linalg.schur_rank import RowBlocks, scale_lower, schur_count
from symlab.nets import is_mlp, linear_layers
from symlab.symmetry.actions import is_positively_homogeneous
from symlab.symmetry.batch_dimension import (
    REGION_POINTS_FACTOR,
    FDResult,
    _batch_result,
    _check_bound,
    _result,
    batch_functional_dimension,
    fd_bound,
    prove_upper,
    proven_upper,
)
from symlab.symmetry.kernel_proofs import PROOF_REGIONS
from symlab.symmetry.model_checks import check_model
from symlab.symmetry.regions import RegionTally, activation_patterns, is_piecewise_linear
from symlab.symmetry.samplers import Sampler, get_sampler
from symlab.symmetry.scaled_jacobian import ScaledJacobian

START_FACTOR = 1.5  # first sample: ceil(1.5 * bound / K) points
PLATEAU_DOUBLINGS = 2  # rank unchanged over this many doublings -> "plateau"
MAX_DOUBLINGS = 3  # default max_points = start * 2**MAX_DOUBLINGS
COMPRESSED_POINTS_FACTOR = 16  # x the default max_points when region compression is on
_BLOCK_POINTS = 2048  # points per Jacobian block when the Gram is accumulated
BLOCK_ROUTE = True  # a failed certificate is decided on the block T X before the SVD
ROW_STORE_BYTES = 2**30  # scaled rows kept for the certificate up to this size, else recomputed
# a doubling skips its count when the gap to the upper bound exceeds this x the last gain
COUNT_WAIT_FACTOR = 4
# certify_budget_stop=False still certifies a count this close to the upper bound: the
# certificate could lift it there (the count was 0-9 below the certified rank on 803 capped
# networks of the paper preset, one of them lifted from 1 below to its bound)
CERTIFY_WITHIN = 16


def _equilibrated_gram(gram: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The Gram of the column-scaled matrix (columns that are zero to working precision dropped,
    see :func:`symlab.linalg.rank.significant`) and the kept-column mask."""
    diag = np.sqrt(np.maximum(np.diag(gram), 0))
    live = significant(diag, max(n_rows, gram.shape[0]))
    return gram[np.ix_(live, live)] / np.outer(diag[live], diag[live]), live


_COUNT = "gram (count)"  # a certified lower count, before its certificate


def _schur_count(gram: np.ndarray, n_rows: int):
    """(count, inverse column norms) of :func:`symlab.linalg.schur_rank.schur_count` on the
    column-scaled accumulated Gram (upper triangle in Fortran order), or None (fewer rows than
    columns, a non-finite norm, no shift below lambda_max: the caller takes the eigenvalue
    route). Schur eigenvalues too close to the shift to sign are left out of the count
    (``refuse_ambiguous=False``): still a proven lower bound, which the stop needs; only the
    final certificate needs them signed (then the SVD decides)."""
    n = gram.shape[0]
    if n_rows < n:
        return None
    lower = torch.from_numpy(gram).T  # C order, lower triangle valid
    norms = lower.diagonal().sqrt()
    if not bool(torch.isfinite(norms).all()):
        return None
    keep = significant(norms, max(n_rows, n))
    if not bool(keep.any()):
        return None
    inverse = torch.where(keep, 1.0 / norms, torch.zeros_like(norms))
    count = schur_count(scale_lower(lower, inverse), (n_rows, n), None, refuse_ambiguous=False)
    return None if count is None else (count, inverse)


def _count_result(count) -> RankResult:
    """The RankResult of a count: final when complete (rank = all columns), else ``_COUNT``."""
    values = torch.tensor([count.sigma_max], dtype=torch.float64)
    if count.complete:
        return RankResult(count.rank, count.tol, float("inf"), values, False, "gram", 0.0)
    return RankResult(count.rank, count.tol, float("nan"), values, False, _COUNT, None)


def _certified(schur, stored, points, scaled, n_rows: int, n: int) -> RankResult | None:
    """The count certified with products by the scaled rows (stored, or recomputed by blocks of
    points), as :func:`symlab.linalg.numerical_rank`'s Schur route; None when it does not
    certify or its gap is below the ambiguity threshold."""
    count, inverse = schur
    if stored is not None:
        rows = RowBlocks(lambda: iter(stored), (n_rows, n))
    else:
        rows = RowBlocks(
            lambda: (scaled(b) for b in torch.split(points, _BLOCK_POINTS)), (n_rows, n)
        )
    result = schur_certify(count, rows, inverse, None)
    method = "gram"
    if BLOCK_ROUTE and (result is None or not result[2] >= GAP_THRESHOLD):
        # a singular value the Gram cannot resolve: decided on the k-column block T X
        result = block_rank(count, rows, inverse, None, GAP_THRESHOLD)
        method = "gram + block"
    if result is None or not result[2] >= GAP_THRESHOLD:
        return None
    rank, tol, gap, sigma_max, certificate = result
    values = torch.tensor([sigma_max], dtype=torch.float64)
    return RankResult(rank, tol, gap, values, False, method, certificate)


def _svd_fallback(
    points: torch.Tensor,
    scaled: ScaledJacobian,
    live: np.ndarray | None,
    stored: list[torch.Tensor] | None = None,
) -> RankResult:
    """SVD of the row- and column-scaled Jacobian on ``points`` (the ``stored`` rows, else
    recomputed); ``live``: the significant columns (None: chosen by the column scaling)."""
    jac = torch.cat(stored) if stored else scaled(points)
    if live is not None:
        jac = jac[:, torch.from_numpy(live)]
    jac = equilibrate_columns(jac)
    fallback = rank_from_singular_values(torch.linalg.svdvals(jac), tuple(jac.shape))
    return dataclasses.replace(fallback, method="svd (fallback)")


def _batch_rank(
    model: nn.Module, points: torch.Tensor, scaled: ScaledJacobian, rank_method: str
) -> RankResult:
    """The batch functional dimension on the differentiated points (already representatives),
    with the loop's scaled Jacobian (the same dropped scaling columns at every doubling)."""
    fd = _batch_result(model, points, scaled, rank_method, compress_regions=False)
    return RankResult(
        fd.rank, fd.tol, fd.gap, fd.singular_values, fd.ambiguous, fd.method, fd.certificate
    )


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
    proof_regions: int = PROOF_REGIONS,
    plateau: bool = False,
    certify_budget_stop: bool = True,
) -> FDResult:
    """Functional dimension of ``model``: rank J E_Z|_theta (GLMW22) on a sample grown until it
    saturates, with its bound (:func:`symlab.symmetry.fd_bound`) and why it stopped.

    With ``inputs`` (N, n0): :func:`symlab.symmetry.batch_functional_dimension` on those points
    (kept for compatibility; call that function for a batch value). Without: an
    adaptive sample Z from ``sampler`` (default ``"multiscale"``, see
    :mod:`symlab.symmetry.samplers`; model-aware samplers such as ``"boundary"``, which seeks
    the regions where deep neurons switch on, are bound to ``model``; MLPs only) seeded by
    ``seed``: start with ceil(1.5 * bound / K) points and double until the rank reaches the
    proven upper bound ``upper`` (``saturated="bound"`` when upper is the bound,
    ``"exact"`` below it: either way lower == upper, the value is proven), or ``max_points`` is
    reached (``"max_points"``: a lower bound only). ``plateau=True`` also stops when the rank
    stays the same over ``PLATEAU_DOUBLINGS`` = 2 doublings (``"plateau"``: a guess, not a
    proof; the rule of earlier versions). ``upper`` comes from
    :func:`symlab.symmetry.kernel_proofs.proven_kernel` with ``proof_regions`` regions (ReLU
    MLPs with biases; 0 or other models: upper = bound). Only the new points'
    Jacobian rows are computed at each doubling; their Gram is added to the running Gram (BLAS
    dsyrk: G_2n = G_n + J_new^T J_new). With ``rank_method="auto"`` a doubling then costs one
    block of Jacobian rows plus the certified count of :func:`symlab.linalg.schur_rank.schur_count`
    on the (D' x D') column-scaled Gram (one Cholesky, n^3 / 3 flops, no eigensolver): a proven
    lower bound on the SVD rule's rank on the differentiated points, so a stop at the proven
    upper bound is itself proven. A doubling where no stop is possible skips the count
    (:func:`_count_can_wait`: far below the upper bound for the counts' rise; never the last
    doubling, never with ``plateau``): a capped network's result is unchanged, and one that
    would have reached its bound at a skipped doubling stops one doubling later, same rank.
    At the stop, a count below all D' columns is certified once
    (:func:`symlab.linalg.schur_rank.schur_certify`, products by the scaled rows, kept in memory
    up to ``ROW_STORE_BYTES`` and recomputed by blocks beyond); when that fails (a singular value
    in the Gram's blind spot) the deferred columns' block decides
    (:func:`symlab.linalg.block_rank.block_rank`, an m x k SVD, method ``"gram + block"``), and
    when it cannot (a value too close to tol for its bound) the SVD of the scaled rows. Schur
    eigenvalues too close to the shift to sign (singular values in the Gram's blind spot; deep
    n0 = 2 nets have a continuum of them) are left out of the count, which stays a proven lower
    bound but cannot be certified: at the stop the SVD of the scaled rows decides, unless the
    budget stop reports the count (``certify_budget_stop`` below). When no count can be formed
    (a non-finite column norm), the doubling uses the eigenvalues of the Gram (an untrusted
    final cut: the SVD of the scaled Jacobian on all differentiated points; a final rank below
    the bound: that of :func:`symlab.symmetry.batch_functional_dimension` on them), so no
    deficit comes from the Gram's blind spot. With ``rank_method="svd"``
    every doubling calls the batch function on the differentiated points. Either way
    ``rank`` is the batch functional dimension on ``points``.

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
    candidates. The batch function compresses explicit ``inputs`` the same way (the rank is the
    same; ``points`` stays ``inputs``). Smooth activations and generic modules are never
    compressed.

    Args:
        model: an MLP (closed-form Jacobian) or any ``nn.Module`` (generic Jacobian; then
            ``inputs`` is required and the bound is the parameter count D).
        rank_method: ``"auto"`` (Gram with SVD fallback), ``"gram"`` or ``"svd"``.
        reduce_scaling: drop one known scaling-null-space column per hidden neuron (positively
            homogeneous MLPs only); the rank is unchanged and the Gram is smaller.
        compress_regions: differentiate only region representatives (above); False gives the
            uncompressed route (every point differentiated, default max_points 8 x start).
        proof_regions: region budget of the proven upper bound (``PROOF_REGIONS`` = 32 by
            default: a complete enumeration, hence an exact value, for small n0 and width;
            beyond it the first layers by LPs and the rest by sign arguments); 0: no proof.
        plateau: also stop on a rank unchanged over two doublings (``"plateau"``).
        certify_budget_stop: at a stop below the proven upper bound (``"max_points"``,
            ``"plateau"``) the running count is a certified lower bound on the SVD rule's rank
            on the sample; True (default) certifies it into that rank (method ``"gram"``,
            ``"gram + block"`` or ``"svd (fallback)"``), False reports the count itself
            (method ``"gram (count)"``, gap NaN) unless it is within ``CERTIFY_WITHIN`` = 16
            of the upper bound (where the certificate could lift it to a proven value): still
            a proven lower bound on dim_fun, a little below the sample's rank at times (by 0-9,
            mean 0.3, on 803 capped networks of the paper preset; by 0-6 where the count left
            out ambiguous Schur eigenvalues, 7 of a 288-network slice; ``benchmarks/RESULTS.md``),
            without the certificate's passes over the rows (up to 70% of such a network's
            time). Stops at the upper bound are always certified. No effect with
            ``rank_method`` ``"gram"`` or ``"svd"`` or when no count could be formed.

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
    check_model(model)
    if inputs is not None:
        return batch_functional_dimension(
            model,
            inputs,
            rank_method=rank_method,
            reduce_scaling=reduce_scaling,
            compress_regions=compress_regions,
            proof_regions=proof_regions,
        )
    if not is_mlp(model):
        raise ValueError("inputs: expected a tensor of points for a model that is not an MLP")
    homogeneous = is_positively_homogeneous(model)
    compress = bool(compress_regions) and is_piecewise_linear(model)
    bound = fd_bound(model)
    proof = prove_upper(model, proof_regions)
    upper = bound if proof is None else proof.upper
    scaled = ScaledJacobian(model, bool(reduce_scaling) and homogeneous)
    n0 = linear_layers(model)[0].in_features
    per_region = REGION_POINTS_FACTOR * (n0 + 1)
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
    rank = trusted = live = schur = None
    counting = rank_method == "auto"  # the certified count of the Schur route, while it works
    stored: list[torch.Tensor] | None = []  # the scaled rows, while they fit ROW_STORE_BYTES
    counted: list[int | None] = []  # the certified counts (None: a doubling that skipped it)
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
            rank, trusted = _batch_rank(model, points, scaled, "svd"), True
        else:
            for block in torch.split(new, _BLOCK_POINTS):
                rows = scaled(block)
                n_rows += rows.shape[0]
                if gram is None:
                    gram = np.zeros((rows.shape[1], rows.shape[1]), order="F")
                gram = gram_upper(rows, out=gram)
                if stored is not None:
                    stored.append(rows)
            if n_rows * gram.shape[0] * 8 > ROW_STORE_BYTES:
                stored = None  # recomputed by blocks for the certificate
            last = seen >= max_points or bool(point_budget and points.shape[0] >= point_budget)
            if counting and not (last or plateau) and _count_can_wait(counted, upper):
                counted.append(None)  # no stop is possible here: the rank stays the last count
                target = min(2 * seen, max_points)
                continue
            schur = _schur_count(gram, n_rows) if counting else None
            # no count (a non-finite norm, lambda_max at the shift) stays so as the sample
            # grows: the eigenvalue route from then on
            counting = counting and (schur is not None or n_rows < gram.shape[0])
            if schur is not None:
                rank, trusted = _count_result(schur[0]), True
                counted.append(rank.rank)
            else:
                equilibrated, live = _equilibrated_gram(gram, n_rows)
                rank, trusted = rank_from_gram(equilibrated, (n_rows, int(live.sum())))
                trusted = trusted and not rank.ambiguous  # an ambiguous verdict needs the SVD
                if rank_method == "gram":
                    trusted = True
                elif not trusted and rank.rank == upper:
                    # never stop at a proven upper bound on an uncertain cut
                    rank, trusted = _svd_fallback(points, scaled, live), True
        _check_bound(rank.rank, bound)
        upper = max(upper, proven_upper(proof, bound, rank.rank))  # a withdrawn claim stays so
        history.append(rank.rank)
        if rank.rank == upper:
            reason = _proven(rank.rank, bound, upper)
        elif (
            plateau
            and len(history) > PLATEAU_DOUBLINGS
            and len(set(history[-PLATEAU_DOUBLINGS - 1 :])) == 1
        ):
            reason = "plateau"
        elif seen >= max_points or (point_budget and points.shape[0] >= point_budget):
            reason = "max_points"
        else:
            target = min(2 * seen, max_points)
            continue
        far_below = reason in ("max_points", "plateau") and upper - rank.rank > CERTIFY_WITHIN
        if rank.method == _COUNT and far_below and not certify_budget_stop:
            pass  # the certified count: a lower bound on the sample's rank, reported as such
        elif rank.method == _COUNT:
            # the count is a certified lower bound; the certificate proves it is the rank
            rank = _certified(schur, stored, points, scaled, n_rows, gram.shape[0])
            if rank is None:  # a singular value the Gram cannot resolve: the SVD decides
                rank = _svd_fallback(points, scaled, None, stored)
            reason = _proven(rank.rank, bound, upper) or _unproven(reason)
        elif not trusted:
            # the stopping rule used the Gram estimate; the reported rank is the SVD's
            rank = _svd_fallback(points, scaled, live)
            reason = _proven(rank.rank, bound, upper) or _unproven(reason)
        elif (
            rank_method == "auto"
            and rank.rank < bound
            and rank.method == "gram"
            and rank.certificate is None
        ):
            # a deficit is the finding: certify it (the accumulated Gram cannot see singular
            # values between tol and ~1e-8 sigma_max; numerical_rank's null-space certificate
            # does, falling back to the SVD), on the differentiated points
            rank = _batch_rank(model, points, scaled, "auto")
            reason = _proven(rank.rank, bound, upper) or _unproven(reason)
        regions = None if tally is None else tally.regions
        return _result(rank, bound, points, reason, n_points=seen, regions=regions, proof=proof)


def _count_can_wait(counted: list[int | None], upper: int) -> bool:
    """Skip this doubling's count when the last doubling counted, and the gap from the last
    count to the upper bound exceeds ``COUNT_WAIT_FACTOR`` x the gain between the last two
    counts: the counts of a capped network rise by shrinking steps (e.g. 2064, 2100, 2114,
    2128, 2136 against 2221), so it is not expected to stop there (a heuristic: it only
    decides where the count is taken). Never at the last doubling, so what is
    reported is always counted on the final sample; a network that would have reached its
    bound at a skipped doubling stops one doubling later, with the same rank."""
    real = [c for c in counted if c is not None]
    if not counted or counted[-1] is None or len(real) < 2:
        return False
    return upper - real[-1] > COUNT_WAIT_FACTOR * max(1, real[-1] - real[-2])


def _proven(rank: int, bound: int, upper: int) -> str | None:
    """ "bound" / "exact" when the rank meets the proven upper bound, else None."""
    if rank != upper:
        return None
    return "bound" if rank == bound else "exact"


def _unproven(reason: str) -> str:
    """A stop taken at the upper bound whose certified rank came out lower is a budget stop."""
    return "max_points" if reason in ("bound", "exact") else reason
