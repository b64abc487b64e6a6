"""The symmetry group of an MLP acting on its parameters.

For an MLP F_theta = A^L o sigma o ... o sigma o A^1 with widths (n_0, ..., n_L), every hidden
layer l = 1, ..., L-1 carries the group S_{n_l} x| R_{>0}^{n_l} (Grigsby, Lindsey, Rolnick 2023,
"Hidden Symmetries of ReLU Networks", ICML, arXiv 2306.06179, Sec. 1; Grigsby, Lindsey,
Meyerhoff, Wu 2022, arXiv 2209.04036):

- a permutation pi of the neurons of layer l reorders the rows of (W_l | b_l) and the columns of
  W_{l+1}; it preserves F for every elementwise activation;
- a positive scaling c in R_{>0}^{n_l} multiplies row i of (W_l | b_l) by c_i and column i of
  W_{l+1} by 1 / c_i; it preserves F when sigma is positively homogeneous
  (sigma(c z) = c sigma(z) for c > 0: relu, leaky_relu, identity).

Layers are numbered as in the papers' W^l: hidden layer l is the output of ``linear_layers(m)[l-1]``
(1-based, 1 <= l <= L-1); layer 0 is the input and layer L the output, neither of which moves.
Every function here returns a new model and leaves its argument untouched. A canonical
representative of an orbit: :mod:`symlab.symmetry.canonical_form`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from symlab.nets import activation_of, is_mlp, linear_layers

__all__ = [
    "SymmetryElement",
    "apply_symmetry",
    "is_positively_homogeneous",
    "permute",
    "random_symmetry",
    "rescale",
]


def _check_mlp(model: object) -> list[nn.Linear]:
    if not isinstance(model, nn.Module) or not is_mlp(model):
        raise ValueError(
            "model: expected an MLP (nn.Sequential of Linear, activation, ..., Linear) as built by "
            f"symlab.nets.mlp, got {type(model).__name__}"
        )
    return linear_layers(model)


def _check_layer(layer: object, layers: list[nn.Linear]) -> int:
    n_hidden = len(layers) - 1
    if n_hidden == 0:
        raise ValueError("layer: the model has no hidden layer, so there is no neuron to move")
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= n_hidden:
        raise ValueError(
            f"layer: expected a hidden layer index between 1 and {n_hidden} (1-based, as W^l "
            f"in the papers), got {layer!r}"
        )
    return layer


def is_positively_homogeneous(model: nn.Module) -> bool:
    """True when the hidden activation satisfies sigma(c z) = c sigma(z) for all c > 0."""
    return isinstance(activation_of(model), nn.ReLU | nn.LeakyReLU | nn.Identity)


def _check_homogeneous(model: nn.Module, argument: str) -> None:
    if not is_positively_homogeneous(model):
        raise ValueError(
            f"{argument}: positive rescaling preserves the function only for positively "
            "homogeneous activations (relu, leaky_relu, identity), got "
            f"{type(activation_of(model)).__name__}"
        )


def _as_permutation(perm: object, n: int, argument: str = "perm") -> torch.Tensor:
    try:
        values = torch.as_tensor(perm)
    except (TypeError, ValueError, RuntimeError):
        values = None
    if (
        values is None
        or values.dim() != 1
        or values.is_floating_point()
        or values.is_complex()
        or values.dtype == torch.bool
        or values.numel() != n
        or not torch.equal(torch.sort(values.long()).values, torch.arange(n))
    ):
        raise ValueError(
            f"{argument}: expected a permutation of 0..{n - 1} ({n} distinct integers), got {perm!r}"
        )
    return values.long().clone()


def _as_scales(
    scales: object, n: int, dtype: torch.dtype, argument: str = "scales"
) -> torch.Tensor:
    try:
        values = torch.as_tensor(scales, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        values = None
    if (
        values is None
        or values.dim() != 1
        or values.numel() != n
        or not bool(torch.isfinite(values).all())
        or not bool((values > 0).all())
    ):
        raise ValueError(
            f"{argument}: expected {n} finite positive numbers (one per neuron), got {scales!r}"
        )
    return values.to(dtype)


@dataclass(frozen=True)
class SymmetryElement:
    """g = (pi_l, c_l)_{l=1..L-1} in G = prod_l (S_{n_l} x| R_{>0}^{n_l}).

    Acting on theta, neuron i of hidden layer l of g.theta is c_{l,i} times neuron pi_l(i) of
    theta:  W'_l[i, j] = c_{l,i} W_l[pi_l(i), pi_{l-1}(j)] / c_{l-1,j},  b'_l[i] = c_{l,i}
    b_l[pi_l(i)], with pi_0, pi_L the identity and c_0 = c_L = 1. ``perms[l-1]`` and
    ``scales[l-1]`` hold (pi_l, c_l); all scales equal to 1 give a pure permutation.
    """

    perms: tuple[torch.Tensor, ...]
    scales: tuple[torch.Tensor, ...]

    def inverse(self) -> SymmetryElement:
        """g^{-1}: (pi^{-1}, c'), c'_j = 1 / c_{pi^{-1}(j)}, so that g^{-1}.(g.theta) = theta."""
        perms, scales = [], []
        for perm, scale in zip(self.perms, self.scales, strict=True):
            inverse = torch.argsort(perm)
            perms.append(inverse)
            scales.append(1.0 / scale[inverse])
        return SymmetryElement(tuple(perms), tuple(scales))

    @property
    def is_permutation(self) -> bool:
        """True when every scale is exactly 1."""
        return all(bool((s == 1).all()) for s in self.scales)


def apply_symmetry(model: nn.Module, element: SymmetryElement) -> nn.Module:
    """g.theta for g = ``element`` (see :class:`SymmetryElement`): a new model, same function.

    Cost O(D). Raises ValueError when the element does not fit the model's widths or when it
    rescales a model whose activation is not positively homogeneous.
    """
    layers = _check_mlp(model)
    if not isinstance(element, SymmetryElement):
        raise ValueError(f"element: expected a SymmetryElement, got {type(element).__name__}")
    hidden = [layer.out_features for layer in layers[:-1]]
    if len(element.perms) != len(hidden) or len(element.scales) != len(hidden):
        raise ValueError(
            f"element: expected one permutation and one scale vector per hidden layer "
            f"({len(hidden)}), got {len(element.perms)} and {len(element.scales)}"
        )
    dtype = layers[0].weight.dtype
    perms = [_as_permutation(p, n, "element") for p, n in zip(element.perms, hidden, strict=True)]
    scales = [
        _as_scales(s, n, dtype, "element") for s, n in zip(element.scales, hidden, strict=True)
    ]
    if not all(bool((s == 1).all()) for s in scales):
        _check_homogeneous(model, "element")
    clone = copy.deepcopy(model)
    new_layers = linear_layers(clone)
    n_in = layers[0].in_features
    prev_perm, prev_scale = torch.arange(n_in), torch.ones(n_in, dtype=dtype)
    with torch.no_grad():
        for index, (old, new) in enumerate(zip(layers, new_layers, strict=True)):
            if index < len(hidden):
                perm, scale = perms[index], scales[index]
            else:
                n_out = old.out_features
                perm, scale = torch.arange(n_out), torch.ones(n_out, dtype=dtype)
            weight = old.weight[perm][:, prev_perm]
            new.weight.copy_(scale[:, None] * weight / prev_scale[None, :])
            if old.bias is not None:
                new.bias.copy_(scale * old.bias[perm])
            prev_perm, prev_scale = perm, scale
    return clone


def _single_layer_element(
    layers: list[nn.Linear], layer: int, perm: torch.Tensor | None, scales: torch.Tensor | None
) -> SymmetryElement:
    dtype = layers[0].weight.dtype
    hidden = [lin.out_features for lin in layers[:-1]]
    perms = [torch.arange(n) for n in hidden]
    factors = [torch.ones(n, dtype=dtype) for n in hidden]
    if perm is not None:
        perms[layer - 1] = perm
    if scales is not None:
        factors[layer - 1] = scales
    return SymmetryElement(tuple(perms), tuple(factors))


def permute(model: nn.Module, layer: int, perm: Sequence[int] | torch.Tensor) -> nn.Module:
    """Permute the neurons of hidden layer ``layer`` (1-based: 1 <= layer <= L-1).

    New neuron i is old neuron perm[i]: W'_l = W_l[perm, :], b'_l = b_l[perm],
    W'_{l+1} = W_{l+1}[:, perm]. Preserves the function for every elementwise activation.
    Cost O(n_l (n_{l-1} + n_{l+1})) plus a copy of the model.
    """
    layers = _check_mlp(model)
    layer = _check_layer(layer, layers)
    perm_t = _as_permutation(perm, layers[layer - 1].out_features)
    return apply_symmetry(model, _single_layer_element(layers, layer, perm_t, None))


def rescale(model: nn.Module, layer: int, scales: Sequence[float] | torch.Tensor) -> nn.Module:
    """Positive rescaling of the neurons of hidden layer ``layer`` (1-based: 1 <= layer <= L-1).

    Row i of (W_l | b_l) is multiplied by c_i > 0 and column i of W_{l+1} by 1 / c_i. Preserves
    the function iff the activation is positively homogeneous (relu, leaky_relu, identity);
    other activations are rejected. Cost O(n_l (n_{l-1} + n_{l+1})) plus a copy of the model.
    """
    layers = _check_mlp(model)
    layer = _check_layer(layer, layers)
    _check_homogeneous(model, "model")
    factors = _as_scales(scales, layers[layer - 1].out_features, layers[0].weight.dtype)
    return apply_symmetry(model, _single_layer_element(layers, layer, None, factors))


def random_symmetry(
    model: nn.Module,
    seed: int,
    *,
    scale_range: tuple[float, float] | None = (0.25, 4.0),
    return_element: bool = False,
) -> nn.Module | tuple[nn.Module, SymmetryElement]:
    """g.theta for a random g in G = prod_l (S_{n_l} x| R_{>0}^{n_l}).

    Each pi_l is uniform on S_{n_l}; each c_{l,i} is log-uniform on ``scale_range`` (independent
    draws from a generator seeded by ``seed``). ``scale_range=None`` draws permutations only,
    which is the symmetry group for activations that are not positively homogeneous. With
    ``return_element=True`` returns (model, g). Cost O(D).
    """
    layers = _check_mlp(model)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    if scale_range is not None:
        ok = (
            isinstance(scale_range, Sequence)
            and len(scale_range) == 2
            and all(isinstance(v, int | float) and math.isfinite(v) for v in scale_range)
            and 0 < scale_range[0] <= scale_range[1]
        )
        if not ok:
            raise ValueError(
                "scale_range: expected (low, high) with 0 < low <= high finite, or None for "
                f"permutations only, got {scale_range!r}"
            )
        _check_homogeneous(model, "scale_range")
    generator = torch.Generator().manual_seed(seed % 2**63)
    dtype = layers[0].weight.dtype
    perms, scales = [], []
    for lin in layers[:-1]:
        n = lin.out_features
        perms.append(torch.randperm(n, generator=generator))
        if scale_range is None:
            scales.append(torch.ones(n, dtype=dtype))
        else:
            low, high = math.log(scale_range[0]), math.log(scale_range[1])
            u = torch.rand(n, generator=generator, dtype=torch.float64)
            scales.append(torch.exp(low + (high - low) * u).to(dtype))
    element = SymmetryElement(tuple(perms), tuple(scales))
    moved = apply_symmetry(model, element)
    return (moved, element) if return_element else moved
