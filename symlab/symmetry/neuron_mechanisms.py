"""Mechanisms behind a functional-dimension deficit: dead, always-active, unused parameters.

Functional dimension on a batch Z is rank J E_Z|_theta <= D - (number of hidden neurons), the
bound set by the positive-scaling symmetry at each hidden neuron (Grigsby, Lindsey, Meyerhoff,
Wu 2022, arXiv 2209.04036). Grigsby, Lindsey, Rolnick 2023 ("Hidden Symmetries of ReLU
Networks", ICML, arXiv 2306.06179, Sec. 5) trace rank losses below the bound to unused
activations and restricted hidden images. For a ReLU MLP and a sample Z, :func:`diagnose`
finds, per hidden neuron (l, i) with pre-activation z^l_i(x):

- **never active**: z^l_i(x) <= 0 for every x in Z (dead on Z, "stably unactivated");
- **always active**: z^l_i(x) > 0 for every x in Z (ReLU acts as the identity on Z);
- per layer, whether it is **narrower than the input** (n_l < n_0; flagged, not attributed);
- per parameter, whether it is **unused on Z**: its Jacobian column is zero for every x in Z.

Attribution. Every direction below is proven to lie in ker J E_Z, so
``predicted_rank = D - dim(span)`` is an upper bound on the batch rank and
``predicted_deficit = bound - predicted_rank`` a lower bound on the deficit; it is exact when
nothing else (restricted hidden images, narrow layers, too few points) removes rank.

1. A dead neuron (l, i) has zero Jacobian columns for its n_{l-1} incoming weights, its bias
   and its n_{l+1} outgoing weights (relu'(z) = 0 for z <= 0, and its output is 0). The union
   over dead neurons is a coordinate subspace C; an edge between two dead neurons in adjacent
   layers is one coordinate, counted once. The scaling directions of dead neurons lie in C,
   so they are no longer independent of it; the alive neurons' scalings, restricted to the
   other coordinates, are the scalings of the pruned network. Hence, with no always-active
   neurons, predicted deficit = |C| - (number of dead neurons): n_{l-1} + n_{l+1} for a single
   dead neuron, one less for each dead-dead edge.
2. Always-active neurons A (k = |A| >= 1) of layer l add to z^{l+1}(x), for every x in Z,
   U V a~(x) + b_{l+1} with U = W_{l+1}[:, A], V = (W_l[A, :] | b_l[A]), a~ = (a^{l-1}, 1).
   Every (dU, dV, db_{l+1}) with dU V + U dV + db_{l+1} e_last^T = 0 keeps z^{l+1} fixed on Z
   to first order, so it lies in ker J. This kernel contains the gl(k) mixing of the k
   neurons (a hidden symmetry beyond scaling when k >= 2) and, already for k = 1, the transfer
   of the bias b_l[i] into b_{l+1} along U. Its basis comes from a float64 SVD (tolerance
   sigma_max * max(shape) * eps) of the explicit (n_{l+1} m) x (k(n_{l+1} + m) + n_{l+1}) map,
   m = n_{l-1} + 1, with the rows/columns of dead neighbours removed. E.g. when rank U =
   n_{l+1} the map is onto, so the kernel has dimension k(n_{l+1} + m) + n_{l+1} - n_{l+1} m,
   of which k scalings are already in the bound.
3. Unused parameters. With g^l(x) = dF/dz^l (K x n_l) and a^0 = x, the Jacobian column of
   W_l[i, j] is g^l_{:, i}(x) a^{l-1}_j(x) and that of b_l[i] is g^l_{:, i}(x). A parameter whose
   column vanishes for every x in Z (sum_x sum_k |g^l_{k,i}(x)| |a^{l-1}_j(x)| = 0, tested exactly
   with 0/1 indicators, see :mod:`symlab.symmetry.kernel_directions`) has e_c in ker J E_Z, so
   these coordinate vectors join C. They contain the dead neurons' coordinates and add
   never-co-active edges (no x in Z where neuron j of layer l-1 is active while neuron i of layer
   l is active and reaches an output) and the parameters of neurons with no live downstream path
   on Z. This is a property of the sample, not of theta alone: a larger sample can make an unused
   edge used (a point where both ends are active together), and then the deficit it explained
   disappears. The attribution is sequential: ``dead_deficit`` (dead coordinates + scalings),
   ``unused_deficit`` (what the further unused coordinates add), ``always_active_deficit`` (what
   the always-active kernels add on top); the three sum to ``predicted_deficit``.
4. If a whole hidden layer is dead on Z, F is constant on Z and rank J = K (the output biases)
   exactly.

Always-active groups in adjacent layers compose into a linear map with further symmetries
than the union of per-layer kernels; the prediction stays a lower bound there. Forward pass and
linear algebra run in float64 whatever the model's dtype. Cost: one forward pass O(N D), plus
an SVD of a (#directions x D) matrix and of each group's map.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from symlab.symmetry.batch_dimension import FDResult, batch_functional_dimension, fd_bound
from symlab.symmetry.kernel_directions import (
    _kernel_directions,
    _restricted_rank,
    _unused_coordinates,
)
from symlab.symmetry.kernel_proofs import ProvenKernel, proven_kernel
from symlab.symmetry.linear_regions import check_relu_mlp

__all__ = ["MechanismReport", "diagnose", "mechanism_kernel"]


@dataclass(frozen=True)
class MechanismReport:
    """Per-neuron activation mechanisms of a ReLU MLP on a sample, and the deficit they explain.

    Tensors are indexed by hidden layer: ``never_active[l-1][i]`` is neuron i of hidden layer l
    (1-based, as W^l in the papers). ``kernel_tol``/``kernel_gap`` are the tolerance and the
    singular-value gap sigma_r / sigma_{r+1} of the rank of the explicit kernel directions.
    ``observed_*`` and ``unexplained = observed_deficit - predicted_deficit`` are None unless
    an FDResult on the same inputs was given or computed. ``unused_weights[l-1]`` (n_l x n_{l-1})
    and ``unused_biases[l-1]`` (n_l) flag the parameters of layer l (1..L, output layer included)
    whose Jacobian column is zero on the sample; ``unused_coordinates`` is the flat (D,) mask.
    """

    widths: tuple[int, ...]
    n_points: int
    bound: int
    never_active: tuple[torch.Tensor, ...]
    always_active: tuple[torch.Tensor, ...]
    active_fraction: tuple[torch.Tensor, ...]
    min_preactivation: tuple[torch.Tensor, ...]
    max_preactivation: tuple[torch.Tensor, ...]
    narrow_layers: tuple[int, ...]
    dead_layers: tuple[int, ...]
    predicted_rank: int
    predicted_deficit: int
    dead_deficit: int
    always_active_deficit: int
    unused_weights: tuple[torch.Tensor, ...]
    unused_biases: tuple[torch.Tensor, ...]
    n_unused: int
    n_unused_beyond_dead: int
    unused_deficit: int
    kernel_tol: float
    kernel_gap: float
    observed_rank: int | None = None
    observed_deficit: int | None = None
    unexplained: int | None = None
    proven_never_active: tuple[torch.Tensor, ...] | None = None
    proven_always_active: tuple[torch.Tensor, ...] | None = None
    n_proven_unused: int | None = None
    proven_upper: int | None = None
    proven_how: tuple[str, ...] | None = None

    @property
    def n_proven_never_active(self) -> int | None:
        """Hidden neurons proven dead on all of R^{n0} (None without a proof)."""
        if self.proven_never_active is None:
            return None
        return int(sum(int(m.sum()) for m in self.proven_never_active))

    @property
    def n_proven_always_active(self) -> int | None:
        """Hidden neurons proven always active on all of R^{n0} (None without a proof)."""
        if self.proven_always_active is None:
            return None
        return int(sum(int(m.sum()) for m in self.proven_always_active))

    @property
    def n_never_active(self) -> int:
        """Number of hidden neurons with pre-activation <= 0 on every sample."""
        return int(sum(int(m.sum()) for m in self.never_active))

    @property
    def n_always_active(self) -> int:
        """Number of hidden neurons with pre-activation > 0 on every sample."""
        return int(sum(int(m.sum()) for m in self.always_active))

    @property
    def unused_coordinates(self) -> torch.Tensor:
        """Flat (D,) bool mask of the unused parameters, order W_1, b_1, ..., W_L, b_L."""
        return torch.cat(
            [
                torch.cat([w.reshape(-1), b])
                for w, b in zip(self.unused_weights, self.unused_biases, strict=True)
            ]
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per hidden neuron: layer, neuron, flags, active fraction, pre-activation range,
        and unused parameters on the sample: ``unused_incoming`` (of its n_{l-1} weights and bias),
        ``unused_outgoing`` (of its n_{l+1} outgoing weights) and ``no_live_path`` (its bias is
        unused: at no x in Z is it active with a live path to an output; true when dead);
        ``proven_dead`` / ``proven_always_active``: the same flags proven on all of R^{n0}."""
        records = []
        for index, n in enumerate(self.widths[1:-1]):
            layer = index + 1
            incoming = self.unused_weights[index].sum(1) + self.unused_biases[index]
            outgoing = self.unused_weights[index + 1].sum(0)
            for i in range(n):
                records.append(
                    {
                        "layer": layer,
                        "neuron": i,
                        "never_active": bool(self.never_active[index][i]),
                        "always_active": bool(self.always_active[index][i]),
                        "active_fraction": float(self.active_fraction[index][i]),
                        "min_preactivation": float(self.min_preactivation[index][i]),
                        "max_preactivation": float(self.max_preactivation[index][i]),
                        "narrow_layer": layer in self.narrow_layers,
                        "unused_incoming": int(incoming[i]),
                        "unused_outgoing": int(outgoing[i]),
                        "no_live_path": bool(self.unused_biases[index][i]),
                        "proven_dead": None
                        if self.proven_never_active is None
                        else bool(self.proven_never_active[index][i]),
                        "proven_always_active": None
                        if self.proven_always_active is None
                        else bool(self.proven_always_active[index][i]),
                    }
                )
        return pd.DataFrame.from_records(records)

    def __str__(self) -> str:
        observed = (
            "observed deficit n/a"
            if self.observed_deficit is None
            else f"observed deficit {self.observed_deficit}, unexplained {self.unexplained}"
        )
        proven = (
            ""
            if self.proven_upper is None
            else f"; proven on all of R^n0 ({'/'.join(self.proven_how)} per layer): "
            f"{self.n_proven_never_active} dead, {self.n_proven_always_active} always-active, "
            f"{self.n_proven_unused} unused parameters, upper bound {self.proven_upper}"
        )
        return (
            f"MechanismReport(widths={self.widths}, on the {self.n_points} points: "
            f"{self.n_never_active} never-active, {self.n_always_active} always-active, "
            f"{self.n_unused} unused parameters ({self.n_unused_beyond_dead} beyond dead "
            f"neurons), narrow layers {list(self.narrow_layers)}; bound {self.bound}, predicted "
            f"deficit {self.predicted_deficit} (dead {self.dead_deficit}, unused "
            f"{self.unused_deficit}, always-active {self.always_active_deficit}), {observed}"
            f"{proven})"
        )


