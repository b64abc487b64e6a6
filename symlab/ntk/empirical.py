"""Empirical neural tangent kernel Theta(x, x') = J(x) J(x')^T of any nn.Module.

Theta has shape (N1, N2, K, K) (neural-tangents' ``trace_axes=()``): entry [n, m, k, k'] is
<d f_k(x1_n) / d theta, d f_k'(x2_m) / d theta>, the sum over every parameter of ``model`` that
requires grad (freeze a parameter to leave it out). K is the number of entries of one output.

Methods (Novak et al., "Fast Finite Width Neural Tangent Kernel", ICML 2022; the torch.func NTK
tutorial). N = points, K = outputs, P = parameters, [FP] = one forward pass of one point:

- ``"structured"``: per-layer formula for nn.Linear / nn.Conv2d (see ``symlab.ntk.structured``),
  no Jacobian materialised; parameters outside those layers (LayerNorm, embeddings, tied weights)
  are added by Jacobian contraction over those parameters only. For an L-layer width-W MLP:
  N K [FP] + N^2 K^2 L W flops, memory N K L W.
- ``"jacobian"``: per-point Jacobians J (N, K, P) by ``vmap(jacrev)``, contracted per parameter
  tensor: N K [FP] + N^2 K^2 P flops, memory N K P.
- ``"ntvp"``: NTK-vector products, a VJP then a JVP per output basis vector: N^2 K [FP] flops;
  the basis vectors are vmapped in chunks so that memory stays within ``memory_budget``.
- ``"auto"`` (cost model): "structured" when at least half of the trainable parameters lie in
  supported layers (the usual case: it is the cheapest by the exponents above); otherwise
  "jacobian" when one chunk's Jacobians, 2 * chunk * K * P numbers, fit in ``memory_budget``
  bytes; otherwise "ntvp". Auto only picks a method that runs on the model: each candidate is
  probed once on the first point and the answer cached per model (``symlab.ntk.support``).
  "structured" is checked against a backward pass (v^T Theta(x, x) v = ||grad_theta v^T f(x)||^2
  for a random v): a parameter used outside its layer's forward (e.g. ``F.linear(x,
  layer.weight)`` elsewhere) fails it. "ntvp" needs forward-mode AD (nn.MultiheadAttention's
  eval-mode kernel has none), "jacobian" and "ntvp" need vmap (no ``.item()`` in the forward):
  auto then takes the other one, while an explicitly requested method that does not run raises
  one ValueError saying why.
  The full kernel is accumulated over layers in one point-major buffer; for x2 = x1 only the
  Gram blocks on or below the diagonal are computed (about half the N^2 K^2 flops).

``chunk_size`` bounds the points processed at once on each side (peak memory of the Jacobian
method: 2 * chunk * K * P numbers; of the structured method: factors of size N (I + K O) per layer,
linear in N). When x2 is None (or is x1 itself) each point's work is done once and, the kernel
being symmetric, only blocks on or above the diagonal are computed; an x2 equal to x1 (a copy,
checked by one O(N d) comparison) is treated the same way. All methods assume the
network treats batch points independently (no batch statistics). The kernel is a plain tensor:
it is computed without recording an autograd graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from symlab.ntk.autodiff import (
    contract_jacobians,
    jacobians,
    ntvp_block,
    trainable_params,
)
from symlab.ntk.structured import (
    accumulate,
    contract,
    covered_parameter_names,
    layer_factors,
    mirror,
    point_blocks,
    structured_layers,
)
from symlab.ntk.support import unsupported, unsupported_error

METHODS = ("auto", "structured", "jacobian", "ntvp")
DEFAULT_MEMORY_BUDGET = 2**30


def _chunks(n: int, size: int | None) -> list[slice]:
    size = n if size is None else size
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _probe(model: nn.Module, x0: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(output on one point, number of activation entries of one point over all leaf modules)."""
    sizes: list[int] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [
        m.register_forward_hook(
            lambda _m, _i, out: sizes.append(out.numel() if torch.is_tensor(out) else 0)
        )
        for m in leaves
    ]
    try:
        with torch.no_grad():
            out = model(x0)
    finally:
        for handle in handles:
            handle.remove()
    return out, sum(sizes) + x0.numel()


