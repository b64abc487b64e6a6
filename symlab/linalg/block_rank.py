"""The SVD rule's rank from the small deferred block when the Schur route's certificate fails.

:func:`symlab.linalg.schur_rank.schur_count` factors G - mu I = L L^T on the kept columns K of
the column-scaled m x n matrix T and defers the k columns P; its certificate
(:func:`symlab.linalg.schur_rank.schur_certify`) fails when T has a singular value between tol
(the SVD rule's, sigma_max max(m, n) eps) and the Gram's resolution (about sqrt(mu), ~1e-4
sigma_max on the hidden-symmetries study's Jacobians): the count cannot see it. Such values
live in the deferred block, and :func:`block_rank` decides the SVD rule's rank
#{sigma_i(T) > tol} from the singular values s_1 >= ... >= s_k of R = T X = T_P - T_K Y,
X = [-Y; I] (rows K; P), an m x k SVD, instead of the SVD of all of T:

1. **At most |K| + s** (Courant-Fischer). For any Y, X^T X = I + Y^T Y >= I, so
   sigma_{|K|+j}(T) <= sigma_j(T X), j = 1..k. With s the number of s_j + e_R > tol (e_R: the
   rounding of the computed R by the Schur route's model sqrt(n) eps sigma_max ||X||, the floor
   of its certificate, plus the QR's and the k x k SVD's backward error), sigma_{|K|+s+1}(T) <= tol.
2. **At least |K| + s** (column deletion, block triangular transform). With U_s the top s right
   singular vectors of R and E = T_P U_s = T_K F + E_perp (F = T_K^+ E; E_perp =
   (I - P_K) R U_s, since the projection removes T_K Y whatever Y), deleting columns gives
   sigma_{|K|+s}(T) >= sigma_min([T_K, E]) >= min(sigma_min(T_K), sigma_min(E_perp)) /
   ||[[I, -F], [0, I]]||, the norm (f + sqrt(f^2 + 4)) / 2 for f >= ||F||. Here
   sigma_min(T_K)^2 >= mu - e + 1 / ||L^-1||_F^2 (the count's factor; one triangular inverse,
   |K|^3 / 3 flops), ||P_K R|| <= ||T_K^T R|| / sigma_min(T_K) with T_K^T R from one product
   T^T R (its rounding gamma_m ||T||_F ||R||_F added), sigma_min(E_perp) >=
   sqrt(s_s^2 - ||P_K R||^2) - e_R and f <= ||Y U_s|| + (||P_K R|| + e_R) / sigma_min(T_K). The
   rank |K| + s is accepted when the lower bound exceeds sqrt(2) tol (the Schur route's margin
   for the under-estimated sigma_max behind tol).

The loss factor ||[[I, -F], [0, I]]|| of step 2 is real, not an artefact of the proof:
T = [[e, 1], [0, d]] has sigma_2 ~ e d while its projected block is d, so the rank of the
projected block alone is not the SVD rule's rank when a value lies within that factor of tol;
:func:`block_rank` then returns None and the caller takes the SVD. The reported gap (lower
bound on sigma_{|K|+s}) / (upper bound on sigma_{|K|+s+1}) is a certified lower bound on the SVD
rule's gap. Cost: one pass over the rows for R and T^T R per refinement step of Y (the bounds are
checked after each pass, at most ``REFINE_STEPS`` + 1; two or three on the study's networks) (4 m n k flops each), |K|^3 / 3 for L^-1 and an m x k SVD, against about 4 m n^2
for the SVD of T. float64 only, as the Schur route.
"""

from __future__ import annotations

import math

import torch

from symlab.linalg.schur_certificate import REFINE_STEPS, NullRefinement
from symlab.linalg.schur_rank import RowBlocks, SchurCount

_EPS = float(torch.finfo(torch.float64).eps)
BLOCK_MAX_FRACTION = 0.5  # the block route only when k <= this x n (else the SVD is cheaper)
LOWER_MARGIN = math.sqrt(2.0)  # accepted extra values exceed this x tol (sigma_max estimate)


def _gamma(count: int) -> float:
    """gamma_count = count u / (1 - count u), the bound of a length-count inner product."""
    u = _EPS / 2
    return count * u / (1 - count * u)


