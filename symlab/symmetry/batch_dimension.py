"""Batch functional dimension: the rank of a network's parameter Jacobian on given points.

Grigsby, Lindsey, Meyerhoff, Wu 2022 ("Functional dimension of feedforward ReLU neural
networks", arXiv 2209.04036) define the batch functional dimension of Z = {z_1, ..., z_N} as
rank J E_Z|_theta, the rank of the (N*K, D) Jacobian of theta -> (F_theta(z_1), ..., F_theta(z_N));
dim_fun(theta) is its supremum over finite smooth Z, attained on a decisive set.
:func:`batch_functional_dimension` computes it on given points;
:func:`symlab.symmetry.functional_dimension` grows a sample until it saturates.

Bound (:func:`fd_bound`). For a positively homogeneous activation (sigma(c z) = c sigma(z),
c > 0: ReLU, LeakyReLU, identity) the positive scaling at each hidden neuron h of layer l gives
v_h = (+(W_l[h], b_l[h]) on its incoming row, -W_{l+1}[:, h] on its outgoing column) in ker J
for every Z, independent when no incoming vector is zero (GLMW22; Grigsby, Lindsey, Rolnick
2023, "Hidden Symmetries of ReLU Networks", ICML, arXiv 2306.06179), hence

    dim_fun(theta) <= D - sum_{l=1}^{L-1} n_l,   D = the number of parameters.

A bias-free layer changes D, not the count: v_h just has no bias entry. A network with no bias
at all is positively homogeneous in each W_l (F(c W_l) = c F), so J vec(W_l) = F (Euler) and
vec(W_l) - vec(W_{l+1}) lies in ker J; but that vector is the sum of the v_h of layer l, so no
direction is added. (It is positively homogeneous in x as well: rows at c x are c times those
at x. That removes no parameter direction, but for n0 = 1 all points lie on two rays, so the
rank is at most 2K there: a measured deficit, not part of the bound.) Other activations (tanh,
softplus, GELU, sigmoid) have no continuous symmetry, and the bound is D; so it is for modules
that are not MLPs. A rank above the bound is a bug, never a result: it raises RuntimeError.

Numerics: float64 Jacobians (recomputed from a float64 copy of a float32 model), rows and
columns scaled to unit norm (diagonal scalings do not change the rank), and
:func:`symlab.linalg.numerical_rank`'s rule (tol = sigma_max * max(m, n) * eps, gap at the cut,
``"auto"`` = Gram + eigvalsh, certified, with an SVD fallback). For positively homogeneous MLPs
the known scaling null space is removed before the rank: J v_h = 0 makes one column of neuron
h's incoming row a combination of the others, so that column is dropped. The dropped columns'
coefficient matrix is block-triangular over layers with nonzero diagonal, so the rank is
unchanged exactly while the matrix shrinks by the number of hidden neurons
(:class:`symlab.symmetry.scaled_jacobian.ScaledJacobian`).

Region compression (piecewise-linear MLPs, :mod:`symlab.symmetry.regions`): inside one
activation region every Jacobian row is affine in x, so n0 + 1 affinely independent points per
activation pattern span the rows of all the pattern's points, and rank J E_{Z'} = rank J E_Z for
the representatives Z' of Z.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from symlab.linalg.rank import RANK_METHODS, RankResult, numerical_rank
from symlab.nets import ACTIVATIONS, activation_of, is_mlp, linear_layers, widths_of
from symlab.symmetry.actions import is_positively_homogeneous
from symlab.symmetry.model_checks import check_finite_inputs, check_model, check_single_output
from symlab.symmetry.regions import decisive_subset, is_piecewise_linear
from symlab.symmetry.scaled_jacobian import ScaledJacobian

# Representatives per activation pattern = factor * (n0 + 1). 1 is exact; on slivers 1e-6 thin
# the kept rows had the full set's rank and a singular-value gap no smaller (tests), so a
# margin of 2 (n0 + 1) bought nothing but rows.
REGION_POINTS_FACTOR = 1
_HOMOGENEOUS = ("relu", "leaky_relu", "identity")


@dataclass(frozen=True)
class FDResult:
    """Batch functional dimension and how far it can be trusted.

    rank: numerical rank of J E_Z; bound: :func:`fd_bound` of the model (D - #hidden for
    positively homogeneous MLPs, with or without biases, else the parameter count D);
    deficit = bound - rank; n_points: |Z|; tol, gap,
    singular_values, ambiguous, method: from the rank computation (of the row- and
    column-scaled Jacobian, without the dropped scaling columns; method ``"gram (count)"``: the
    certified count of :func:`symlab.symmetry.functional_dimension` with
    ``certify_budget_stop=False``, a lower bound on the sample's rank, gap NaN); saturated:
    ``"bound"`` (the rank reached the bound, so it is dim_fun), ``"plateau"`` (unchanged over
    ``PLATEAU_DOUBLINGS`` doublings of the sample), ``"max_points"`` (stopped by max_points: a
    lower bound only) or ``"batch"`` (explicit inputs below the bound: the batch value);
    points: a set with the row space of J E_Z, on which e.g. :func:`symlab.symmetry.diagnose`
    attributes the deficit: Z itself for explicit inputs, else (region compression, see
    :mod:`symlab.symmetry.regions`) the representatives Z' whose Jacobian rows were computed
    (Z itself without compression); ``len(points)`` is the number of points differentiated.
    regions: the number of distinct activation patterns met in Z (None when the regions were
    not computed: smooth activations, generic modules, or ``compress_regions=False``).
    certificate: :class:`symlab.linalg.RankResult`'s null-space certificate of the reported
    rank (<= 1 proves the Gram rank equals the SVD rule's rank; None when the rank came from an
    SVD or from the uncertified Gram at the bound, where the blind spot cannot lower it).

    The interval [lower, upper] holds dim_fun(theta): ``lower`` is ``rank`` (the rank on the
    sample); ``upper`` is the bound minus the kernel directions proven on all of R^{n0}
    (:func:`symlab.symmetry.kernel_proofs.proven_kernel`: dead / always-active neurons,
    never-co-active edges, neurons without a live path, and the decisive-set rank when every
    activation region was enumerated), or ``bound`` when nothing more was proven (no proof
    asked, or not a ReLU MLP with biases); ``exact`` = lower == upper; ``proof``: the
    :class:`ProvenKernel` (None when none was computed). ``saturated`` is then ``"bound"``
    (lower == upper == bound) or ``"exact"`` (lower == upper < bound) for a proven value.
    "Proven" is up to two stated numerical rules: ranks are float64 ranks with tolerance ``tol``
    and gap ``gap`` (the decisive-set rank that can set ``upper`` included), and the region
    proofs take a side of inradius <= 1e-12 as empty (HiGHS's verdict; thinner sides than 1e-9
    prove nothing: :mod:`symlab.symmetry.linear_regions`).
    """

    rank: int
    bound: int
    deficit: int
    n_points: int
    tol: float
    gap: float
    singular_values: torch.Tensor
    saturated: str
    ambiguous: bool
    method: str
    points: torch.Tensor | None = field(default=None, repr=False, compare=False)
    regions: int | None = None
    certificate: float | None = None
    upper: int | None = None
    proof: object | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.upper is None:
            object.__setattr__(self, "upper", self.bound)

    @property
    def lower(self) -> int:
        """The rank on the sample: a lower bound on dim_fun."""
        return self.rank

    @property
    def exact(self) -> bool:
        """lower == upper: the functional dimension is proven (up to the rules in the class
        docstring)."""
        return self.rank == self.upper


def _check_widths(widths: object) -> list[int]:
    try:
        values = None if isinstance(widths, str) else list(widths)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) < 2
        or any(isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1 for w in values)
    ):
        raise ValueError(f"widths: expected at least two positive integers, got {widths!r}")
    return [int(w) for w in values]


def _check_biases(bias: object, n_layers: int) -> list[bool]:
    if isinstance(bias, bool):
        return [bias] * n_layers
    if (
        not isinstance(bias, Sequence)
        or len(bias) != n_layers
        or not all(isinstance(b, bool) for b in bias)
    ):
        raise ValueError(
            f"bias: expected a bool or one bool per Linear layer ({n_layers}), got {bias!r}"
        )
    return list(bias)


def _homogeneous_activation(activation: object) -> bool:
    if isinstance(activation, nn.Module):
        return isinstance(activation, nn.ReLU | nn.LeakyReLU | nn.Identity)
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation: expected one of {', '.join(ACTIVATIONS)} or an nn.Module, got "
            f"{activation!r}"
        )
    return activation in _HOMOGENEOUS


def fd_bound(
    model: nn.Module | Sequence[int],
    /,
    *,
    bias: bool | Sequence[bool] | None = None,
    activation: str | nn.Module | None = None,
) -> int:
    """The upper bound on the functional dimension (see the module docstring for the proof).

    D - (number of hidden neurons) for a positively homogeneous hidden activation (ReLU,
    LeakyReLU, identity), D otherwise, D counting only the parameters that exist (no bias
    entries for bias-free layers). Equal to ``functional_dimension(model).bound``.

    Args:
        model: an ``nn.Module`` (an MLP as built by :func:`symlab.nets.mlp`: its widths, biases
            and activation are read; any other module: its parameter count D), or the widths
            (n_0, ..., n_L).
        bias: with widths only: True (default), False, or one bool per Linear layer.
        activation: with widths only: one of :data:`symlab.nets.ACTIVATIONS` (default
            ``"relu"``) or an activation module (e.g. ``nn.Sigmoid()``).
    """
    if isinstance(model, nn.Module):
        if bias is not None or activation is not None:
            given = "bias" if bias is not None else "activation"
            raise ValueError(
                f"{given}: a model carries its own biases and activation; give {given}= only "
                "with widths"
            )
        d = sum(p.numel() for p in model.parameters())
        if not is_mlp(model):
            return d
        return d - sum(widths_of(model)[1:-1]) if is_positively_homogeneous(model) else d
    widths = _check_widths(model)
    biases = _check_biases(True if bias is None else bias, len(widths) - 1)
    homogeneous = _homogeneous_activation("relu" if activation is None else activation)
    pairs = zip(widths[:-1], widths[1:], biases, strict=True)
    d = sum(n_out * (n_in + int(has_bias)) for n_in, n_out, has_bias in pairs)
    return d - sum(widths[1:-1]) if homogeneous else d


def _check_bound(rank: int, bound: int, what: str = "upper bound") -> None:
    if rank > bound:
        raise RuntimeError(
            f"functional dimension {rank} exceeds its {what} {bound}: the Jacobian, the rank "
            "computation or the proof is wrong"
        )


def _result(
    rank: RankResult,
    bound: int,
    points: torch.Tensor,
    saturated: str,
    n_points: int | None = None,
    regions: int | None = None,
    proof: object | None = None,
) -> FDResult:
    _check_bound(rank.rank, bound)
    upper = proven_upper(proof, bound, rank.rank)
    n_points = points.shape[0] if n_points is None else n_points
    return FDResult(
        rank.rank,
        bound,
        bound - rank.rank,
        n_points,
        rank.tol,
        rank.gap,
        rank.singular_values,
        saturated,
        rank.ambiguous,
        rank.method,
        points.detach(),
        regions,
        rank.certificate,
        upper,
        proof,
    )


def _check_inputs(model: nn.Module, inputs: object) -> torch.Tensor:
    check_model(model)
    n0 = linear_layers(model)[0].in_features if is_mlp(model) else None
    if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point():
        raise ValueError(
            f"inputs: expected a floating-point tensor (float32 or float64), got dtype "
            f"{inputs.dtype} (convert with inputs.double())"
        )
    if (
        not isinstance(inputs, torch.Tensor)
        or not inputs.is_floating_point()
        or inputs.dim() < 1
        or inputs.shape[0] < 1
        or (n0 is not None and (inputs.dim() != 2 or inputs.shape[1] != n0))
    ):
        shape = f"(N, {n0})" if n0 is not None else "(N, ...)"
        raise ValueError(
            f"inputs: expected a floating-point tensor of shape {shape} with N >= 1, got "
            f"{type(inputs).__name__} of shape {tuple(getattr(inputs, 'shape', ()))}"
        )
    check_finite_inputs(inputs)
    if n0 is None:
        check_single_output(model, inputs)
    return inputs


def batch_functional_dimension(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    rank_method: str = "auto",
    reduce_scaling: bool = True,
    compress_regions: bool = True,
    proof_regions: int = 0,
) -> FDResult:
    """Batch functional dimension rank J E_Z|_theta on Z = ``inputs`` (GLMW22), with its bound.

    No sampling: the rank of the row- and column-scaled float64 Jacobian on exactly these
    points (see the module docstring), by :func:`symlab.linalg.numerical_rank` with
    ``rank_method``. ``saturated`` is ``"bound"`` when the rank reaches :func:`fd_bound`, else
    ``"batch"`` (the batch value: a lower bound on dim_fun). ``points`` is ``inputs``.

    Args:
        model: an MLP (closed-form Jacobian) or any ``nn.Module`` (generic Jacobian; the bound
            is then the parameter count D).
        inputs: (N, n0) points for an MLP; any batch the module accepts otherwise.
        rank_method: ``"auto"`` (Gram, certified, with SVD fallback), ``"gram"`` or ``"svd"``.
        reduce_scaling: drop one known scaling-null-space column per hidden neuron (positively
            homogeneous MLPs only); the rank is unchanged and the matrix is smaller.
        compress_regions: piecewise-linear MLPs only: differentiate n0 + 1 points per
            activation pattern (the rank is that of all points; ``regions`` counts patterns).
        proof_regions: ReLU MLPs with biases: region budget of the proven upper bound
            (:func:`symlab.symmetry.kernel_proofs.proven_kernel`); 0 (default): no proof, upper
            = bound. ``saturated`` is then ``"exact"`` when the rank meets a proven upper bound
            below the bound.

    Cost: O(N K D) for J plus the rank (about N K D'^2 + 4/3 D'^3 flops for the Gram, D' = D -
    #hidden with reduce_scaling), N = the number of differentiated points; patterns O(N D).
    """
    if rank_method not in RANK_METHODS:
        raise ValueError(
            f"rank_method: expected one of {', '.join(RANK_METHODS)}, got {rank_method!r}"
        )
    inputs = _check_inputs(model, inputs)
    homogeneous = is_mlp(model) and is_positively_homogeneous(model)
    scaled = ScaledJacobian(model, bool(reduce_scaling) and homogeneous)
    proof = prove_upper(model, proof_regions)
    return _batch_result(model, inputs, scaled, rank_method, bool(compress_regions), proof)


def proven_upper(proof: object | None, bound: int, rank: int) -> int:
    """The proof's upper bound, checked against a sampled ``rank``. A decisive-set rank below a
    sampled rank fell short numerically (a very thin region's simplex): the exact claim is then
    withdrawn and the kernel bound stands; a rank above the kernel bound is an error."""
    if proof is None:
        return bound
    upper = int(proof.upper)
    if rank > upper and proof.decisive_rank is not None:
        upper = int(proof.kernel_upper)
    _check_bound(rank, upper, "proven upper bound")
    return upper


def prove_upper(model: nn.Module, proof_regions: object) -> object | None:
    """:func:`symlab.symmetry.kernel_proofs.proven_kernel` within ``proof_regions`` regions for
    a ReLU MLP with biases (None for 0, another model, or an LP that HiGHS left undecided)."""
    if isinstance(proof_regions, bool) or not isinstance(proof_regions, int) or proof_regions < 0:
        raise ValueError(f"proof_regions: expected a non-negative integer, got {proof_regions!r}")
    if proof_regions == 0 or not is_mlp(model):
        return None
    layers = linear_layers(model)
    if (
        len(layers) < 2
        or not isinstance(activation_of(model), nn.ReLU)
        or any(layer.bias is None for layer in layers)
    ):
        return None
    from symlab.symmetry.kernel_proofs import proven_kernel  # it imports this module
    from symlab.symmetry.linear_regions import LPFailure

    try:
        return proven_kernel(model, max_regions=proof_regions)
    except LPFailure:  # an LP without a verdict proves nothing: upper = the bound
        return None


def _batch_result(
    model: nn.Module,
    inputs: torch.Tensor,
    scaled: ScaledJacobian,
    rank_method: str,
    compress_regions: bool,
    proof: object | None = None,
) -> FDResult:
    """:func:`batch_functional_dimension` with a given scaled Jacobian (whose dropped scaling
    columns, chosen on its first call, the adaptive loop shares across its doublings)."""
    bound = fd_bound(model)
    regions, decisive = None, inputs
    if compress_regions and is_piecewise_linear(model):
        per_region = REGION_POINTS_FACTOR * (linear_layers(model)[0].in_features + 1)
        subset = decisive_subset(model, inputs, per_region=per_region)
        regions, decisive = subset.regions, inputs[subset.indices]
    # zero columns leave the Gram routes' rank and tol as they are (they zero them anyway);
    # the plain SVD rule's tol counts every column of a wide matrix, so it keeps them
    jac = scaled(decisive, drop_zero_columns=rank_method != "svd")
    rank = numerical_rank(jac, method=rank_method)
    upper = proven_upper(proof, bound, rank.rank)
    saturated = "bound" if rank.rank == bound else "exact" if rank.rank == upper else "batch"
    return _result(rank, bound, inputs, saturated, regions=regions, proof=proof)
