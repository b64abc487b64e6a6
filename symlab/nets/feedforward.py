"""Multilayer perceptrons in the parameter convention every symlab routine shares.

An MLP with widths (n_0, ..., n_L) is ``nn.Sequential(Linear, act, Linear, act, ..., Linear)``:
W_l has shape (n_l, n_{l-1}), b_l has shape (n_l), and the flat parameter vector is
(W_1, b_1, ..., W_L, b_L) in row-major order, so D = sum_l n_l (n_{l-1} + 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

ACTIVATIONS = ("relu", "leaky_relu", "identity", "tanh", "softplus", "gelu")
INITS = ("he", "pytorch", "custom")


def make_activation(activation: str, slope: float = 0.01) -> nn.Module:
    """The elementwise activation called ``activation`` (one of ``ACTIVATIONS``)."""
    if activation == "relu":
        return nn.ReLU()
    if activation == "leaky_relu":
        return nn.LeakyReLU(slope)
    if activation == "identity":
        return nn.Identity()
    if activation == "tanh":
        return nn.Tanh()
    if activation == "softplus":
        return nn.Softplus()
    if activation == "gelu":
        return nn.GELU()
    raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")


def mlp(
    widths: Sequence[int],
    activation: str = "relu",
    init: str = "he",
    bias_std: float = 0.0,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    *,
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    slope: float = 0.01,
    bias: bool = True,
) -> nn.Sequential:
    """A fully connected network with layer widths ``widths = (n_0, ..., n_L)``.

    Initialisations (all draws come from one generator seeded by ``seed``; None draws that seed
    from torch's global generator, so ``torch.manual_seed`` makes it reproducible, and an integer
    seed leaves the global generator untouched):

    - ``"he"``: W_ij ~ N(0, 2 / n_{l-1}) (He et al. 2015), b_i ~ N(0, bias_std^2).
    - ``"pytorch"``: ``nn.Linear``'s default, U(-1/sqrt(n_{l-1}), 1/sqrt(n_{l-1})) for W and b.
    - ``"custom"``: W_ij ~ N(0, sigma_w^2 / n_{l-1}), b_i ~ N(0, sigma_b^2).

    ``activation`` is applied after every layer but the last; ``slope`` is leaky_relu's
    negative slope. The draws are made in float64 and rounded to ``dtype``, so one seed gives the
    same network in every precision (float32 weights = the float64 weights rounded).
    """
    widths = list(widths)
    if (
        len(widths) < 2
        or any(isinstance(w, bool) or not isinstance(w, int | np.integer) for w in widths)
        or any(w < 1 for w in widths)
    ):
        raise ValueError(f"widths: expected at least two positive integers, got {widths}")
    widths = [int(w) for w in widths]
    if init not in INITS:
        raise ValueError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}"
        )
    if bias_std < 0:
        raise ValueError(f"bias_std: expected a number >= 0, got {bias_std!r}")
    if bias_std and init != "he":
        raise ValueError(
            f"bias_std: only init='he' uses it (init={init!r} sets biases itself), got {bias_std!r}"
        )
    if seed is None:  # draw from torch's global generator: honours torch.manual_seed
        seed = int(torch.randint(0, 2**62, (1,)))
    generator = torch.Generator().manual_seed(int(seed))
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        # skip_init: no default initialisation, which would draw from the global generator
        linear = skip_init(nn.Linear, fan_in, fan_out, bias=bias, dtype=dtype)
        with torch.no_grad():
            if init == "he":
                w_std, b_std, uniform = (2.0 / fan_in) ** 0.5, bias_std, False
            elif init == "custom":
                w_std, b_std, uniform = sigma_w / fan_in**0.5, sigma_b, False
            else:
                w_std, b_std, uniform = fan_in**-0.5, fan_in**-0.5, True
            if uniform:
                linear.weight.copy_(
                    (
                        torch.rand(linear.weight.shape, generator=generator, dtype=torch.float64)
                        * 2
                        - 1
                    )
                    * w_std
                )
                if bias:
                    linear.bias.copy_(
                        (torch.rand(fan_out, generator=generator, dtype=torch.float64) * 2 - 1)
                        * b_std
                    )
            else:
                linear.weight.copy_(
                    torch.randn(linear.weight.shape, generator=generator, dtype=torch.float64)
                    * w_std
                )
                if bias:
                    linear.bias.copy_(
                        torch.randn(fan_out, generator=generator, dtype=torch.float64) * b_std
                    )
        layers.append(linear)
        if index < len(widths) - 2:
            layers.append(make_activation(activation, slope))
    return nn.Sequential(*layers)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of an MLP, input to output."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def widths_of(model: nn.Module) -> list[int]:
    """Layer widths (n_0, ..., n_L) of an MLP built from ``nn.Linear`` layers."""
    layers = linear_layers(model)
    if not layers:
        raise ValueError("model: expected an MLP with at least one nn.Linear layer")
    return [layers[0].in_features] + [layer.out_features for layer in layers]


def activation_of(model: nn.Module) -> nn.Module:
    """The (shared) hidden activation module of an MLP; ``nn.Identity`` for a single layer."""
    for module in model.children():
        if not isinstance(module, nn.Linear):
            return module
    return nn.Identity()


_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Tanh, nn.Softplus, nn.GELU)


def _activation_signature(module: nn.Module) -> tuple:
    """Type and settings of an elementwise activation (two modules agree iff they compute alike)."""
    settings = ("negative_slope", "beta", "threshold", "approximate")
    return (type(module), *(getattr(module, name, None) for name in settings))


def is_mlp(model: nn.Module) -> bool:
    """True when ``model`` is Linear, act, Linear, ..., Linear with ONE elementwise activation.

    Every hidden activation must have the same type and settings (slope, beta, ...): the
    closed-form Jacobian, the functional-dimension bound and the symmetry actions read the
    activation once. Anything else is not an MLP here and takes the generic routes.
    """
    if not isinstance(model, nn.Sequential):
        return False
    children = list(model.children())
    if not children or not isinstance(children[-1], nn.Linear):
        return False
    signatures = set()
    for position, module in enumerate(children):
        expect_linear = position % 2 == 0
        if isinstance(module, nn.Linear) != expect_linear:
            return False
        if not expect_linear:
            if not isinstance(module, _ELEMENTWISE):
                return False
            signatures.add(_activation_signature(module))
    return len(signatures) <= 1


def parameter_count(widths: Sequence[int]) -> int:
    """D = sum_l n_l (n_{l-1} + 1) for an MLP with biases."""
    return sum(n_out * (n_in + 1) for n_in, n_out in zip(widths[:-1], widths[1:]))