def _decide(count: SchurCount, y, residual, back, sigma_c: float, m: int):
    """The decision of the module docstring for one Y, R = T X and T^T R: (rank, tol, gap,
    sigma_max, certificate) or None."""
    r0, n, k = len(count.kept), count.n, residual.shape[1]
    tol, sigma_max = count.tol, count.sigma_max
    keep = torch.tensor(count.kept, device=residual.device)
    if not bool(torch.isfinite(residual).all() and torch.isfinite(back).all()):
        return None
    # singular values and right vectors of R from its Householder triangle (no m x k U)
    values, vh = torch.linalg.svd(torch.linalg.qr(residual, mode="r").R)[1:]
    # rounding of the computed R: the Schur route's model sqrt(n) eps sigma_max ||X|| (its
    # certificate's floor; the worst case gamma_n ||T||_F ||X||_F would exceed tol itself),
    # ||X|| <= sqrt(1 + ||Y||^2), plus the QR's and the k x k SVD's backward error
    y_norm = float(torch.linalg.matrix_norm(y, ord=2))
    err_r = math.sqrt(n) * _EPS * sigma_max * math.sqrt(1 + y_norm * y_norm)
    err_r += 4 * k * _EPS * float(values[0])
    upper = values + err_r
    extra = int((upper > tol).sum())
    lower_sigma = sigma_c
    if extra:
        # ||P_K R|| <= ||T_K^T R|| / sigma_min(T_K), T_K^T R from the computed T^T R (rounding
        # <= gamma_m ||T||_F ||R||_F, ||T||_F <= sqrt(n))
        c_t_r = float(torch.linalg.matrix_norm(back[keep], ord=2))
        c_t_r += _gamma(m) * math.sqrt(n) * float(torch.linalg.matrix_norm(residual))
        projected = c_t_r / sigma_c  # >= ||P_K R||
        top = float(values[extra - 1])
        perp = math.sqrt(max(0.0, top * top - projected * projected)) - err_r
        f = float(torch.linalg.matrix_norm(y @ vh[:extra].T, ord=2))
        f += (projected + err_r) / sigma_c  # >= ||F||
        amplification = (f + math.sqrt(f * f + 4)) / 2
        lower_sigma = min(sigma_c, perp) / amplification
        if not lower_sigma > LOWER_MARGIN * tol:
            return None
    if extra == k:
        return r0 + k, tol, float("inf"), sigma_max, 0.0
    above = float(upper[extra])
    gap = lower_sigma / max(above, math.sqrt(n) * _EPS * sigma_max)
    return r0 + extra, tol, gap, sigma_max, above / tol


def block_rank(
    count: SchurCount,
    matrix: torch.Tensor | RowBlocks,
    inverse_norms: torch.Tensor,
    live,
    gap_threshold: float = 1.0,
) -> tuple[int, float, float, float, float] | None:
    """(rank, tol, gap, sigma_max, certificate) of the SVD rule on T = A[:, live]
    diag(inverse_norms) (A m x n_all, a tensor or :class:`RowBlocks`) from the block
    R = T_P - T_K Y of the count's deferred columns P (module docstring), or None when the
    block cannot decide (then the SVD of T does). Y starts from the count's factor and takes
    up to ``REFINE_STEPS`` steps of iterative refinement (any Y is valid; a refined one gives
    tighter bounds), the bounds checked after each; a decision with a gap bound below
    ``gap_threshold`` refines further (and is returned after the last step). ``certificate``: (upper bound on sigma_{rank+1}(T)) / tol, <= 1 (0 when
    rank = n).
    """
    if count.complete:
        return count.result()
    if count.ambiguous:
        return None  # a lower count only (schur_count with refuse_ambiguous=False)
    dev = count.factor.device
    r0, n, k = len(count.kept), count.n, len(count.pending)
    if k > BLOCK_MAX_FRACTION * n:
        return None
    keep = torch.tensor(count.kept, device=dev)
    rest = torch.tensor(count.pending, device=dev)
    l11 = count.factor[keep, :r0]
    w = count.factor[rest, :r0]
    refine = NullRefinement(matrix, inverse_norms, live, l11, keep, rest, w, n, count.tol)
    # sigma_min(T_K)^2 >= mu - e + 1 / ||L^-1||_F^2 (G_KK - mu I = L L^T, the count's factor)
    inverse_factor = torch.linalg.solve_triangular(
        l11, torch.eye(r0, dtype=torch.float64, device=dev), upper=False
    )
    inverse_fro = float(torch.linalg.matrix_norm(inverse_factor))
    sigma_c = math.sqrt(count.lower_sigma_r**2 + 1.0 / inverse_fro**2)
    y = torch.linalg.solve_triangular(l11.T, w.T, upper=True)  # (G_KK - mu I)^-1 G_KP
    x = torch.zeros(n, k, dtype=torch.float64, device=dev)
    x[rest] = torch.eye(k, dtype=torch.float64, device=dev)
    for step in range(REFINE_STEPS + 1):
        x[keep] = -y
        residual, back = refine.products(x, adjoint=True)  # R = T X and T^T R, one pass
        result = _decide(count, y, residual, back, sigma_c, int(matrix.shape[0]))
        if result is not None and (result[2] >= gap_threshold or step == REFINE_STEPS):
            return result
        half = torch.linalg.solve_triangular(l11, back[keep], upper=False)
        y = y + torch.linalg.solve_triangular(l11.T, half, upper=True)
    return None
