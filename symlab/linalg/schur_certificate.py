"""Step 2 of the certified Schur route: a proof that sigma_{r+1}(T) <= tol.

:func:`symlab.linalg.schur_rank.schur_count` counts r eigenvalues of G = T^T T above the shift
mu with the factor G_KK - mu I = L L^T of the kept columns K and the Schur complement S of the
rest P (see :mod:`symlab.linalg.schur_rank`). This module proves that no (r+1)-th singular
value of T exceeds tol, so that r is the SVD rule's rank exactly.

**At most r** (Courant-Fischer). With V the k eigenvectors of S for its non-positive
eigenvalues, X = [-Y; V] (rows K; P) with Y = G_KK^-1 G_KP V has X^T X = I + Y^T Y >= I, so
sigma_{r+1}(T) <= ||T X||. Y starts from the shifted factor, L^-T L^-1 G_KP V, and takes up to
``REFINE_STEPS`` steps of iterative refinement with the exact operator (corrected semi-normal
equations, Bjorck): Y <- Y + (L L^T)^-1 T_K^T (T_P V - T_K Y); each step shrinks the error by
about (mu + e) / lambda_min(G_KK), small because the pivoting keeps G_KK well conditioned. Each
step reads A once: T x and T^T (T x) by blocks of ``CHUNK_BYTES`` of rows kept in cache; A may
be given by row blocks (:class:`symlab.linalg.schur_rank.RowBlocks`, e.g. recomputed Jacobian
rows). certificate = ||T X|| / tol <= 1 proves sigma_{r+1}(T) <= tol, and the residual T X of
each step's pass is checked as it comes: the refinement stops at the first step whose check
passes (a step that the last two bounds extrapolate to below ``EXPECT_PASS`` x tol computes T x
alone, and T^T (T x) in one more read only if its check fails after all). When k >
``CERTIFICATE_SKETCH`` (p = 12) the norm is first bounded on a Gaussian sketch X omega (k x p,
fixed seed): for a fixed matrix M, ||M|| <= alpha sqrt(2/pi) max_i ||M omega_i|| except with
probability alpha^-p (Halko, Martinsson, Tropp 2011, Lemma 4.1; alpha = 10). After s steps
X_s omega = [-M_s V omega; V omega] with M_s a linear map that does not depend on omega (the
refinement is linear in its right-hand side), so each step's check is that lemma for the fixed
M = T X_s; the check that stops the loop may be any of the ``REFINE_STEPS`` + 1, so a passed
certificate is wrong with probability at most (``REFINE_STEPS`` + 1) alpha^-p = 7e-12 (union
bound). A sketch still ``SKETCH_HOPELESS`` x alpha sqrt(k) above tol after ``SKETCH_STEPS``
steps stops there (more steps cannot close the gap); one that fails otherwise is rechecked on
all k columns when k <= n / 2. gap = sqrt(mu - e) / max(||T X||, sqrt(n) eps sigma_max) is a
certified lower bound on sigma_r / sigma_{r+1}.

CPU: the products with A by NumPy's BLAS (OpenBLAS in the wheels; MKL's skinny GEMMs were
1.3-2.6x slower for some widths of the vector block on an AMD EPYC, benchmarks/RESULTS.md), the
triangular solves by SciPy's dtrsm (:func:`symlab.linalg.deferred_cholesky.lower_triangular_solve`).
Other devices: torch matmuls.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from symlab.linalg.deferred_cholesky import lower_triangular_solve

if TYPE_CHECKING:
    from symlab.linalg.schur_rank import SchurCount

REFINE_STEPS = 6  # at most this many iterative-refinement steps of the null-space coefficients Y
SKETCH_STEPS = 3  # a sketch this many steps in and still SKETCH_HOPELESS above tol stops
CHUNK_BYTES = 2**19  # rows of A per block of the fused products T x, T^T (T x) (CPU)
CERTIFICATE_SKETCH = 12  # sketch columns p; exact on all k columns when k <= p
SKETCH_ALPHA = 10.0
SKETCH_HOPELESS = 1e3  # a sketch this far above tol is not rechecked on all k columns
# CPU products with A take blocks of vectors padded with zero columns to a multiple of this:
# OpenBLAS's skinny GEMMs on an AMD EPYC took 9.5 ms for 7 columns and 6.7 ms for 8 on the
# benchmark's 3000 x 901 matrix (benchmarks/RESULTS.md); the zero columns change no result
PRODUCT_WIDTH = 4
EXPECT_PASS = 0.1  # a step extrapolated below this x tol reads A once (T x alone)
_SKETCH_SEED = 20261206
_EPS = float(torch.finfo(torch.float64).eps)


class NullRefinement:
    """||T X|| for X = [-Y; V omega] (kept rows K, rest rows P) of one count, Y refined by
    iterative refinement with the exact operator (the module docstring)."""

    def __init__(self, matrix, inverse_norms, live, l11, keep, rest, w, n, tol):
        self.matrix, self.inverse_norms, self.live = matrix, inverse_norms, live
        self.l11, self.keep, self.rest, self.w, self.n, self.tol = l11, keep, rest, w, n, tol

    def products(self, x: torch.Tensor, adjoint: bool):
        """(T x, T^T T x or None), T = A[:, live] diag(inverse_norms) never formed (A a tensor
        or :class:`RowBlocks`). On the CPU both products read A once, by blocks of
        ``CHUNK_BYTES`` of rows that stay in cache, in NumPy's BLAS (OpenBLAS): torch's MKL
        took 1.3-2.6x longer for some widths of x on an AMD EPYC (7, 8 and 16 columns against
        12; benchmarks/RESULTS.md), OpenBLAS the same time within 15 % for 4-16 columns."""
        width = x.shape[1]
        scaled = x * self.inverse_norms[:, None]
        if self.live is not None or _padding(x) > 0:
            embedded = torch.zeros(
                self.matrix.shape[1], width + _padding(x), dtype=x.dtype, device=x.device
            )
            embedded[slice(None) if self.live is None else self.live, :width] = scaled
            scaled = embedded
        parts, back = [], torch.zeros_like(scaled) if adjoint else None
        for block in self._blocks():
            if block.device.type != "cpu":
                parts.append(block @ scaled)
                if adjoint:
                    back.addmm_(block.T, parts[-1])
                continue
            a, v = block.numpy(), scaled.numpy()
            if not adjoint:
                parts.append(torch.from_numpy(a @ v))
                continue
            total = back.numpy()  # the same memory: accumulates into back
            chunk = max(16, CHUNK_BYTES // (8 * block.shape[1]))
            for start in range(0, a.shape[0], chunk):  # both products while rows are in cache
                rows = a[start : start + chunk]
                part = rows @ v
                total += rows.T @ part
                parts.append(torch.from_numpy(part))
        residual = torch.cat(parts)[:, :width]
        return residual, self._scaled_back(back[:, :width]) if adjoint else None

    def norm_bound(self, omega: torch.Tensor, exact: bool, hopeless: float = math.inf) -> float:
        """exact: ||T X||_2; a sketch: alpha sqrt(2/pi) max_i ||T X omega_i||; after up to
        ``REFINE_STEPS`` steps, stopped at the first step where it is at most tol (a passed
        certificate), or above ``hopeless`` after ``SKETCH_STEPS`` steps (see the module
        docstring)."""
        y = lower_triangular_solve(self.l11, self.w.T @ omega, transpose=True)
        x = torch.zeros(self.n, omega.shape[1], dtype=torch.float64, device=omega.device)
        x[self.rest] = omega
        bounds: list[float] = []
        for step in range(REFINE_STEPS + 1):
            x[self.keep] = -y
            last = step == REFINE_STEPS
            # a step that the last two extrapolate (geometrically) to well below tol, most
            # likely the last, reads A for T x alone; T^T (T x) only if its check fails after all
            expected = len(bounds) >= 2 and bounds[-1] ** 2 <= EXPECT_PASS * self.tol * bounds[-2]
            residual, back = self.products(x, adjoint=not (last or expected))
            if exact:
                bound = float(torch.linalg.matrix_norm(residual, ord=2))
            else:
                bound = SKETCH_ALPHA * math.sqrt(2 / math.pi) * float(residual.norm(dim=0).max())
            bounds.append(bound)
            if last or bound <= self.tol or (step == SKETCH_STEPS and bound > hopeless):
                return bound
            back = self.adjoint(residual) if back is None else back
            half = lower_triangular_solve(self.l11, back[self.keep])
            y = y + lower_triangular_solve(self.l11, half, transpose=True)
        return bound

    def adjoint(self, residual: torch.Tensor) -> torch.Tensor:
        """T^T r, one more read of A (a step expected to pass whose check failed)."""
        width = residual.shape[1]
        if _padding(residual) > 0:
            residual = torch.cat(
                [residual, residual.new_zeros(len(residual), _padding(residual))], 1
            )
        back = torch.zeros(
            self.matrix.shape[1], residual.shape[1], dtype=torch.float64, device=residual.device
        )
        start = 0
        for block in self._blocks():
            rows = residual[start : start + block.shape[0]]
            start += block.shape[0]
            if block.device.type == "cpu":
                total = back.numpy()  # the same memory: accumulates into back
                total += block.numpy().T @ rows.numpy()
            else:
                back.addmm_(block.T, rows)
        return self._scaled_back(back[:, :width])

    def _blocks(self):
        """A's row blocks: A itself when it is a tensor, else the :class:`RowBlocks`."""
        return [self.matrix] if isinstance(self.matrix, torch.Tensor) else self.matrix

    def _scaled_back(self, back: torch.Tensor) -> torch.Tensor:
        """A^T r restricted to the live columns and scaled: T^T r."""
        back = back if self.live is None else back[self.live]
        return back * self.inverse_norms[:, None]


