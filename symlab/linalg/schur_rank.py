"""Certified numerical rank from the Gram by one pivoted Cholesky and a Schur complement.

The fast path of :func:`symlab.linalg.numerical_rank` ("auto"). For an m x n matrix A (m >= n;
the rows of a wide matrix are used instead), T = A S^-1 with S = diag(column norms) (columns
that are zero to working precision, :func:`symlab.linalg.rank.significant`, get inverse norm 0,
i.e. become zero columns of T), and G = T^T T formed by one symmetric rank-k product (BLAS dsyrk:
the only O(m n^2) step). The SVD rule's rank of T, #{sigma_i(T) > tol} with
tol = sigma_max(T) max(m, n) eps, is certified from two one-sided arguments:

1. **At least r** (Sylvester's law of inertia, Haynsworth's additivity). A left-looking
   blocked Cholesky of G - mu I in natural column order (blocks of ``CHOLESKY_BLOCK`` columns:
   one GEMM with the factor so far, the block by LAPACK dpotrf when every pivot clears the
   threshold, else dpstrf with diagonal pivoting, a triangular solve for the panel) keeps the
   columns whose pivot exceeds ``DEFER_STOP`` and defers the others; the deferred columns' Schur
   complement is then factored with diagonal pivoting (largest first, dpstrf) until no remaining
   diagonal exceeds ``PIVOT_STOP``. Together they factor the kept columns K, G_KK - mu I = L L^T.
   Up to ``WHOLE_PIVOTING_MAX`` columns on the CPU, one dpstrf of the whole G - mu I (global
   diagonal pivoting down to ``PIVOT_STOP``) gives K and L instead, faster at these sizes
   (:func:`symlab.linalg.deferred_cholesky.pivoted_cholesky`). For the rest P, In(G - mu I) = In(G_KK - mu I) + In(S) with S the (small)
   Schur complement; its symmetric eigenvalues give the count exactly: r = |K| + #{eig(S) > 0}
   eigenvalues of G exceed mu (a count is refused, None, when an eigenvalue of S is within its
   rounding, ``INERTIA_MARGIN`` |P| (|K| + 2) u, of 0). Then sigma_r(T)^2 >= lambda_r(G) - e > mu - e
   with e = (m + n) u trace(G) (u = eps / 2; |G_ij - t_i^T t_j| <= m u ||t_i|| ||t_j||, plus the
   Cholesky's backward error). The shift is mu = SHIFT_MARGIN (tol^2 + e), so sigma_r(T) > tol.
   No tridiagonalization: n^3 / 3 flops, mostly in GEMM, instead of 4/3 n^3 in BLAS-2 (dsytrd),
   and no row or column swaps. With every first-stage pivot > ``DEFER_STOP``, G_KK stays about
   as well conditioned as under global pivoting (on the benchmark's 4000 x 3031 Jacobian the
   same lambda_min(G_KK), 8.1e-7), which the refinement below needs; a natural order without the
   deferral threshold gave 6e-8 and a certificate that failed.
2. **At most r** (Courant-Fischer): :func:`symlab.linalg.schur_certificate.schur_certify`
   proves sigma_{r+1}(T) <= tol with a few products by T (see that module).
   :func:`schur_count` is step 1 alone (a certified lower count, enough to stop a growing
   sample at a proven upper bound), :func:`schur_certify` step 2 on that count.

Both together give rank_tol(T) = r exactly, and gap = sqrt(mu - e) / max(||T X||,
sqrt(n) eps sigma_max), a certified lower bound on sigma_r / sigma_{r+1} (the Gram eigenvalues'
own estimate is limited by rounding to about sqrt(lambda_r / (eps lambda_max))). The route
returns None (the caller falls back to the tridiagonal route and then the SVD) when the count is
refused, the certificate exceeds 1, or the gap bound is below the caller's gap threshold: a
singular value in the Gram's blind spot (between tol and ~1e-8 sigma_max) can never pass.
sigma_max(T) comes from a Lanczos
Rayleigh-Ritz value of G (:func:`lanczos_lambda_max`; never above lambda_max, and a lower
estimate is all the rank needs: the reported tol = sqrt(theta) max(m, n) eps is then at most the
SVD rule's tol_svd, so the certificate's sigma_{r+1}(T) <= ||T X|| <= tol <= tol_svd holds for
the SVD rule's tol too; and the count's side needs no lambda_max at all, since
sigma_r(T)^2 > mu - e >= e = (m + n) u trace(G) >= trace(G) max(m, n)^2 eps^2 >= tol_svd^2
whenever max(m, n) <= 1 / (2 eps) (lambda_max <= trace(G)). So the estimate's accuracy moves only
the reported tol and sigma_max and the certificate's room, never the rank: it is stopped at a
relative change of ``LANCZOS_RTOL`` (1e-5) between steps, which on the benchmark's Grams leaves it
1e-9 to 1e-7 below lambda_max after 5-7 products with G (block power iterations took 6-10 for
about 1e-7). ``singular_values`` holds that one value. Cost: m n^2
(Gram) + about n^3 / 3 (Cholesky) + 4 m n q per refinement step with q = min(k, p) columns
(benchmarks/RESULTS.md: the FD of a sample at about twice the Gram GEMM alone).

All steps run on the input's device. CPU: the Gram by BLAS dsyrk of the installed SciPy (half
the flops of a matmul), the Lanczos products by its dsymv, dpstrf for the pivoted blocks, the
certificate's products with A by NumPy's BLAS (OpenBLAS in the wheels; MKL's skinny GEMMs were
1.3-2.6x slower for some widths of the vector block on an AMD EPYC); the Cholesky's GEMMs,
triangular solves, dpotrf and eigh by torch's LAPACK (MKL on x86 wheels). CUDA: matmuls and a
torch loop for the pivoted blocks, with no host round trip other than reading pivots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from scipy.linalg import eigvalsh_tridiagonal
from scipy.linalg.blas import dsymv, dsyrk

from symlab.linalg.deferred_cholesky import (
    DEFER_STOP,
    deferred_cholesky,
    pivoted_cholesky,
    symmetric_from_lower,
)
from symlab.linalg.schur_certificate import schur_certify

WHOLE_PIVOTING_MAX = 1024  # up to this many columns (CPU): one dpstrf of the whole Gram
PIVOT_STOP = 1e-6  # pivoting stops when no Schur diagonal (unit-norm columns) exceeds this
INERTIA_MARGIN = 4.0  # Schur eigenvalues within this x |P| (r + 2) u of 0: not counted (None)
SHIFT_MARGIN = 2.0  # mu = SHIFT_MARGIN (tol^2 + e)
LANCZOS_STEPS = 30  # products with G for lambda_max (at most)
LANCZOS_RTOL = 1e-5  # lambda_max: stop at this relative change between Lanczos steps
_SKETCH_SEED = 20261206
_EPS = float(torch.finfo(torch.float64).eps)


class RowBlocks:
    """A tall m x n matrix given by blocks of its rows, stored or recomputed at each pass
    (``blocks`` a callable returning an iterator over the row blocks, top to bottom)."""

    def __init__(self, blocks: Callable[[], Iterator[torch.Tensor]], shape: tuple[int, int]):
        self.blocks, self.shape = blocks, tuple(shape)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.blocks()


def gram_lower(tall: torch.Tensor) -> torch.Tensor:
    """G = T^T T (n x n, float64) with at least its lower triangle filled (C order).

    CPU: BLAS dsyrk (m n^2 flops, upper triangle in Fortran order = lower in C order, no copy
    of T: T^T of a C-ordered T is Fortran-ordered). Other devices: a full matmul.
    """
    if tall.device.type != "cpu":
        return tall.T @ tall
    a = tall.detach().contiguous().numpy()
    upper = dsyrk(1.0, a.T, trans=0, lower=0)  # (n, n) Fortran: upper of T^T T
    return torch.from_numpy(upper).T  # C-contiguous, lower triangle valid


def scale_lower(
    gram: torch.Tensor, inverse: torch.Tensor, out: torch.Tensor | None = None, rows: int = 32
) -> torch.Tensor:
    """D G D for D = diag(``inverse``) on the lower triangle of the C-ordered G (its rows up to
    and including the diagonal block of ``rows`` rows), in place when ``out`` is ``gram``, else
    into ``out`` (a new tensor when None; entries above those blocks left unset). Each entry is
    (g_ij d_i) d_j, bit for bit the full products ``gram * d[:, None] * d[None, :]``, by blocks of
    rows that stay in cache: one pass over half the matrix instead of two over all of it."""
    n = gram.shape[0]
    out = torch.empty_like(gram) if out is None else out
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = out[start:stop, :stop]
        torch.mul(gram[start:stop, :stop], inverse[start:stop, None], out=block)
        block.mul_(inverse[None, :stop])
    return out


def lower_product(lower: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> G v for the symmetric G whose lower triangle ``lower`` holds (C order), reading
    only that triangle: on the CPU BLAS dsymv of the installed SciPy on the Fortran view (whose
    upper triangle is G's lower one; no copy, half the memory traffic of a full GEMV: 0.09 ms at
    n = 942 where torch GEMMs by row blocks of the triangle took 0.57 ms); elsewhere a matmul
    with the full symmetric matrix built once."""
    if lower.device.type != "cpu":
        full = symmetric_from_lower(lower)
        return lambda v: full @ v
    upper = lower.contiguous().numpy().T
    return lambda v: torch.from_numpy(dsymv(1.0, upper, v.contiguous().numpy()))


