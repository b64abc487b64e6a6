"""Spectra and ranks of any ``nn.Module``'s layers: weights and hidden representations.

:func:`layer_spectra` runs the model once on ``inputs`` with a forward hook on every leaf module
(no hand-written list of layer types) and returns, per leaf, the singular values of

- its weight matrix, when it has a ``weight`` of two or more dimensions (a convolution's kernel
  reshaped to (c_out, c_in · k_1 ⋯ k_n)), and
- its output Z ∈ R^{N × m} on the N inputs (flattened per input), and of the centered output
  Z − 1 μᵀ (μ the mean over inputs).

Representations go through the Gram matrix: s_i(Z) = √λ_i(ZᵀZ) (or of ZZᵀ when N < m), from one
float64 product and a symmetric eigensolver, about a third of the work of an SVD of Z; the
centered Gram is ZᵀZ − N μμᵀ, from the same product. Rounding limits the Gram route to singular
values above ~1e-8 s_max (it squares the condition number), far below any threshold used for
ranks here. Weights, small, go through ``torch.linalg.svdvals`` directly.

Soft ranks of a spectrum s (all in float64): :func:`numerical_rank` (#{s_i > tol}),
``effective_rank`` (exp of the entropy of s/‖s‖₁, Roy & Vetterli 2007), ``stable_rank``
(‖s‖₂²/s_max²) and :func:`nuclear_ratio` ‖s‖₁²/‖s‖₂², the lower bound of the cost of identity
‖A σ(A)⁺‖_F² ≥ ‖A‖_*²/‖A‖_F² of Jacot & Kaiser (2024, Prop. 1). :func:`bottleneck_profile` is the
rank of each representation under one documented rule, with the same profile at a tenth and ten
times the threshold beside it (Jacot, "Bottleneck structure in learned features", NeurIPS 2023).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symlab.linalg.spectra import effective_rank, stable_rank

PROFILE_RTOL = (
    1e-2  # the profile's rule: count s_i > PROFILE_RTOL · s_max (centered representation)
)


def _spectrum(s: Tensor | Sequence[float], name: str = "s") -> Tensor:
    s = torch.as_tensor(s).detach().to(device="cpu", dtype=torch.float64)
    if s.dim() != 1 or not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError(f"{name}: expected a 1-D sequence of finite non-negative singular values")
    return s


def numerical_rank(
    s: Tensor | Sequence[float], rtol: float | None = None, atol: float | None = None
) -> int:
    """#{s_i > tol} for a spectrum s, tol = max(atol, rtol · s_max); with neither given,
    rtol = len(s) · eps (float64), the matrix_rank rule for a square matrix of that size."""
    s = _spectrum(s)
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and not value > 0:
            raise ValueError(f"{name}: expected a positive threshold, got {value!r}")
    if rtol is None and atol is None:
        rtol = max(len(s), 1) * torch.finfo(torch.float64).eps
    s_max = float(s.max()) if len(s) else 0.0
    tol = max(atol or 0.0, (rtol or 0.0) * s_max)
    return int((s > tol).sum())


def nuclear_ratio(s: Tensor | Sequence[float]) -> float:
    """‖s‖₁² / ‖s‖₂², between 1 and rank; a lower bound of the cost of identity (Jacot & Kaiser
    2024, Prop. 1). 0 for an all-zero spectrum."""
    s = _spectrum(s)
    norm2 = float(s.square().sum())
    return float(s.sum()) ** 2 / norm2 if norm2 > 0 else 0.0


@dataclass
class LayerSpectrum:
    """Singular values of one leaf module: its weight (None without a matrix weight) and its
    output on the inputs, raw and centered."""

    name: str
    kind: str
    weight: Tensor | None
    representation: Tensor
    centered: Tensor

    def ranks(self, rtol: float = PROFILE_RTOL) -> dict[str, float]:
        """numerical (s_i > rtol·s_max), effective and stable rank and nuclear ratio of the
        centered representation, and the weight's numerical rank."""
        s = self.centered
        positive = bool((s > 0).any())
        return {
            "rank": numerical_rank(s, rtol=rtol),
            "effective_rank": effective_rank(s) if positive else 0.0,
            "stable_rank": stable_rank(s) if positive else 0.0,
            "nuclear_ratio": nuclear_ratio(s),
            "weight_rank": numerical_rank(self.weight, rtol=rtol)
            if self.weight is not None
            else None,
        }