def _padding(x: torch.Tensor) -> int:
    """Zero columns that round a CPU block of vectors up to a multiple of ``PRODUCT_WIDTH``."""
    if x.device.type != "cpu" or x.shape[1] <= 1:
        return 0
    return -x.shape[1] % PRODUCT_WIDTH


def schur_certify(count: SchurCount, matrix, inverse_norms: torch.Tensor, live):
    """(rank, tol, gap, sigma_max, certificate) of a count, certified by step 2 of the module
    docstring (products by T = A[:, live] diag(inverse_norms), A a tensor or
    :class:`RowBlocks`), or None when the certificate exceeds 1."""
    if count.complete:
        return count.result()
    if count.ambiguous:
        return None  # a lower count only: the rank is left to the SVD
    dev = count.factor.device
    r, n, tol, sigma_max = len(count.kept), count.n, count.tol, count.sigma_max
    keep = torch.tensor(count.kept, device=dev)
    rest = torch.tensor(count.pending, device=dev)
    w = count.factor[rest, :r]  # (G_KP)^T L^-T
    null_rest = count.null_rest  # (|P|, k), orthonormal
    k = null_rest.shape[1]
    l11 = count.factor[keep, :r]
    refine = NullRefinement(matrix, inverse_norms, live, l11, keep, rest, w, n, tol)
    if k <= CERTIFICATE_SKETCH:
        bound = refine.norm_bound(null_rest, exact=True)
    else:
        gen = torch.Generator(device="cpu").manual_seed(_SKETCH_SEED)
        sketch = torch.randn(k, CERTIFICATE_SKETCH, generator=gen, dtype=torch.float64)
        # max_i ||T X omega_i|| / ||omega_i|| (about bound / (alpha sqrt(k))) is a lower bound
        # on ||T X||: far above tol, more refinement steps cannot close the gap
        hopeless = SKETCH_HOPELESS * SKETCH_ALPHA * math.sqrt(k) * tol
        bound = refine.norm_bound(null_rest @ sketch.to(dev), exact=False, hopeless=hopeless)
        if bound > tol and 2 * k <= n and not bound > hopeless:
            # the sketch over-estimates by up to ~8 sqrt(k) at the rounding floor: exact check
            bound = refine.norm_bound(null_rest, exact=True)
    certificate = bound / tol
    if not certificate <= 1.0:
        return None
    # a computed ||T X|| below its own rounding (sqrt(n) eps sigma_max ||X||) says no more
    floor = math.sqrt(n) * _EPS * sigma_max
    gap = count.lower_sigma_r / max(bound, floor)
    return count.rank, tol, gap, sigma_max, certificate
