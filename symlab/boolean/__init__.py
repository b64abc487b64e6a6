"""symlab.boolean: learnability on the Boolean cube (Abbe, Boix-Adserà, Misiakiewicz).

- :mod:`symlab.boolean.monomials`: supports, Walsh characters χ_S and normalized Hermite monomials.
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

__all__ = [
    "boolean_support",
    "character",
    "characters",
    "check_dimension",
    "gaussian_support",
    "hermite",
    "hermite_monomial",
    "uniform_cube",
]