def gram_singular_values(z: Tensor) -> tuple[Tensor, Tensor]:
    """(s(Z), s(Z − 1μᵀ)) of an (N, m) matrix from its float64 Gram matrix (see module docstring)."""
    z = z.detach().to(torch.float64).reshape(len(z), -1)
    n = len(z)
    mean = z.mean(dim=0)
    if n >= z.shape[1]:
        gram = z.T @ z
        centered = gram - n * torch.outer(mean, mean)
    else:
        gram = z @ z.T
        row = z @ mean  # (N,), for (Z − 1μᵀ)(Z − 1μᵀ)ᵀ = G − 1rᵀ − r1ᵀ + μᵀμ 11ᵀ
        centered = gram - row[:, None] - row[None, :] + float(mean @ mean)
    values = [torch.linalg.eigvalsh(g).clamp_min(0).sqrt().flip(0) for g in (gram, centered)]
    return values[0], values[1]


def _selected_leaves(model: nn.Module, leaves) -> list[nn.Module]:
    """The leaf modules of ``model`` that ``leaves`` selects (None: all; else module types and/or
    names as in ``model.named_modules()``)."""
    every = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    if leaves is None:
        return [m for _, m in every]
    if isinstance(leaves, str | type) or not isinstance(leaves, Sequence | set | frozenset):
        leaves = [leaves]
    types = tuple(item for item in leaves if isinstance(item, type))
    names = {item for item in leaves if isinstance(item, str)}
    if len(types) + len(names) != len(leaves):
        raise ValueError(f"leaves: expected module types and/or leaf names, got {leaves!r}")
    unknown = names - {name for name, _ in every}
    if unknown:
        raise ValueError(f"leaves: no leaf module is named {sorted(unknown)[0]!r}")
    chosen = [m for name, m in every if name in names or (types and isinstance(m, types))]
    if not chosen:
        raise ValueError(f"leaves: expected a selection that matches a leaf module, got {leaves!r}")
    return chosen


def layer_spectra(model: nn.Module, inputs: Tensor, *, leaves=None) -> list[LayerSpectrum]:
    """Spectra of the leaf modules of ``model`` on ``inputs`` (one forward pass, no gradients),
    in the order the modules ran. ``leaves`` reads only some of them: module types (e.g.
    ``(nn.ReLU,)`` for the hidden representations of an MLP) and/or leaf names; None reads every
    leaf. Cost: the forward pass, one m × m (or N × N) float64 Gram and two eigensolves per read
    leaf, one SVD per read weight matrix."""
    outputs: list[tuple[str, nn.Module, Tensor]] = []
    names = {module: name for name, module in model.named_modules()}
    selected = _selected_leaves(model, leaves)

    def hook(module: nn.Module, _inputs, output) -> None:
        if isinstance(output, Tensor) and output.dim() >= 1 and output.shape[0] == len(inputs):
            outputs.append((names[module], module, output.detach()))

    handles = [m.register_forward_hook(hook) for m in selected]
    try:
        with torch.no_grad():
            model(inputs)
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"inputs: expected a batch the model accepts, got shape {tuple(inputs.shape)} "
            f"({str(error).splitlines()[0]})"
        ) from None
    finally:
        for handle in handles:
            handle.remove()
    if not outputs:
        raise ValueError("model: expected at least one leaf module whose output hooks can read")
    spectra = []
    for name, module, output in outputs:
        weight = getattr(module, "weight", None)
        weight_sv = None
        if isinstance(weight, Tensor) and weight.dim() >= 2:
            matrix = weight.detach().to(torch.float64).reshape(weight.shape[0], -1)
            weight_sv = torch.linalg.svdvals(matrix)
        raw, centered = gram_singular_values(output)
        spectra.append(LayerSpectrum(name, type(module).__name__, weight_sv, raw, centered))
    return spectra


def bottleneck_profile(
    model: nn.Module, inputs: Tensor, rtol: float = PROFILE_RTOL
) -> dict[str, list]:
    """The rank of each leaf's centered representation, #{s_i > rtol · s_max} (the rule), with
    the profiles at rtol/10 and 10·rtol beside it (the rule's sensitivity), the layer names and
    the weights' ranks under the same rule."""
    if not rtol > 0 or rtol * 10 >= 1:
        raise ValueError(f"rtol: expected a threshold in (0, 0.1), got {rtol!r}")
    spectra = layer_spectra(model, inputs)
    return {
        "layer": [s.name for s in spectra],
        "rank": [numerical_rank(s.centered, rtol=rtol) for s in spectra],
        "rank_low_threshold": [numerical_rank(s.centered, rtol=rtol / 10) for s in spectra],
        "rank_high_threshold": [numerical_rank(s.centered, rtol=rtol * 10) for s in spectra],
        "weight_rank": [
            numerical_rank(s.weight, rtol=rtol) if s.weight is not None else None for s in spectra
        ],
        "rtol": [rtol / 10, rtol, rtol * 10],
    }
