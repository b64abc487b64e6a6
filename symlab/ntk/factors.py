"""Per-layer factors of the structured NTK: layer inputs a and output gradients delta.

For an nn.Sequential (nested ones are flattened) of Linear / Conv2d / elementwise activations /
pooling / Flatten / eval-mode Dropout, the factors come from one forward pass and closed-form
backpropagation of all K outputs at once, point-major: delta_{l-1} = phi'(z_{l-1}) (delta_l W_l)
(a transposed convolution for Conv2d, the pooling's own backward for a pooling layer), with no
per-output autograd pass; phi' comes from :func:`symlab.nets.activation_derivative`.
See :mod:`symlab.ntk.structured` for how they are contracted into the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from symlab.nets import (
    AUTOGRAD_ACTIVATIONS,
    CLOSED_FORM_ACTIVATIONS,
    activation_derivative,
)


@dataclass
class LayerFactors:
    """Inputs a (N, S, I) (None when the weight is excluded) and output gradients delta (K, N, S, O)."""

    a: torch.Tensor | None
    delta: torch.Tensor
    bias: bool


def _is_supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv2d):
        return (
            module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )
    return False


def _patches(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Layer inputs as (N, S, I): unfolded patches for Conv2d, flattened positions for Linear."""
    if isinstance(module, nn.Conv2d):
        if inputs.dim() == 3:
            inputs = inputs.unsqueeze(0)
        cols = F.unfold(
            inputs,
            module.kernel_size,
            dilation=module.dilation,
            padding=module.padding,
            stride=module.stride,
        )
        return cols.transpose(1, 2)
    return inputs.reshape(inputs.shape[0], -1, inputs.shape[-1])


def _as_positions(module: nn.Module, delta: torch.Tensor) -> torch.Tensor:
    """Output gradients (K, N, *out) as (K, N, S, O)."""
    k, n = delta.shape[:2]
    if isinstance(module, nn.Conv2d):
        return delta.reshape(k, n, delta.shape[2], -1).transpose(2, 3)
    return delta.reshape(k, n, -1, delta.shape[-1])


_RESHAPES = (nn.Flatten, nn.Unflatten)
# parameter-free, per-point linear or piecewise-linear maps: delta is pulled back by autograd on
# the input repeated K times (the pooling's own backward, all K outputs in one batch)
_POOLS = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


def _has_hooks(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)


def _leaf_supported(m: nn.Module) -> bool:
    """Linear and Conv2d (and their subclasses) or one of the parameter-free module types above,
    matched exactly: a subclass may override ``forward`` with something the chain cannot see."""
    if isinstance(m, nn.Conv2d):
        return _is_supported(m)
    if isinstance(m, nn.Linear):
        return True
    kind = type(m)
    if kind in _DROPOUTS:
        return not m.training  # identity in eval mode; a random mask has no tangent kernel
    if kind in _POOLS and getattr(m, "return_indices", False):
        return False
    # elementwise activations: phi' in closed form or by one autograd pass of sum(phi(z))
    # (autograd's own conventions at kinks, so the kernel equals any autograd-based reference)
    return kind in (*CLOSED_FORM_ACTIVATIONS, *AUTOGRAD_ACTIVATIONS, *_RESHAPES, *_POOLS)


def chain_modules(model: nn.Module) -> list[nn.Module] | None:
    """The leaf modules of ``model`` in call order when it is a chain with closed-form factors:
    an nn.Sequential (nested nn.Sequentials are flattened) of Linear (on vectors) / Conv2d /
    elementwise activations / pooling / Flatten / Unflatten / eval-mode Dropout, each used once
    and without hooks; None otherwise (the autograd factor pass is used then)."""
    if type(model) is not nn.Sequential or len(model) == 0 or _has_hooks(model):
        return None
    leaves: list[nn.Module] = []
    for m in model:
        if type(m) is nn.Sequential:
            inner = chain_modules(m)
            if inner is None:
                return None
            leaves.extend(inner)
        elif _has_hooks(m) or not _leaf_supported(m):
            return None
        else:
            leaves.append(m)
    if len({id(m) for m in leaves}) != len(leaves):
        return None
    return leaves


