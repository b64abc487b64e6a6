"""Matérn Gaussian processes and the compositional task f* = h∘g of Jacot, Choi & Wen (ICLR 2025).

"How DNNs break the Curse of Dimensionality: Compositionality and Symmetry Learning" (arXiv
2407.05664) trains networks on Y = h(g(X)) with X ~ N(0, I_{d_in}), g: R^{d_in} → R^{d_mid} and
h: R^{d_mid} → R^{d_out} each a draw of a centred Gaussian process with the Matérn covariance

    k_ν(r) = 2^{1−ν} / Γ(ν) · (√(2ν) r)^ν · K_ν(√(2ν) r),   k_ν(0) = 1,

of the root-mean-square distance r(x, y) = ‖x − y‖ / √D over the D coordinates (length scale 1;
the authors' data-generation code), one independent draw per output coordinate. ν sets the
regularity: a draw has (a.s.) Sobolev smoothness just below ν. Half-integer ν = p + ½ has the
closed form k(r) = e^{−s} p!/(2p)! Σ_{i=0}^{p} (p+i)!/(i!(p−i)!) (2s)^{p−i}, s = √(2ν) r
(ν = ½: e^{−r}; ν = 3/2: (1 + √3 r) e^{−√3 r}); other ν use scipy's K_ν (slower).

Two samplers:

- :func:`matern_gp_sample` (exact, the paper's route): on given points, L z with L Lᵀ = K + εI
  (Cholesky, float64, jitter ε = 1e-4 as in the authors' code), z ~ N(0, I). O(n³) time, O(n²)
  memory: ~1 s for n = 4000, ~1 min for n = 12 500 on one core.
- :func:`matern_random_features` (random Fourier features, Rahimi & Recht 2007): a function
  f(x) = √(2/F) Σ_j w_j cos(⟨ω_j, x⟩ + b_j) with b_j ~ U[0, 2π), w_j ~ N(0, 1) and ω_j from the
  kernel's spectral density, which for the Matérn-ν kernel of Euclidean length scale ℓ in R^D is
  a multivariate Student-t with 2ν degrees of freedom: ω = z √(2ν / V) / ℓ, z ~ N(0, I_D),
  V ~ χ²_{2ν}. The RMS distance is the Euclidean one over √D, so ℓ = √D. E[f(x) f(y)] = k exactly
  for every F; f is Gaussian only as F → ∞ (a finite sum of cosines is smooth, so its roughness at
  scales finer than ~1/max‖ω_j‖ is lost). O(n F) time: any n.

:func:`composition_task` draws X, then Z = g(X) and Y = h(Z) with one sampler, from one seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy import special
from torch import Tensor

JITTER = 1e-4  # added to the kernel's diagonal before the Cholesky factorization (authors' value)
SAMPLERS = ("cholesky", "fourier")


def _check_nu(nu: float) -> float:
    if isinstance(nu, bool) or not isinstance(nu, int | float) or not 0 < nu < math.inf:
        raise ValueError(f"nu: expected a finite number > 0, got {nu!r}")
    return float(nu)


def matern_correlation(r: Tensor, nu: float) -> Tensor:
    """k_ν(r) for distances r ≥ 0 (module docstring): float64, the shape of ``r``; closed form for
    half-integer ν, scipy's modified Bessel function K_ν otherwise."""
    r = torch.as_tensor(r, dtype=torch.float64)
    if bool((r < 0).any()):
        raise ValueError("r: expected distances >= 0")
    return _correlation_in_place(r.clone(), _check_nu(nu))


def _correlation_in_place(r: Tensor, nu: float) -> Tensor:
    """k_ν(r), overwriting the float64 tensor ``r`` (peak memory: two arrays of its size)."""
    p = nu - 0.5
    if p == int(p) and p <= 50:  # Horner on Σ_i c_i t^{p−i}, t = 2s, then × e^{−s} p!/(2p)!
        p = int(p)
        t = r.mul_(2 * math.sqrt(2 * nu))
        coefficients = [
            math.factorial(p + i) / (math.factorial(i) * math.factorial(p - i))
            for i in range(p + 1)
        ]
        poly = torch.full_like(t, coefficients[0])
        for c in coefficients[1:]:
            poly.mul_(t).add_(c)
        poly.mul_(t.mul_(-0.5).exp_()).mul_(math.factorial(p) / math.factorial(2 * p))
        return poly
    values = r.mul_(math.sqrt(2 * nu)).numpy()
    positive = values > 1e-12  # k(0) = 1; below this the Bessel form loses its digits
    v = values[positive]
    with np.errstate(over="ignore", invalid="ignore"):
        log_k = (1 - nu) * math.log(2) - special.gammaln(nu) + nu * np.log(v)
        values[positive] = np.exp(log_k + np.log(special.kve(nu, v)) - v)
    values[~positive] = 1.0
    return r


def rms_distances(x: Tensor, y: Tensor) -> Tensor:
    """r(x_i, y_j) = ‖x_i − y_j‖ / √D for points of R^D (rows), in float64."""
    x, y = x.double(), y.double()
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x: expected (n, D) and (m, D) point sets, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return torch.cdist(x, y).div_(math.sqrt(x.shape[1]))


