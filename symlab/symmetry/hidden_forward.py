"""Hidden pre-activations of an MLP: all of them, or one neuron per point by a truncated pass.

The region-seeking sampler (:mod:`symlab.symmetry.boundary_sampler`) evaluates a single hidden
neuron's pre-activation z_h = W_l a^{l-1} + b_l along tens of thousands of lines, about 65 times
per point (grid search, secant steps, offsets). :func:`hidden_preactivations` gives every hidden
pre-activation (the reference); :func:`neuron_preactivations` gives z_{h_j}(x_j) for one neuron
per point or per line of points, running each point's forward pass only up to its neuron's
layer (points ordered deepest layer first, so each layer runs on a prefix of them) by blocks of
points that stay in cache, equal to the full pass up to the last bit (:class:`_OneNeuronPass`).
Float64 copies of the weights are made once per sampler call (:class:`_HiddenForward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from symlab.nets import activation_of, is_mlp, linear_layers

__all__ = ["hidden_preactivations", "neuron_preactivations"]

_FORWARD_ROWS = 2048  # points per block of the one-neuron forward pass (cache-sized)


def _check_model(model: nn.Module) -> list[nn.Linear]:
    if not isinstance(model, nn.Module) or not is_mlp(model):
        raise ValueError(
            "model: expected an MLP (Linear, activation, ..., Linear) for a model-aware sampler, "
            f"got {type(model).__name__}"
        )
    layers = linear_layers(model)
    if any(layer.out_features == 0 for layer in layers[:-1]):
        raise ValueError("model: expected every hidden layer to have at least one neuron")
    return layers


@dataclass(frozen=True)
class _HiddenForward:
    """An MLP's hidden layers as float64 (W, b) pairs and its activation, built once per sampler
    call: the sampler runs ~40-65 forward passes per point, which should not each re-check the
    model and re-copy its weights."""

    weights: tuple[tuple[torch.Tensor, torch.Tensor | None], ...]
    activation: nn.Module

    @classmethod
    def of(cls, model: nn.Module | _HiddenForward) -> _HiddenForward:
        if isinstance(model, _HiddenForward):
            return model
        layers = _check_model(model)
        weights = tuple(
            (
                layer.weight.detach().to(torch.float64),
                None if layer.bias is None else layer.bias.detach().to(torch.float64),
            )
            for layer in layers[:-1]
        )
        return cls(weights, activation_of(model))

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        a, out = inputs.to(torch.float64), []
        for w, b in self.weights:
            z = a @ w.T
            if b is not None:
                z = z + b
            out.append(z)
            a = self.activation(z)
        if not out:
            return inputs.new_zeros(inputs.shape[0], 0, dtype=torch.float64)
        return torch.cat(out, dim=1)


def hidden_preactivations(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Pre-activations z^l = W_l a^{l-1} + b_l of all hidden layers, (N, H), float64, layer order.

    Forward pass on a float64 copy of the parameters (autograd flows to ``inputs``).
    Cost O(N sum_{l<L} n_l n_{l-1}).
    """
    return _HiddenForward.of(model)(inputs)


