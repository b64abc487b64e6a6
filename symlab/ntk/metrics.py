"""Kernel metrics for tracking the empirical NTK during training.

- kernel distance (Fort et al., "Deep learning versus kernel learning: an empirical study of loss
  landscape geometry and the time evolution of the Neural Tangent Kernel", NeurIPS 2020):
  S(K0, K1) = 1 - <K0, K1>_F / (||K0||_F ||K1||_F), in [0, 2], invariant to rescaling either kernel.
- kernel velocity (Fort et al. 2020): v(t) = S(K_t, K_{t + dt}) / dt between consecutive kernels.
- centered kernel-target alignment (Cortes, Mohri & Rostamizadeh, "Algorithms for learning kernels
  based on centered alignment", JMLR 2012): A(K, Y Y^T) = <K_c, (YY^T)_c>_F / (||K_c||_F
  ||(YY^T)_c||_F) with K_c = H K H, H = I - 11^T / N; uncentered: <K, YY^T>_F / (||K|| ||YY^T||).
- NTK spectrum: eigenvalues of Theta viewed as the (N K, N K) matrix (point-major rows), and its
  effective rank (Roy & Vetterli 2007).

All are computed in float64; costs are linear in the number of kernel entries, except the
spectrum, O((N K)^3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

try:
    from symlab.linalg.spectra import effective_rank
except ImportError:  # pragma: no cover - spectra.py is written in parallel

    def effective_rank(singular_values) -> float:
        """exp of the Shannon entropy of s / ||s||_1 (Roy & Vetterli 2007)."""
        s = torch.as_tensor(singular_values, dtype=torch.float64)
        p = s / s.sum()
        p = p[p > 0]
        return float(torch.exp(-(p * p.log()).sum()))


def _f64(name: str, k) -> torch.Tensor:
    if not torch.is_tensor(k):
        raise ValueError(f"{name}: expected a tensor, got {type(k).__name__}")
    return k.detach().to(device="cpu", dtype=torch.float64)


def kernel_distance(k0: torch.Tensor, k1: torch.Tensor) -> float:
    """1 - <k0, k1>_F / (||k0||_F ||k1||_F) for two kernels of the same (any) shape (Fort et al. 2020).

    0 for kernels that are positive multiples of each other; clamped to [0, 2] against rounding.
    """
    a, b = _f64("k0", k0), _f64("k1", k1)
    if a.shape != b.shape:
        raise ValueError(f"k1: expected the shape of k0 {tuple(a.shape)}, got {tuple(b.shape)}")
    na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    if na == 0 or nb == 0:
        raise ValueError("k0, k1: expected kernels with nonzero Frobenius norm")
    cosine = float((a * b).sum() / (na * nb))
    return min(2.0, max(0.0, 1.0 - cosine))


def kernel_velocity(
    kernels: Sequence[torch.Tensor] | torch.Tensor, times: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """(T - 1,) velocities S(K_i, K_{i+1}) / (t_{i+1} - t_i) along a kernel trajectory (Fort et al. 2020).

    ``kernels``: T kernels of one shape (a sequence, or a tensor stacked along dim 0); ``times``:
    T strictly increasing times (steps or epochs).
    """
    kernels = list(kernels)
    t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if len(kernels) < 2:
        raise ValueError(f"kernels: expected at least two kernels, got {len(kernels)}")
    if t.numel() != len(kernels):
        raise ValueError(f"times: expected {len(kernels)} times (one per kernel), got {t.numel()}")
    dt = t[1:] - t[:-1]
    if bool((dt <= 0).any()):
        raise ValueError("times: expected strictly increasing values")
    d = torch.tensor(
        [kernel_distance(a, b) for a, b in zip(kernels[:-1], kernels[1:], strict=True)]
    )
    return d / dt


def _center(k: torch.Tensor) -> torch.Tensor:
    """H K H over the two point axes (dims 0 and 1), H = I - 11^T / N."""
    k = k - k.mean(dim=0, keepdim=True)
    return k - k.mean(dim=1, keepdim=True)


def kernel_alignment(
    k: torch.Tensor, y: torch.Tensor, centered: bool = True, outputs: str = "trace"
) -> float:
    """Kernel-target alignment of k with the target kernel Y Y^T (Cortes et al. 2012).

    ``k``: (N, N) or an NTK (N, N, K, K); ``y``: (N,) or (N, C). For an (N, N, K, K) kernel,
    ``outputs="trace"`` (default) aligns the output-traced kernel sum_k Theta_kk (N, N) with
    Y Y^T (the usual choice, any C); ``outputs="full"`` aligns the (N K, N K) kernel with
    vec(Y) vec(Y)^T (needs C = K), i.e. target entries y_{n k} y_{m k'}. Centering subtracts the
    means over the point axes (H K H, H = I - 11^T / N) of both kernels. Returns a float in [-1, 1]
    (in [0, 1] when centered and k is PSD).
    """
    kk, yy = _f64("k", k), _f64("y", y)
    if outputs not in ("trace", "full"):
        raise ValueError(f"outputs: expected 'trace' or 'full', got {outputs!r}")
    if kk.dim() not in (2, 4) or kk.shape[0] != kk.shape[1]:
        raise ValueError(f"k: expected shape (N, N) or (N, N, K, K), got {tuple(kk.shape)}")
    n = kk.shape[0]
    if yy.dim() == 1:
        yy = yy[:, None]
    if yy.dim() != 2 or yy.shape[0] != n:
        raise ValueError(f"y: expected shape ({n},) or ({n}, C), got {tuple(y.shape)}")
    if kk.dim() == 4 and outputs == "trace":
        kk = torch.diagonal(kk, dim1=2, dim2=3).sum(-1)
    if kk.dim() == 4:
        if yy.shape[1] != kk.shape[2]:
            raise ValueError(
                f"y: outputs='full' needs {kk.shape[2]} target columns, got {yy.shape[1]}"
            )
        target = torch.einsum("nk,ml->nmkl", yy, yy)
    else:
        target = yy @ yy.T
    if centered:
        kk, target = _center(kk), _center(target)
    nk, nt = torch.linalg.vector_norm(kk), torch.linalg.vector_norm(target)
    if nk == 0 or nt == 0:
        raise ValueError("k, y: expected a kernel and a target with nonzero (centered) norm")
    return float((kk * target).sum() / (nk * nt))


def ntk_matrix(k: torch.Tensor) -> torch.Tensor:
    """An (N, N, K, K) NTK as the (N K, N K) matrix with point-major rows; (N, N) unchanged."""
    if k.dim() == 2:
        return k
    if k.dim() != 4:
        raise ValueError(f"k: expected shape (N, N) or (N, N, K, K), got {tuple(k.shape)}")
    n1, n2, ka, kb = k.shape
    return k.permute(0, 2, 1, 3).reshape(n1 * ka, n2 * kb)


def ntk_spectrum(k: torch.Tensor) -> torch.Tensor:
    """Eigenvalues, descending, of the symmetric (N K, N K) NTK matrix, in float64.

    The matrix is symmetrised ((M + M^T) / 2) against rounding; cost O((N K)^3).
    """
    m = ntk_matrix(_f64("k", k))
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"k: expected a square kernel (x2 = x1), got {tuple(k.shape)}")
    return torch.linalg.eigvalsh((m + m.T) / 2).flip(0)


def ntk_effective_rank(k: torch.Tensor) -> float:
    """Effective rank exp(H(lambda / ||lambda||_1)) of the NTK spectrum (negative rounding -> 0)."""
    return effective_rank(ntk_spectrum(k).clamp_min(0.0))
