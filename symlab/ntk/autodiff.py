"""torch.func building blocks of the empirical NTK: per-point Jacobians and NTK-vector products.

The model is evaluated with ``functional_call`` on the trainable parameters being differentiated
plus, as constants, every other trainable parameter (detached): no function here records an
autograd graph through the model's own parameters, so their results hold no graph.
Methods and costs: the torch.func NTK tutorial and Novak et al., "Fast Finite Width Neural
Tangent Kernel", ICML 2022 (Jacobian contraction N K [FP] + N^2 K^2 P flops; NTK-vector
products, a VJP then a JVP per output basis vector, N^2 K [FP] flops).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap


def trainable_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> detached tensor for every parameter of ``model`` that requires grad."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def single_point(model: nn.Module, fixed: dict | None = None) -> Callable:
    """f(params, x) for ONE point x: the model's output on x[None], flattened to (K,).

    ``fixed`` (name -> tensor) holds constant parameters, overridden by ``params``.
    """
    fixed = {} if fixed is None else fixed

    def f(params, x):
        return functional_call(model, {**fixed, **params}, (x.unsqueeze(0),)).reshape(-1)

    return f


def batched(model: nn.Module) -> Callable:
    """f(params, X) for a batch X: outputs flattened to (N, K)."""

    def f(params, x):
        out = functional_call(model, params, (x,))
        return out.reshape(out.shape[0], -1)

    return f


def jacobians(
    model: nn.Module, params: dict, x: torch.Tensor, fixed: dict | None = None
) -> list[torch.Tensor]:
    """Per-point Jacobians d f(x_n) / d params, one (N, K, P_i) tensor per parameter tensor, by
    ``vmap(jacrev)`` (torch.func tutorial); ``fixed`` holds the other parameters as constants."""
    jac = vmap(jacrev(single_point(model, fixed)), (None, 0))(params, x)
    return [j.flatten(2) for j in jac.values()]


def contract_jacobians(j1: list, j2: list, trace: bool, diagonal: bool) -> torch.Tensor:
    """sum_i J1_i J2_i^T over parameter tensors: (N1, N2, K, K), (N1, N2) with trace, (N, K, K)
    or (N,) with diagonal (pairs x1[n], x2[n])."""
    if diagonal:
        eq = "nkp,nkp->n" if trace else "nkp,nlp->nkl"
    else:
        eq = "nkp,mkp->nm" if trace else "nkp,mlp->nmkl"
    return sum(torch.einsum(eq, a, b) for a, b in zip(j1, j2, strict=True))


def ntvp_block(model, params, x1, x2, trace, diagonal, basis_chunk) -> torch.Tensor:
    """Theta block by NTK-vector products: rows J(x1)^T e for each basis e, then J(x2) of them."""
    if diagonal:
        f = single_point(model)

        def per_point(a, b):
            _, pullback = vjp(lambda p: f(p, a), params)
            k = f(params, a).shape[0]

            def row(e):
                (tangent,) = pullback(e)
                return jvp(lambda p: f(p, b), (params,), (tangent,))[1]

            return vmap(row, chunk_size=basis_chunk)(torch.eye(k, dtype=x1.dtype, device=x1.device))

        block = vmap(per_point)(x1, x2)
        return torch.diagonal(block, dim1=1, dim2=2).sum(-1) if trace else block
    f = batched(model)
    out1, pullback = vjp(lambda p: f(p, x1), params)
    n1, k = out1.shape
    basis = torch.eye(n1 * k, dtype=out1.dtype, device=out1.device).reshape(n1 * k, n1, k)

    def row(e):
        (tangent,) = pullback(e)
        return jvp(lambda p: f(p, x2), (params,), (tangent,))[1]

    rows = vmap(row, chunk_size=basis_chunk)(basis)  # (n1 K, n2, K)
    block = rows.reshape(n1, k, x2.shape[0], k).permute(0, 2, 1, 3)
    return torch.diagonal(block, dim1=2, dim2=3).sum(-1) if trace else block
