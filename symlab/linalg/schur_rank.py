"""Certified numerical rank from the Gram by one pivoted Cholesky and a Schur complement.

The fast path of :func:`symlab.linalg.numerical_rank` ("auto"). For an m x n matrix A (m >= n;
the rows of a wide matrix are used instead), T = A S^-1 with S = diag(column norms) (columns
that are zero to working precision, :func:`symlab.linalg.rank.significant`, get inverse norm 0,
i.e. become zero columns of T), and G = T^T T formed by one symmetric rank-k product (BLAS dsyrk:
the only O(m n^2) step). The SVD rule's rank of T, #{sigma_i(T) > tol} with
tol = sigma_max(T) max(m, n) eps, is certified from two one-sided arguments:

1. **At least r** (Sylvester's law of inertia, Haynsworth's additivity). A right-looking
   Cholesky of G - mu I with diagonal pivoting by blocks (the ``CHOLESKY_BLOCK`` columns of
   largest remaining Schur diagonal per block, LAPACK dpstrf inside the block, one GEMM update)
   factors the kept columns K, G_KK - mu I = L L^T, and stops when no remaining diagonal exceeds
   ``PIVOT_STOP``. For the rest P, In(G - mu I) = In(G_KK - mu I) + In(S) with S the (small)
   Schur complement; its symmetric eigenvalues give the count exactly: r = |K| + #{eig(S) > 0}
   eigenvalues of G exceed mu (a count is refused, None, when an eigenvalue of S is within its
   rounding, ``INERTIA_MARGIN`` |P| (|K| + 2) u, of 0). Then sigma_r(T)^2 >= lambda_r(G) - e > mu - e
   with e = (m + n) u trace(G) (u = eps / 2; |G_ij - t_i^T t_j| <= m u ||t_i|| ||t_j||, plus the
   Cholesky's backward error). The shift is mu = SHIFT_MARGIN (tol^2 + e), so sigma_r(T) > tol.
   No tridiagonalization: n^3 / 3 flops, mostly in GEMM, instead of 4/3 n^3 in BLAS-2 (dsytrd).
2. **At most r** (Courant-Fischer). With V the k eigenvectors of S for its non-positive
   eigenvalues, X = [-Y; V] (rows K; P) with Y = G_KK^-1 G_KP V has X^T X = I + Y^T Y >= I, so
   sigma_{r+1}(T) <= ||T X||. Y starts from the shifted factor, L^-T L^-1 G_KP V, and takes up to
   ``REFINE_STEPS`` steps of iterative refinement with the exact operator (corrected semi-normal
   equations, Bjorck): Y <- Y + (L L^T)^-1 T_K^T (T_P V - T_K Y); each step shrinks the error by
   about (mu + e) / lambda_min(G_KK), small because the pivoting keeps G_KK well conditioned.
   certificate = ||T X|| / tol <= 1 proves sigma_{r+1}(T) <= tol. When k > ``CERTIFICATE_SKETCH``
   (p = 12) the norm is first bounded on a Gaussian sketch X omega (k x p, fixed seed, a fixed
   number of steps so that Y does not depend on omega): ||M|| <= alpha sqrt(2/pi) max_i
   ||M omega_i|| except with probability alpha^-p (Halko, Martinsson, Tropp 2011, Lemma 4.1;
   alpha = 10); when that exceeds tol and k <= n / 2, all k columns decide.

Both together give rank_tol(T) = r exactly, and gap = sqrt(mu - e) / max(||T X||,
sqrt(n) eps sigma_max), a certified lower bound on sigma_r / sigma_{r+1} (the Gram eigenvalues'
own estimate is limited by rounding to about sqrt(lambda_r / (eps lambda_max))). The route
returns None (the caller falls back to the tridiagonal route and then the SVD) when the count is
refused, the certificate exceeds 1, or the gap bound is below the caller's gap threshold: a
singular value in the Gram's blind spot (between tol and ~1e-8 sigma_max) can never pass.
sigma_max(T) comes from block power iterations on G (its Rayleigh-Ritz value, accurate to about
1e-5; ``singular_values`` then holds that one value): an under-estimate of tol by a factor below
sqrt(2) cannot change the certified rank, since sigma_r(T)^2 > mu - e >= 2 tol^2. Cost: m n^2
(Gram) + about 2 n^3 / 3 (Cholesky with full-square GEMM updates) + 4 m n q per refinement step
with q = min(k, p) columns.

All steps are torch operations on the input's device (CPU: the Gram by BLAS dsyrk of the
installed SciPy, half the flops of a matmul, and dpstrf for the pivot blocks; CUDA: a matmul and
a torch loop for the pivot blocks), with no host round trip on CUDA other than reading pivots.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dpstrf

CHOLESKY_BLOCK = 256  # columns per block of the pivoted Cholesky
PIVOT_STOP = 1e-6  # pivoting stops when no Schur diagonal (unit-norm columns) exceeds this
INERTIA_MARGIN = 4.0  # Schur eigenvalues within this x |P| (r + 2) u of 0: not counted (None)
MAX_DEFERRED = 512  # more deferred columns than max(this, n / 4): give up (fallback route)
REFINE_STEPS = 6  # iterative-refinement steps of the null-space coefficients Y
REFINE_TARGET = 0.01  # without a sketch, refinement stops once ||T X|| <= this x tol
CERTIFICATE_SKETCH = 12  # sketch columns p; exact on all k columns when k <= p
SKETCH_ALPHA = 10.0
SHIFT_MARGIN = 2.0  # mu = SHIFT_MARGIN (tol^2 + e)
POWER_STEPS = 10  # block power iterations for lambda_max (at most)
_SKETCH_SEED = 20261206
_EPS = float(torch.finfo(torch.float64).eps)


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


def _symmetric(block: torch.Tensor) -> torch.Tensor:
    """A square block with only its lower triangle valid, made symmetric."""
    lower = torch.tril(block)
    return lower + torch.tril(block, -1).T


def _fill_upper(lower: torch.Tensor, tile: int = 256) -> torch.Tensor:
    """The symmetric matrix whose lower triangle ``lower`` holds, filled by tiles (a transposed
    copy tile by tile stays in cache; ``lower + lower.T`` reads a whole column per row)."""
    n = lower.shape[0]
    full = lower.clone()
    for i in range(0, n, tile):
        j = min(n, i + tile)
        full[:i, i:j].copy_(lower[i:j, :i].T)
        full[i:j, i:j] = _symmetric(lower[i:j, i:j])
    return full


def _power_lambda_max(gram: torch.Tensor) -> float:
    """Largest eigenvalue of the (lower-stored) symmetric G by block power iteration."""
    n = gram.shape[0]
    full = gram if gram.device.type != "cpu" else None
    upper_f = None if full is not None else gram.T.numpy()  # Fortran view: upper valid
    gen = torch.Generator(device="cpu").manual_seed(_SKETCH_SEED)
    q = min(n, 4)
    v = torch.randn(n, q, generator=gen, dtype=torch.float64)
    v[:, 0] = 1.0
    v = v.to(gram.device)
    estimate = 0.0
    from scipy.linalg.blas import dsymm

    for _ in range(POWER_STEPS):
        v, _ = torch.linalg.qr(v)
        if full is not None:
            w = full @ v
        else:
            w = torch.from_numpy(dsymm(1.0, upper_f, np.asfortranarray(v.numpy()), lower=0))
        ritz = torch.linalg.eigvalsh(v.T @ w)
        new = float(ritz[-1])
        if estimate > 0 and abs(new - estimate) <= 1e-5 * new:
            return new
        estimate, v = new, w
    return estimate


def _local_pivoted(
    block: torch.Tensor, stop: float, lapack: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky with diagonal pivoting of a small symmetric block, stopped when the largest
    remaining pivot is <= ``stop``: (selected local indices in pivot order, lower factor).
    LAPACK dpstrf on the CPU (``lapack`` None: by device), else a loop of torch operations."""
    if lapack if lapack is not None else block.device.type == "cpu":
        c, piv, rank, info = dpstrf(block.numpy(), tol=stop, lower=1)
        if info < 0:
            raise RuntimeError(f"LAPACK dpstrf failed with info={info}")
        chol = torch.from_numpy(np.tril(c[:rank, :rank]).copy())
        return torch.from_numpy(piv[:rank].astype(np.int64) - 1), chol
    k = block.shape[0]
    work = block.clone()
    order = torch.arange(k, device=block.device)
    for step in range(k):
        diag = work.diagonal()[step:]
        j = step + int(torch.argmax(diag))
        if not float(work[j, j]) > stop:
            k = step
            break
        perm = torch.arange(work.shape[0], device=block.device)
        perm[step], perm[j] = j, step
        work, order = work[perm][:, perm], order[perm]
        work[step, step] = work[step, step].sqrt()
        work[step + 1 :, step] /= work[step, step]
        col = work[step + 1 :, step]
        work[step + 1 :, step + 1 :] -= torch.outer(col, col)
    return order[:k], torch.tril(work[:k, :k])


