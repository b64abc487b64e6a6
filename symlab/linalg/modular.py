"""Rank of integer matrices over GF(p), the exact half of :mod:`symlab.linalg.certified`.

For an integer matrix A and a prime p, rank_p(A mod p) <= rank_Q(A): a nonzero r x r minor mod p
is a nonzero r x r minor over Q; a nonzero minor is divisible by only finitely many primes, so
equality holds for all but finitely many p. Elimination runs on residues stored in float64 (exact
below 2^53): blocks of rows are reduced against the basis with BLAS products split into 16-bit
limbs, and small blocks are eliminated directly in int64, reducing mod p after every product.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_PRIME = 2_147_483_629
_FLOAT_EXACT = 2**53  # integers below this add exactly in float64
_LIMB = 2**16
_LEAF = 16  # rows eliminated directly in int64


def _is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3e24 (bases: the first 12 primes)."""
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    for q in bases:
        if n % q == 0:
            return n == q
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _check_prime(p: object, name: str = "p") -> int:
    if not isinstance(p, int | np.integer) or isinstance(p, bool):
        raise ValueError(f"{name}: expected a prime integer below 2^31, got {p!r}")
    p = int(p)
    if not (2 <= p < 2**31 and _is_prime(p)):
        raise ValueError(f"{name}: expected a prime integer below 2^31, got {p}")
    return p


def _residues(matrix: object, p: int) -> np.ndarray:
    """An integer matrix (numpy int/object of Python ints, or integer tensor) reduced mod p."""
    if isinstance(matrix, torch.Tensor):
        if matrix.is_floating_point() or matrix.is_complex():
            raise ValueError(f"matrix: expected an integer tensor, got dtype {matrix.dtype}")
        matrix = matrix.detach().cpu().numpy()
    a = np.asarray(matrix)
    if a.dtype == object:
        if not all(isinstance(v, int | np.integer) for v in a.flat):
            raise ValueError("matrix: expected integer entries, got a non-integer object")
    elif not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise ValueError(f"matrix: expected an integer array, got dtype {a.dtype}")
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"matrix: expected a non-empty 2-D array, got shape {a.shape}")
    return np.mod(a, p).astype(np.int64)


def _direct_chunk(p: int) -> int:
    """Longest inner dimension whose products of residues sum exactly in float64 (0: none)."""
    return (_FLOAT_EXACT - 1) // max(1, (p - 1) ** 2) // 2


def _submul_mod(
    c: np.ndarray, a: np.ndarray, b: np.ndarray, p: int, max_inner: int | None = None
) -> np.ndarray:
    """(c - a @ b) mod p for float64 residues in [0, p), exact, through float64 BLAS.

    Integer-valued float64 arithmetic is exact below 2^53 and np.fmod / np.mod are exact, so:
    small p (:func:`_direct_chunk` >= 64): products of residues are summed over chunks of the
    inner dimension short enough to stay below 2^53, reduced after each chunk. Large p: the
    residues are split into 16-bit limbs (a = a1 2^16 + a0), the four limb products (< 2^32
    each) are summed exactly in chunks of 2^20, and a b = (a1 b1 2^16 + a1 b0 + a0 b1) 2^16 +
    a0 b0 is recombined mod p by Horner's rule (every intermediate < 2^48).
    ``max_inner`` caps the chunk (for tests).
    """
    inner = a.shape[1]
    out = c.astype(np.float64, copy=True)
    direct = _direct_chunk(p)
    if direct >= 64:
        chunk = min(direct, max_inner or direct)
        for s in range(0, inner, chunk):
            out -= a[:, s : s + chunk] @ b[s : s + chunk]
            np.mod(out, p, out=out)
        return out
    chunk = min(2**20, max_inner or 2**20)
    a1 = np.floor(a / _LIMB)
    b1 = np.floor(b / _LIMB)
    a0, b0 = a - a1 * _LIMB, b - b1 * _LIMB
    for s in range(0, inner, chunk):
        sl = slice(s, s + chunk)
        acc = np.fmod(a1[:, sl] @ b1[sl], p)
        acc *= _LIMB
        acc += np.fmod(a1[:, sl] @ b0[sl] + a0[:, sl] @ b1[sl], p)
        np.fmod(acc, p, out=acc)
        acc *= _LIMB
        acc += np.fmod(a0[:, sl] @ b0[sl], p)
        out -= acc
        np.mod(out, p, out=out)
    return out


