"""Architectures as nn.Modules (MLPs; Leaky ResNets, :mod:`symlab.nets.leaky_resnet`; accordion
nets, :mod:`symlab.nets.accordion`), helpers
between parameters and flat vectors, and the derivatives σ′, σ″ of the supported activations
(:mod:`symlab.nets.activation_calculus`)."""

from symlab.nets.accordion import accordion_net
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
from symlab.nets.leaky_resnet import (
    STEP_RULES,
    AdaptiveSteps,
    LeakyResNet,
    adaptive_steps,
    equidistant_steps,
    irregular_steps,
    leaky_sigma,
)
from symlab.nets.params import flatten_params, param_dtype, unflatten_params, with_params

__all__ = [
    "ACTIVATIONS",
    "accordion_net",
    "STEP_RULES",
    "AdaptiveSteps",
    "LeakyResNet",
    "AUTOGRAD_ACTIVATIONS",
    "CLOSED_FORM_ACTIVATIONS",
    "INITS",
    "activation_derivative",
    "activation_derivatives",
    "activation_of",
    "activation_second_derivative",
    "adaptive_steps",
    "autograd_derivatives",
    "equidistant_steps",
    "flatten_params",
    "irregular_steps",
    "is_mlp",
    "leaky_sigma",
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