def _pivoted_cholesky(gram: torch.Tensor, shift: float, stop: float):
    """Right-looking Cholesky of G - shift I with diagonal pivoting by blocks.

    ``gram``: G with its lower triangle filled and zeros above (CPU, from :func:`gram_lower`),
    or full (other devices); it is overwritten on other devices. Each block takes the
    ``CHOLESKY_BLOCK`` columns of largest remaining Schur diagonal, factors them with local
    diagonal pivoting (LAPACK dpstrf on the CPU) down to pivots > stop, swaps them behind the
    active part (O(n b) moves) and updates the active Schur complement with one GEMM on a view.
    Stops when no remaining diagonal exceeds ``stop``. Returns (L, kept, rest, schur): L (n, n)
    with row i = column i of G (kept rows: their factor row; the rest: L^-1 (G - shift I)_{K, i}),
    column j = j-th kept column; ``schur`` the rest's Schur complement of G - shift I (in
    ``rest`` order).
    """
    n = gram.shape[0]
    dev = gram.device
    work = _fill_upper(gram) if dev.type == "cpu" else gram
    work.diagonal().sub_(shift)
    factor = torch.zeros(n, n, dtype=torch.float64, device=dev)
    perm = torch.arange(n, device=dev)  # perm[i] = the column of G at active position i
    kept: list[int] = []
    r, size = 0, n
    while size:
        diag = work.diagonal()[:size]
        order = torch.argsort(diag, descending=True)[:CHOLESKY_BLOCK]
        order = order[diag[order] > stop]
        if order.numel() == 0:
            break
        block = work[order[:, None], order[None, :]]
        local, chol = _local_pivoted(block.contiguous(), stop)
        if local.numel() == 0:
            break
        chosen = order[local.to(dev)]
        chol = chol.to(dev)
        width = chosen.numel()
        tail = size - width
        # swap the chosen positions outside the tail with the tail's unchosen positions
        is_chosen = torch.zeros(size, dtype=torch.bool, device=dev)
        is_chosen[chosen] = True
        moving = torch.sort(chosen[chosen < tail]).values
        free = tail + torch.nonzero(~is_chosen[tail:])[:, 0]
        if moving.numel():
            rows = work[moving, :size].clone()
            work[moving, :size] = work[free, :size]
            work[free, :size] = rows
            cols = work[:size, moving].clone()
            work[:size, moving] = work[:size, free]
            work[:size, free] = cols
            held = perm[moving].clone()
            perm[moving] = perm[free]
            perm[free] = held
            where = torch.arange(size, device=dev)
            where[moving] = free
            chosen = where[chosen]
        panel = torch.linalg.solve_triangular(chol.T, work[:tail, chosen], upper=True, left=False)
        factor[perm[chosen], r : r + width] = chol
        factor[perm[:tail], r : r + width] = panel
        work[:tail, :tail].addmm_(panel, panel.T, alpha=-1.0)
        kept.extend(perm[chosen].tolist())
        r += width
        size = tail
    return factor, kept, perm[:size].tolist(), work[:size, :size].clone()


