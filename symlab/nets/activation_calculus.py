"""First and second derivatives σ′, σ″ of the elementwise activation modules symlab supports.

Every closed-form route (the MLP parameter Jacobian, the structured NTK's factor chain, the
closed-form loss derivatives of one-hidden-layer nets, Fukumizu–Amari's splitting matrix) takes
σ(z), σ′(z) and σ″(z) from here, elementwise on a tensor z of pre-activations.

Closed forms, looked up by the module's exact type (:data:`CLOSED_FORM_ACTIVATIONS`):

- ``nn.Identity``: σ = z, σ′ = 1, σ″ = 0;
- ``nn.ReLU``: σ = max(z, 0), σ′ = 1[z > 0], σ″ = 0;
- ``nn.LeakyReLU(s)``: σ = z for z > 0 else s z, σ′ = 1[z > 0] + s 1[z ≤ 0], σ″ = 0;
- ``nn.Tanh``: t = tanh z, σ′ = 1 − t², σ″ = −2 t (1 − t²);
- ``nn.Sigmoid``: s = 1 / (1 + e^{−z}), σ′ = s (1 − s), σ″ = s (1 − s)(1 − 2s);
- ``nn.Softplus(β, threshold)``: σ = log(1 + e^{βz}) / β, σ′ = sigmoid(βz),
  σ″ = β sigmoid(βz)(1 − sigmoid(βz)), except on torch's linear branch βz > threshold, where
  σ = z, σ′ = 1, σ″ = 0 (see :func:`softplus_derivatives`).

Conventions at the kinks are autograd's, so every route equals an autograd reference there too:
relu′(0) = 0, leaky_relu′(0) = s, and a softplus at βz = threshold exactly is on its smooth branch
for σ and σ′ while σ″ = 0 there (torch's double backward masks βz ≥ threshold). The closed
forms' σ″ is 0 at every kink.

Through autograd of the module's own forward (:func:`autograd_derivatives`; exact, torch's own
derivative formulas: a backward pass for σ′, a double backward for σ″), by exact type
(:data:`AUTOGRAD_ACTIVATIONS`): ``nn.GELU`` (exact and ``approximate="tanh"``), ``nn.SiLU``,
``nn.ELU``, ``nn.SELU``, ``nn.CELU``, ``nn.Mish``, ``nn.Hardtanh``, ``nn.ReLU6``,
``nn.Hardswish``, ``nn.Hardsigmoid``, ``nn.Softsign``, ``nn.LogSigmoid``, ``nn.Tanhshrink``
(σ″ = 0 for the piecewise-linear ``nn.Hardtanh``, ``nn.ReLU6`` and ``nn.Hardsigmoid``).
A subclass of any of the supported types also goes through autograd: it may override
``forward``, and the parent's closed form would then be wrong.

A module may also bring its own closed form: a method ``derivatives(z, order)`` returning
(σ(z), σ′(z), σ″(z))[: order + 1] is used before any lookup (e.g.
:class:`symlab.critical.SigmoidSoftplus`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def softplus_derivatives(
    z: Tensor, beta: float = 1.0, threshold: float = 20.0, order: int = 2
) -> tuple[Tensor, ...]:
    """(σ(z), σ′(z), σ″(z))[: order + 1] of torch's softplus with ``beta`` and ``threshold``.

    σ = log(1 + e^{βz}) / β, σ′ = sigmoid(βz), σ″ = β sigmoid(βz)(1 − sigmoid(βz)); on torch's
    linear branch βz > threshold: (z, 1, 0). At βz = threshold exactly, σ and σ′ take the smooth
    branch and σ″ = 0, as torch's backward and double backward do."""
    value = nn.functional.softplus(z, beta, threshold)
    if order == 0:
        return (value,)
    bz = z if beta == 1 else z * beta
    s = torch.sigmoid(bz)
    d1 = s.masked_fill(bz > threshold, 1.0)  # torch's linear branch
    if order == 1:
        return value, d1
    d2 = s * (1 - s) if beta == 1 else beta * s * (1 - s)
    return value, d1, d2.masked_fill(bz >= threshold, 0.0)


