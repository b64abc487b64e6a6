"""Numerical rank in float64 with its tolerance, singular-value gap and an ambiguity flag.

Rule (as ``numpy.linalg.matrix_rank`` / ``torch.linalg.matrix_rank``): rank = #{sigma_i > tol}
with tol = sigma_max * max(m, n) * eps by default. The gap sigma_r / sigma_{r+1} at the cut says how
clear the cut is; a gap below ``gap_threshold`` (default 1e3) marks the rank ``ambiguous``.

Routes:

- ``"svd"``: ``torch.linalg.svdvals`` of the float64 matrix as given. O(m n min(m, n)).
- ``"gram"``: the fast route. Columns are scaled to unit norm (a diagonal scaling, so the exact
  rank is unchanged; zero columns are dropped), giving As; with T = As (m >= n) or As^T (m < n),
  the n x n Gram G = T^T T (n = min(m, n) from here on) is formed with a symmetric rank-k
  product (BLAS ``dsyrk``, half the flops of a matmul), reduced to tridiagonal form
  G = Q S Q^T (LAPACK ``dsytrd``) and sigma_i = sqrt(max(lambda_i, 0)) from the eigenvalues of
  S (``dsterf``). About m n^2 + 4/3 n^3 flops against roughly 4 m n^2 for the SVD. (SciPy's
  LAPACK: the certificate below needs Q, which torch's eigvalsh does not expose; on the
  benchmark machine SciPy's dsytrd is faster than torch's eigvalsh up to n ~ 2000 and about
  1.4x slower at n ~ 3000.)
  The Gram squares the condition number: eigenvalues are only known up to rounding noise
  lambda_noise (:func:`gram_noise_floor`, about eps * lambda_max), so the cut on lambda is
  max(tol^2, lambda_noise) (tol^2 alone would count rounding noise as rank), and the result is
  trusted only when the eigenvalues clear that cut by ``GRAM_TRUST_GAP`` (1e4 in lambda, i.e.
  1e2 in sigma) on both sides. ``"gram"`` stops here; it is blind to singular values between
  tol and sqrt(lambda_noise) (about 1e-8 sigma_max): squared, they sink below the rounding
  noise and are counted as zero, so it can under-estimate the SVD rule's rank.

``"auto"`` first tries the certified Schur route (:mod:`symlab.linalg.schur_rank`: one
pivoted Cholesky of the column-scaled Gram, Haynsworth inertia of the small Schur complement, and
the same Courant-Fischer certificate with a basis refined by the exact operator; no
tridiagonalization, about 2 n^3 / 3 flops mostly in GEMM; columns norms from the Gram's diagonal,
finiteness from those norms). When it does not certify, ``"auto"`` is gram plus a null-space
certificate, and falls back to the SVD of As
(``method="svd (fallback)"``) when the gram cut is not trusted, its gap estimate is below
``gap_threshold`` (so an "ambiguous" verdict always comes from an SVD) or the certificate fails.
The certificate (implemented in :mod:`symlab.linalg.null_certificate`, with its constants)
closes the blind spot. Let r be the Gram rank and k = n - r. Courant–Fischer:
for any n x k matrix X of rank k, sigma_{r+1}(T) <= sigma_max(T X) / sigma_min(X), so

    certificate = sigma_max(T X) / (sigma_min(X) tol) <= 1

proves that T has no singular value in (tol, sigma_r]: the Gram rank is the SVD rule's rank
(sigma_r > tol is the trust test's other side). Any X is a valid witness; a good one (close to
the null space of T) makes the bound tight. The computed eigenvectors of G alone are not good
enough: G's rounding error E (about lambda_noise) tilts them by about E / lambda_j towards each
small counted direction j, adding about lambda_noise / sigma_j to ||T X||, often above tol on
network Jacobians. So X = Q W, where W starts from the k lowest eigenvectors Z0 of S (LAPACK
``dstemr``) and takes ``CERTIFICATE_STEPS`` (1) step of inverse iteration with the exact operator
T^T T: W <- W - P (S + mu I)^{-1} P Q^T T^T T Q W, P = I - Z0 Z0^T, mu = max(tol^2,
lambda_noise) (a tridiagonal solve, LAPACK ``dptsv``), which shrinks the tilt by about
mu / lambda_j <= 1 / GRAM_TRUST_GAP. When k <= ``CERTIFICATE_SKETCH`` (p = 12) the certificate
is computed on all k columns. For larger k it is first checked on a Gaussian sketch: for a fixed
matrix M and p independent standard Gaussian vectors omega_i, ||M|| <= alpha sqrt(2/pi)
max_i ||M omega_i|| except with probability alpha^-p (Halko, Martinsson, Tropp 2011, "Finding
structure with randomness", SIAM Review 53(2), Lemma 4.1: v_1^T omega is N(0, 1) and
P(|N(0, 1)| < t) <= t sqrt(2/pi)). With alpha = 10 it bounds sigma_max(T Q W) and the drift
||W - Z0|| (sigma_min(W) >= 1 - drift), so the sketched certificate is an upper bound except
with probability 2e-12 (the seed is fixed, so results are reproducible). The sketch
over-estimates by up to about 8 sqrt(k) when all k null singular values are rounding noise; if
it exceeds 1, the exact certificate decides when k <= n / 2, and the SVD is used directly when
k > n / 2 (there the exact check would cost about as much as the SVD). Cost: O(n k) for Z0 and,
with q = p or k columns, 1 + 2 * steps passes of T or T^T over an n x q or m x q block
(2 m n q flops each) and as many applications of Q (LAPACK ormqr, about 2 n^2 q flops each):
about 1-20 % of the Gram route on network Jacobians (benchmarks/RESULTS.md). Rounding in these
products perturbs the bound by about sqrt(n) eps ||T||, far below tol.

For ``"gram"``/``"auto"``, ``singular_values`` and ``tol`` refer to the column-scaled matrix
(``tol`` is the Gram cut sqrt(max(tol^2, lambda_noise))); for ``"gram"`` the values under the
noise floor are rounding noise, and ``gap`` uses max(lambda_{r+1}, lambda_noise) in the
denominator (a lower estimate of the true gap). ``certificate`` is the number above (0.0 when
the Gram rank is full, so nothing can be missed; None when not computed: ``"svd"``, ``"gram"``,
an all-zero matrix, or an untrusted cut).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigvalsh_tridiagonal
from scipy.linalg.blas import dsyrk

from symlab.linalg.null_certificate import null_space_certificate, tridiagonal_gram
from symlab.linalg.schur_rank import gram_lower, scale_lower, schur_certified_rank

RANK_METHODS = ("auto", "svd", "gram")
GAP_THRESHOLD = 1e3
GRAM_TRUST_GAP = 1e4
SCHUR_ROUTE = True  # "auto" tries symlab.linalg.schur_rank first (False: tridiagonal route only)
_EPS = float(torch.finfo(torch.float64).eps)


@dataclass(frozen=True)
class RankResult:
    """rank = #{sigma > tol}; gap = sigma_r / sigma_{r+1} (inf when r = min(m, n)).

    ``certificate`` (``"auto"`` only): an upper bound on sigma_{r+1} / tol_svd of the
    column-scaled matrix, tol_svd the SVD rule's tolerance; <= 1 proves the Gram rank equals
    the SVD rule's rank (see the module docstring). None when not computed.
    From the Schur route (:mod:`symlab.linalg.schur_rank`), ``tol`` is the SVD rule's tol,
    ``gap`` a certified lower bound on sigma_r / sigma_{r+1} and ``singular_values`` holds
    sigma_max only (no spectrum is computed).
    """

    rank: int
    tol: float
    gap: float
    singular_values: torch.Tensor
    ambiguous: bool
    method: str
    certificate: float | None = None


def _as_matrix(matrix: object) -> torch.Tensor:
    if not isinstance(matrix, torch.Tensor):
        try:
            matrix = torch.as_tensor(np.asarray(matrix, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"matrix: expected a 2-D real array, got {type(matrix).__name__}"
            ) from error
    if matrix.dim() != 2 or matrix.numel() == 0:
        raise ValueError(
            f"matrix: expected a non-empty 2-D tensor, got shape {tuple(matrix.shape)}"
        )
    if matrix.is_complex():
        raise ValueError("matrix: expected a real tensor, got a complex one")
    return matrix.detach().to(dtype=torch.float64)


def _check_finite(matrix: torch.Tensor) -> None:
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError("matrix: expected finite entries, got NaN or inf")


def _schur_route(a: torch.Tensor, tol: float | None, gap_threshold: float) -> RankResult | None:
    """The certified Schur route (:mod:`symlab.linalg.schur_rank`) on A, or None when it does
    not certify (then the caller takes the tridiagonal route). Column norms come from the Gram's
    diagonal and finiteness from the norms (one pass over A: the Gram itself)."""
    m, n = a.shape
    if m < n:
        norms = torch.linalg.vector_norm(a, dim=0)
        if not bool(torch.isfinite(norms).all()):
            return None
        keep = significant(norms, max(m, n))
        tall = (a[:, keep] / norms[keep]).T.contiguous()
        if tall.shape[1] == 0:
            return None
        gram = gram_lower(tall)
        result = schur_certified_rank(
            tall, gram, torch.ones(tall.shape[1], dtype=torch.float64, device=a.device), None, tol
        )
    else:
        a = a.contiguous()
        gram = gram_lower(a)
        norms = gram.diagonal().sqrt()
        if not bool(torch.isfinite(norms).all()):
            return None  # NaN / inf, or an overflowing norm: decided by the caller's checks
        keep = significant(norms, max(m, n))
        if not bool(keep.any()):
            return None
        # columns that are zero to working precision: inverse norm 0, so that they are zero
        # columns of T (no n^2 copy of the Gram to remove them); the rank is unchanged
        inverse = torch.where(keep, 1.0 / norms, torch.zeros_like(norms))
        scale_lower(gram, inverse, out=gram)  # the lower triangle: all the route reads
        result = schur_certified_rank(a, gram, inverse, None, tol)
    if result is None:
        return None
    rank, tol_used, gap, sigma_max, certificate = result
    if gap < gap_threshold:
        return None  # an ambiguous verdict comes from the SVD
    values = torch.tensor([sigma_max], dtype=torch.float64)
    return RankResult(rank, tol_used, gap, values, False, "gram", certificate)


def _check_tol(tol: float | None) -> float | None:
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol: expected a finite non-negative number or None, got {tol!r}")
    return None if tol is None else float(tol)


def _gap(values: torch.Tensor, rank: int, tol: float) -> float:
    """sigma_r / sigma_{r+1}; inf when r = len(values); tol / sigma_1 when r = 0 < sigma_1."""
    if rank == values.numel():
        return float("inf")
    if rank == 0:
        top = float(values[0])
        return float("inf") if top == 0 else tol / top
    below = float(values[rank])
    return float("inf") if below == 0 else float(values[rank - 1]) / below


def rank_from_singular_values(
    singular_values: torch.Tensor,
    shape: tuple[int, int],
    *,
    tol: float | None = None,
    gap_threshold: float = GAP_THRESHOLD,
    method: str = "svd",
) -> RankResult:
    """RankResult from descending singular values of an m x n matrix (default tol as above)."""
    s = singular_values.to(torch.float64)
    if tol is None:
        tol = float(s[0]) * max(shape) * _EPS if s.numel() else 0.0
    rank = int((s > tol).sum())
    gap = _gap(s, rank, tol) if s.numel() else float("inf")
    return RankResult(rank, float(tol), gap, s, bool(gap < gap_threshold), method)


def significant(norms: torch.Tensor | np.ndarray, size: int):
    """Mask of the norms above max(norms) * size * eps: the rest are zero to working precision.

    Scaling a column (or row) to unit norm is rank-preserving in exact arithmetic, but scaling a
    column that is zero up to rounding (norm 1e-16 where others are 1) would promote that noise
    to a full singular value. Any column below max-norm * max(m, n) * eps is below the default SVD
    tolerance of the unscaled matrix (sigma_max >= every column norm), so it is dropped as zero.
    """
    return norms > norms.max() * size * _EPS if len(norms) else norms > 0


def equilibrate_columns(matrix: torch.Tensor) -> torch.Tensor:
    """The matrix with its significant columns scaled to unit 2-norm and the others dropped
    (see :func:`significant`)."""
    norms = torch.linalg.vector_norm(matrix, dim=0)
    keep = significant(norms, max(matrix.shape))
    if bool(keep.all()):
        return matrix / norms
    return matrix[:, keep] / norms[keep]


def gram_upper(matrix: torch.Tensor, out: np.ndarray | None = None) -> np.ndarray:
    """Upper triangle of A^T A (m >= n) or A A^T (m < n) by BLAS dsyrk, float64, Fortran order.

    With ``out`` (a Fortran-ordered (n, n) float64 array, only for the A^T A side) the product is
    accumulated in place: out += A^T A. This is how a Gram is grown block of rows by block.
    """
    a = np.ascontiguousarray(matrix.detach().to(device="cpu", dtype=torch.float64).numpy())
    m, n = a.shape
    if out is not None:
        return dsyrk(1.0, a.T, beta=1.0, c=out, trans=0, lower=0, overwrite_c=1)
    # a.T is Fortran-contiguous, so dsyrk reads it without a copy.
    if m >= n:
        return dsyrk(1.0, a.T, trans=0, lower=0)
    return dsyrk(1.0, a.T, trans=1, lower=0)


def gram_noise_floor(eigenvalues: torch.Tensor, shape: tuple[int, int]) -> float:
    """Size of the rounding noise in computed Gram eigenvalues (ascending or not).

    The computed eigenvalues of the null part of A^T A scatter symmetrically around 0 (forming
    the Gram and eigvalsh are backward stable), so the most negative eigenvalue probes the noise:
    lambda_noise = max(10 |lambda_min|, 4 eps lambda_max) when lambda_min < 0. With no negative
    eigenvalue there is no probe and the worst-case bound lambda_max * max(m, n) * eps is used.
    """
    lam_max, lam_min = float(eigenvalues.max()), float(eigenvalues.min())
    if lam_min < 0:
        return max(10 * abs(lam_min), 4 * _EPS * lam_max)
    return lam_max * max(shape) * _EPS


def _rank_from_eigenvalues(
    lam: torch.Tensor, shape: tuple[int, int], tol: float | None, gap_threshold: float
) -> tuple[RankResult, bool, float]:
    """Gram rule on descending eigenvalues ``lam``: (result, trusted, cut on lambda)."""
    s = lam.clamp_min(0).sqrt()
    lam_max = float(lam[0])
    if lam_max <= 0:
        zero = RankResult(0, 0.0 if tol is None else tol, float("inf"), s, False, "gram")
        return zero, True, 0.0
    noise = gram_noise_floor(lam, shape)
    tol = float(s[0]) * max(shape) * _EPS if tol is None else tol
    floor = max(tol * tol, noise)
    rank = int((lam > floor).sum())
    if rank == lam.numel():
        gap = float("inf")
    elif rank == 0:
        gap = float(np.sqrt(floor / lam_max))
    else:
        gap = float(np.sqrt(float(lam[rank - 1]) / max(float(lam[rank]), noise)))
    above = rank == 0 or float(lam[rank - 1]) >= GRAM_TRUST_GAP * floor
    below = rank == lam.numel() or float(lam[rank]) <= max(noise, floor / GRAM_TRUST_GAP)
    trusted = above and below
    ambiguous = (gap < gap_threshold) or not trusted
    result = RankResult(rank, float(np.sqrt(floor)), gap, s, bool(ambiguous), "gram")
    return result, trusted, floor


def rank_from_gram(
    gram: np.ndarray | torch.Tensor,
    shape: tuple[int, int],
    *,
    tol: float | None = None,
    gap_threshold: float = GAP_THRESHOLD,
) -> tuple[RankResult, bool]:
    """Rank of A from the upper triangle of its (column-scaled) Gram; returns (result, trusted).

    ``shape`` is A's (m, n), used for the default tol = sigma_max * max(m, n) * eps and the noise
    floor (:func:`gram_noise_floor`). ``trusted`` is False when the eigenvalues
    do not clear the cut max(tol^2, lambda_noise) by a factor ``GRAM_TRUST_GAP`` on both sides.
    Only the Gram is seen, so the blind spot of the module docstring is not checked here
    (:func:`numerical_rank` with ``method="auto"`` checks it).
    """
    g = torch.as_tensor(gram, dtype=torch.float64)
    lam = torch.linalg.eigvalsh(g, UPLO="U").flip(0)
    result, trusted, _ = _rank_from_eigenvalues(lam, shape, tol, gap_threshold)
    return result, trusted


def numerical_rank(
    matrix: torch.Tensor,
    *,
    tol: float | None = None,
    method: str = "auto",
    gap_threshold: float = GAP_THRESHOLD,
) -> RankResult:
    """Numerical rank of a matrix in float64, with tolerance, gap and an ambiguity flag.

    rank = #{sigma_i > tol}, tol = sigma_max * max(m, n) * eps by default; gap =
    sigma_r / sigma_{r+1} (inf when r = min(m, n)); ``ambiguous`` when gap < ``gap_threshold``
    (1e3 by default; the network Jacobians of benchmarks/RESULTS.md have gaps 2.4e9 to 1.7e11).

    Args:
        matrix: any real 2-D tensor or array; converted to float64.
        tol: absolute cut on singular values (of the column-scaled matrix for gram/auto).
        method: ``"svd"`` (plain float64 SVD), ``"gram"`` (column-scaled Gram + tridiagonal
            eigenvalues, no fallback: an untrusted result is returned as ambiguous, and
            singular values in the blind spot are missed), or ``"auto"`` (gram, certified
            against the blind spot, with the SVD of the column-scaled matrix as fallback;
            ``certificate`` says by how much the check passed). See the module docstring.
        gap_threshold: gaps below this mark the rank ambiguous.

    Cost: svd O(m n min(m, n)); gram about m n^2 + 4/3 n^3 flops, n = min(m, n); auto adds the
    certificate (a few passes over the matrix with a block of min(n - rank, 12) columns).
    """
    a = _as_matrix(matrix)
    tol = _check_tol(tol)
    if method not in RANK_METHODS:
        raise ValueError(f"method: expected one of {', '.join(RANK_METHODS)}, got {method!r}")
    if not (gap_threshold > 0):
        raise ValueError(f"gap_threshold: expected a positive number, got {gap_threshold!r}")
    if method == "auto" and SCHUR_ROUTE:
        fast = _schur_route(a, tol, gap_threshold)
        if fast is not None:
            return fast
    a = a.cpu()
    _check_finite(a)
    if method == "svd":
        return rank_from_singular_values(
            torch.linalg.svdvals(a), tuple(a.shape), tol=tol, gap_threshold=gap_threshold
        )
    scaled = equilibrate_columns(a)
    if scaled.shape[1] == 0:
        zeros = torch.zeros(1, dtype=torch.float64)
        return RankResult(0, 0.0 if tol is None else tol, float("inf"), zeros, False, "gram")
    shape = tuple(scaled.shape)
    tall = scaled.numpy() if shape[0] >= shape[1] else scaled.numpy().T
    tri = tridiagonal_gram(tall)
    lam = torch.from_numpy(eigvalsh_tridiagonal(tri.d, tri.e, lapack_driver="sterf")[::-1].copy())
    result, trusted, floor = _rank_from_eigenvalues(lam, shape, tol, gap_threshold)
    if method == "gram":
        return result
    certificate = None
    if trusted and not result.ambiguous:
        nullity = tall.shape[1] - result.rank
        svd_tol = float(result.singular_values[0]) * max(shape) * _EPS if tol is None else tol
        certificate = (
            0.0
            if nullity == 0
            else float(null_space_certificate(tall, tri, nullity, floor, svd_tol))
        )
        if certificate <= 1.0:
            return dataclasses.replace(result, certificate=certificate)
    fallback = rank_from_singular_values(
        torch.linalg.svdvals(scaled), shape, tol=tol, gap_threshold=gap_threshold
    )
    return dataclasses.replace(fallback, method="svd (fallback)", certificate=certificate)
