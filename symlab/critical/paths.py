"""Zero-loss paths between permuted minima through one extra neuron (Şimşek et al., ICML 2021).

Şimşek et al. show that one extra neuron per layer connects the r*! isolated, permuted copies of a
zero-loss minimum of minimal width r* into one manifold. Here the connection is explicit: the
minimum is embedded in width n_l + 1 with a free slot s (outgoing weights 0, incoming weights and
bias 0), and a transposition (i j) of hidden layer l is realised by seven straight segments, each
of which moves only parameters that do not change the network function:

1. slot incoming  0   -> u_i   (the slot's outgoing weights are 0)
2. outgoing       v_i -> slot  (v_i (1 - t) + v_i t, slot and i share incoming weights)
3. i incoming     u_i -> u_j   (i's outgoing weights are now 0)
4. outgoing       v_j -> i     (i and j share incoming weights)
5. j incoming     u_j -> u_i   (j's outgoing weights are now 0)
6. outgoing slot  v_i -> j     (slot and j share incoming weights)
7. slot incoming  u_i -> 0     (the slot's outgoing weights are 0 again)

where u = (row of W_l, bias) and v = column of W_{l+1}. A permutation is decomposed into
transpositions. Along every segment the output is the same function (up to float rounding), so a
zero-loss minimum stays at zero loss; the straight line between the two endpoints generally does
not (a loss barrier). Works for any depth and any activation.

``permute_neurons(model, layer, perm)`` is an alias of ``symlab.symmetry.permute`` (new neuron i is
old neuron perm[i], hidden layers 1-based), kept because studies and tests import it from here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symlab.critical.embeddings import _check_layer, _check_model, add_zero_neuron
from symlab.nets import flatten_params, unflatten_params, widths_of
from symlab.symmetry.actions import permute


def path_model(model: nn.Module, layer: int = 1) -> nn.Module:
    """The width-(n_l + 1) model whose flat parameters ``permutation_path`` returns.

    ``model`` with one zero neuron (incoming weights, bias and outgoing weights 0) appended to
    hidden layer ``layer`` (1-based): the embedded start point of the path.
    """
    _check_model(model)
    _check_layer(model, layer)
    fan_in = widths_of(model)[layer - 1]
    has_bias = model[2 * (layer - 1)].bias is not None
    zeros = torch.zeros(fan_in + (1 if has_bias else 0), dtype=next(model.parameters()).dtype)
    return add_zero_neuron(model, layer, incoming=zeros)


# Alias kept for existing callers: the one implementation of the permutation action lives in
# symlab.symmetry (new neuron i = old neuron perm[i], hidden layer 1-based, rows of W_l and b_l
# and columns of W_{l+1} reordered; the function is unchanged).
permute_neurons = permute


def _check_perm(perm: Sequence[int], width: int) -> list[int]:
    perm = list(perm)
    if sorted(perm) != list(range(width)) or any(isinstance(p, bool) for p in perm):
        raise ValueError(f"perm: expected a permutation of 0..{width - 1}, got {perm}")
    return perm


def _transpositions(perm: list[int]) -> list[tuple[int, int]]:
    """Transpositions t_1, ..., t_q with (swap t_1, then t_2, ...) mapping order k -> perm[k]."""
    current, swaps = list(range(len(perm))), []
    for k in range(len(perm)):
        if current[k] != perm[k]:
            j = current.index(perm[k])
            current[k], current[j] = current[j], current[k]
            swaps.append((k, j))
    return swaps


def permutation_path(
    model: nn.Module, perm: Sequence[int], *, layer: int = 1
) -> list[torch.Tensor]:
    """Vertices of a piecewise-linear zero-loss path from ``model`` to its permuted copy.

    Returns flat parameter vectors of ``path_model(model, layer)``: the first is ``model``
    embedded with a zero slot, the last is ``permute_neurons(model, layer, perm)`` embedded the
    same way; consecutive vertices differ only in parameters that leave the function unchanged
    along the segment (7 segments per transposition; see the module docstring). Cost:
    O(7 q D) memory for q transpositions.
    """
    wide = path_model(model, layer)
    width = widths_of(model)[layer]
    perm = _check_perm(perm, width)
    w_name, b_name, v_name = _names(wide, layer)
    slot = width
    current = flatten_params(wide)
    vertices = [current.clone()]

    def move(update) -> None:
        nonlocal current
        current = current.clone()
        params = unflatten_params(wide, current)  # views into ``current``
        update(params[w_name], None if b_name is None else params[b_name], params[v_name])
        vertices.append(current)

    def set_incoming(neuron: int, row: torch.Tensor) -> None:
        def update(w, b, v):
            w[neuron] = row[: w.shape[1]]
            if b is not None:
                b[neuron] = row[-1]

        move(update)

    def transfer(source: int, target: int) -> None:
        def update(w, b, v):
            v[:, target] = v[:, source]
            v[:, source] = 0

        move(update)

    def incoming(neuron: int) -> torch.Tensor:
        params = unflatten_params(wide, current)
        row = params[w_name][neuron]
        return (
            row.clone() if b_name is None else torch.cat([row, params[b_name][neuron : neuron + 1]])
        )

    for i, j in _transpositions(perm):
        u_i, u_j, home = incoming(i), incoming(j), incoming(slot)
        set_incoming(slot, u_i)  # 1
        transfer(i, slot)  # 2
        set_incoming(i, u_j)  # 3
        transfer(j, i)  # 4
        set_incoming(j, u_i)  # 5
        transfer(slot, j)  # 6
        set_incoming(slot, home)  # 7
    return vertices


def _names(wide: nn.Module, layer: int) -> tuple[str, str | None, str]:
    w_in, w_out = 2 * (layer - 1), 2 * layer
    has_bias = wide[w_in].bias is not None
    return f"{w_in}.weight", (f"{w_in}.bias" if has_bias else None), f"{w_out}.weight"


def path_loss(
    model: nn.Module,
    vertices: Sequence[torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    points_per_segment: int = 50,
) -> torch.Tensor:
    """Mean squared error (1/N sum_n ||f(x_n) - y_n||^2) on a grid along a piecewise-linear path.

    ``model`` fixes the architecture (e.g. ``path_model``); segment k is sampled at
    theta_k + t (theta_{k+1} - theta_k), t = i / points_per_segment, i = 0..points_per_segment - 1,
    and the last vertex is added: (len(vertices) - 1) points_per_segment + 1 losses, in order.
    """
    if len(vertices) < 2:
        raise ValueError(
            f"vertices: expected at least two flat parameter vectors, got {len(vertices)}"
        )
    if (
        isinstance(points_per_segment, bool)
        or not isinstance(points_per_segment, int)
        or points_per_segment < 1
    ):
        raise ValueError(
            f"points_per_segment: expected an integer >= 1, got {points_per_segment!r}"
        )
    ts = torch.arange(points_per_segment, dtype=vertices[0].dtype) / points_per_segment
    thetas = [a + t * (b - a) for a, b in zip(vertices[:-1], vertices[1:], strict=True) for t in ts]
    thetas.append(vertices[-1])
    losses = []
    with torch.no_grad():
        for theta in thetas:
            out = torch.func.functional_call(model, unflatten_params(model, theta), (inputs,))
            losses.append(((out - targets) ** 2).sum(dim=-1).mean())
    return torch.stack(losses)
