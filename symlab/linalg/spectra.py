"""Soft notions of rank computed from a spectrum of singular values.

- effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective
  dimensionality", EUSIPCO): erank(s) = exp(H(p)), p_i = s_i / ||s||_1, H(p) = -sum p_i log p_i
  (0 log 0 = 0). 1 <= erank <= #{s_i > 0}, with equality on the right iff the nonzero s_i are equal.
- stable rank: srank(s) = sum s_i^2 / max s_i^2 = ||A||_F^2 / ||A||_2^2, 1 <= srank <= rank.

Both cost O(len(s)) and are computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _spectrum(singular_values: torch.Tensor | Sequence[float]) -> torch.Tensor:
    s = torch.as_tensor(singular_values).detach().to(device="cpu", dtype=torch.float64)
    if s.dim() != 1 or s.numel() == 0:
        raise ValueError(
            f"singular_values: expected a non-empty 1-D sequence, got shape {tuple(s.shape)}"
        )
    if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError("singular_values: expected finite non-negative values")
    if not bool((s > 0).any()):
        raise ValueError("singular_values: expected at least one positive value, got all zeros")
    return s


def effective_rank(singular_values: torch.Tensor | Sequence[float]) -> float:
    """exp of the Shannon entropy of s / ||s||_1 (Roy & Vetterli 2007)."""
    s = _spectrum(singular_values)
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def stable_rank(singular_values: torch.Tensor | Sequence[float]) -> float:
    """sum s_i^2 / max s_i^2 (= ||A||_F^2 / ||A||_2^2 for the singular values of A)."""
    s = _spectrum(singular_values)
    s = s / s.max()
    return float((s * s).sum())
