"""The Walsh transform of a black-box function on {±1}^d: exact, estimated, and by degree.

For f: {±1}^d → R, f̂(S) = E_x[f(x) χ_S(x)] = 2^{-d} Σ_x f(x) χ_S(x) (O'Donnell, "Analysis of
Boolean Functions", 2014, ch. 1). Index the 2^d points by i ∈ [0, 2^d) with x_j = 1 − 2·bit_{j−1}(i)
(bit 0 ↔ coordinate 1, a set bit ↔ −1) and the supports by s with S = {j : bit_{j−1}(s) = 1}; then
χ_S(x_i) = (−1)^{popcount(s & i)}, so the vector of coefficients is H_{2^d} f / 2^d with the
Sylvester–Hadamard matrix H[s, i] = (−1)^{popcount(s & i)}. :func:`fwht` applies H in O(d 2^d)
(Fino & Algazi, IEEE Trans. Computers 1976) instead of the dense O(4^d).

- exact (d ≤ :data:`MAX_EXACT_DIM`): :func:`walsh_coefficients` (tensor, index order),
  :func:`walsh_transform` ({S: f̂(S)}), :func:`fourier_weight_by_degree` (W^k = Σ_{|S|=k} f̂(S)²,
  the degree profile of Abbe & Boix-Adserà, NeurIPS 2022, arXiv 2208.03113);
- estimated (any d): :func:`estimate_coefficients`, the Monte-Carlo mean of f(x) χ_S(x) over
  uniform x with a CLT confidence interval, for the supports asked for.

A black box is any callable or ``nn.Module`` taking an (n, d) tensor of ±1 and returning (n,) or
(n, 1); it is called under ``torch.no_grad()`` as is (put a module in ``eval()`` yourself), on
inputs in its parameters' dtype and device (float64 on the CPU for a plain callable).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch import Tensor, nn

from symlab.boolean.monomials import (
    BooleanSupport,
    boolean_support,
    characters,
    check_dimension,
    uniform_cube,
)
from symlab.boolean.walsh import WalshExpansion

MAX_EXACT_DIM = 24  # 2^24 evaluations and 128 MiB of float64 coefficients
CHUNK_SIZE = 1 << 16  # points per call of the black box
RADIX_BITS = 4  # fwht applies the 16 × 16 Hadamard block to 4 index bits per pass

BlackBox = Callable[[Tensor], Tensor]


def index_support(index: int) -> BooleanSupport:
    """The support S = {j : bit_{j−1}(index) = 1} of coefficient number ``index``."""
    return frozenset(j + 1 for j in range(index.bit_length()) if index >> j & 1)


def support_index(support: Iterable[int]) -> int:
    """The index Σ_{j∈S} 2^{j−1} of support S (inverse of :func:`index_support`)."""
    return sum(1 << (j - 1) for j in boolean_support(support, name="support"))


def cube_points(
    d: int, start: int = 0, stop: int | None = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Points x_i of {±1}^d for i in [start, stop), x_{i,j} = 1 − 2·bit_{j−1}(i): (stop − start, d)."""
    stop = 1 << d if stop is None else stop
    index = torch.arange(start, stop, dtype=torch.long)
    bits = (index[:, None] >> torch.arange(d, dtype=torch.long)) & 1
    return (1 - 2 * bits).to(dtype)


def index_degrees(d: int) -> Tensor:
    """popcount(s) = |S| for every index s in [0, 2^d), as a long tensor."""
    index = torch.arange(1 << d, dtype=torch.long)
    degrees = torch.zeros_like(index)
    for j in range(d):
        degrees += (index >> j) & 1
    return degrees


