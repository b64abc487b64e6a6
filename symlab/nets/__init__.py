"""Architectures as nn.Modules and helpers between parameters and flat vectors."""

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
    "INITS",
    "activation_of",
    "flatten_params",
    "is_mlp",
    "linear_layers",
    "make_activation",
    "mlp",
    "param_dtype",
    "parameter_count",
    "unflatten_params",
    "widths_of",
    "with_params",
]
