"""symlab.bias: implicit bias toward low rank (Jacot et al.).

- :mod:`symlab.bias.spectra`: singular values of any module's weights and hidden representations
  (forward hooks), numerical / effective / stable rank, the nuclear ratio, bottleneck profiles;
- :mod:`symlab.bias.deep_linear`: the representation cost L Σ s_i^{2/L} of a matrix under a
  depth-L linear net, its balanced factorization and its large-depth expansion R⁽⁰⁾, R⁽¹⁾, R⁽²⁾.
"""

from symlab.bias.deep_linear import (
    CostExpansion,
    balanced_factorization,
    dln_representation_cost,
    nonzero_singular_values,
    penalized_dln_optimum,
    representation_cost_expansion,
)
from symlab.bias.spectra import (
    PROFILE_RTOL,
    LayerSpectrum,
    bottleneck_profile,
    layer_spectra,
    nuclear_ratio,
    numerical_rank,
)
from symlab.linalg.spectra import effective_rank, stable_rank

__all__ = [
    "PROFILE_RTOL",
    "CostExpansion",
    "LayerSpectrum",
    "balanced_factorization",
    "bottleneck_profile",
    "dln_representation_cost",
    "effective_rank",
    "layer_spectra",
    "nonzero_singular_values",
    "nuclear_ratio",
    "numerical_rank",
    "penalized_dln_optimum",
    "representation_cost_expansion",
    "stable_rank",
]
