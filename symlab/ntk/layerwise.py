"""The empirical NTK split by layer, and each layer's share of the error reduction.

Θ(x, x') = Σ_ℓ Θ_ℓ(x, x'), Θ_ℓ(x, x')_{kk'} = ⟨∂_{θ_ℓ} f_k(x), ∂_{θ_ℓ} f_k'(x')⟩ with θ_ℓ the
trainable parameters of layer ℓ (weight and bias). Under gradient flow on the loss
½ Σ_n ‖f(x_n) − y_n‖², the residual r = f(X) − Y moves by dr/dt = −Θ r, so

    −dL/dt = ⟨r, Θ r⟩ = Σ_ℓ ⟨r, Θ_ℓ r⟩,

and ⟨r, Θ_ℓ r⟩ ≥ 0 is layer ℓ's part of the error reduction (Dandi & Jacot, "Understanding
layer-wise contributions in deep neural networks through spectral analysis", arXiv 2111.03972).

:func:`layerwise_ntk` computes the Θ_ℓ that ``empirical_ntk(method="structured")`` sums: the same
per-layer factors (:func:`symlab.ntk.structured.layer_factors`, one forward and K backward
passes) and the same per-layer accumulation, into one buffer per layer instead of one in all.
Parameters outside nn.Linear / zero-padded nn.Conv2d layers are grouped by the module that owns
them and contracted from their Jacobians (as ``empirical_ntk`` does for them).
"""

from __future__ import annotations

import torch
from torch import nn

from symlab.ntk.autodiff import contract_jacobians, jacobians, trainable_params
from symlab.ntk.structured import (
    accumulate,
    covered_parameter_names,
    layer_factors,
    mirror,
    point_blocks,
    structured_layers,
)


def _check(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not torch.is_tensor(x) or x.dim() < 1 or x.shape[0] < 1:
        raise ValueError("x: expected a tensor with at least one point along dimension 0")
    params = trainable_params(model)
    if not params:
        raise ValueError("model: expected at least one parameter that requires grad")
    p_dtype = next(iter(params.values())).dtype
    if x.is_floating_point() and x.dtype != p_dtype:
        raise ValueError(f"x: expected {p_dtype} points like the model's parameters, got {x.dtype}")
    return params


def layerwise_ntk(
    model: nn.Module, x: torch.Tensor, *, trace: bool = False
) -> dict[str, torch.Tensor]:
    """{layer name: Θ_ℓ(x, x)} with Σ_ℓ Θ_ℓ = ``empirical_ntk(model, x)``; each (N, N, K, K), or
    (N, N) with ``trace``. Names are those of ``model.named_modules()``, in the order of the
    model's modules; the network must treat the points of a batch independently."""
    params = _check(model, x)
    layers = structured_layers(model)
    covered = covered_parameter_names(model, layers)
    with torch.no_grad():
        out, factors = layer_factors(model, layers, x)
        if len(factors) != len(layers):
            raise ValueError(
                "model: a Linear/Conv2d layer with trainable parameters is never called"
            )
        n, k = out.shape
        blocks = point_blocks(n, k)
        kernels: dict[str, torch.Tensor] = {}
        for name, f in zip(layers, factors, strict=True):
            buffer = out.new_zeros((n, k, n, k))
            accumulate(buffer, f, f, symmetric=True, blocks=blocks)
            mirror(buffer, blocks)
            kernels[name] = buffer.permute(0, 2, 1, 3)
        groups: dict[str, dict[str, torch.Tensor]] = {}
        for pname, p in params.items():
            if pname not in covered:
                owner = pname.rsplit(".", 1)[0] if "." in pname else ""
                groups.setdefault(owner, {})[pname] = p
        for owner, group in groups.items():
            j = jacobians(model, group, x, fixed=params)
            kernels[owner] = contract_jacobians(j, j, False, False)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    ordered = {name: kernels[name] for name in sorted(kernels, key=order.__getitem__)}
    if trace:
        return {name: theta.diagonal(dim1=2, dim2=3).sum(-1) for name, theta in ordered.items()}
    return ordered


def error_reduction(kernels: dict[str, torch.Tensor], residual: torch.Tensor) -> dict[str, float]:
    """{layer: ⟨r, Θ_ℓ r⟩} for a residual r (N, K) (or (N,) with traced (N, N) kernels): each
    layer's part of −dL/dt under gradient flow on ½‖r‖² (module docstring)."""
    if not kernels:
        raise ValueError("kernels: expected at least one layer's kernel")
    out = {}
    for name, theta in kernels.items():
        r = residual.to(theta.dtype)
        if theta.dim() == 4:
            if r.dim() == 1:
                r = r[:, None]
            if r.shape != (theta.shape[0], theta.shape[2]):
                raise ValueError(
                    f"residual: expected shape {(theta.shape[0], theta.shape[2])}, got {tuple(residual.shape)}"
                )
            out[name] = float(torch.einsum("nk,nmkl,ml->", r, theta, r))
        else:
            r = r.reshape(-1)
            if r.shape[0] != theta.shape[0]:
                raise ValueError(
                    f"residual: expected {theta.shape[0]} entries, got {tuple(residual.shape)}"
                )
            out[name] = float(r @ theta @ r)
    return out


def error_reduction_shares(
    kernels: dict[str, torch.Tensor], residual: torch.Tensor
) -> dict[str, float]:
    """Each layer's fraction ⟨r, Θ_ℓ r⟩ / ⟨r, Θ r⟩ of the error reduction (sums to 1)."""
    parts = error_reduction(kernels, residual)
    total = sum(parts.values())
    if not total > 0:
        raise ValueError("residual: expected a residual that the kernel reduces (⟨r, Θ r⟩ > 0)")
    return {name: value / total for name, value in parts.items()}
