"""symlab.boolean: learnability on the Boolean cube (Abbe, Boix-Adserà, Misiakiewicz).

- :mod:`symlab.boolean.monomials`: supports, Walsh characters χ_S and normalized Hermite monomials.
- :mod:`symlab.boolean.walsh`: :class:`WalshExpansion`, a function on {±1}^d from its Walsh
  coefficients (parities, staircases, any sum), evaluated and sampled.
- :mod:`symlab.boolean.transform`: the exact Walsh transform of a black box (fast Walsh–Hadamard
  transform, d ≤ 24), Monte-Carlo coefficients with confidence intervals (any d), the weight
  per degree W^k.
- :mod:`symlab.boolean.msp`: the leap of a Boolean or Gaussian support and the merged-staircase
  property, exactly, with an optimal ordering.
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
from symlab.boolean.msp import LeapResult, is_merged_staircase, leap
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
from symlab.boolean.transform import (
    MAX_EXACT_DIM,
    CoefficientEstimate,
    cube_points,
    estimate_coefficients,
    fourier_weight_by_degree,
    fwht,
    hadamard,
    index_support,
    support_index,
    walsh_coefficients,
    walsh_transform,
)
from symlab.boolean.walsh import WalshExpansion

__all__ = [
    "CoefficientEstimate",
    "LeapResult",
    "MAX_EXACT_DIM",
    "MeanFieldNet",
    "MonomialRun",
    "MonomialTarget",
    "MonomialTracker",
    "WalshExpansion",
    "act",
    "boolean_support",
    "character",
    "characters",
    "check_dimension",
    "compose",
    "control_supports",
    "cross_predictability",
    "cube_points",
    "estimate_coefficients",
    "first_passage",
    "fourier_weight_by_degree",
    "fwht",
    "gaussian_support",
    "hadamard",
    "hermite",
    "hermite_monomial",
    "index_support",
    "is_merged_staircase",
    "is_signed_permutation",
    "layer_learning_rates",
    "leap",
    "monomial_features",
    "monomial_sampler",
    "monomial_target",
    "parity_orbit_size",
    "random_rotation",
    "sample_inputs",
    "signed_permutation",
    "support_index",
    "train_on_target",
    "two_layer_output",
    "uniform_cube",
    "walsh_coefficients",
    "walsh_transform",
]
