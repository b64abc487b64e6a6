"""Per-layer factors of the structured NTK: layer inputs a and output gradients delta.

For a flat nn.Sequential of Linear / Conv2d / elementwise activations / Flatten, the factors come
from one forward pass and closed-form backpropagation of all K outputs at once, point-major:
delta_{l-1} = phi'(z_{l-1}) (delta_l W_l) (a transposed convolution for Conv2d), with no autograd.
See :mod:`symlab.ntk.structured` for how they are contracted into the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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


_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Identity)
_RESHAPES = (nn.Flatten, nn.Unflatten)


def _chain_supported(model: nn.Module) -> bool:
    """A flat nn.Sequential of Linear (on vectors) / Conv2d / elementwise / reshape modules, each
    used once and without hooks: its factors have the closed-form backpropagation below."""
    if type(model) is not nn.Sequential or len(model) == 0:
        return False
    mods = list(model)
    if len({id(m) for m in mods}) != len(mods):
        return False
    for m in mods:
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks:
            return False
        if isinstance(m, nn.Conv2d) and not _is_supported(m):
            return False
        if not isinstance(m, (nn.Linear, nn.Conv2d, *_ELEMENTWISE, *_RESHAPES)):
            return False
    return not (model._forward_hooks or model._forward_pre_hooks)


def _activation_derivative(module: nn.Module, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """phi'(z) of an elementwise module with input z and output h = phi(z)."""
    if isinstance(module, nn.ReLU):
        return (z > 0).to(z.dtype)
    if isinstance(module, nn.LeakyReLU):
        # built in z's dtype: torch.where on two Python scalars would round the slope to float32
        slope = torch.full_like(z, module.negative_slope)
        return torch.where(z > 0, torch.ones_like(z), slope)
    if isinstance(module, nn.Tanh):
        return 1 - h * h
    if isinstance(module, nn.Sigmoid):
        return h * (1 - h)
    if isinstance(module, nn.Softplus):  # linear above threshold, as in torch's softplus
        bz = module.beta * z
        return torch.where(bz > module.threshold, torch.ones_like(z), torch.sigmoid(bz))
    return torch.ones_like(z)  # nn.Identity


@torch.no_grad()
def _chain_factors(
    model: nn.Sequential, layers: dict[str, nn.Module], x: torch.Tensor
) -> tuple[torch.Tensor, list[LayerFactors]] | None:
    """Closed-form factors of a chain (``_chain_supported``): a forward pass without autograd,
    then delta_{l-1} = phi'(z) * (delta_l W) (Linear) or conv2d_input(delta_l, W) (Conv2d) for all
    K outputs at once, point-major (N, K, ...): the flops of the vmapped backward pass, without
    autograd's batching overhead or layout copies. None when an intermediate shape does not fit
    (a Linear on more than vectors, an output that is not (N, K)): autograd is used then."""
    inputs, outputs = [], []
    h = x
    for m in model:
        if isinstance(m, nn.Linear) and h.dim() != 2:
            return None
        inputs.append(h)
        h = m(h)
        outputs.append(h)
    if h.dim() != 2:
        return None
    n, k = h.shape
    names = {id(m): name for name, m in layers.items()}
    delta = torch.eye(k, dtype=h.dtype).expand(n, k, k)
    # at_output: delta is still the identity over outputs; fresh: delta owns its buffer (not a
    # broadcast identity or weight), so it may be scaled in place
    at_output, fresh = True, False
    factors: list[LayerFactors] = []
    for i in range(len(model) - 1, -1, -1):
        m, z = model[i], inputs[i]
        identity, at_output = at_output, at_output and isinstance(m, nn.Identity)
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
        elif not isinstance(m, nn.Identity):
            derivative = _activation_derivative(m, z, outputs[i]).unsqueeze(1)
            delta, fresh = (delta.mul_(derivative) if fresh else delta * derivative), True
    return h, factors[::-1]


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
