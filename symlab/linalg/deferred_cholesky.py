"""Blocked Cholesky of a shifted Gram with deferred columns, for the certified Schur route.

:func:`deferred_cholesky` factors G - shift I (G symmetric positive semidefinite, its lower
triangle given) as L L^T on a kept set K of columns and returns the rest's Schur complement, so
that Haynsworth's inertia additivity In(G - shift I) = In(G_KK - shift I) + In(S) counts the
eigenvalues of G above the shift (:mod:`symlab.linalg.schur_rank`). Left-looking, by blocks of
``CHOLESKY_BLOCK`` columns in natural order: n^3 / 3 flops, mostly in one GEMM per block, with
no row or column swaps; columns whose pivot falls below a threshold are deferred and factored
last with diagonal pivoting (largest Schur diagonal first).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg.blas import dtrsm
from scipy.linalg.lapack import dpstrf

CHOLESKY_BLOCK = 256  # columns per block
DEFER_STOP = 1e-2  # natural-order pass: columns with a smaller Schur diagonal are deferred


def symmetric_from_lower(block: torch.Tensor) -> torch.Tensor:
    """A square block with only its lower triangle valid, made symmetric."""
    lower = torch.tril(block)
    return lower + torch.tril(block, -1).T


def local_pivoted(
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


def _block_factor(block: torch.Tensor, stop: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`local_pivoted` of a symmetric block, trying first the unpivoted Cholesky (LAPACK
    dpotrf of torch): when it succeeds with every pivot above ``stop``, its natural order is a
    valid result (each kept pivot > stop, as dpstrf guarantees), and no pivot search is needed."""
    if float(block.diagonal().min()) > stop:  # else a pivot <= its diagonal fails anyway
        chol, info = torch.linalg.cholesky_ex(block)
        if int(info) == 0 and float(chol.diagonal().min()) ** 2 > stop:
            return torch.arange(block.shape[0], device=block.device), chol
    return local_pivoted(block.contiguous(), stop)


def lower_triangular_solve(
    lower: torch.Tensor, rhs: torch.Tensor, transpose: bool = False
) -> torch.Tensor:
    """L^-1 B, or L^-T B with ``transpose``, for a lower-triangular float64 L (only its lower
    triangle is read). CPU: BLAS dtrsm of the installed SciPy, on Fortran views of L and B
    where their layout allows (OpenBLAS was 1.6-1.9x faster than torch's MKL on the Cholesky's
    panels and the refinement's solves on an AMD EPYC, benchmarks/RESULTS.md); elsewhere torch."""
    if lower.device.type != "cpu":
        return torch.linalg.solve_triangular(lower.T if transpose else lower, rhs, upper=transpose)
    a = lower.numpy()
    b = np.asfortranarray(rhs.numpy())
    if a.flags.f_contiguous:  # L itself in Fortran order
        x = dtrsm(1.0, a, b, side=0, lower=1, trans_a=int(transpose))
    else:  # L in C order: its Fortran view is L^T, an upper triangle
        x = dtrsm(1.0, np.ascontiguousarray(a).T, b, side=0, lower=0, trans_a=int(not transpose))
    return torch.from_numpy(x)


def _right_solve(chol: torch.Tensor, panel: torch.Tensor) -> torch.Tensor:
    """panel L^-T for a lower-triangular L, as the left solve L^-1 panel^T on the Fortran view
    of the C-ordered panel (no copy; the left-sided trsm was 2-3x faster in MKL than the
    right-sided call on a tall panel)."""
    return lower_triangular_solve(chol, panel.T).T