def _rref_mod(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduced row echelon form of a small int64 residue matrix over GF(p).

    Returns (rows, pivots): the nonzero RREF rows and their pivot columns. Plain Gaussian
    elimination; every product of two residues (< 2^62) is reduced mod p at once.
    """
    x = x.astype(np.int64)
    m = x.shape[0]
    pivots: list[int] = []
    r, c = 0, 0
    while r < m:
        live = np.flatnonzero(x[r:, c:].any(axis=0))
        if live.size == 0:
            break
        c += int(live[0])
        i = r + int(np.flatnonzero(x[r:, c])[0])
        if i != r:
            x[[r, i]] = x[[i, r]]
        x[r, c:] = x[r, c:] * pow(int(x[r, c]), p - 2, p) % p
        factors = x[:, c].copy()
        factors[r] = 0
        rows = np.flatnonzero(factors)
        if rows.size:
            update = factors[rows, None] * x[r, c:] % p
            x[rows, c:] = (x[rows, c:] - update) % p
        pivots.append(c)
        r, c = r + 1, c + 1
    return x[:r], np.asarray(pivots, dtype=np.int64)


def rank_mod_p(
    matrix: np.ndarray | torch.Tensor,
    p: int = DEFAULT_PRIME,
    *,
    stop_at: int | None = None,
    block_rows: int = 256,
) -> int:
    """Rank over GF(p) of an integer matrix: a certified lower bound on its rank over Q.

    rank_p(A) <= rank_Q(A) because a nonzero minor mod p is a nonzero minor over Q; equality
    holds for all but finitely many primes p, since a nonzero r x r minor (r = rank_Q A) is an
    integer with finitely many prime divisors. A rank drop mod p therefore needs p to divide
    every r x r minor; for a large random p this is extremely unlikely, but only the inequality
    is certified.

    Algorithm: Gaussian elimination over GF(p), streaming the longer side in blocks of
    ``block_rows`` rows against a basis kept in reduced row echelon form [I | F] (only F, on
    the non-pivot columns, is stored). Each block is reduced against the basis by one exact
    matrix product mod p (float64 BLAS, see :func:`_submul_mod`), its residual is put in RREF
    the same way with blocks a quarter the size, down to 16-row blocks eliminated in int64
    (every product of residues < 2^62 reduced mod p at once), and F is updated by one more
    product. Cost about 2 m r (n - r) flops for an m x n matrix of rank r (n the shorter
    side) plus O(m n) elementwise passes per level; memory O(m n) float64.

    Args:
        matrix: 2-D integer array (int64, or object of Python ints) or integer tensor.
        p: a prime below 2^31 (default 2_147_483_629).
        stop_at: stop once the rank found reaches this value (e.g. a known upper bound); the
            value returned is then a lower bound >= stop_at on rank_p.
        block_rows: rows per elimination block (speed only).
    """
    p = _check_prime(p)
    if not isinstance(block_rows, int) or block_rows < 1:
        raise ValueError(f"block_rows: expected a positive integer, got {block_rows!r}")
    if stop_at is not None and (not isinstance(stop_at, int | np.integer) or stop_at < 0):
        raise ValueError(f"stop_at: expected a non-negative integer or None, got {stop_at!r}")
    a = _residues(matrix, p)
    if a.shape[0] < a.shape[1]:
        a = a.T
    limit = a.shape[1] if stop_at is None else min(a.shape[1], int(stop_at))
    _, pivot_cols, _ = _echelon(a.astype(np.float64), p, block_rows, limit)
    return int(pivot_cols.size)


def _echelon(
    a: np.ndarray, p: int, block_rows: int, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RREF basis of the rows of ``a`` (float64 residues) over GF(p): (F, pivots, free).

    Row i of the basis is 1 at pivots[i], 0 at the other pivots and F[i] on the ``free``
    columns. Blocks of ``block_rows`` rows are reduced against the basis by
    :func:`_submul_mod`; each residual block is echelonized recursively with blocks a quarter
    the size, down to :data:`_LEAF` rows done by :func:`_rref_mod`. Stops at ``limit`` pivots.
    """
    n = a.shape[1]
    free = np.arange(n)
    pivot_cols = np.zeros(0, dtype=np.int64)
    basis = np.zeros((0, n), dtype=np.float64)
    for start in range(0, a.shape[0], block_rows):
        if pivot_cols.size >= limit or free.size == 0:
            break
        block = a[start : start + block_rows]
        residual = block[:, free]
        if pivot_cols.size:
            residual = _submul_mod(residual, block[:, pivot_cols], basis, p)
        if residual.shape[0] <= _LEAF:
            rows, new = _rref_mod(residual, p)
            rows = rows.astype(np.float64)
        else:
            sub, new, sub_free = _echelon(residual, p, max(_LEAF, block_rows // 4), free.size)
            rows = np.zeros((new.size, free.size))
            rows[np.arange(new.size), new] = 1.0
            rows[:, sub_free] = sub
        if new.size == 0:
            continue
        rest = np.setdiff1d(np.arange(free.size), new)
        basis_new_cols = basis[:, new]
        basis = basis[:, rest]
        if pivot_cols.size:
            basis = _submul_mod(basis, basis_new_cols, rows[:, rest], p)
        basis = np.concatenate([basis, rows[:, rest]])
        pivot_cols = np.concatenate([pivot_cols, free[new]])
        free = free[rest]
    return basis, pivot_cols, free
