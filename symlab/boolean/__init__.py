"""symlab.boolean: learnability on the Boolean cube (Abbe, Boix-Adserà, Misiakiewicz).

- :mod:`symlab.boolean.monomials`: supports, Walsh characters χ_S and normalized Hermite monomials.
- :mod:`symlab.boolean.walsh`: :class:`WalshExpansion`, a function on {±1}^d from its Walsh
  coefficients (parities, staircases, any sum), evaluated and sampled.
- :mod:`symlab.boolean.transform`: the exact Walsh transform of a black box (fast Walsh–Hadamard
  transform, d ≤ 24), Monte-Carlo coefficients with confidence intervals (any d), the weight
  per degree W^k.
- :mod:`symlab.boolean.msp`: the leap of a Boolean or Gaussian support and the merged-staircase
  property, exactly, with an optimal ordering.
"""

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
    "MAX_EXACT_DIM",
    "CoefficientEstimate",
    "LeapResult",
    "WalshExpansion",
    "boolean_support",
    "character",
    "characters",
    "check_dimension",
    "cube_points",
    "estimate_coefficients",
    "fourier_weight_by_degree",
    "fwht",
    "gaussian_support",
    "hadamard",
    "hermite",
    "hermite_monomial",
    "index_support",
    "is_merged_staircase",
    "leap",
    "support_index",
    "uniform_cube",
    "walsh_coefficients",
    "walsh_transform",
]
