"""Activation regions of piecewise-linear MLPs and decisive subsets of a batch.

For an MLP whose activation is piecewise linear with one kink at 0 (ReLU, LeakyReLU; Identity has
no kink), the **activation pattern** of a point x is the vector of sign bits [z^l_i(x) > 0] of
every hidden pre-activation. On the set R_p = {x : pattern(x) = p}:

- the masks are fixed, so a^l(x) = S^l_p z^l(x) with S^l_p = diag(1 or the negative slope) and
  z^l(x) = W_l a^{l-1}(x) + b_l; by induction a^l is affine in x, and each condition
  z^l_i(x) > 0 or <= 0 is a linear inequality: R_p is convex (an activation region);
- the output F_theta is affine in x on R_p, and so is every Jacobian row
  d F_k(x) / d theta: d F_k / d W^l_ij = g^l_{k,i} a^{l-1}_j(x) and d F_k / d b^l_i = g^l_{k,i},
  where g^l = dF/dz^l = W_L S^{L-1}_p W_{L-1} ... S^l_p depends on p only.

Hence row_k(x) = A_{k,p} (1, x) for a fixed D x (n0 + 1) matrix A_{k,p}, and the rows over the
points of Z in R_p span A_{k,p} span{(1, z) : z in Z cap R_p}, which is already spanned by any
maximal affinely independent subset of Z cap R_p (at most n0 + 1 points). So the Jacobian of a
subset Z' that keeps, per pattern met in Z, n0 + 1 affinely independent points of Z (all of
them if fewer) has the same row space as J E_Z: rank J E_{Z'} = rank J E_Z exactly. Z' is
"decisive for Z" (GLMW22's decisive set, Grigsby, Lindsey, Meyerhoff, Wu 2022, arXiv
2209.04036, §5, asks for such points in every top-dimensional cell; Z' only covers the cells Z
meets). Points drawn from a continuous distribution are affinely independent almost surely,
so the first points met per pattern are kept. The sign convention z > 0 (on) / z <= 0 (off) is
the one of the closed-form Jacobian (relu'(0) = 0, leaky_relu'(0) = slope), so a point on a
kink gets the row of the pattern it is filed under. (A pre-activation within rounding of 0
could in principle be signed differently here and in the Jacobian's own forward pass, which
blocks its matmuls differently; that needs |z| ~ 1e-16 |z|_typical, probability ~1e-16 per
neuron and point.)

Only piecewise-linear activations qualify: positive homogeneity alone would not give affine
rows (it is the fixed mask per region that does). Smooth activations (tanh, softplus, GELU) have
no regions and take the uncompressed route.

Cost: one float64 forward pass O(N sum_l n_l n_{l-1}), no Jacobian; patterns are packed to bytes
(np.packbits) and grouped by np.unique, O(N H log N) for H hidden neurons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from symlab.nets import activation_of, is_mlp, linear_layers

__all__ = [
    "DecisiveSubset",
    "RegionTally",
    "activation_patterns",
    "decisive_subset",
    "is_piecewise_linear",
]

_PIECEWISE_LINEAR = (nn.ReLU, nn.LeakyReLU, nn.Identity)
_CHUNK_POINTS = 65536


def is_piecewise_linear(model: nn.Module) -> bool:
    """True for an MLP (:func:`symlab.nets.is_mlp`) with ReLU, LeakyReLU or Identity activation."""
    return is_mlp(model) and isinstance(activation_of(model), _PIECEWISE_LINEAR)


def _check_model(model: nn.Module) -> list[nn.Linear]:
    if not isinstance(model, nn.Module) or not is_piecewise_linear(model):
        activation = type(activation_of(model)).__name__ if isinstance(model, nn.Module) else ""
        raise ValueError(
            "model: expected an MLP with a piecewise-linear activation (ReLU, LeakyReLU or "
            f"Identity), got {type(model).__name__} {activation}".rstrip()
        )
    return linear_layers(model)


def activation_patterns(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Sign bits [z^l_i(x) > 0] of every hidden pre-activation, (N, H) bool, H = sum_{l<L} n_l.

    Forward pass in float64 (a float64 copy of a float32 model, as the Jacobian is computed),
    with the closed-form Jacobian's arithmetic (addmm). Identity networks have one region:
    H = 0 (no bits). Cost O(N sum_l n_l n_{l-1}).
    """
    layers = _check_model(model)
    n0 = layers[0].in_features
    if (
        not isinstance(inputs, torch.Tensor)
        or not inputs.is_floating_point()
        or inputs.dim() != 2
        or inputs.shape[1] != n0
    ):
        raise ValueError(
            f"inputs: expected a floating-point tensor of shape (N, {n0}), got "
            f"{type(inputs).__name__} of shape {tuple(getattr(inputs, 'shape', ()))}"
        )
    activation = activation_of(model)
    if isinstance(activation, nn.Identity) or len(layers) == 1:
        return torch.zeros(inputs.shape[0], 0, dtype=torch.bool)
    weights = [layer.weight.detach().to(torch.float64) for layer in layers[:-1]]
    biases = [
        None if layer.bias is None else layer.bias.detach().to(torch.float64)
        for layer in layers[:-1]
    ]
    chunks = []
    with torch.no_grad():
        for x in torch.split(inputs.detach().to(torch.float64), _CHUNK_POINTS):
            a, bits = x, []
            for w, b in zip(weights, biases, strict=True):
                z = a @ w.T if b is None else torch.addmm(b, a, w.T)
                bits.append(z > 0)
                a = activation(z)
            chunks.append(torch.cat(bits, dim=1))
    if not chunks:
        return torch.zeros(0, sum(w.shape[0] for w in weights), dtype=torch.bool)
    return torch.cat(chunks)


