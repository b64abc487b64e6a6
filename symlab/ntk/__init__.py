"""Empirical neural tangent kernels: fast computation, kernel metrics, tracking, linearisation.

``empirical_ntk`` (structured per-layer formula, Jacobian contraction, NTK-vector products, auto
choice, chunking), ``kernel_distance`` / ``kernel_velocity`` (Fort et al. 2020),
``kernel_alignment`` (Cortes et al. 2012), ``ntk_spectrum`` / ``ntk_effective_rank``,
``layerwise_ntk`` (Θ = Σ_ℓ Θ_ℓ) with ``error_reduction`` / ``error_reduction_shares`` (each
layer's ⟨r, Θ_ℓ r⟩), ``KernelTracker`` (a training-loop callback), ``linearize`` and ``kernel_regression``.
"""

from symlab.ntk.empirical import METHODS, empirical_ntk, trainable_params
from symlab.ntk.layerwise import error_reduction, error_reduction_shares, layerwise_ntk
from symlab.ntk.linearized_model import LinearizedModel, kernel_regression, linearize
from symlab.ntk.metrics import (
    kernel_alignment,
    kernel_distance,
    kernel_velocity,
    ntk_effective_rank,
    ntk_matrix,
    ntk_spectrum,
)
from symlab.ntk.random_signs import SignCancellation, random_sign_cancellation
from symlab.ntk.structured import structured_layers
from symlab.ntk.taylor_expansion import (
    TaylorSplit,
    TaylorSplitTracker,
    explained_fraction,
    taylor_split,
    trainable_state,
)
from symlab.ntk.tracker import KernelTracker

__all__ = [
    "METHODS",
    "KernelTracker",
    "LinearizedModel",
    "SignCancellation",
    "TaylorSplit",
    "TaylorSplitTracker",
    "empirical_ntk",
    "explained_fraction",
    "error_reduction",
    "error_reduction_shares",
    "kernel_alignment",
    "kernel_distance",
    "kernel_regression",
    "kernel_velocity",
    "layerwise_ntk",
    "linearize",
    "ntk_effective_rank",
    "ntk_matrix",
    "ntk_spectrum",
    "random_sign_cancellation",
    "structured_layers",
    "taylor_split",
    "trainable_params",
    "trainable_state",
]