def matern_kernel(x: Tensor, y: Tensor, nu: float, length_scale: float = 1.0) -> Tensor:
    """The covariance matrix k_ν(r(x_i, y_j) / ℓ) of the RMS distance (module docstring)."""
    if not 0 < length_scale < math.inf:
        raise ValueError(f"length_scale: expected a finite number > 0, got {length_scale!r}")
    return _correlation_in_place(rms_distances(x, y).div_(length_scale), _check_nu(nu))


def matern_gp_sample(
    x: Tensor,
    nu: float,
    n_outputs: int,
    generator: torch.Generator,
    *,
    length_scale: float = 1.0,
    jitter: float = JITTER,
) -> Tensor:
    """``n_outputs`` independent draws of the Matérn-ν GP on the rows of ``x``, as an
    (n, n_outputs) float64 tensor: L z with L Lᵀ = K + ``jitter`` I (exact in law for that
    covariance)."""
    if not jitter >= 0:
        raise ValueError(f"jitter: expected a number >= 0, got {jitter!r}")
    kernel = matern_kernel(x, x, nu, length_scale)
    kernel.diagonal().add_(jitter)
    factor = torch.linalg.cholesky(kernel)
    z = torch.randn(x.shape[0], n_outputs, generator=generator, dtype=torch.float64)
    return factor @ z


@dataclass(frozen=True)
class RandomFourierFunction:
    """f(x) = √(2/F) cos(x ωᵀ + b) w: frequencies ω (F, D), phases b (F,), weights w (F, K)."""

    frequencies: Tensor
    phases: Tensor
    weights: Tensor

    def __call__(self, x: Tensor, chunk: int = 4096) -> Tensor:
        """f at the rows of ``x`` (float64), ``chunk`` rows at a time (memory chunk × F)."""
        x = x.double()
        parts = [
            torch.cos(x[i : i + chunk] @ self.frequencies.T + self.phases) @ self.weights
            for i in range(0, x.shape[0], chunk)
        ]
        return torch.cat(parts) * math.sqrt(2 / self.frequencies.shape[0])


def matern_random_features(
    dim: int,
    nu: float,
    n_outputs: int,
    n_features: int,
    generator: torch.Generator,
    *,
    length_scale: float = 1.0,
) -> RandomFourierFunction:
    """A random-Fourier-feature draw of the Matérn-ν GP on R^``dim`` with the RMS distance of
    length scale ``length_scale`` (module docstring); E[f(x) f(y)ᵀ] = k_ν(r(x, y)/ℓ) I."""
    nu = _check_nu(nu)
    if n_features < 1:
        raise ValueError(f"n_features: expected an integer >= 1, got {n_features!r}")
    z = torch.randn(n_features, dim, generator=generator, dtype=torch.float64)
    # χ²_{2ν} from numpy, seeded from ``generator`` (torch has no seeded χ² sampler)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    v = torch.from_numpy(rng.chisquare(2 * nu, n_features))
    scale = length_scale * math.sqrt(dim)  # RMS distance = Euclidean / √D
    frequencies = z * torch.sqrt(2 * nu / v)[:, None] / scale
    phases = torch.rand(n_features, generator=generator, dtype=torch.float64) * 2 * math.pi
    weights = torch.randn(n_features, n_outputs, generator=generator, dtype=torch.float64)
    return RandomFourierFunction(frequencies, phases, weights)


@dataclass(frozen=True)
class CompositionTask:
    """Points X (n, d_in), Z = g(X) (n, d_mid) and Y = h(Z) (n, d_out), float64."""

    x: Tensor
    z: Tensor
    y: Tensor


def composition_task(
    n: int,
    nu_g: float,
    nu_h: float,
    *,
    d_in: int = 15,
    d_mid: int = 3,
    d_out: int = 20,
    seed: int = 0,
    sampler: Literal["cholesky", "fourier"] = "cholesky",
    n_features: int = 4096,
    jitter: float = JITTER,
) -> CompositionTask:
    """n points of the compositional task (module docstring): X ~ N(0, I_{d_in}), Z = g(X) with g
    a Matérn-ν_g GP draw, Y = h(Z) with h a Matérn-ν_h GP draw, length scale 1, all from one
    generator seeded with ``seed``. ``sampler="cholesky"`` draws g on the n points of X and h on
    the n points of Z exactly (up to ``jitter``); ``"fourier"`` draws g and h as functions with
    ``n_features`` random Fourier features each. g is drawn before h, so X and Z do not depend on
    ν_h: tasks of one seed and one ν_g share g and differ only in h."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
    for name, value in (("n", n), ("d_in", d_in), ("d_mid", d_mid), ("d_out", d_out)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    generator = torch.Generator().manual_seed(int(seed))
    x = torch.randn(n, d_in, generator=generator, dtype=torch.float64)
    if sampler == "cholesky":
        z = matern_gp_sample(x, nu_g, d_mid, generator, jitter=jitter)
        y = matern_gp_sample(z, nu_h, d_out, generator, jitter=jitter)
    else:
        g = matern_random_features(d_in, nu_g, d_mid, n_features, generator)
        h = matern_random_features(d_mid, nu_h, d_out, n_features, generator)
        z = g(x)
        y = h(z)
    return CompositionTask(x, z, y)