def _pattern_keys(patterns: torch.Tensor) -> np.ndarray:
    """One fixed-size byte string (numpy void) per row of a (N, H) bool tensor."""
    bits = patterns.detach().cpu().numpy().astype(bool, copy=False)
    packed = np.packbits(bits, axis=1) if bits.shape[1] else np.zeros((len(bits), 1), np.uint8)
    packed = np.ascontiguousarray(packed)
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel()


class RegionTally:
    """Running count of points per activation pattern; picks the representatives of new batches.

    ``update(patterns)`` returns the mask of the rows kept: a row is kept while its pattern has
    fewer than ``per_region`` kept points, counting all earlier batches, in input order. So over
    any sequence of batches, the kept points are the first ``per_region`` points of every
    pattern, and :attr:`regions` is the number of distinct patterns met.
    """

    def __init__(self, per_region: int):
        if isinstance(per_region, bool) or not isinstance(per_region, int) or per_region < 1:
            raise ValueError(f"per_region: expected a positive integer, got {per_region!r}")
        self.per_region = per_region
        self._keys: np.ndarray | None = None  # the patterns met, sorted (numpy void)
        self._counts = np.zeros(0, dtype=np.int64)  # points met per pattern, aligned
        self.seen = 0

    @property
    def regions(self) -> int:
        """Distinct activation patterns met so far."""
        return len(self._counts)

    def update(self, patterns: torch.Tensor) -> torch.Tensor:
        """Mask (N,) of the new representatives among the rows of ``patterns`` (N, H) bool."""
        n = patterns.shape[0]
        self.seen += n
        if n == 0:
            return torch.zeros(0, dtype=torch.bool)
        keys = _pattern_keys(patterns)
        unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        # rank of each row among the rows of its pattern in this batch, in input order
        order = np.argsort(inverse, kind="stable")
        starts = np.cumsum(counts) - counts
        within = np.empty(n, dtype=np.int64)
        within[order] = np.arange(n) - starts[inverse[order]]
        # points of each pattern in earlier batches: a search in the sorted patterns met
        before = np.zeros(len(unique), dtype=np.int64)
        met = np.zeros(len(unique), dtype=bool)
        if self._keys is not None and len(self._keys):
            at = np.minimum(np.searchsorted(self._keys, unique), len(self._keys) - 1)
            met = self._keys[at] == unique
            before[met] = self._counts[at[met]]
            self._counts[at[met]] += counts[met]
        keys = unique[~met] if self._keys is None else np.concatenate([self._keys, unique[~met]])
        tallies = np.concatenate([self._counts, counts[~met]])
        order = np.argsort(keys, kind="stable")
        self._keys, self._counts = keys[order], tallies[order]
        keep = before[inverse] + within < self.per_region
        return torch.from_numpy(keep)


@dataclass(frozen=True)
class DecisiveSubset:
    """indices: the kept rows of Z (ascending); regions: distinct activation patterns in Z."""

    indices: torch.Tensor
    regions: int


def decisive_subset(
    model: nn.Module, inputs: torch.Tensor, *, per_region: int | None = None
) -> DecisiveSubset:
    """The first ``per_region`` points of every activation pattern met in ``inputs``.

    With ``per_region >= n0 + 1`` (default n0 + 1), J E_{Z'} has the row space of J E_Z (module
    docstring), for points in general position. Cost: one forward pass plus grouping.
    """
    n0 = _check_model(model)[0].in_features
    tally = RegionTally(n0 + 1 if per_region is None else per_region)
    keep = tally.update(activation_patterns(model, inputs))
    return DecisiveSubset(torch.nonzero(keep).ravel(), tally.regions)
