"""Architectures as nn.Modules, helpers between parameters and flat vectors, and the derivatives
σ′, σ″ of the supported activations (:mod:`symlab.nets.activation_calculus`)."""

from symlab.nets.activation_calculus import (
    AUTOGRAD_ACTIVATIONS,
    CLOSED_FORM_ACTIVATIONS,
    activation_derivative,
    activation_derivatives,
    activation_second_derivative,
    autograd_derivatives,
    softplus_derivatives,
    supports_closed_form,
    supports_derivatives,
)
from symlab.nets.feedforward import (
    ACTIVATIONS,
    INITS,
    activation_of,
    is_mlp,
    linear_layers,
    make_activation,
    mlp,
    parameter_count,
    widths_of,
)
from symlab.nets.params import flatten_params, param_dtype, unflatten_params, with_params

__all__ = [
    "ACTIVATIONS",
    "AUTOGRAD_ACTIVATIONS",
    "CLOSED_FORM_ACTIVATIONS",
    "INITS",
    "activation_derivative",
    "activation_derivatives",
    "activation_of",
    "activation_second_derivative",
    "autograd_derivatives",
    "flatten_params",
    "is_mlp",
    "linear_layers",
    "make_activation",
    "mlp",
    "param_dtype",
    "parameter_count",
    "softplus_derivatives",
    "supports_closed_form",
    "supports_derivatives",
    "unflatten_params",
    "widths_of",
    "with_params",
]