def _check_inputs(inputs: object, n0: int) -> torch.Tensor:
    if (
        not isinstance(inputs, torch.Tensor)
        or not inputs.is_floating_point()
        or inputs.dim() != 2
        or inputs.shape[0] < 1
        or inputs.shape[1] != n0
        or not bool(torch.isfinite(inputs).all())
    ):
        raise ValueError(
            f"inputs: expected a finite floating-point tensor of shape (N >= 1, {n0}), got "
            f"{type(inputs).__name__} of shape {tuple(getattr(inputs, 'shape', ()))}"
        )
    return inputs


def _preactivations(
    layers: list[nn.Linear], inputs: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Float64 weights, biases and hidden pre-activations z^1..z^{L-1}, each (N, n_l)."""
    weights = [layer.weight.detach().to(torch.float64) for layer in layers]
    biases = [layer.bias.detach().to(torch.float64) for layer in layers]
    a, pre = inputs.detach().to(torch.float64), []
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        z = a @ w.T + b
        pre.append(z)
        a = torch.relu(z)
    return weights, biases, pre


def mechanism_kernel(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Directions proven to lie in ker J E_Z (Z = ``inputs``), as rows of a (m, D) float64 matrix.

    The coordinate vectors of the parameters unused on Z (dead-neuron parameters included), the
    positive-scaling direction of every alive hidden neuron ((W_l[i], b_l[i]) -> +itself,
    W_{l+1}[:, i] -> -itself), and a basis of each always-active group's kernel (see the module
    docstring). Not defined when a whole hidden layer is dead on Z (then F is constant on Z and
    rank J = K).
    """
    layers = check_relu_mlp(model, "mechanism_kernel")
    inputs = _check_inputs(inputs, layers[0].in_features)
    weights, biases, pre = _preactivations(layers, inputs)
    dead = [(z <= 0).all(0) for z in pre]
    if any(bool(d.all()) for d in dead):
        raise ValueError(
            "inputs: a whole hidden layer is never active on these inputs, so the network is "
            "constant on them and the kernel is not built (rank J = number of outputs)"
        )
    coords, rows = _kernel_directions(weights, biases, dead, [(z > 0).all(0) for z in pre])
    coords = coords | _unused_coordinates(weights, inputs.detach().to(torch.float64), pre)[0]
    eye = torch.eye(coords.numel(), dtype=torch.float64)[coords]
    return torch.cat([eye, rows])


def diagnose(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    fd: FDResult | None = None,
    compute_fd: bool = False,
    proof: ProvenKernel | None = None,
    proof_regions: int = 1,
) -> MechanismReport:
    """Never-/always-active neurons, parameters unused on ``inputs`` and narrow layers of a ReLU
    MLP, with the functional-dimension deficit they force (see the module docstring for the
    derivation). The unused parameters are exact on Z, a property of the sample: more points can
    make an unused edge used.

    ``fd``: an FDResult computed on the same inputs (its bound and n_points must match), or
    ``compute_fd=True`` to run :func:`symlab.symmetry.batch_functional_dimension` on ``inputs``;
    either fills ``observed_rank``, ``observed_deficit`` and ``unexplained``.

    Sample vs global: ``never_active``, ``always_active``, ``unused_*`` and the predicted deficit
    hold on ``inputs`` only; the ``proven_*`` fields hold on all of R^{n0}
    (:func:`symlab.symmetry.kernel_proofs.proven_kernel`: ``proof``, else ``fd.proof``, else
    one computed with ``proof_regions`` regions, default 1: layer 1 exactly, deeper layers by
    sign arguments). A neuron proven dead is never active on any sample.
    Cost: O(N D) forward pass plus SVDs of size (#directions x D) (see the module docstring).
    """
    layers = check_relu_mlp(model, "diagnose")
    inputs = _check_inputs(inputs, layers[0].in_features)
    if fd is not None and compute_fd:
        raise ValueError("fd: pass either an FDResult or compute_fd=True, not both")
    widths = [layers[0].in_features] + [layer.out_features for layer in layers]
    n_params = sum(n_out * (n_in + 1) for n_in, n_out in zip(widths[:-1], widths[1:], strict=True))
    bound = fd_bound(model)  # D - #hidden (ReLU, biases required above)
    weights, biases, pre = _preactivations(layers, inputs)
    dead = [(z <= 0).all(0) for z in pre]
    always = [(z > 0).all(0) for z in pre]
    dead_layers = tuple(index + 1 for index, d in enumerate(dead) if bool(d.all()))
    unused, unused_weights, unused_biases = _unused_coordinates(
        weights, inputs.detach().to(torch.float64), pre
    )
    dead_coords, rows = _kernel_directions(
        weights, biases, dead, always, scalings_only=bool(dead_layers)
    )
    n_dead_coords = int(dead_coords.sum())
    if dead_layers:
        # F is constant on Z: each point contributes the same K x D block of rank K (output biases).
        predicted_rank = dead_rank = unused_rank = widths[-1]
        tol, gap = 0.0, float("inf")
    else:
        # rows: one scaling per alive hidden neuron first, then the always-active kernels
        scalings = rows[: sum(int((~d).sum()) for d in dead)]
        coords = dead_coords | unused  # the dead coordinates are unused too; the union is explicit
        kernel_rank, tol, gap = _restricted_rank(coords, rows)
        predicted_rank = n_params - int(coords.sum()) - kernel_rank
        unused_rank = n_params - int(coords.sum()) - _restricted_rank(coords, scalings)[0]
        dead_rank = n_params - n_dead_coords - _restricted_rank(dead_coords, scalings)[0]
    observed_rank = observed_deficit = unexplained = None
    if compute_fd:
        fd = batch_functional_dimension(model, inputs)
    if fd is not None:
        same_points = getattr(fd, "points", None) is None or torch.equal(
            fd.points.to(torch.float64), inputs.to(torch.float64)
        )
        # a region-compressed FDResult carries its representatives Z' (same row space as its Z)
        n_given = int(fd.n_points) if getattr(fd, "points", None) is None else len(fd.points)
        if int(fd.bound) != bound or n_given != inputs.shape[0] or not same_points:
            raise ValueError(
                f"fd: expected an FDResult for this model on these inputs (bound {bound}, "
                f"{inputs.shape[0]} points), got bound {fd.bound} and {fd.n_points} "
                f"{'points' if same_points else 'other points'}"
            )
        observed_rank = int(fd.rank)
        observed_deficit = bound - observed_rank
        unexplained = observed_deficit - (bound - predicted_rank)
    if proof is None:
        proof = getattr(fd, "proof", None) or proven_kernel(model, max_regions=proof_regions)
    return MechanismReport(
        widths=tuple(widths),
        n_points=int(inputs.shape[0]),
        bound=bound,
        never_active=tuple(dead),
        always_active=tuple(always),
        active_fraction=tuple((z > 0).double().mean(0) for z in pre),
        min_preactivation=tuple(z.min(0).values for z in pre),
        max_preactivation=tuple(z.max(0).values for z in pre),
        narrow_layers=tuple(i + 1 for i, n in enumerate(widths[1:-1]) if n < widths[0]),
        dead_layers=dead_layers,
        predicted_rank=predicted_rank,
        predicted_deficit=bound - predicted_rank,
        dead_deficit=bound - dead_rank,
        always_active_deficit=unused_rank - predicted_rank,
        unused_weights=tuple(unused_weights),
        unused_biases=tuple(unused_biases),
        n_unused=int(unused.sum()),
        n_unused_beyond_dead=int((unused & ~dead_coords).sum()),
        unused_deficit=dead_rank - unused_rank,
        kernel_tol=tol,
        kernel_gap=gap,
        observed_rank=observed_rank,
        observed_deficit=observed_deficit,
        unexplained=unexplained,
        proven_never_active=proof.dead,
        proven_always_active=proof.always_active,
        n_proven_unused=proof.n_unused,
        proven_upper=proof.upper,
        proven_how=proof.how,
    )