def _resolve(model, x1, method, chunk_size, memory_budget, k, n_params) -> tuple[str, dict]:
    layers = structured_layers(model)
    covered = covered_parameter_names(model, layers)
    sizes = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    p_covered = sum(sizes[n] for n in covered)
    rest = [n for n in sizes if n not in covered]
    info = {"layers": layers, "rest": rest, "k": k}
    x0 = x1[:1]
    if method != "auto":
        reason = unsupported(model, method, x0, layers, rest)
        if reason is not None:
            raise unsupported_error(method, reason)
        return method, info
    if p_covered >= n_params / 2 and unsupported(model, "structured", x0, layers, rest) is None:
        return "structured", info
    chunk = x1.shape[0] if chunk_size is None else chunk_size
    itemsize = x1.element_size() if x1.is_floating_point() else 8
    fits = 2 * chunk * k * n_params * itemsize <= memory_budget
    reasons = []
    for candidate in ("jacobian", "ntvp") if fits else ("ntvp", "jacobian"):
        reason = unsupported(model, candidate, x0, layers, rest)
        if reason is None:
            return candidate, info
        reasons.append(f"{candidate!r} {reason}")
    raise ValueError(
        f"method: 'auto' found no method that runs on this model ({'; '.join(reasons)})"
    )


def empirical_ntk(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    method: str = "auto",
    chunk_size: int | None = None,
    trace: bool = False,
    diagonal: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """Empirical NTK Theta(x1, x2) of ``model`` over its trainable parameters.

    Only parameters with ``requires_grad`` count (frozen ones are not trained, so they do not
    move the function); :func:`symlab.linalg.parameter_jacobian` differentiates every parameter,
    as functional dimension is defined over the whole parameter space. The NTK equals J J^T of
    that Jacobian when nothing is frozen.

    Returns (N1, N2, K, K); with ``trace`` the trace over outputs (N1, N2); with ``diagonal`` only
    the pairs (x1[n], x2[n]) (x2 defaults to x1), shape (N, K, K), or (N,) with ``trace``.
    ``method`` is one of "auto", "structured", "jacobian", "ntvp" (costs and the auto rule in the
    module docstring); ``chunk_size`` bounds the points per block; ``memory_budget`` (bytes) sizes
    auto's choice and NTVP's basis chunks. Works in float32 and float64 (the model's dtype).
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not torch.is_tensor(x1) or x1.dim() < 1 or x1.shape[0] < 1:
        raise ValueError("x1: expected a tensor with at least one point along dimension 0")
    if x2 is not None and (not torch.is_tensor(x2) or x2.dim() < 1 or x2.shape[0] < 1):
        raise ValueError("x2: expected None or a tensor with at least one point along dimension 0")
    if x2 is not None and x2.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x2: expected points of shape {tuple(x1.shape[1:])}, got {tuple(x2.shape[1:])}"
        )
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size: expected None or a positive integer, got {chunk_size!r}")
    if diagonal and x2 is not None and x2.shape[0] != x1.shape[0]:
        raise ValueError(
            f"x2: diagonal=True needs as many points as x1 ({x1.shape[0]}), got {x2.shape[0]}"
        )
    params = trainable_params(model)
    if not params:
        raise ValueError("model: expected at least one parameter that requires grad")
    p_dtype = next(iter(params.values())).dtype
    for name, x in (("x1", x1), ("x2", x2)):
        if x is not None and x.is_floating_point() and x.dtype != p_dtype:
            raise ValueError(
                f"{name}: expected {p_dtype} points like the model's parameters, got {x.dtype}"
            )
    if model.training and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats is not None
        for m in model.modules()
    ):
        raise ValueError(
            "model: batch normalisation in training mode couples the points of a batch (and "
            "its running statistics would change); call model.eval() first"
        )
    # no graph is recorded outside the probes' own autograd passes: the kernel is a plain tensor
    # even when the model reads tensors that require grad (e.g. parameters not differentiated)
    with torch.no_grad():
        return _kernel(model, params, x1, x2, method, chunk_size, trace, diagonal, memory_budget)


def _kernel(model, params, x1, x2, method, chunk_size, trace, diagonal, memory_budget):
    n_params = sum(p.numel() for p in params.values())
    # x2 equal to x1 (a copy) is treated as x1 itself: each point's work once, blocks j >= i
    symmetric = x2 is None or x2 is x1 or _same_points(x1, x2)
    x2 = x1 if x2 is None else x2
    try:
        probe_out, activations = _probe(model, x1[:1])
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"x1: the model cannot be evaluated on points of shape {tuple(x1.shape[1:])} ({error})"
        ) from error
    k, dtype = probe_out[0].numel(), probe_out.dtype
    method, info = _resolve(model, x1, method, chunk_size, memory_budget, k, n_params)
    # NTVP memory per basis vector: a parameter tangent plus tangent activations of both chunks
    per_vector = n_params + 2 * min(x1.shape[0], chunk_size or x1.shape[0]) * activations
    basis_chunk = max(1, memory_budget // (2 * per_vector * probe_out.element_size()))
    block_fn = _block_function(model, params, method, info, trace, diagonal, basis_chunk)
    c1, c2 = _chunks(x1.shape[0], chunk_size), _chunks(x2.shape[0], chunk_size)
    if diagonal:
        side2 = "1" if symmetric else "2"
        return torch.cat([block_fn(("1", i), x1[s], (side2, i), x2[s]) for i, s in enumerate(c1)])
    tail = () if trace else (k, k)
    theta = torch.empty((x1.shape[0], x2.shape[0], *tail), dtype=dtype, device=x1.device)
    for i, s1 in enumerate(c1):
        for j, s2 in enumerate(c2):
            if symmetric and j < i:  # Theta(x2, x1) = Theta(x1, x2)^T in points and outputs
                lower = theta[s2, s1]
                theta[s1, s2] = lower.transpose(0, 1) if trace else lower.permute(1, 0, 3, 2)
                continue
            key2 = ("1", j) if symmetric else ("2", j)
            theta[s1, s2] = block_fn(("1", i), x1[s1], key2, x2[s2])
    return theta


def _same_points(x1: torch.Tensor, x2: torch.Tensor) -> bool:
    """x2 holds exactly the points of x1 (same shape, dtype and values): one O(N d) comparison."""
    return x1.shape == x2.shape and x1.dtype == x2.dtype and bool(torch.equal(x1, x2))


def _block_function(model, params, method, info, trace, diagonal, basis_chunk) -> Callable:
    """block(key1, x1_chunk, key2, x2_chunk) -> Theta block; per-chunk work is cached by key."""
    if method == "ntvp":
        return lambda _k1, a, _k2, b: ntvp_block(model, params, a, b, trace, diagonal, basis_chunk)
    if method == "jacobian":
        cache: dict = {}

        def jacobian_block(k1, a, k2, b):
            # keep two chunks' Jacobians: the current row chunk and the latest column chunk
            for key in [key for key in cache if key not in (k1, k2)]:
                del cache[key]
            for key, x in ((k1, a), (k2, b)):
                if key not in cache:
                    cache[key] = jacobians(model, params, x)
            return contract_jacobians(cache[k1], cache[k2], trace, diagonal)

        return jacobian_block
    layers, rest, k = info["layers"], info["rest"], info["k"]
    rest_params = {n: p for n, p in params.items() if n in rest}
    cache: dict = {}

    def factors(key, x):
        if key not in cache:
            _, f = layer_factors(model, layers, x)
            j = jacobians(model, rest_params, x, fixed=params) if rest_params else []
            cache[key] = (f, j)
        return cache[key]

    def block(k1, a, k2, b):
        f1, j1 = factors(k1, a)
        f2, j2 = factors(k2, b)
        if f1 and not trace and not diagonal:
            return full_block(k1 == k2, f1, j1, f2, j2)
        parts = [
            contract(u, v, trace=trace, diagonal=diagonal) for u, v in zip(f1, f2, strict=True)
        ]
        if j1:
            parts.append(contract_jacobians(j1, j2, trace, diagonal))
        if not parts:  # no layer was called: the kernel is zero
            return torch.zeros(
                _block_shape(a, b, k, trace, diagonal), dtype=a.dtype, device=a.device
            )
        return sum(parts)

    def full_block(same, f1, j1, f2, j2):
        # every layer added into one point-major (N1, K, N2, K) buffer, permuted once at the end
        n1, n2 = f1[0].delta.shape[1], f2[0].delta.shape[1]
        out = f1[0].delta.new_zeros((n1, k, n2, k))
        blocks = point_blocks(n1, k) if same else None
        for u, v in zip(f1, f2, strict=True):
            accumulate(out, u, v, symmetric=same, blocks=blocks)
        if same:
            mirror(out, blocks)
        theta = out.permute(0, 2, 1, 3)
        if j1:
            theta = theta + contract_jacobians(j1, j2, False, False)
        return theta

    return block


def _block_shape(a, b, k, trace, diagonal) -> tuple[int, ...]:
    head = (a.shape[0],) if diagonal else (a.shape[0], b.shape[0])
    return head if trace else (*head, k, k)