def lanczos_lambda_max(gram: torch.Tensor) -> float:
    """A Rayleigh-Ritz estimate theta <= lambda_max of the (lower-stored) symmetric G: Lanczos
    with full reorthogonalization from a fixed start (the all-ones vector plus a fixed-seed
    Gaussian one, so that no eigenvector is missed by symmetry), at most ``LANCZOS_STEPS``
    products with G (:func:`lower_product`), stopped when theta changes by at most
    ``LANCZOS_RTOL`` relatively (see the module docstring: any theta <= lambda_max keeps the
    rank exact; the tolerance sets the reported tol's accuracy). theta is the largest
    eigenvalue of the Lanczos tridiagonal (LAPACK, SciPy), the projection of G on an
    orthonormal Krylov basis, hence never above lambda_max (up to rounding, about n eps
    lambda_max: far below any singular value the gap threshold admits near tol)."""
    n = gram.shape[0]
    product = lower_product(gram)
    gen = torch.Generator(device="cpu").manual_seed(_SKETCH_SEED)
    start = (1.0 + torch.randn(n, generator=gen, dtype=torch.float64)).to(gram.device)
    steps = min(n, LANCZOS_STEPS)
    basis = torch.zeros(steps + 1, n, dtype=torch.float64, device=gram.device)
    basis[0] = start / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    estimate = 0.0
    for step in range(steps):
        q = basis[step]
        w = product(q)
        alphas.append(float(q @ w))
        known = basis[: step + 1]
        for _ in range(2):  # classical Gram-Schmidt, twice
            w = w - (known @ w) @ known
        beta = float(w.norm())
        new = float(eigvalsh_tridiagonal(alphas, betas, lapack_driver="stev")[-1])
        converged = estimate > 0 and abs(new - estimate) <= LANCZOS_RTOL * new
        estimate = new
        if converged or not beta > _EPS * max(abs(new), 1.0) * n:
            break  # converged, or an invariant subspace (theta exact on it)
        betas.append(beta)
        basis[step + 1] = w / beta
    return estimate


