"""symlab.boolean: learnability on the Boolean cube (Abbe, Boix-Adserà, Misiakiewicz).

- :mod:`symlab.boolean.monomials`: supports, Walsh characters χ_S and normalized Hermite monomials.
- :mod:`symlab.boolean.targets`: sparse targets f* = Σ_S ĉ_S φ_S, their inputs and online samplers.
- :mod:`symlab.boolean.orbits`: signed permutations and rotations acting on inputs and weights,
  orbits of targets f∘g and their cross-predictability (the cost of symmetry).
- :mod:`symlab.boolean.mean_field`: mean-field two-layer nets trained by SGD on such targets (a
  batch of seeds at once), with the projections c_S(t) = E[f_t φ_S] recorded along the way.
"""

from symlab.boolean.mean_field import (
    MeanFieldNet,
    MonomialRun,
    MonomialTracker,
    first_passage,
    layer_learning_rates,
    train_on_target,
    two_layer_output,
)
from symlab.boolean.monomials import (
    boolean_support,
    character,
    characters,
    check_dimension,
    gaussian_support,
    hermite,
    hermite_monomial,
    uniform_cube,
)
from symlab.boolean.orbits import (
    act,
    compose,
    cross_predictability,
    is_signed_permutation,
    parity_orbit_size,
    random_rotation,
    signed_permutation,
)
from symlab.boolean.targets import (
    MonomialTarget,
    control_supports,
    monomial_features,
    monomial_sampler,
    monomial_target,
    sample_inputs,
)

__all__ = [
    "MeanFieldNet",
    "MonomialRun",
    "MonomialTarget",
    "MonomialTracker",
    "act",
    "boolean_support",
    "character",
    "characters",
    "check_dimension",
    "compose",
    "control_supports",
    "cross_predictability",
    "first_passage",
    "gaussian_support",
    "hermite",
    "hermite_monomial",
    "is_signed_permutation",
    "layer_learning_rates",
    "monomial_features",
    "monomial_sampler",
    "monomial_target",
    "parity_orbit_size",
    "random_rotation",
    "sample_inputs",
    "signed_permutation",
    "train_on_target",
    "two_layer_output",
    "uniform_cube",
]