class _Refinement:
    """||T X|| for X = [-Y; V omega] (kept rows K, rest rows P), Y refined by iterative
    refinement with the exact operator (see the module docstring)."""

    def __init__(self, matrix, inverse_norms, live, l11, keep, rest, w, n, tol):
        self.matrix, self.inverse_norms, self.live = matrix, inverse_norms, live
        self.l11, self.keep, self.rest, self.w, self.n, self.tol = l11, keep, rest, w, n, tol

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        """T x = A[:, live] diag(inverse_norms) x, without forming T."""
        scaled = x * self.inverse_norms[:, None]
        if self.live is None:
            return self.matrix @ scaled
        embedded = torch.zeros(self.matrix.shape[1], x.shape[1], dtype=x.dtype, device=x.device)
        embedded[self.live] = scaled
        return self.matrix @ embedded

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """T^T y."""
        out = self.matrix.T @ y
        return (out if self.live is None else out[self.live]) * self.inverse_norms[:, None]

    def norm_bound(self, omega: torch.Tensor, exact: bool) -> float:
        """||T X omega||_2 (exact) or alpha sqrt(2/pi) max_i ||T X omega_i|| (a sketch); the
        steps are fixed for a sketch, so that Y does not depend on omega."""
        y = torch.linalg.solve_triangular(self.l11.T, self.w.T @ omega, upper=True)
        x = torch.zeros(self.n, omega.shape[1], dtype=torch.float64, device=omega.device)
        x[self.rest] = omega
        for step in range(REFINE_STEPS + 1):
            x[self.keep] = -y
            residual = self._apply(x)
            if step == REFINE_STEPS:
                break
            if exact and float(torch.linalg.matrix_norm(residual, ord=2)) <= (
                REFINE_TARGET * self.tol
            ):
                break
            half = torch.linalg.solve_triangular(
                self.l11, self._adjoint(residual)[self.keep], upper=False
            )
            y = y + torch.linalg.solve_triangular(self.l11.T, half, upper=True)
        if exact:
            return float(torch.linalg.matrix_norm(residual, ord=2))
        return SKETCH_ALPHA * math.sqrt(2 / math.pi) * float(residual.norm(dim=0).max())


