"""A canonical representative of the orbit G.theta of an MLP, unique also for duplicated neurons.

G = prod_l (S_{n_l} x| R_{>0}^{n_l}) acts on the parameters theta by permuting and (for
positively homogeneous activations) positively rescaling the hidden neurons of each layer
(Grigsby, Lindsey, Rolnick 2023, "Hidden Symmetries of ReLU Networks", ICML, arXiv 2306.06179,
Sec. 1; see :mod:`symlab.symmetry.actions`). :func:`canonicalize` picks one point of each orbit:

1. Scale (positively homogeneous activations only), every hidden layer l: neuron i gets
   c_i = 1 / ||(W_l[i], b_l[i])||, so its incoming vector has unit Euclidean norm, and 1 / c_i
   is pushed into column i of W_{l+1}. A neuron with zero incoming vector gets the unit
   *outgoing* column instead (its incoming vector cannot fix the scale). The scales of layer l
   depend on the scales of layer l-1, not on any permutation.
2. Sort, forward (l = 1, ..., L-1): neurons in increasing lexicographic order of their incoming
   rows (W_l[i], b_l[i]), coordinates compared with a tolerance (below). Neurons whose rows tie
   in every coordinate form a *tie group*; their order is left to step 3. So that layer l+1's
   order does not depend on it, the key of a row of layer l+1 holds, on the columns of each
   tie group of layer l, the row's entries sorted (a multiset, invariant under reordering the
   group).
3. Break ties, backward (l = L-1, ..., 1): inside each tie group of layer l, neurons in
   tolerant lexicographic order of their outgoing columns W_{l+1}[:, i], whose rows (the
   neurons of layer l+1, or the outputs) are already in their final order.

Why. Duplicated neurons (:func:`symlab.critical.split_neuron`, :func:`symlab.critical.embed`:
equal incoming rows, outgoing columns a v and (1 - a) v) have, after step 1, incoming rows that
agree only to a few ulps; sorting them exactly orders them by rounding noise and swaps their
different outgoing columns (and the matching columns of W_{l+1}). Comparing outgoing columns
already during the forward pass does not help: their rows are layer l+1's neurons, whose order
is not fixed yet. Hence the two passes.

Tolerance. Coordinate k of two rows ties when the values differ by at most ``tol`` times the
largest |entry| of the layer's rows (of its outgoing columns in step 3); tied values are the
single-linkage clusters of the sorted values, which depend only on the multiset of values, not
on the neurons' order. Default ``tol``: sqrt(eps) of the model's dtype (1.5e-8 in float64,
3.5e-4 in float32), far above rounding noise and far below the gaps between the coordinates of
distinct generic neurons. Neurons tied on both incoming rows and outgoing columns are equal to
within the tolerance, so their order does not matter. Unless two distinct neurons differ in
some coordinate by about the tolerance, canonicalize(g.theta) equals canonicalize(theta) to a
few ulps for every g in G, duplicated and zero neurons included.

Why unit incoming norm and not the balanced ||incoming|| = ||outgoing||: it is fixed by one pass
in closed form, whereas balancing couples neighbouring layers and needs an iterative solve whose
answer is only as exact as its stopping rule.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from symlab.nets import linear_layers
from symlab.symmetry.actions import _check_mlp, is_positively_homogeneous

__all__ = ["canonicalize"]


def tolerant_groups(keys: torch.Tensor, tol: float) -> list[torch.Tensor]:
    """Row indices of ``keys`` (n, m) in groups, groups in tolerant lexicographic order.

    Column by column, every group of still-tied rows is sorted by column k (stable) and cut
    wherever two consecutive sorted values differ by more than ``tol``; the next column orders
    the rows inside each piece. The returned groups are the rows tied in every column, in
    order; concatenated they are a permutation of 0..n-1. Cost O(m n log n).
    """
    groups = [torch.arange(keys.shape[0])]
    for k in range(keys.shape[1]):
        refined = []
        for group in groups:
            if group.numel() == 1:
                refined.append(group)
                continue
            values = keys[group, k]
            order = torch.argsort(values, stable=True)
            cuts = (torch.nonzero(torch.diff(values[order]) > tol).flatten() + 1).tolist()
            refined.extend(torch.tensor_split(group[order], cuts))
        groups = refined
    return groups


def _check_tol(tol: object) -> float | None:
    if tol is not None and (
        isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < math.inf
    ):
        raise ValueError(f"tol: expected a finite number >= 0 or None, got {tol!r}")
    return tol


def _rows(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return weight if bias is None else torch.cat([weight, bias[:, None]], dim=1)


def _permute(weights: list, biases: list, index: int, perm: torch.Tensor) -> None:
    """Reorder hidden layer ``index + 1`` in place: rows of (W, b), columns of the next W."""
    weights[index] = weights[index][perm]
    if biases[index] is not None:
        biases[index] = biases[index][perm]
    weights[index + 1] = weights[index + 1][:, perm]


def _scale(weights: list, biases: list, index: int) -> None:
    """Unit incoming vectors (unit outgoing column where the incoming vector is zero)."""
    norm_in = torch.linalg.vector_norm(_rows(weights[index], biases[index]), dim=1)
    norm_out = torch.linalg.vector_norm(weights[index + 1], dim=0)
    factor = torch.where(norm_in > 0, 1.0 / norm_in, norm_out)
    factor = torch.where(factor > 0, factor, torch.ones_like(factor))
    weights[index] = weights[index] * factor[:, None]
    if biases[index] is not None:
        biases[index] = biases[index] * factor
    weights[index + 1] = weights[index + 1] / factor[None, :]


def canonicalize(model: nn.Module, *, tol: float | None = None) -> nn.Module:
    """A canonical representative of the orbit G.theta; same function, input untouched.

    Unit incoming vectors (positively homogeneous activations only), neurons sorted by their
    incoming rows with a tolerance, ties (duplicated neurons) broken by their outgoing columns
    in a backward pass; see the module docstring for the steps and why they make the form
    unique. For other activations only the sort runs (the group is then the permutations).

    Args:
        model: an MLP as built by :func:`symlab.nets.mlp` (biases optional).
        tol: relative tolerance under which two coordinates tie (None: sqrt(eps) of the
            model's dtype; 0: exact comparisons, as a plain lexicographic sort).

    Cost O(D + sum_l n_l log n_l (n_{l-1} + n_{l+1})).
    """
    layers = _check_mlp(model)
    tol = _check_tol(tol)
    if tol is None:
        tol = math.sqrt(torch.finfo(layers[0].weight.dtype).eps)
    weights = [layer.weight.detach().clone() for layer in layers]
    biases = [None if layer.bias is None else layer.bias.detach().clone() for layer in layers]
    hidden = len(layers) - 1
    if is_positively_homogeneous(model):
        for index in range(hidden):
            _scale(weights, biases, index)
    ties: list[list[tuple[int, int]]] = []  # per hidden layer: position ranges of tie groups
    for index in range(hidden):
        keys = _rows(weights[index], biases[index]).to(torch.float64)
        scale = float(keys.abs().max())
        for start, stop in ties[-1] if ties else []:
            keys[:, start:stop] = torch.sort(keys[:, start:stop], dim=1).values
        groups = tolerant_groups(keys, tol * scale)
        _permute(weights, biases, index, torch.cat(groups))
        ends = torch.cumsum(torch.tensor([0] + [g.numel() for g in groups]), 0).tolist()
        ties.append([(a, b) for a, b in zip(ends[:-1], ends[1:], strict=True) if b - a > 1])
    for index in reversed(range(hidden)):
        outgoing = weights[index + 1].T.to(torch.float64)
        scale = float(outgoing.abs().max())
        perm = torch.arange(outgoing.shape[0])
        for start, stop in ties[index]:
            perm[start:stop] = start + torch.cat(tolerant_groups(outgoing[start:stop], tol * scale))
        _permute(weights, biases, index, perm)
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for layer, weight, bias in zip(linear_layers(clone), weights, biases, strict=True):
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
    return clone
