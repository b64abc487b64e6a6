"""Parameter Jacobians of a network evaluated on a batch of points.

J E_Z|_theta (Grigsby, Lindsey, Meyerhoff, Wu 2022, "Functional dimension of feedforward ReLU
neural networks", arXiv 2209.04036) is the (N*K, D) matrix whose row i*K + k is
grad_theta f_theta,k(x_i): rows point-major, columns in ``model.parameters()`` flat order (for an
MLP: W_1, b_1, ..., W_L, b_L, row-major).

Two routes:

- ``"closed_form"`` (MLPs, :func:`symlab.nets.is_mlp`): one forward pass storing the
  pre-activations z^l, then masked backprop of g^l = df_k/dz^l for all K outputs at once
  (g^L = I_K, g^l = (g^{l+1} W_{l+1}) * sigma'(z^l), sigma' from
  :func:`symlab.nets.activation_derivative`, relu'(0) = 0); the columns are the outer products
  df_k/dW^l_ij = g^l_i a^{l-1}_j and df_k/db^l_i = g^l_i. Cost O(N K D) time, the size of J.
- ``"generic"``: any ``nn.Module`` through ``torch.func.functional_call`` +
  ``vmap(jacrev)`` over points (each point is evaluated as a batch of one). Cost about K
  backward passes per point.

Both are chunked over points, so the extra memory beyond J itself is bounded.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from symlab.nets import activation_derivative, activation_of, is_mlp, linear_layers

JACOBIAN_METHODS = ("auto", "closed_form", "generic")

# Extra working memory per chunk (bytes) used to choose the default chunk size.
_CHUNK_BUDGET_BYTES = 64 * 2**20


def _check_inputs(inputs: object) -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] < 1:
        raise ValueError(
            "inputs: expected a tensor whose first dimension indexes at least one point, "
            f"got {type(inputs).__name__} of shape {getattr(inputs, 'shape', None)}"
        )
    if not inputs.is_floating_point():
        raise ValueError(f"inputs: expected a floating-point tensor, got dtype {inputs.dtype}")
    return inputs


def _backprop_factors(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor | None],
    activation: nn.Module,
    x: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(a^{l-1} (B, n_{l-1}) per layer, g^l (B, K, n_l) per layer): one forward pass and the
    masked backprop of all K outputs at once (module docstring)."""
    count = len(weights)
    activations, derivatives = [x], []
    a = x
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = a @ w.T if b is None else torch.addmm(b, a, w.T)
        if index < count - 1:
            a = activation(z)
            derivatives.append(activation_derivative(activation, z, value=a))
            activations.append(a)
    batch, k = x.shape[0], weights[-1].shape[0]
    # g has shape (B, K, n_l): g[i, k, :] = d f_k(x_i) / d z^l.
    g = torch.eye(k, dtype=x.dtype, device=x.device).expand(batch, k, k)
    cotangents = [g] * count
    for index in range(count - 1, 0, -1):
        g = (g @ weights[index]) * derivatives[index - 1].unsqueeze(1)
        cotangents[index - 1] = g
    return activations, cotangents


def _closed_form_chunk(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor | None],
    activation: nn.Module,
    x: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Write the Jacobian of the points ``x`` (B, n0) into ``out`` viewed as (B, K, D)."""
    activations, cotangents = _backprop_factors(weights, biases, activation, x)
    write_jacobian_rows(activations, cotangents, [b is not None for b in biases], out)


def write_jacobian_rows(
    activations: list[torch.Tensor],
    cotangents: list[torch.Tensor],
    biased: list[bool],
    out: torch.Tensor,
) -> None:
    """Write J's rows from the factors of :func:`closed_form_factors` (B points) into ``out``
    viewed as (B, K, D): the outer products g^l[i, k, :] a^{l-1}[i, :] and, for a layer with a
    bias (``biased[l]``), g^l[i, k, :]."""
    start = 0
    for a_prev, g, bias in zip(activations, cotangents, biased, strict=True):
        n_out, n_in = g.shape[2], a_prev.shape[1]
        block = out[:, :, start : start + n_out * n_in].unflatten(2, (n_out, n_in))
        torch.mul(g.unsqueeze(-1), a_prev[:, None, None, :], out=block)
        start += n_out * n_in
        if bias:
            out[:, :, start : start + n_out] = g
            start += n_out


def closed_form_factors(
    model: nn.Module, inputs: torch.Tensor, dtype: torch.dtype = torch.float64
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The factors of an MLP's Jacobian, ``(activations, cotangents)``: per layer l,
    a^{l-1} (N, n_{l-1}) and g^l (N, K, n_l), with df_k(x_i)/dW^l_hj = g^l[i, k, h] a^{l-1}[i, j]
    and df_k(x_i)/db^l_h = g^l[i, k, h] (see :func:`parameter_jacobian`, whose closed-form
    rows they are). O(N K sum_l n_l n_{l-1}) time, O(N K sum_l n_l) memory: a small fraction of
    J for hidden widths above a few."""
    inputs = _check_inputs(inputs)
    weights, biases, activation, x = _mlp_operands(model, inputs, dtype)
    with torch.no_grad():
        return _backprop_factors(weights, biases, activation, x)


