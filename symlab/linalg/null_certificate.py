"""The null-space certificate of :func:`symlab.linalg.numerical_rank` ("auto").

The Gram G = T^T T of a tall matrix T is reduced to tridiagonal form S = Q^T G Q (LAPACK dsytrd);
its eigenvalues give the Gram rank r, and an orthonormal basis Z of the eigenvectors of the
n - r smallest eigenvalues (MRRR on S, mapped back by Q) spans the computed null space. By
Courant-Fischer, for any n x k block W of rank k = n - r,

    sigma_{r+1}(T) <= ||T W||_2 / sigma_min(W),

so a small ||T W|| proves that T has no singular value above the tolerance that the Gram missed
(the Gram squares singular values, so values between the SVD rule's tolerance and ~1e-8 sigma_max
are rounding noise to it). W is Z after CERTIFICATE_STEPS inverse-iteration steps with the exact
T^T T (the raw eigenvectors are tilted by the Gram's rounding). For k > CERTIFICATE_SKETCH, a
Gaussian sketch W = Z Omega with CERTIFICATE_SKETCH columns bounds ||T Z|| up to the factor
SKETCH_ALPHA sqrt(2/pi) except with probability SKETCH_ALPHA^-CERTIFICATE_SKETCH (Halko,
Martinsson, Tropp 2011, Lemma 4.1); the seed is fixed, so results are reproducible.
Cost: a few products of T with an n x min(k, CERTIFICATE_SKETCH) block, O(m n min(k, 12)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dptsv, dsytrd, dsytrd_lwork

CERTIFICATE_SKETCH = 12  # sketch columns p; the certificate is exact when the nullity k <= p
CERTIFICATE_STEPS = 1  # inverse-iteration steps that straighten the null-space basis
SKETCH_ALPHA = 10.0  # ||M|| <= alpha sqrt(2/pi) max ||M omega_i|| except w.p. alpha^-p
_SKETCH_SEED = 20261122


@dataclass(frozen=True)
class _GramTridiagonal:
    """G = T^T T = Q S Q^T for a tall T (m >= n): S = tridiag(e, d, e), Q from reflectors."""

    d: np.ndarray
    e: np.ndarray
    reflectors: torch.Tensor | None  # (n-1, n-1) in geqrf layout, None when n = 1
    tau: torch.Tensor | None

    def apply_q(self, x: np.ndarray, transpose: bool = False) -> np.ndarray:
        """Q x (or Q^T x) for an n x q block: LAPACK ormqr on rows 2..n, O(n^2 q)."""
        if self.reflectors is None:
            return x.copy()
        out = np.empty_like(x)
        out[0] = x[0]
        rest = torch.from_numpy(np.ascontiguousarray(x[1:]))
        out[1:] = torch.ormqr(self.reflectors, self.tau, rest, transpose=transpose).numpy()
        return out


def tridiagonal_gram(tall: np.ndarray) -> _GramTridiagonal:
    """dsyrk (lower triangle of T^T T) then dsytrd (blocked): m n^2 + 4/3 n^3 flops."""
    n = tall.shape[1]
    if tall.flags.f_contiguous:
        gram = dsyrk(1.0, tall, trans=1, lower=1)
    else:
        gram = dsyrk(1.0, np.ascontiguousarray(tall).T, trans=0, lower=1)
    lwork = max(int(dsytrd_lwork(n, lower=1)[0]), 1)
    c, d, e, tau, info = dsytrd(gram, lower=1, lwork=lwork, overwrite_a=1)
    if info != 0:
        raise RuntimeError(f"LAPACK dsytrd failed with info={info}")
    if n == 1:
        return _GramTridiagonal(d, e, None, None)
    # lower dsytrd stores reflector i in c[i+1:, i] with a unit at i+1: geqrf layout on c[1:, :-1].
    # Pack that block column-major (leading dimension n - 1) inside c's own buffer, so that
    # ormqr reads it without a copy and no second n x n array is allocated. Column i moves
    # down to offset (n - 1) i <= n i + 1, so no unread entry is overwritten (numpy buffers
    # the overlapping slices).
    flat = np.asfortranarray(c).reshape(-1, order="F")
    for i in range(n - 1):
        flat[(n - 1) * i : (n - 1) * (i + 1)] = flat[n * i + 1 : n * (i + 1)]
    reflectors = torch.from_numpy(flat[: (n - 1) ** 2].reshape(n - 1, n - 1, order="F"))
    return _GramTridiagonal(d, e, reflectors, torch.from_numpy(tau))


def _refine_null_block(
    tall: np.ndarray, tri: _GramTridiagonal, z0: np.ndarray, start: np.ndarray, shift: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """(W, T Q W) after CERTIFICATE_STEPS steps W <- W - P (S + shift)^-1 P Q^T T^T T Q W.

    Returns (W, None) when the shifted tridiagonal solve fails (S + shift not positive definite).
    """
    w = start.copy()
    y = tall @ tri.apply_q(w)
    shifted = tri.d + shift
    for _ in range(CERTIFICATE_STEPS):
        residual = tri.apply_q(tall.T @ y, transpose=True)
        residual -= z0 @ (z0.T @ residual)
        if shifted.size == 1:
            step = residual / shifted[0]
        else:
            *_, step, info = dptsv(shifted, tri.e, residual)
            if info != 0:
                return w, None
        step -= z0 @ (z0.T @ step)
        w -= step
        y = tall @ tri.apply_q(w)
    return w, y


def _ratio(top: float, low: float, tol: float) -> float:
    """top / (low tol); inf when the basis is too far from orthonormal (low <= 1/2)."""
    if low <= 0.5:
        return float("inf")
    if tol <= 0:
        return 0.0 if top == 0 else float("inf")
    return top / (low * tol)


def null_space_certificate(
    tall: np.ndarray, tri: _GramTridiagonal, nullity: int, shift: float, tol: float
) -> float:
    """Upper bound on sigma_{r+1}(T) / tol from a refined basis of the Gram's null space.

    See :mod:`symlab.linalg.rank`'s module docstring for the bound. Nullity k <= CERTIFICATE_SKETCH: exact on all k columns. Larger k:
    first the Gaussian sketch (valid except with probability 2 SKETCH_ALPHA^-CERTIFICATE_SKETCH);
    if it exceeds 1 and k <= n / 2, the exact bound decides (the sketch over-estimates by up to
    about 8 sqrt(k) when the null space's singular values are all rounding noise). Returns inf
    when no bound could be formed.
    """
    n = tall.shape[1]
    if n == 1:
        z0 = np.ones((1, 1))
    else:
        try:  # MRRR: orthonormal to O(n eps) even inside the tight cluster of null eigenvalues
            _, z0 = eigh_tridiagonal(
                tri.d, tri.e, select="i", select_range=(0, nullity - 1), lapack_driver="stemr"
            )
        except np.linalg.LinAlgError:
            return float("inf")
    certificate = float("inf")
    if nullity > CERTIFICATE_SKETCH:
        omega = np.random.default_rng(_SKETCH_SEED).standard_normal((nullity, CERTIFICATE_SKETCH))
        start = z0 @ omega
        w, y = _refine_null_block(tall, tri, z0, start, shift)
        if y is not None:
            factor = SKETCH_ALPHA * np.sqrt(2 / np.pi)
            top = factor * float(np.linalg.norm(y, axis=0).max())
            low = 1.0 - factor * float(np.linalg.norm(w - start, axis=0).max())
            certificate = _ratio(top, low, tol)
        if certificate <= 1.0 or 2 * nullity > n:
            return certificate
    w, y = _refine_null_block(tall, tri, z0, z0, shift)
    if y is None:
        return certificate
    return _ratio(float(np.linalg.norm(y, 2)), float(np.linalg.svd(w, compute_uv=False)[-1]), tol)