def deferred_cholesky(gram: torch.Tensor, shift: float, stop: float, defer: float = 0.0):
    """Left-looking blocked Cholesky of G - shift I in natural column order, deferring the
    columns that are dependent to within ``stop``.

    ``gram``: G with its lower triangle valid (C order; the upper triangle is never read).
    Block B (``CHOLESKY_BLOCK`` columns in natural order): its columns and the rows still open
    (the deferred ones and those from B on) are updated by one GEMM with the factor so far
    (P = (G - shift I)[R, B] - L[R, :r] L[B, :r]^T), the block's diagonal part is factored with
    local diagonal pivoting down to pivots > stop (LAPACK dpstrf on the CPU), its kept columns
    extend L by a triangular solve, and its other columns are deferred: their Schur diagonal is
    <= stop after the block's kept columns, and stays so (Schur diagonals only decrease).
    n^3 / 3 flops in all, as an unpivoted Cholesky, with no row or column swaps. Returns
    (L, kept, rest, schur): L (n, n) with row i = column i of G (kept rows: their factor row;
    the rest: L^-1 (G - shift I)_{K, i}), column j = the j-th kept column; ``schur`` the rest's
    Schur complement of G - shift I (in ``rest`` order).
    """
    n = gram.shape[0]
    dev = gram.device
    factor = torch.zeros(n, n, dtype=torch.float64, device=dev)
    kept: list[int] = []
    deferred: list[int] = []
    r = 0
    for s in range(0, n, CHOLESKY_BLOCK):
        e = min(n, s + CHOLESKY_BLOCK)
        main = torch.addmm(gram[s:, s:e], factor[s:, :r], factor[s:e, :r].T, alpha=-1.0)
        main[: e - s] = symmetric_from_lower(main[: e - s])  # CPU: the block's upper part is unset
        main[: e - s].diagonal().sub_(shift)
        if deferred:
            rows = torch.tensor(deferred, device=dev)
            held = torch.addmm(
                gram[s:e][:, rows].T, factor[rows, :r], factor[s:e, :r].T, alpha=-1.0
            )
        local, chol = _block_factor(main[: e - s], max(stop, defer))
        local = local.to(dev)
        chosen = s + local
        width = chosen.numel()
        others = torch.ones(e - s, dtype=torch.bool, device=dev)
        others[local] = False
        if width:
            chol = chol.to(dev)
            # rows after the block, and the block's deferred rows; its kept rows are chol itself
            natural = width == e - s and bool((local == torch.arange(width, device=dev)).all())
            if e < n:
                below = main[e - s :] if natural else main[e - s :, local]
                factor[e:, r : r + width] = _right_solve(chol, below)
            if width < e - s:
                block_rows = main[: e - s][others][:, local]
                factor[s + torch.nonzero(others)[:, 0], r : r + width] = _right_solve(
                    chol, block_rows
                )
            factor[chosen, r : r + width] = torch.tril(chol)
            if deferred:
                factor[rows, r : r + width] = _right_solve(chol, held[:, local])
        kept.extend(chosen.tolist())
        deferred.extend((s + torch.nonzero(others)[:, 0]).tolist())
        r += width
    if not deferred:
        return factor, kept, [], torch.zeros(0, 0, dtype=torch.float64, device=dev)
    rows = torch.tensor(deferred, device=dev)
    schur = schur_of_rest(gram, factor[rows, :r], rows, shift)
    # second stage: the deferred columns by largest Schur diagonal first, down to pivots > stop
    local, chol = local_pivoted(schur, stop)
    width = local.numel()
    if width:
        local, chol = local.to(dev), chol.to(dev)
        factor[rows, r : r + width] = _right_solve(chol, schur[:, local])
        factor[rows[local], r : r + width] = torch.tril(chol)
        kept.extend(rows[local].tolist())
    rest = torch.ones(len(deferred), dtype=torch.bool, device=dev)
    rest[local] = False
    rest_rows = rows[rest]
    w = factor[rest_rows, r : r + width]
    schur = torch.addmm(schur[rest][:, rest], w, w.T, alpha=-1.0)
    return factor, kept, rest_rows.tolist(), schur


def schur_of_rest(gram: torch.Tensor, w: torch.Tensor, rows: torch.Tensor, shift: float):
    """(G - shift I)_PP - W W^T for the rows P (``rows``) of G, lower triangle of ``gram`` valid,
    and W = L^-1 (G - shift I)_KP as rows (the factor's rows P)."""
    lower = torch.maximum(rows[:, None], rows[None, :])
    upper = torch.minimum(rows[:, None], rows[None, :])
    block = gram[lower, upper]
    block.diagonal().sub_(shift)
    return torch.addmm(block, w, w.T, alpha=-1.0)


def pivoted_cholesky(gram: torch.Tensor, shift: float, stop: float):
    """:func:`deferred_cholesky`'s result by one Cholesky with diagonal pivoting of the whole
    G - shift I (LAPACK dpstrf, largest Schur diagonal first, stopped when none exceeds
    ``stop``; CPU): G_KK - shift I = L L^T on the pivots K, and the rest's Schur complement.
    Global pivoting keeps G_KK at least as well conditioned as the deferral, and for n up to
    about a thousand one dpstrf is faster than the blocked pass with its Python-level steps
    (on the benchmark's 913-column Gram 20 ms against 40 ms; from about 1600 columns on the
    blocked GEMMs win, benchmarks/RESULTS.md)."""
    n = gram.shape[0]
    # the C-ordered lower triangle is the upper triangle of the Fortran view G^T = G
    work = np.array(gram.numpy().T, order="F")
    work[np.diag_indices(n)] -= shift
    upper, pivots, rank, info = dpstrf(work, tol=stop, lower=0, overwrite_a=1)
    if info < 0:
        raise RuntimeError(f"LAPACK dpstrf failed with info={info}")
    order = torch.from_numpy(pivots.astype(np.int64) - 1)
    # U^T U = P^T (G - shift I) P: the factor's rows are U's columns (C view of U^T)
    lower = torch.from_numpy(np.ascontiguousarray(upper.T))[:, :rank]
    factor = torch.zeros(n, n, dtype=torch.float64)
    factor[order, :rank] = torch.tril(lower)
    kept, rest = order[:rank], order[rank:]
    if rank == n:
        return factor, kept.tolist(), [], torch.zeros(0, 0, dtype=torch.float64)
    schur = schur_of_rest(gram, factor[rest, :rank], rest, shift)
    return factor, kept.tolist(), rest.tolist(), schur