def schur_certified_rank(
    matrix: torch.Tensor,
    gram: torch.Tensor,
    inverse_norms: torch.Tensor,
    live: torch.Tensor | None,
    tol: float | None,
):
    """(rank, tol, gap, sigma_max, certificate) certified as in the module docstring, or None.

    ``matrix``: the m x n0 float64 matrix A (m >= n0), unscaled; ``live``: indices of its
    significant columns (None: all); ``inverse_norms``: 1 / their norms, so T = A[:, live]
    diag(inverse_norms) is never formed (products with T scale the small block instead);
    ``gram``: T^T T, lower triangle valid (:func:`gram_lower` of A, scaled).
    """
    m, n_all = matrix.shape
    n = gram.shape[0]
    dev = matrix.device
    lam_max = _power_lambda_max(gram)
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
    factor, kept, pending, schur = _pivoted_cholesky(gram, shift, PIVOT_STOP)
    r = len(kept)
    lower_sigma_r = math.sqrt(shift - rounding)
    if not pending:
        return r, tol, float("inf"), sigma_max, 0.0
    keep = torch.tensor(kept, device=dev)
    rest = torch.tensor(pending, device=dev)
    # Haynsworth: In(G - mu I) = In(G_KK - mu I) + In(S), S the Schur complement of the rest
    w = factor[rest, :r]  # (G_KP)^T L^-T
    values, vectors = torch.linalg.eigh(schur)
    # rounding of the computed Schur complement: |P| (r + 2) u per entry's inner products
    margin = INERTIA_MARGIN * len(pending) * (r + 2) * u
    if bool(((values > -margin) & (values <= margin)).any()):
        return None  # an eigenvalue of G too close to the shift to count
    positive = values > 0
    r += int(positive.sum())
    k = len(pending) - int(positive.sum())
    if k == 0:
        return r, tol, float("inf"), sigma_max, 0.0
    null_rest = vectors[:, ~positive]  # (|P|, k), orthonormal
    l11 = factor[keep, : len(kept)]
    refine = _Refinement(matrix, inverse_norms, live, l11, keep, rest, w, n, tol)
    if k <= CERTIFICATE_SKETCH:
        bound = refine.norm_bound(null_rest, exact=True)
    else:
        gen = torch.Generator(device="cpu").manual_seed(_SKETCH_SEED)
        sketch = torch.randn(k, CERTIFICATE_SKETCH, generator=gen, dtype=torch.float64)
        bound = refine.norm_bound(null_rest @ sketch.to(dev), exact=False)
        if bound > tol and 2 * k <= n:
            # the sketch over-estimates by up to ~8 sqrt(k) at the rounding floor: exact check
            bound = refine.norm_bound(null_rest, exact=True)
    certificate = bound / tol
    if not certificate <= 1.0:
        return None
    # a computed ||T X|| below its own rounding (sqrt(n) eps sigma_max ||X||) says no more
    floor = math.sqrt(n) * _EPS * sigma_max
    gap = lower_sigma_r / max(bound, floor)
    return r, tol, gap, sigma_max, certificate