def _piecewise_linear(
    z: Tensor, order: int, value: Tensor, first: Callable[[], Tensor]
) -> tuple[Tensor, ...]:
    """(σ, σ′, 0)[: order + 1] of a piecewise-linear σ, σ′ = ``first()`` built only if wanted."""
    if order == 0:
        return (value,)
    return (value, first()) if order == 1 else (value, first(), torch.zeros_like(z))


def _identity(module: nn.Module, z: Tensor, order: int, value: Tensor | None) -> tuple:
    return _piecewise_linear(z, order, z if value is None else value, lambda: torch.ones_like(z))


def _relu(module: nn.Module, z: Tensor, order: int, value: Tensor | None) -> tuple:
    value = torch.relu(z) if value is None else value
    return _piecewise_linear(z, order, value, lambda: (z > 0).to(z.dtype))


def _leaky_relu(module: nn.Module, z: Tensor, order: int, value: Tensor | None) -> tuple:
    slope = module.negative_slope
    value = nn.functional.leaky_relu(z, slope) if value is None else value
    # built in z's dtype: torch.where on two Python scalars would round the slope to float32
    return _piecewise_linear(
        z, order, value, lambda: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, slope))
    )


def _tanh(module: nn.Module, z: Tensor, order: int, value: Tensor | None) -> tuple:
    t = torch.tanh(z) if value is None else value
    if order == 0:
        return (t,)
    d1 = 1 - t * t
    return (t, d1) if order == 1 else (t, d1, -2 * t * d1)


def _sigmoid(module: nn.Module, z: Tensor, order: int, value: Tensor | None) -> tuple:
    s = torch.sigmoid(z) if value is None else value
    if order == 0:
        return (s,)
    d1 = s * (1 - s)
    return (s, d1) if order == 1 else (s, d1, d1 * (1 - 2 * s))


def _softplus(module: nn.Module, z: Tensor, order: int, value: Tensor | None) -> tuple:
    values = softplus_derivatives(z, module.beta, module.threshold, order)
    return values if value is None else (value, *values[1:])


_CLOSED_FORMS: dict[type, Callable[[nn.Module, Tensor, int, Tensor | None], tuple]] = {
    nn.Identity: _identity,
    nn.ReLU: _relu,
    nn.LeakyReLU: _leaky_relu,
    nn.Tanh: _tanh,
    nn.Sigmoid: _sigmoid,
    nn.Softplus: _softplus,
}

CLOSED_FORM_ACTIVATIONS: tuple[type[nn.Module], ...] = tuple(_CLOSED_FORMS)
"""Activation types (matched exactly) whose σ, σ′, σ″ are closed forms here (module doc)."""

AUTOGRAD_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Mish,
    nn.Hardtanh,
    nn.ReLU6,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softsign,
    nn.LogSigmoid,
    nn.Tanhshrink,
)
"""Elementwise activation types (matched exactly) whose σ′, σ″ come from autograd."""

# piecewise-linear types among them: σ″ = 0 without a double backward
_PIECEWISE_LINEAR = (nn.Hardtanh, nn.ReLU6, nn.Hardsigmoid)


def _has_own_derivatives(activation: nn.Module) -> bool:
    return callable(getattr(activation, "derivatives", None))


def supports_closed_form(activation: nn.Module) -> bool:
    """True when σ′ and σ″ of ``activation`` are closed forms without autograd: its exact type is
    in :data:`CLOSED_FORM_ACTIVATIONS` (a subclass may override ``forward``), or it has its own
    ``derivatives(z, order)`` method."""
    return type(activation) in _CLOSED_FORMS or _has_own_derivatives(activation)


def supports_derivatives(activation: nn.Module) -> bool:
    """True when :func:`activation_derivatives` knows ``activation`` by its exact type (closed
    form or autograd) or by its own ``derivatives`` method. Subclasses of these types are
    differentiated too (through autograd), but only exact types count as supported here."""
    return supports_closed_form(activation) or type(activation) in AUTOGRAD_ACTIVATIONS