@dataclass
class SchurCount:
    """The count of the Schur route before its certificate.

    ``rank``: r, with sigma_r(T) > sqrt(shift - rounding) >= tol certified (Sylvester,
    Haynsworth): the SVD rule's rank is at least r. ``complete``: nothing is left to certify
    (r = n: no non-positive Schur eigenvalue), so r is the SVD rule's rank. Otherwise
    :func:`schur_certify` proves sigma_{r+1}(T) <= tol with products by T. ``ambiguous``: Schur
    eigenvalues within their rounding of 0, left out of r (only with
    ``refuse_ambiguous=False``): r is still a certified lower count, but no certificate can
    make it the rank (:func:`schur_certify` and the block route return None)."""

    rank: int
    complete: bool
    tol: float
    sigma_max: float
    lower_sigma_r: float
    n: int
    factor: torch.Tensor = field(repr=False)
    kept: list[int] = field(repr=False)
    pending: list[int] = field(repr=False)
    null_rest: torch.Tensor | None = field(repr=False)
    ambiguous: int = 0

    def result(self) -> tuple[int, float, float, float, float]:
        """(rank, tol, gap, sigma_max, certificate) of a complete count."""
        return self.rank, self.tol, float("inf"), self.sigma_max, 0.0


def schur_count(
    gram: torch.Tensor,
    shape: tuple[int, int],
    tol: float | None,
    refuse_ambiguous: bool = True,
) -> SchurCount | None:
    """The count of the module docstring's step 1 on G = T^T T (lower triangle valid) of an
    m x n_all matrix T (``shape``, m >= n_all; columns zero to working precision have zero
    rows in G), or None when lambda_max is not positive or the count is refused.

    A Schur eigenvalue within its rounding of 0 refuses the count (``refuse_ambiguous``), or,
    with ``refuse_ambiguous=False``, is left out of it: r = |K| + #{eig(S) > margin} is then
    still a certified lower count (an eigenvalue above the margin is positive whatever the
    rounding, so r <= #{lambda(G) > mu}), marked ``ambiguous``, which nothing can certify into
    the rank. That is what a growing sample needs: a proven lower bound at every doubling."""
    m, n_all = shape
    n = gram.shape[0]
    lam_max = lanczos_lambda_max(gram)
    if not lam_max > 0:
        return None
    sigma_max = math.sqrt(lam_max)
    tol = sigma_max * max(m, n_all) * _EPS if tol is None else tol
    u = _EPS / 2
    # ||G - T^T T|| <= m u sum_i ||t_i||^2 and the Cholesky's backward error <= n u trace(G)
    rounding = (m + n) * u * float(gram.diagonal().sum())
    shift = SHIFT_MARGIN * (tol * tol + rounding)
    if shift >= lam_max or tol <= 0:
        return None
    if n <= WHOLE_PIVOTING_MAX and gram.device.type == "cpu":
        factor, kept, pending, schur = pivoted_cholesky(gram, shift, PIVOT_STOP)
    else:
        factor, kept, pending, schur = deferred_cholesky(gram, shift, PIVOT_STOP, DEFER_STOP)
    lower_sigma_r = math.sqrt(shift - rounding)
    count = SchurCount(len(kept), True, tol, sigma_max, lower_sigma_r, n, factor, kept, [], None)
    if not pending:
        return count
    # Haynsworth: In(G - mu I) = In(G_KK - mu I) + In(S), S the Schur complement of the rest
    values, vectors = torch.linalg.eigh(schur)
    # rounding of the computed Schur complement: |P| (r + 2) u per entry's inner products
    margin = INERTIA_MARGIN * len(pending) * (len(kept) + 2) * u
    near = (values > -margin) & (values <= margin)
    if bool(near.any()):
        if refuse_ambiguous:
            return None  # an eigenvalue of G too close to the shift to count
        count.ambiguous = int(near.sum())
    positive = values > margin
    count.rank += int(positive.sum())
    if bool(positive.all()):
        return count
    count.complete, count.pending, count.null_rest = False, pending, vectors[:, ~positive]
    return count


def schur_certified_rank(
    matrix,
    gram: torch.Tensor,
    inverse_norms: torch.Tensor,
    live: torch.Tensor | None,
    tol: float | None,
):
    """(rank, tol, gap, sigma_max, certificate) certified as in the module docstring, or None.

    ``matrix``: the m x n0 float64 matrix A (m >= n0), unscaled, a tensor or
    :class:`RowBlocks`; ``live``: indices of its significant columns (None: all);
    ``inverse_norms``: 1 / their norms, so T = A[:, live] diag(inverse_norms) is never formed
    (products with T scale the small block instead); ``gram``: T^T T, lower triangle valid
    (:func:`gram_lower` of A, scaled).
    """
    count = schur_count(gram, tuple(matrix.shape), tol)
    return None if count is None else schur_certify(count, matrix, inverse_norms, live)