def _neuron_layers(
    forward: _HiddenForward, neuron: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden layer of each neuron index, first index of each layer) for indices into the H
    hidden pre-activations in layer order."""
    widths = torch.tensor([w.shape[0] for w, _ in forward.weights])
    starts = torch.cumsum(widths, 0) - widths
    return torch.bucketize(neuron.contiguous(), starts, right=True) - 1, starts


@dataclass(frozen=True)
class _OneNeuronPass:
    """z_{neuron[j]} at points that carry one hidden neuron per line, planned once per set of
    neurons and reused across calls (the steps of a root search share their lines' neurons;
    points already ordered deepest first need no sort).

    A point whose neuron lies in hidden layer l needs the forward pass up to layer l only: the
    points are ordered by that layer, deepest first, so layer l runs on the prefix of points
    that still need it (about half the work of the full pass when the layers are drawn
    uniformly), by blocks of ``_FORWARD_ROWS`` points whose activations stay in cache (2.7-4.3x
    faster than the full pass on the grid search, ``benchmarks/bench_paper_preset_steps.py``).
    Each point's values are the full pass's up to the last bit: BLAS may sum a product of very
    few rows (a short last block, a layer boundary inside a block) in another order; the
    sampler's points came out equal to the full-pass sampler's on the nets checked."""

    forward: _HiddenForward
    order: torch.Tensor | None  # points in deepest-first order (None: already so)
    inverse: torch.Tensor | None  # back to the callers' order
    index: torch.Tensor  # each ordered point's neuron within its layer
    needing: tuple[tuple[int, ...], ...]  # per block: points needing layer l or deeper
    shape: tuple[int, ...]  # the points' shape without n0

    @classmethod
    def plan(cls, forward: _HiddenForward, neuron: torch.Tensor, shape) -> _OneNeuronPass:
        shape = tuple(shape)
        per_point = neuron.reshape(-1, *([1] * (len(shape) - 1))).expand(*shape).reshape(-1)
        layer, starts = _neuron_layers(forward, per_point)
        depth = len(forward.weights)
        within = per_point - starts[layer]
        order = inverse = None
        if not bool((layer[1:] <= layer[:-1]).all()):  # callers may pass them deepest first
            order = torch.argsort(layer, descending=True, stable=True)
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(order.numel())
            layer, within = layer[order], within[order]
        needing = tuple(
            tuple(torch.bincount(block, minlength=depth).flip(0).cumsum(0).flip(0).tolist()) + (0,)
            for block in torch.split(layer, _FORWARD_ROWS)
        )
        return cls(forward, order, inverse, within, needing, shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[:-1]) != self.shape:
            raise ValueError(
                f"x: expected points of shape {self.shape} + (n0,), got {tuple(x.shape)}"
            )
        if not len(self.index):  # no points (kept on x's autograd graph)
            return x[..., 0].to(torch.float64) * 0.0
        ordered = x.reshape(-1, x.shape[-1]).to(torch.float64)
        if self.order is not None:
            ordered = ordered[self.order]
        pieces = []
        firsts = range(0, len(self.index), _FORWARD_ROWS)
        for first, needing in zip(firsts, self.needing, strict=True):
            a, index = ordered[first : first + _FORWARD_ROWS], self.index[first:]
            values = []
            for depth, (w, b) in enumerate(self.forward.weights):
                count, deeper = needing[depth], needing[depth + 1]
                if count == 0:
                    break
                z = a[:count] @ w.T
                if b is not None:
                    z = z + b
                values.append(z[deeper:count].gather(1, index[deeper:count, None])[:, 0])
                a = self.forward.activation(z)
            pieces.extend(values[::-1])  # the block's deepest points come first
        values = torch.cat(pieces)
        return (values if self.inverse is None else values[self.inverse]).view(self.shape)


def _neuron_values(forward: _HiddenForward, x: torch.Tensor, neuron: torch.Tensor) -> torch.Tensor:
    """z_{neuron[j]}(x[j]) for x (m, n0) or (m, G, n0): one hidden neuron per line
    (:class:`_OneNeuronPass`, planned for this call only)."""
    return _OneNeuronPass.plan(forward, neuron, x.shape[:-1])(x)


def neuron_preactivations(
    model: nn.Module, inputs: torch.Tensor, neuron: torch.Tensor
) -> torch.Tensor:
    """z_{neuron[j]}(inputs[j]), float64: one hidden neuron per point (inputs (m, n0)) or per
    line of points (inputs (m, G, n0)), ``neuron`` (m,) indexing the H hidden neurons in layer
    order as :func:`hidden_preactivations`' columns; each point's forward pass stops at its
    neuron's layer (the sampler's own route). Cost at most O(N sum_{l<L} n_l n_{l-1})."""
    forward = _HiddenForward.of(model)
    n0 = forward.weights[0][0].shape[1] if forward.weights else None
    if (
        not isinstance(inputs, torch.Tensor)
        or not inputs.is_floating_point()
        or inputs.dim() not in (2, 3)
        or inputs.shape[-1] != n0
    ):
        raise ValueError(
            f"inputs: expected a floating-point tensor of shape (m, {n0}) or (m, G, {n0}), got "
            f"{type(inputs).__name__} of shape {tuple(getattr(inputs, 'shape', ()))}"
        )
    hidden = sum(w.shape[0] for w, _ in forward.weights)
    valid = (
        isinstance(neuron, torch.Tensor)
        and not neuron.is_floating_point()
        and neuron.shape == inputs.shape[:1]
        and (neuron.numel() == 0 or 0 <= int(neuron.min()) <= int(neuron.max()) < hidden)
    )
    if not valid:
        raise ValueError(
            f"neuron: expected {inputs.shape[0]} integer indices in [0, {hidden}), one per line "
            f"of inputs, got {type(neuron).__name__} of shape "
            f"{tuple(getattr(neuron, 'shape', ()))} and dtype {getattr(neuron, 'dtype', None)}"
        )
    return _neuron_values(forward, inputs, neuron)