def hadamard(d: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The dense Sylvester–Hadamard matrix H[s, i] = (−1)^{popcount(s & i)}, (2^d, 2^d)."""
    index = torch.arange(1 << d, dtype=torch.long)
    parity = torch.zeros((1 << d, 1 << d), dtype=torch.long)
    for j in range(d):
        parity ^= ((index[:, None] & index[None, :]) >> j) & 1
    return (1 - 2 * parity).to(dtype)


@functools.lru_cache(maxsize=32)
def radix_block(bits: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The cached (2^bits × 2^bits) Hadamard block of :func:`fwht` (read-only by convention)."""
    return hadamard(bits, dtype).to(device)


def fwht(values: Tensor) -> Tensor:
    """The Walsh–Hadamard transform H_{2^d} v along the last dimension (no normalization).

    H² = 2^d I, so ``fwht(fwht(v)) / 2^d = v`` and f̂ = fwht(f) / 2^d in the index order of the
    module docstring. Radix-16 constant geometry (Pease, J. ACM 1968): each pass views the index
    as (top 4 bits t, rest m), applies the 16 × 16 Hadamard block to t by one batched matrix
    product and writes the result at m·16 + t', so the index rotates by 4 bits per pass and is
    back in place after ⌈d/4⌉ passes. Cost: ⌈d/4⌉ memory passes and 16·2^d multiply-adds per
    pass (O(d 2^d)), against d passes for radix-2 butterflies and 4^d for the dense product.
    """
    if not isinstance(values, Tensor) or values.ndim < 1 or not values.is_floating_point():
        raise ValueError("values: expected a floating-point tensor with at least one dimension")
    n = values.shape[-1]
    if n < 1 or n & (n - 1):
        raise ValueError(f"values: expected a last dimension of size 2^d, got {n}")
    d = n.bit_length() - 1
    x = values.reshape(-1, n)
    left = d
    while left > 0:
        bits = min(RADIX_BITS, left)
        block = radix_block(bits, values.dtype, values.device)
        x = torch.matmul(x.view(-1, 1 << bits, n >> bits).transpose(1, 2), block).reshape(-1, n)
        left -= bits
    return x.reshape(values.shape).clone() if d == 0 else x.reshape(values.shape)


def check_exact_dim(d: int) -> None:
    """One-sentence ValueError unless 1 ≤ d ≤ :data:`MAX_EXACT_DIM`."""
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_EXACT_DIM:
        raise ValueError(
            f"d: expected an integer between 1 and {MAX_EXACT_DIM} for the exact transform "
            f"(2^d evaluations; use estimate_coefficients beyond), got {d!r}"
        )


def black_box_input(f: BlackBox, dtype: torch.dtype | None) -> tuple[torch.dtype, torch.device]:
    """Dtype and device of the points fed to ``f``: its parameters' (a module), else float64/CPU."""
    if not callable(f):
        raise ValueError(
            f"f: expected a callable or nn.Module taking an (n, d) tensor of ±1, got {f!r}"
        )
    if isinstance(f, nn.Module):
        tensors = itertools.chain(f.parameters(), f.buffers())
        first = next((t for t in tensors if t.is_floating_point()), None)
        if first is not None:
            return dtype or first.dtype, first.device
    return dtype or torch.float64, torch.device("cpu")


def evaluate(f: BlackBox, x: Tensor) -> Tensor:
    """f(x) as a float64 vector of shape (n,); one-sentence ValueError on a wrong shape or NaN."""
    with torch.no_grad():
        y = f(x)
    n = x.shape[0]
    shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
    if not isinstance(y, Tensor) or y.is_complex() or tuple(y.shape) not in ((n,), (n, 1)):
        raise ValueError(
            f"f: expected a real tensor of shape ({n},) or ({n}, 1) for inputs of shape "
            f"{tuple(x.shape)}, got {shape}"
        )
    y = y.reshape(n).to(torch.float64)
    if not torch.isfinite(y).all():
        bad = int((~torch.isfinite(y)).sum())
        raise ValueError(f"f: expected finite outputs, got {bad} NaN or infinite values")
    return y


def check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected an integer >= 1, got {chunk_size!r}")


def walsh_coefficients(
    f: BlackBox, d: int, *, dtype: torch.dtype | None = None, chunk_size: int = CHUNK_SIZE
) -> Tensor:
    """All 2^d coefficients f̂(S) in index order (float64, f's device): f on the cube, then fwht.

    Cost: 2^d evaluations of f (``chunk_size`` points per call) and one :func:`fwht`;
    memory 8·2^d bytes plus one chunk. Coefficient s belongs to :func:`index_support` (s).
    """
    check_exact_dim(d)
    check_chunk_size(chunk_size)
    dtype, device = black_box_input(f, dtype)
    values = [
        evaluate(f, cube_points(d, start, min(start + chunk_size, 1 << d), dtype).to(device))
        for start in range(0, 1 << d, chunk_size)
    ]
    return fwht(torch.cat(values)) / (1 << d)


def walsh_transform(
    f: BlackBox,
    d: int,
    *,
    tol: float = 0.0,
    dtype: torch.dtype | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> dict[BooleanSupport, float]:
    """The exact Walsh transform {S: f̂(S)} of a black box on {±1}^d, keeping |f̂(S)| > ``tol``.

    Supports are frozensets of 1-based coordinates, ordered by degree then by index. The dict
    costs Python time per kept coefficient (seconds for 2^20 of them): prefer ``tol`` > 0, or
    :func:`walsh_coefficients` for the tensor.
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol: expected a number >= 0, got {tol!r}")
    coefficients = walsh_coefficients(f, d, dtype=dtype, chunk_size=chunk_size).cpu()
    kept = torch.nonzero(coefficients.abs() > tol).flatten()
    order = torch.argsort(index_degrees(d)[kept] * (1 << d) + kept)
    kept = kept[order]
    values = coefficients[kept].tolist()
    return {index_support(s): c for s, c in zip(kept.tolist(), values)}


def fourier_weight_by_degree(
    f: BlackBox | WalshExpansion | Mapping[Iterable[int], float],
    d: int,
    *,
    dtype: torch.dtype | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Tensor:
    """W^k(f) = Σ_{|S|=k} f̂(S)² for k = 0..d, a float64 tensor of shape (d + 1,).

    Σ_k W^k = E f² (Parseval). From the coefficients of a :class:`WalshExpansion` or a
    {support: coefficient} mapping directly (any d ≥ its largest coordinate); for a black box,
    exactly from :func:`walsh_coefficients` (d ≤ :data:`MAX_EXACT_DIM`).
    """
    if isinstance(f, Mapping):
        f = WalshExpansion(f)
    if isinstance(f, WalshExpansion):
        check_dimension(f.supports, d)
        weights = torch.zeros(d + 1, dtype=torch.float64)
        for support, value in f.coefficients.items():
            weights[len(support)] += value * value
        return weights
    coefficients = walsh_coefficients(f, d, dtype=dtype, chunk_size=chunk_size).cpu()
    weights = torch.zeros(d + 1, dtype=torch.float64)
    return weights.scatter_add_(0, index_degrees(d), coefficients.square())


@dataclass(frozen=True)
class CoefficientEstimate:
    """A Monte-Carlo estimate of f̂(S) with its standard error and CLT interval [low, high]."""

    estimate: float
    stderr: float
    low: float
    high: float


def estimate_coefficients(
    f: BlackBox,
    d: int,
    supports: Iterable[Iterable[int]],
    n_samples: int,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    dtype: torch.dtype | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> dict[BooleanSupport, CoefficientEstimate]:
    """Estimates of f̂(S) = E[f(x) χ_S(x)] for the given supports, with confidence intervals.

    With x_1..x_n uniform on {±1}^d (one sample, seeded, shared by all supports) and
    Z_i = f(x_i) χ_S(x_i): estimate Z̄, standard error s/√n (s the sample standard deviation) and
    the interval Z̄ ± z_{(1+confidence)/2} · s/√n, which covers f̂(S) with probability → confidence
    as n → ∞ (CLT; f bounded on the finite cube). Intervals are marginal, one per support.
    Cost: n evaluations of f and n·m products for m supports; any d.
    """
    supports = [boolean_support(s, name="supports") for s in supports]
    if not supports:
        raise ValueError("supports: expected at least one support to estimate, got none")
    check_dimension(supports, d)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples: expected an integer >= 2, got {n_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, float) or not 0 < confidence < 1:
        raise ValueError(
            f"confidence: expected a number strictly between 0 and 1, got {confidence!r}"
        )
    check_chunk_size(chunk_size)
    dtype, device = black_box_input(f, dtype)
    generator = torch.Generator().manual_seed(seed)
    sums = torch.zeros(len(supports), dtype=torch.float64, device=device)
    squares = torch.zeros_like(sums)
    for start in range(0, n_samples, chunk_size):
        x = uniform_cube(min(chunk_size, n_samples - start), d, generator, dtype).to(device)
        z = evaluate(f, x)[:, None] * characters(x.to(torch.float64), supports)
        sums += z.sum(dim=0)
        squares += z.square().sum(dim=0)
    mean = sums / n_samples
    variance = ((squares - n_samples * mean.square()) / (n_samples - 1)).clamp(min=0)
    stderr = (variance / n_samples).sqrt()
    z_score = NormalDist().inv_cdf((1 + confidence) / 2)
    return {
        s: CoefficientEstimate(m, e, m - z_score * e, m + z_score * e)
        for s, m, e in zip(supports, mean.tolist(), stderr.tolist())
    }


__all__ = [
    "MAX_EXACT_DIM",
    "CoefficientEstimate",
    "cube_points",
    "estimate_coefficients",
    "fourier_weight_by_degree",
    "fwht",
    "hadamard",
    "index_support",
    "support_index",
    "walsh_coefficients",
    "walsh_transform",
]