@torch.no_grad()
def _chain_factors(
    modules: list[nn.Module], layers: dict[str, nn.Module], x: torch.Tensor
) -> tuple[torch.Tensor, list[LayerFactors]] | None:
    """Closed-form factors of a chain (``modules`` from :func:`chain_modules`): a forward pass
    without autograd, then delta_{l-1} = phi'(z) * (delta_l W) (Linear) or conv2d_input(delta_l,
    W) (Conv2d) for all K outputs at once, point-major (N, K, ...): the flops of the vmapped backward pass, without
    autograd's batching overhead or layout copies. Pooling layers pull delta back with their own
    backward on the input repeated K times; elementwise activations multiply by phi'(z);
    eval-mode dropout is the identity. None when an intermediate shape does not fit (a Linear on
    more than vectors, an output that is not (N, K)): autograd is used then."""
    inputs, outputs = [], []
    h = x
    for m in modules:
        if isinstance(m, nn.Linear) and h.dim() != 2:
            return None
        inputs.append(h)
        h = m(h)
        outputs.append(h)
    if h.dim() != 2:
        return None
    n, k = h.shape
    names = {id(m): name for name, m in layers.items()}
    delta = torch.eye(k, dtype=h.dtype, device=h.device).expand(n, k, k)
    # at_output: delta is still the identity over outputs; fresh: delta owns its buffer (not a
    # broadcast identity or weight), so it may be scaled in place
    at_output, fresh = True, False
    factors: list[LayerFactors] = []
    for i in range(len(modules) - 1, -1, -1):
        m, z = modules[i], inputs[i]
        passthrough = isinstance(m, (nn.Identity, *_DROPOUTS))
        identity, at_output = at_output, at_output and passthrough
        if isinstance(m, nn.Linear | nn.Conv2d):
            if id(m) in names:
                factors.append(_chain_layer(m, z, delta))
            if i == 0:
                break
            if isinstance(m, nn.Linear):
                # at the output delta is the identity over outputs: delta W is W, broadcast
                delta = m.weight.expand(n, k, -1) if identity else delta @ m.weight
                fresh = not identity
            else:
                delta, fresh = _conv_input_gradient(m, delta, z.shape[1:]), True
        elif isinstance(m, _RESHAPES):
            delta = delta.reshape(n, k, *z.shape[1:])
        elif isinstance(m, _POOLS):
            delta, fresh = _pool_input_gradient(m, delta, z), True
        elif not passthrough:
            derivative = activation_derivative(m, z, value=outputs[i]).unsqueeze(1)
            delta, fresh = (delta.mul_(derivative) if fresh else delta * derivative), True
    return h, factors[::-1]


def _pool_input_gradient(m: nn.Module, delta: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """delta (N, K, *out) pulled back through a pooling layer with input z (N, *in): the layer's
    own backward on z repeated K times, so max pooling routes each gradient to the same argmax
    (and ties the same way) as autograd does."""
    n, k = delta.shape[:2]
    with torch.enable_grad():
        zr = z.unsqueeze(1).expand(n, k, *z.shape[1:]).reshape(n * k, *z.shape[1:])
        zr = zr.detach().requires_grad_(True)
        out = m(zr)
        (grad,) = torch.autograd.grad(out, zr, delta.reshape(out.shape))
    return grad.reshape(n, k, *z.shape[1:])


def _conv_input_gradient(m: nn.Conv2d, delta: torch.Tensor, in_shape) -> torch.Tensor:
    """delta (N, K, O, H', W') pulled back to the conv input (N, K, C, H, W): a transposed
    convolution, in channels-last layout (several times faster than NCHW on CPU here)."""
    n, k = delta.shape[:2]
    extra = [
        in_shape[1 + j]
        - ((delta.shape[3 + j] - 1) * m.stride[j] - 2 * m.padding[j])
        - m.dilation[j] * (m.kernel_size[j] - 1)
        - 1
        for j in range(2)
    ]
    d = delta.reshape(n * k, *delta.shape[2:]).contiguous(memory_format=torch.channels_last)
    d = F.conv_transpose2d(d, m.weight, None, m.stride, m.padding, tuple(extra), 1, m.dilation)
    return d.reshape(n, k, *in_shape)  # splitting the batch dim keeps channels-last a view


def _chain_layer(m: nn.Module, z: torch.Tensor, delta: torch.Tensor) -> LayerFactors:
    """LayerFactors from point-major delta (N, K, O[, H, W]): delta is stored as a (K, N, S, O)
    view of it, so the point-major consumers (``accumulate``) reshape it without copying."""
    n, k = delta.shape[:2]
    if isinstance(m, nn.Conv2d):
        d = delta.reshape(n, k, delta.shape[2], -1).permute(1, 0, 3, 2)
    else:
        d = delta.unsqueeze(2).transpose(0, 1)
    a = _patches(m, z) if m.weight.requires_grad else None
    return LayerFactors(a=a, delta=d, bias=m.bias is not None and m.bias.requires_grad)
