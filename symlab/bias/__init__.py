"""symlab.bias: implicit bias toward low rank (Jacot et al.).

- :mod:`symlab.bias.spectra`: singular values of any module's weights and hidden representations
  (forward hooks), numerical / effective / stable rank, the nuclear ratio, bottleneck profiles;
- :mod:`symlab.bias.deep_linear`: the representation cost L Σ s_i^{2/L} of a matrix under a
  depth-L linear net, its balanced factorization and its large-depth expansion R⁽⁰⁾, R⁽¹⁾, R⁽²⁾;
- :mod:`symlab.bias.cost_of_identity`: the cost of identity ‖A σ(A)⁺‖_F² of a Leaky ResNet's
  representation (by a solve with K + γI) and its nuclear-ratio lower bound;
- :mod:`symlab.bias.hamiltonian`: the Hamiltonian of the representations and backward variables,
  its flow, and the rank estimate −(2/L̃) H (Jacot & Kaiser 2024).
"""

from symlab.bias.cost_of_identity import cost_of_identity, cost_of_identity_bound, identity_sigma
from symlab.bias.deep_linear import (
    CostExpansion,
    balanced_factorization,
    dln_representation_cost,
    nonzero_singular_values,
    penalized_dln_optimum,
    representation_cost_expansion,
)
from symlab.bias.hamiltonian import backward_variables, hamiltonian, hamiltonian_flow, rank_estimate
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
    "backward_variables",
    "balanced_factorization",
    "bottleneck_profile",
    "cost_of_identity",
    "cost_of_identity_bound",
    "dln_representation_cost",
    "effective_rank",
    "hamiltonian",
    "hamiltonian_flow",
    "identity_sigma",
    "layer_spectra",
    "nonzero_singular_values",
    "nuclear_ratio",
    "numerical_rank",
    "penalized_dln_optimum",
    "rank_estimate",
    "representation_cost_expansion",
    "stable_rank",
]
