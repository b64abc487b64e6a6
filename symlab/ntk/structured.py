"""Per-layer ("structured") empirical NTK for nn.Linear and nn.Conv2d layers.

For a layer z = W a + b used at positions s (one position for a Linear on a vector, every
spatial position for a Conv2d, every position of every use when the layer is called several
times), the gradient of output k at input x is dW = sum_s delta_k(x, s) a(x, s)^T and
db = sum_s delta_k(x, s), where a(x, s) is the layer input (the unfolded patch for a
convolution) and delta_k(x, s) = d f_k(x) / d z(x, s). The layer's share of the NTK is

    Theta_l(x, x')_{kk'} = sum_{s, t} [<a(x, s), a(x', t)> + 1_bias] <delta_k(x, s), delta_k'(x', t)>

(Novak et al., "Fast Finite Width Neural Tangent Kernel", ICML 2022, sec. 3.4; for an MLP this
is Theta = sum_l (h_{l-1} . h'_{l-1} + 1)(delta_l delta_l'^T)). Weight sharing is exact: the
uses of one layer are concatenated along s, so every pair of uses is summed.

The factors a and delta are captured with forward hooks (delta as the gradient of a zero probe
added to the layer output) and one backward pass per output, vmapped over the K outputs
(``torch.autograd.grad(..., is_grads_batched=True)``); no Jacobian is materialised. An
nn.Sequential (nested ones flattened) of Linear / Conv2d / elementwise activations / pooling /
Flatten / eval-mode Dropout (an MLP from ``symlab.nets.mlp``, a plain CNN) skips the per-output
autograd pass: one forward pass, then closed-form backpropagation of all K outputs at once,
point-major, delta_{l-1} = phi'(z_{l-1}) (delta_l W_l) (a transposed convolution for Conv2d, the
pooling's own backward for pooling); the same flops without autograd's overhead. Two exact
contractions are available per layer and the cheaper by flop count is used:

- "pairs" (the formula above): N1 N2 S1 S2 (I + K O) + N1 N2 K^2 S2 O flops; with S = 1 this is
  N1 N2 (I + K^2 O), against N1 N2 K^2 O I for the Jacobian contraction of the same layer.
- "gradients": per-example layer gradients g_k(x) = sum_s delta_k(x, s) a(x, s)^T, then
  <g_k(x), g_k'(x')>: K (N1 S1 + N2 S2) O I + N1 N2 K^2 O (I + 1) flops (wins for convolutions,
  whose patch count S is large and whose weights are small).

For the full kernel, ``accumulate`` adds each layer's share into one point-major (N1, K, N2, K)
buffer without per-layer permutes: for S = 1 Linear layers as (A1 A2^T + 1) (x) (Delta1 Delta2^T)
with Delta as an (N K, O) matrix, for "gradients" layers as G1 G2^T with G = (N K, P_l) built by
one batched matmul per example (Delta^T (S x O) against the patches with a ones column for the
bias). When both sides are the same factor set (x2 is x1) only the blocks on or below the diagonal
(in points) are computed, about half the flops, and ``mirror`` fills the rest.

Assumption shared with every empirical-NTK method (neural-tangents' ``vmap_axes=0``): the
network treats the points of a batch independently (no batch statistics).
"""

from __future__ import annotations

import torch
from torch import nn

from symlab.ntk.factors import (
    LayerFactors,
    _as_positions,
    _chain_factors,
    _is_supported,
    _patches,
    chain_modules,
)