def autograd_derivatives(activation: nn.Module, z: Tensor, order: int = 2) -> tuple[Tensor, ...]:
    """(σ(z), σ′(z), σ″(z))[: order + 1] of any elementwise module σ through autograd:
    σ′ = ∂/∂z Σ σ(z) (one backward pass), σ″ = ∂/∂z Σ σ′(z) (a double backward; 0 where σ′ does
    not depend on z). Exact to torch's derivative formulas, autograd's conventions at kinks;
    the results are detached. σ′ is the same for every ``order`` (torch may pick another
    rounding of σ′ for a graph it must differentiate again, so σ″ has its own backward pass).
    Cost: one forward and ``order`` backward passes, one more for σ″."""
    with torch.enable_grad():
        zz = z.detach().requires_grad_(True)
        out = activation(zz)
        if order == 0:
            return (out.detach(),)
        (d1,) = torch.autograd.grad(out.sum(), zz, retain_graph=order > 1)
        if order == 1:
            return out.detach(), d1
        (twice,) = torch.autograd.grad(out.sum(), zz, create_graph=True)
        d2 = None
        if twice.requires_grad:
            (d2,) = torch.autograd.grad(twice.sum(), zz, allow_unused=True)
    return out.detach(), d1, torch.zeros_like(z) if d2 is None else d2


def _supported_types() -> tuple[type[nn.Module], ...]:
    return (*CLOSED_FORM_ACTIVATIONS, *AUTOGRAD_ACTIVATIONS)


def activation_derivatives(
    activation: nn.Module, z: Tensor, order: int = 2, *, value: Tensor | None = None
) -> tuple[Tensor, ...]:
    """(σ(z), σ′(z), σ″(z))[: order + 1] elementwise for the activation module σ (module doc).

    Lookup: the module's own ``derivatives(z, order)`` method if it has one; else the closed form
    of its exact type (:data:`CLOSED_FORM_ACTIVATIONS`); else, for a type in
    :data:`AUTOGRAD_ACTIVATIONS` or a subclass of any supported type, :func:`autograd_derivatives`.

    Args:
        activation: the elementwise activation module.
        z: pre-activations, any shape; the results have z's shape and dtype.
        order: 0, 1 or 2, the highest derivative wanted.
        value: σ(z) when the caller already has it (spares recomputing tanh or sigmoid); it is
            returned as the first entry (a module's own ``derivatives`` computes σ itself).

    Raises:
        ValueError: for a module that is none of the above, or an order outside 0..2.
    """
    if order not in (0, 1, 2):
        raise ValueError(f"order: expected 0, 1 or 2, got {order!r}")
    if _has_own_derivatives(activation):
        return activation.derivatives(z, order)
    closed = _CLOSED_FORMS.get(type(activation))
    if closed is not None:
        return closed(activation, z, order, value)
    if isinstance(activation, _supported_types()):
        pieces = order == 2 and type(activation) in _PIECEWISE_LINEAR
        values = autograd_derivatives(activation, z, 1 if pieces else order)
        if pieces:  # σ″ = 0 (torch has no double backward for hardsigmoid)
            values = (*values, torch.zeros_like(z))
        return values if value is None else (value, *values[1:])
    raise ValueError(
        f"activation: expected one of {', '.join(t.__name__ for t in _supported_types())} "
        f"or a module with a derivatives(z, order) method, got {activation!r}"
    )


def activation_derivative(
    activation: nn.Module, z: Tensor, *, value: Tensor | None = None
) -> Tensor:
    """σ′(z) elementwise (relu′(0) = 0; see :func:`activation_derivatives` for the lookup);
    ``value`` = σ(z) spares recomputing tanh or sigmoid."""
    return activation_derivatives(activation, z, 1, value=value)[1]


def activation_second_derivative(activation: nn.Module, z: Tensor) -> Tensor:
    """σ″(z) elementwise (0 at kinks; see :func:`activation_derivatives` for the lookup)."""
    return activation_derivatives(activation, z, 2)[2]
