"""symlab.bias: implicit bias toward low rank (Jacot et al.).

- :mod:`symlab.bias.spectra`: singular values of any module's weights and hidden representations
  (forward hooks), numerical / effective / stable rank, the nuclear ratio, bottleneck profiles;
- :mod:`symlab.bias.deep_linear`: the representation cost L Σ s_i^{2/L} of a matrix under a
  depth-L linear net, its balanced factorization and its large-depth expansion R⁽⁰⁾, R⁽¹⁾, R⁽²⁾;
- :mod:`symlab.bias.linear_net`: deep linear networks (bias-free layers, N(0, σ²) init), low-rank
  matrix tasks (Tu et al.'s noisy target, separated spectra, completion) and their GD step size;
- :mod:`symlab.bias.plateaus`: plateaus of a loss curve in log-time and the ranks they visit
  (saddle-to-saddle dynamics, Jacot et al. 2021);
- :mod:`symlab.bias.mixed_dynamics`: the self-consistent dynamics of a wide two-layer linear net
  between the lazy and active regimes (Tu, Aranguri & Jacot 2024).
- :mod:`symlab.bias.identity_cost`: the cost of identity ‖A σ(A)⁺‖_F² of a Leaky ResNet's
  representation (by a solve with K + γI) and its nuclear-ratio lower bound;
- :mod:`symlab.bias.conv_spectra`: per-frequency singular values of circular convolutions (the
  2-D DFT block-diagonalization) and of convolutional activations, the CBN rank (Wen & Jacot 2024);
- :mod:`symlab.bias.conv_tasks`: bias-free circular ReLU CNNs and a task whose output depends on a
  known set of spatial frequencies (y = P_S x);
- :mod:`symlab.bias.representation_hamiltonian`: the Hamiltonian of the representations and backward variables,
  its flow, and the rank estimate −(2/L̃) H (Jacot & Kaiser 2024);
- :mod:`symlab.bias.activation_form`: the L2-regularized loss in the layers' activations and
  covariances, and the optimal weights Z_ℓ (Z_{ℓ−1}^σ)⁺ (Jacot, Golikov, Hongler & Gabriel 2022);
- :mod:`symlab.bias.width_reduction`: Carathéodory pruning of a homogeneous net to ≤ N(N+1)
  neurons per layer with its training outputs and L2 term kept (our construction);
- :mod:`symlab.bias.matern`: Matérn Gaussian-process draws (exact Cholesky and random Fourier
  features) and the compositional task Y = h(g(X)) (Jacot, Choi & Wen 2025).
"""

from symlab.bias.activation_form import (
    Activations,
    activation_loss,
    layer_activations,
    optimal_weights,
    parameter_loss,
    set_weights,
)
from symlab.bias.conv_spectra import (
    CBN_RTOL,
    FrequencySpectrum,
    activation_frequency_spectra,
    conv_frequency_spectra,
    dense_conv_matrix,
    frequency_matrices,
)
from symlab.bias.deep_linear import (
    CostExpansion,
    balanced_factorization,
    dln_representation_cost,
    nonzero_singular_values,
    penalized_dln_optimum,
    representation_cost_expansion,
)
from symlab.bias.identity_cost import cost_of_identity, cost_of_identity_bound, identity_sigma
from symlab.bias.linear_net import (
    DeepLinearNetwork,
    MatrixTask,
    dln_learning_rate,
    end_to_end_matrix,
    half_squared_error,
    init_variance,
    low_rank_task,
)
from symlab.bias.mixed_dynamics import (
    MixedTrajectory,
    integrate_mixed_dynamics,
    mixed_dynamics_step,
    mixed_dynamics_velocity,
    shifted_square_roots,
)
from symlab.bias.plateaus import Plateau, detect_plateaus, is_saddle_to_saddle, rank_sequence
from symlab.bias.representation_hamiltonian import (
    backward_variables,
    hamiltonian,
    hamiltonian_flow,
    rank_estimate,
)
from symlab.bias.spectra import (
    PROFILE_RTOL,
    LayerSpectrum,
    bottleneck_profile,
    layer_spectra,
    nuclear_ratio,
    numerical_rank,
)
from symlab.bias.width_reduction import WidthReduction, reduce_width
from symlab.linalg.spectra import effective_rank, stable_rank

__all__ = [
    "CBN_RTOL",
    "FrequencySpectrum",
    "activation_frequency_spectra",
    "conv_frequency_spectra",
    "dense_conv_matrix",
    "frequency_matrices",
    "set_weights",
    "reduce_width",
    "parameter_loss",
    "optimal_weights",
    "layer_activations",
    "activation_loss",
    "WidthReduction",
    "Activations",
    "CostExpansion",
    "DeepLinearNetwork",
    "LayerSpectrum",
    "MatrixTask",
    "MixedTrajectory",
    "PROFILE_RTOL",
    "Plateau",
    "backward_variables",
    "balanced_factorization",
    "bottleneck_profile",
    "cost_of_identity",
    "cost_of_identity_bound",
    "detect_plateaus",
    "dln_learning_rate",
    "dln_representation_cost",
    "effective_rank",
    "end_to_end_matrix",
    "half_squared_error",
    "hamiltonian",
    "hamiltonian_flow",
    "identity_sigma",
    "init_variance",
    "integrate_mixed_dynamics",
    "is_saddle_to_saddle",
    "layer_spectra",
    "low_rank_task",
    "mixed_dynamics_step",
    "mixed_dynamics_velocity",
    "nonzero_singular_values",
    "nuclear_ratio",
    "numerical_rank",
    "penalized_dln_optimum",
    "rank_estimate",
    "rank_sequence",
    "representation_cost_expansion",
    "shifted_square_roots",
    "stable_rank",
]
