"""symlab.critical: symmetry-induced critical subspaces, embeddings, paths between minima."""

from symlab.critical.counts import (
    SubspaceKind,
    bell_number,
    count_global_minima_subspaces,
    count_symmetry_induced_subspaces,
    stirling2,
    subspace_kinds,
)
from symlab.critical.embeddings import (
    ReductionReport,
    add_zero_neuron,
    embed,
    reduce,
    split_neuron,
)
from symlab.critical.enumerate import (
    NeuronGroup,
    Subspace,
    enumerate_global_minima_subspaces,
    enumerate_symmetry_induced_subspaces,
    sample_point,
)
from symlab.critical.paths import path_loss, path_model, permutation_path, permute_neurons

__all__ = [
    "NeuronGroup",
    "ReductionReport",
    "Subspace",
    "SubspaceKind",
    "add_zero_neuron",
    "bell_number",
    "count_global_minima_subspaces",
    "count_symmetry_induced_subspaces",
    "embed",
    "enumerate_global_minima_subspaces",
    "enumerate_symmetry_induced_subspaces",
    "path_loss",
    "path_model",
    "permutation_path",
    "permute_neurons",
    "reduce",
    "sample_point",
    "split_neuron",
    "stirling2",
    "subspace_kinds",
]

# Criticality checks and condensation measures (training / Hessian-inertia engineer).
from symlab.critical.condensation import (  # noqa: E402
    effective_neuron_count,
    neuron_orientations,
    orientation_clusters,
)
from symlab.critical.criticality import (  # noqa: E402
    CriticalPoint,
    Inertia,
    gradient_norm,
    hessian,
    hessian_inertia,
    hessian_vector_product,
    predicted_split_inertia,
    splitting_matrix,
    train_to_critical,
)

__all__ += [
    "CriticalPoint",
    "Inertia",
    "effective_neuron_count",
    "gradient_norm",
    "hessian",
    "hessian_inertia",
    "hessian_vector_product",
    "neuron_orientations",
    "orientation_clusters",
    "predicted_split_inertia",
    "splitting_matrix",
    "train_to_critical",
]

# Two-layer teacher–student nets and end-point classification (critical-points study).
from symlab.critical.teacher_student import (  # noqa: E402
    SigmoidSoftplus,
    classify,
    make_teacher,
    two_layer,
)

__all__ += ["SigmoidSoftplus", "classify", "make_teacher", "two_layer"]
