"""Which empirical-NTK method runs on which model: one probe on one point, remembered per model.

- "structured" is exact when v^T Theta(x0, x0) v = ||grad_theta v^T f(x0)||^2 for a random v
  (one backward pass): a parameter used outside its layer's forward (``F.linear(x,
  layer.weight)`` elsewhere, tied weights) escapes the hooks and fails this check.
- "jacobian" runs ``vmap(jacrev)`` (reverse-mode AD under vmap) on two outputs of one point.
- "ntvp" runs a VJP, then vmapped JVPs (forward-mode AD) of two basis vectors, on one point,
  both over a batch and vmapped over points (its two code paths). Some operators have no
  forward-mode rule, e.g. the fused kernel nn.MultiheadAttention uses in eval mode.

Whether a method runs is a property of the model's code, not of its parameter values: the answer
is kept in a WeakKeyDictionary keyed by the model (dropped with it), per point shape, dtype and
device, trainable parameter names, and the name, type and training mode of every submodule;
changing any of these probes again.
"""

from __future__ import annotations

import re
import weakref

import torch
from torch import nn
from torch.func import jacrev, jvp, vjp, vmap

from symlab.ntk.autodiff import (
    batched,
    contract_jacobians,
    jacobians,
    single_point,
    trainable_params,
)
from symlab.ntk.structured import contract, layer_factors

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ALTERNATIVES = {
    "structured": "'jacobian' or 'auto'",
    "jacobian": "'structured' or 'auto'",
    "ntvp": "'jacobian' or 'auto'",
}


def unsupported(
    model: nn.Module, method: str, x0: torch.Tensor, layers: dict, rest: list[str]
) -> str | None:
    """None when ``method`` runs on ``model`` (probed on the one point ``x0``), else why not,
    as a phrase after the method's name (e.g. "needs forward-mode AD, which ... does not
    support"). ``layers`` / ``rest``: the structured layers and the trainable parameters
    outside them. Cached per model (see the module docstring)."""
    key = (
        method,
        tuple(x0.shape[1:]),
        x0.dtype,
        x0.device,
        tuple(n for n, p in model.named_parameters() if p.requires_grad),
        tuple((n, type(m), m.training) for n, m in model.named_modules()),
    )
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        cached[key] = _probe(model, method, x0, layers, rest)
    return cached[key]


def unsupported_error(method: str, reason: str) -> ValueError:
    """The one-sentence error for an explicitly requested method that does not run."""
    return ValueError(f"method: {method!r} {reason}; use {_ALTERNATIVES[method]}")


def _probe(model, method, x0, layers, rest) -> str | None:
    # the modules being evaluated, innermost last: on an error, its top is the one that failed
    stack: list[nn.Module] = []

    def enter(module, _inputs):
        stack.append(module)

    def leave(_module, _inputs, _output):
        stack.pop()

    handles = []
    for m in model.modules():
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    try:
        if method == "structured":
            if not _structured_exact(model, layers, x0, rest):
                return (
                    "does not match a backward pass on this model (a layer's parameter is "
                    "used outside its forward, e.g. tied weights)"
                )
        elif method == "jacobian":
            _jacobian_probe(model, x0)
        else:
            _ntvp_probe(model, x0)
    except (NotImplementedError, RuntimeError) as error:
        return _reason(error, stack[-1] if stack else None)
    finally:
        for handle in handles:
            handle.remove()
    return None


def _reason(error: Exception, module: nn.Module | None) -> str:
    text = str(error)
    if re.search(r"forward[ -](mode )?AD", text, re.IGNORECASE):
        what = "forward-mode AD"
    elif "vmap" in text or "batching rule" in text:
        what = "vmap"
    else:
        what = "torch.func transforms"
    where = type(module).__name__ if module is not None else "this model"
    op = re.search(r"aten::\w+", text)
    detail = f" ({op.group(0)})" if op else ""
    return f"needs {what}, which {where} does not support{detail}"


def _jacobian_probe(model: nn.Module, x0: torch.Tensor) -> None:
    f = single_point(model)
    vmap(jacrev(lambda p, x: f(p, x)[:2]), (None, 0))(trainable_params(model), x0)


def _ntvp_probe(model: nn.Module, x0: torch.Tensor) -> None:
    params = trainable_params(model)
    f = batched(model)
    out, pullback = vjp(lambda p: f(p, x0), params)
    basis = torch.eye(out.numel(), dtype=out.dtype, device=out.device)[:2].reshape(-1, *out.shape)

    def row(e):
        return jvp(lambda p: f(p, x0), (params,), pullback(e))[1]

    vmap(row)(basis)
    g = single_point(model)

    def per_point(a):
        _, pull = vjp(lambda p: g(p, a), params)
        e = torch.eye(g(params, a).shape[0], dtype=a.dtype, device=a.device)[:2]
        return vmap(lambda v: jvp(lambda p: g(p, a), (params,), pull(v))[1])(e)

    vmap(per_point)(x0)


def _structured_exact(model: nn.Module, layers: dict, x0: torch.Tensor, rest: list[str]) -> bool:
    """v^T Theta(x0, x0) v == ||grad_theta v^T f(x0)||^2 for a random v (one backward pass)."""
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        out = model(x0).reshape(-1)
    v = torch.randn(out.shape[0], generator=torch.Generator().manual_seed(0), dtype=out.dtype)
    v = v.to(out.device)
    grads = torch.autograd.grad(out, params, v, allow_unused=True)
    direct = sum((g * g).sum() for g in grads if g is not None)
    _, f = layer_factors(model, layers, x0)
    theta = sum(contract(a, a, diagonal=True)[0] for a in f)
    if rest:
        all_params = trainable_params(model)
        rest_params = {n: p for n, p in all_params.items() if n in rest}
        j = jacobians(model, rest_params, x0, fixed=all_params)
        theta = theta + contract_jacobians(j, j, False, True)[0]
    structured = v @ theta @ v if torch.is_tensor(theta) else torch.zeros((), device=v.device)
    rtol = 1e-3 if out.dtype == torch.float32 else 1e-8
    return bool(abs(structured - direct) <= rtol * max(abs(direct), abs(structured)) + 1e-30)