def _mlp_operands(model: nn.Module, inputs: torch.Tensor, dtype: torch.dtype):
    """(weights, biases, activation, inputs) of an MLP in ``dtype``, the inputs checked."""
    if not is_mlp(model):
        raise ValueError("model: expected an MLP (nn.Sequential of Linear and one activation)")
    layers = linear_layers(model)
    n0 = layers[0].in_features
    if inputs.dim() != 2 or inputs.shape[1] != n0:
        raise ValueError(
            f"inputs: expected shape (N, {n0}) for this MLP, got {tuple(inputs.shape)}"
        )
    weights = [layer.weight.detach().to(dtype) for layer in layers]
    biases = [None if layer.bias is None else layer.bias.detach().to(dtype) for layer in layers]
    return weights, biases, activation_of(model), inputs.detach().to(dtype)


def _default_chunk(bytes_per_point: int) -> int:
    return max(1, _CHUNK_BUDGET_BYTES // max(1, bytes_per_point))


def _closed_form(
    model: nn.Module, inputs: torch.Tensor, chunk_size: int | None, dtype: torch.dtype
) -> torch.Tensor:
    weights, biases, activation, x = _mlp_operands(model, inputs, dtype)
    k = weights[-1].shape[0]
    d = sum(
        w.numel() + (0 if b is None else b.numel()) for w, b in zip(weights, biases, strict=True)
    )
    n = x.shape[0]
    widest = max(w.numel() for w in weights)
    chunk = chunk_size or _default_chunk(
        x.element_size() * k * (widest + sum(w.shape[0] for w in weights))
    )
    jac = torch.empty(n * k, d, dtype=dtype, device=x.device)
    with torch.no_grad():
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            view = jac[start * k : stop * k].view(stop - start, k, d)
            _closed_form_chunk(weights, biases, activation, x[start:stop], view)
    return jac


def _generic(
    model: nn.Module, inputs: torch.Tensor, chunk_size: int | None, dtype: torch.dtype
) -> torch.Tensor:
    from torch.func import functional_call, jacrev, vmap

    if any(p.dtype != dtype for p in model.parameters()):
        model = copy.deepcopy(model).to(dtype)
    x = inputs.detach().to(dtype)
    names = [name for name, _ in model.named_parameters()]
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def f(p: dict[str, torch.Tensor], point: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (p, buffers), (point.unsqueeze(0),)).reshape(-1)

    per_point = vmap(jacrev(f), in_dims=(None, 0))
    d = sum(p.numel() for p in params.values())
    with torch.no_grad():
        k = f(params, x[0]).numel()
    # jacrev holds about K copies of the parameter-sized cotangents per point, plus J itself.
    chunk = chunk_size or _default_chunk(4 * x.element_size() * k * d)
    jac = torch.empty(x.shape[0] * k, d, dtype=dtype, device=x.device)
    for start in range(0, x.shape[0], chunk):
        stop = min(x.shape[0], start + chunk)
        blocks = per_point(params, x[start:stop])
        jac[start * k : stop * k] = torch.cat(
            [blocks[name].reshape(stop - start, k, -1) for name in names], dim=2
        ).reshape((stop - start) * k, d)
    return jac


def parameter_jacobian(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    method: str = "auto",
    chunk_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """J E_Z|_theta: the (N*K, D) Jacobian of theta -> (f_theta(x_1), ..., f_theta(x_N)).

    Every parameter is a column, frozen (``requires_grad=False``) ones included: functional
    dimension is defined over the whole parameter space. (:func:`symlab.ntk.empirical_ntk`
    counts only trainable parameters.)

    Row ``i*K + k`` is grad_theta f_theta,k(x_i) (point-major); columns follow
    ``model.parameters()`` flattened row-major, as :func:`symlab.nets.flatten_params`.

    Args:
        model: the network; outputs are flattened per point to K = numel(f(x_i)).
        inputs: (N, ...) points; (N, n0) for MLPs.
        method: ``"closed_form"`` (MLPs only; masked backprop + outer products, O(N K D)),
            ``"generic"`` (any module; ``torch.func`` ``vmap(jacrev)``), or ``"auto"``
            (closed form when :func:`symlab.nets.is_mlp`, else generic).
        chunk_size: points per chunk; default from a 64 MiB working-memory budget.
        dtype: compute dtype. ``torch.float64`` recomputes the forward and backward passes from
            a float64 copy of the parameters and inputs (not a cast of a float32 Jacobian).
            Default: the model's parameter dtype.

    Reference: GLMW22 (arXiv 2209.04036), evaluation map E_Z and its Jacobian.
    """
    inputs = _check_inputs(inputs)
    if method not in JACOBIAN_METHODS:
        raise ValueError(f"method: expected one of {', '.join(JACOBIAN_METHODS)}, got {method!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size: expected a positive integer or None, got {chunk_size!r}")
    params = list(model.parameters())
    if not params:
        raise ValueError("model: expected a module with at least one parameter")
    dtype = dtype or params[0].dtype
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating-point dtype, got {dtype}")
    mlp_like = is_mlp(model)
    if method == "closed_form" and not mlp_like:
        raise ValueError(
            "method: 'closed_form' needs an MLP (nn.Sequential of Linear and one activation); "
            "use 'generic' or 'auto'"
        )
    if method == "closed_form" or (method == "auto" and mlp_like):
        return _closed_form(model, inputs, chunk_size, dtype)
    return _generic(model, inputs, chunk_size, dtype)