def structured_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The supported layers (by module name) whose trainable parameters the structured formula covers.

    A layer is covered when it is an ``nn.Linear`` or a zero-padded, ungrouped ``nn.Conv2d`` with
    numeric padding, at least one of its weight/bias requires grad, and none of its parameters is
    also registered on another module (parameters tied across modules go to the Jacobian part).
    """
    owners: dict[int, int] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    layers = {}
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if not own or not _is_supported(module):
            continue
        if any(owners[id(p)] > 1 for p in own) or not any(p.requires_grad for p in own):
            continue
        layers[name] = module
    return layers


def covered_parameter_names(model: nn.Module, layers: dict[str, nn.Module]) -> set[str]:
    """Names (as in ``model.named_parameters()``) of the trainable parameters of ``layers``."""
    names = set()
    for layer_name, module in layers.items():
        for pname, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                names.add(f"{layer_name}.{pname}" if layer_name else pname)
    return names


def layer_factors(
    model: nn.Module, layers: dict[str, nn.Module], x: torch.Tensor
) -> tuple[torch.Tensor, list[LayerFactors]]:
    """Forward + K vmapped backward passes on the batch ``x``: (outputs (N, K), factors per layer).

    Cost: one forward and K backward passes of the batch; memory N (sum_l S_l I_l + K sum_l S_l O_l).
    An nn.Sequential chain (:func:`chain_modules`) uses closed-form backpropagation instead of
    autograd (same flops, less overhead); the order of ``factors`` is that of ``layers``.
    """
    modules = chain_modules(model)
    if modules is not None:
        chain = _chain_factors(modules, layers, x)
        if chain is not None:
            return chain
    records: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in layers}

    def make_hook(name: str):
        def hook(module, inputs, output):
            probe = torch.zeros_like(output, requires_grad=True)
            records[name].append((inputs[0].detach(), probe))
            return output + probe

        return hook

    handles = [m.register_forward_hook(make_hook(name)) for name, m in layers.items()]
    try:
        with torch.enable_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    n = out.shape[0]
    flat = out.reshape(n, -1)
    k = flat.shape[1]
    probes = [probe for name in layers for _, probe in records[name]]
    cotangents = torch.eye(k, dtype=out.dtype, device=out.device).unsqueeze(1).expand(k, n, k)
    cotangents = cotangents.reshape(k, *out.shape)
    if probes:
        try:
            grads = torch.autograd.grad(
                out, probes, cotangents, is_grads_batched=True, allow_unused=True
            )
        except RuntimeError:  # an op without a batched backward rule: one backward per output
            per_output = [
                torch.autograd.grad(out, probes, c, retain_graph=True, allow_unused=True)
                for c in cotangents
            ]
            grads = tuple(
                None if g[0] is None else torch.stack(g) for g in zip(*per_output, strict=True)
            )
    else:
        grads = ()
    grads_iter = iter(grads)
    factors = []
    for name, module in layers.items():
        a_parts, d_parts = [], []
        for inputs, probe in records[name]:
            g = next(grads_iter)
            if g is None:
                g = probe.new_zeros((k, *probe.shape))
            a_parts.append(_patches(module, inputs))
            d_parts.append(_as_positions(module, g))
        if not a_parts:  # layer never called: it contributes nothing
            continue
        use_weight = module.weight.requires_grad
        use_bias = module.bias is not None and module.bias.requires_grad
        a = (a_parts[0] if len(a_parts) == 1 else torch.cat(a_parts, dim=1)) if use_weight else None
        delta = d_parts[0] if len(d_parts) == 1 else torch.cat(d_parts, dim=2)
        factors.append(LayerFactors(a=a, delta=delta, bias=use_bias))
    return flat.detach(), factors


def _gram(d1: torch.Tensor, d2: torch.Tensor, trace: bool) -> torch.Tensor:
    """<d1[k, n], d2[k', m]> for d (K, N, P): (N1, N2, K, K), or its trace over k = k' (N1, N2)."""
    if trace:
        return torch.einsum("knp,kmp->nm", d1, d2)
    k, n1, p = d1.shape
    n2 = d2.shape[1]
    g = d1.transpose(0, 1).reshape(n1 * k, p) @ d2.transpose(0, 1).reshape(n2 * k, p).T
    return g.reshape(n1, k, n2, k).permute(0, 2, 1, 3)


def _gradients(f: LayerFactors) -> torch.Tensor:
    """Per-example layer gradients (K, N, P_l): vec(sum_s delta a^T) then sum_s delta (bias)."""
    parts = []
    if f.a is not None:
        parts.append(torch.einsum("knso,nsi->knoi", f.delta, f.a).flatten(2))
    if f.bias:
        parts.append(f.delta.sum(2))
    return torch.cat(parts, dim=2)


def _pairs_cost(n1: int, n2: int, s1: int, s2: int, i: int, o: int, k: int) -> int:
    if s1 == 1 and s2 == 1:
        return n1 * n2 * (i + k * k * o)
    return n1 * n2 * s1 * s2 * (i + k * o) + n1 * n2 * k * k * s2 * o


def _gradients_cost(n1: int, n2: int, s1: int, s2: int, i: int, o: int, k: int) -> int:
    return k * (n1 * s1 + n2 * s2) * o * i + n1 * n2 * k * k * o * (i + 1)


def contract(
    f1: LayerFactors,
    f2: LayerFactors,
    *,
    trace: bool = False,
    diagonal: bool = False,
    path: str = "auto",
) -> torch.Tensor:
    """One layer's NTK between two factor sets: (N1, N2, K, K), (N1, N2) with trace,
    (N, K, K) / (N,) with diagonal (pairs x1[n], x2[n]).

    ``path``: "pairs", "gradients" or "auto" (the cheaper by the flop counts above).
    """
    if path not in ("auto", "pairs", "gradients"):
        raise ValueError(f"path: expected 'auto', 'pairs' or 'gradients', got {path!r}")
    k, n1, s1, o = f1.delta.shape
    n2, s2 = f2.delta.shape[1:3]
    i = f1.a.shape[-1] if f1.a is not None else 0
    if path == "auto":
        cheaper = _gradients_cost(n1, n2, s1, s2, i, o, k) < _pairs_cost(n1, n2, s1, s2, i, o, k)
        path = "gradients" if cheaper else "pairs"
    if path == "gradients":
        g1, g2 = _gradients(f1), _gradients(f2)
        if diagonal:
            return torch.einsum("knp,knp->n" if trace else "knp,lnp->nkl", g1, g2)
        return _gram(g1, g2, trace)
    d1, d2 = f1.delta, f2.delta
    if s1 == 1 and s2 == 1:
        d1, d2 = d1[:, :, 0], d2[:, :, 0]
        a1 = f1.a[:, 0] if f1.a is not None else None
        a2 = f2.a[:, 0] if f2.a is not None else None
        if diagonal:
            c = (a1 * a2).sum(-1) if a1 is not None else d1.new_zeros(n1)
            d = torch.einsum("kno,kno->n" if trace else "kno,lno->nkl", d1, d2)
        else:
            c = a1 @ a2.T if a1 is not None else d1.new_zeros((n1, n2))
            d = _gram(d1, d2, trace)
        c = c + (1.0 if f1.bias else 0.0)
        return c.reshape(c.shape + (1,) * (d.dim() - c.dim())) * d
    if diagonal:
        if f1.a is not None:
            c = torch.einsum("nsi,nti->nst", f1.a, f2.a) + (1.0 if f1.bias else 0.0)
        else:
            c = d1.new_ones((n1, s1, s2))
        eq = "nst,knso,knto->n" if trace else "nst,knso,lnto->nkl"
        return torch.einsum(eq, c, d1, d2)
    if f1.a is not None:
        c = torch.einsum("nsi,mti->nmst", f1.a, f2.a) + (1.0 if f1.bias else 0.0)
    else:
        c = d1.new_ones((n1, n2, s1, s2))
    eq = "nmst,knso,kmto->nm" if trace else "nmst,knso,lmto->nmkl"
    return torch.einsum(eq, c, d1, d2)


def _path(f1: LayerFactors, f2: LayerFactors) -> str:
    k, n1, s1, o = f1.delta.shape
    n2, s2 = f2.delta.shape[1:3]
    i = f1.a.shape[-1] if f1.a is not None else 0
    cheaper = _gradients_cost(n1, n2, s1, s2, i, o, k) < _pairs_cost(n1, n2, s1, s2, i, o, k)
    return "gradients" if cheaper else "pairs"


def gradient_rows(f: LayerFactors) -> torch.Tensor:
    """Per-example layer gradients as a point-major (N K, P_l) matrix.

    Row (n, k) is vec(Delta_k(x_n)^T [A(x_n), 1]) (weight and bias gradients; the column order
    differs from ``_gradients`` but inner products do not depend on it). Cost: one batched matmul,
    N K O S (I + 1) flops.
    """
    k, n, s, o = f.delta.shape
    d = f.delta.permute(1, 0, 3, 2).reshape(n, k * o, s)  # (N, K O, S)
    if f.a is None:
        return d.sum(2).reshape(n * k, o)
    a = f.a
    if f.bias:
        a = torch.cat([a, a.new_ones((*a.shape[:2], 1))], dim=2)
    return torch.bmm(d, a).reshape(n * k, -1)


def point_blocks(n: int, k: int) -> list[slice]:
    """Row blocks (in points) for the symmetric Gram: at most 8, each at least ~128 rows of N K
    (smaller blocks save flops, (B + 1) / 2B of the full Gram for B blocks, but matmul slower)."""
    size = max(-(-n // 8), -(-128 // k))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def accumulate(
    out: torch.Tensor,
    f1: LayerFactors,
    f2: LayerFactors,
    *,
    symmetric: bool = False,
    blocks: list[slice] | None = None,
) -> None:
    """out (N1, K, N2, K) += this layer's Theta, point-major (out[n, k, m, k'] = Theta_l[n, m, k, k']).

    With ``symmetric`` (f1 and f2 are the factors of the same points) only the point blocks on or
    below the diagonal, out[b, :, :b.stop, :] for b in ``blocks``, are written; call ``mirror``
    after the last layer. Layers with S > 1 on the "pairs" path are added whole by ``contract``.
    """
    k, n1 = f1.delta.shape[:2]
    n2 = f2.delta.shape[1]
    path = _path(f1, f2)
    single = f1.delta.shape[2] == 1 and f2.delta.shape[2] == 1
    if path == "pairs" and not single:
        out += contract(f1, f2, path="pairs").permute(0, 2, 1, 3)
        return
    if path == "pairs":
        r1 = f1.delta[:, :, 0].transpose(0, 1).reshape(n1 * k, -1)
        r2 = r1 if symmetric else f2.delta[:, :, 0].transpose(0, 1).reshape(n2 * k, -1)
        if f1.a is not None:
            c = f1.a[:, 0] @ f2.a[:, 0].T
            if f1.bias:
                c += 1.0
        else:
            c = r1.new_ones((n1, n2))
    else:
        r1 = gradient_rows(f1)
        r2 = r1 if symmetric else gradient_rows(f2)
        c = None
    if not symmetric:
        blocks = [slice(0, n1)]
    elif blocks is None:
        blocks = point_blocks(n1, k)
    for b in blocks:
        cols = slice(0, b.stop) if symmetric else slice(0, n2)
        rows1 = r1[b.start * k : b.stop * k]
        rows2 = r2[cols.start * k : cols.stop * k]
        g = (rows1 @ rows2.T).view(b.stop - b.start, k, cols.stop - cols.start, k)
        target = out[b, :, cols, :]
        if c is None:
            target += g
        else:
            target.addcmul_(g, c[b, None, cols, None])


def mirror(out: torch.Tensor, blocks: list[slice]) -> None:
    """Fill out[b, :, b.stop:, :] from the lower blocks: Theta[n, k, m, k'] = Theta[m, k', n, k]."""
    for b in blocks:
        out[b, :, b.stop :, :] = out[b.stop :, :, b, :].permute(2, 3, 0, 1)
