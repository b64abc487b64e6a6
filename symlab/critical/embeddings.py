"""Function-preserving embeddings of an MLP into wider ones, and their inverse (reduction).

Embedding principle (Zhang, Zhang, Luo, Xu, NeurIPS 2021, arXiv 2105.14573; Fukumizu & Amari 2000;
Şimşek et al. ICML 2021): the one-step splitting embedding T^alpha_{l,s} widens hidden layer l by
one neuron that copies the incoming row W_l[s, :] and bias b_l[s] of neuron s, and replaces the
outgoing column v = W_{l+1}[:, s] by alpha v (old slot) and (1 - alpha) v (new slot). Since
alpha v sigma(z) + (1 - alpha) v sigma(z) = v sigma(z), the output is unchanged for every input, and
a critical point maps to a line (over alpha) of critical points for any data and loss. A zero
neuron (outgoing column 0, incoming weights free) also preserves the output but is not critical in
general.

Conventions: models are ``symlab.nets.mlp`` networks (``nn.Sequential`` of Linear, act, ...,
Linear); hidden layers are indexed 1..L-1 as in the papers (layer l is the output of W_l);
neurons are 0-based; new neurons are appended after the existing ones of their layer. Every
function returns a new model (same dtype, activation) and never modifies its argument. Cost:
O(D) copies per call.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from symlab.nets import activation_of, is_mlp, linear_layers, widths_of

ALPHA_CHOICES = ("equal", "random")
POSITIVELY_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity)
ODD = (nn.Tanh, nn.Identity)  # sigma(-z) = -sigma(z); not softplus, sigmoid, relu, gelu


def is_odd(activation: nn.Module) -> bool:
    """True when the activation module is odd, sigma(-z) = -sigma(z) (tanh, identity): then a
    neuron (w, b, v) computes the same as (-w, -b, -v) (the flip acts on the bias too)."""
    return isinstance(activation, ODD)


def _check_model(model: nn.Module) -> list[nn.Linear]:
    if not is_mlp(model) or len(linear_layers(model)) < 2:
        raise ValueError("model: expected a symlab.nets.mlp network with at least one hidden layer")
    return linear_layers(model)


def _check_layer(model: nn.Module, layer: int) -> None:
    hidden = len(linear_layers(model)) - 1
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= hidden:
        raise ValueError(f"layer: expected a hidden layer index in 1..{hidden}, got {layer!r}")


def _rebuild(model: nn.Module, weights: list[torch.Tensor], biases: list[torch.Tensor | None]):
    """A copy of ``model`` whose Linear layers have the given weights and biases."""
    clone = copy.deepcopy(model)
    position = 0
    for index, module in enumerate(clone):
        if isinstance(module, nn.Linear):
            w, b = weights[position], biases[position]
            new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype)
            with torch.no_grad():
                new.weight.copy_(w)
                if b is not None:
                    new.bias.copy_(b)
            clone[index] = new
            position += 1
    return clone


def _params(model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    layers = _check_model(model)
    weights = [layer.weight.detach().clone() for layer in layers]
    biases = [None if layer.bias is None else layer.bias.detach().clone() for layer in layers]
    return weights, biases


def _widen(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor | None],
    layer: int,
    row: torch.Tensor,
    bias: torch.Tensor | None,
    column: torch.Tensor,
) -> None:
    """Append one neuron to hidden layer ``layer`` (1-based) in place."""
    w_in, w_out = weights[layer - 1], weights[layer]
    weights[layer - 1] = torch.cat([w_in, row.reshape(1, -1).to(w_in.dtype)])
    if biases[layer - 1] is not None:
        biases[layer - 1] = torch.cat([biases[layer - 1], bias.reshape(1).to(w_in.dtype)])
    weights[layer] = torch.cat([w_out, column.reshape(-1, 1).to(w_out.dtype)], dim=1)


def split_neuron(model: nn.Module, layer: int, neuron: int, alpha: float) -> nn.Module:
    """T^alpha_{layer,neuron}: duplicate a neuron, outgoing weights alpha v (old) and (1-alpha) v (new).

    The copy is appended as the last neuron of hidden layer ``layer`` (1-based); the output is
    unchanged for every input (Zhang et al. 2021, splitting embedding).
    """
    _check_model(model)
    _check_layer(model, layer)
    width = widths_of(model)[layer]
    if isinstance(neuron, bool) or not isinstance(neuron, int) or not 0 <= neuron < width:
        raise ValueError(f"neuron: expected an index in 0..{width - 1}, got {neuron!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise ValueError(f"alpha: expected a real number (finite), got {alpha!r}")
    weights, biases = _params(model)
    v = weights[layer][:, neuron].clone()
    b = None if biases[layer - 1] is None else biases[layer - 1][neuron]
    _widen(weights, biases, layer, weights[layer - 1][neuron], b, (1 - alpha) * v)
    weights[layer][:, neuron] = alpha * v
    return _rebuild(model, weights, biases)


def add_zero_neuron(
    model: nn.Module,
    layer: int,
    incoming: torch.Tensor | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Append a neuron with outgoing weights 0 to hidden layer ``layer`` (1-based).

    ``incoming``: its incoming weights, shape (n_{l-1},) (bias 0) or (n_{l-1} + 1,) with the bias
    last when the layer has biases; None draws weights ~ N(0, 1/n_{l-1}) and bias ~ N(0, 1) from
    ``seed`` (None means seed 0, so calls are reproducible). The output is unchanged for every input.
    """
    _check_model(model)
    _check_layer(model, layer)
    weights, biases = _params(model)
    fan_in, has_bias = weights[layer - 1].shape[1], biases[layer - 1] is not None
    dtype = weights[0].dtype
    if incoming is None:
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
        row = torch.randn(fan_in, generator=generator, dtype=dtype) / fan_in**0.5
        bias = torch.randn(1, generator=generator, dtype=dtype)
    else:
        incoming = torch.as_tensor(incoming, dtype=dtype).reshape(-1)
        allowed = (fan_in, fan_in + 1) if has_bias else (fan_in,)
        if incoming.numel() not in allowed:
            raise ValueError(
                f"incoming: expected {' or '.join(map(str, allowed))} entries, got {incoming.numel()}"
            )
        row = incoming[:fan_in]
        bias = incoming[fan_in:] if incoming.numel() > fan_in else torch.zeros(1, dtype=dtype)
    zeros = torch.zeros(weights[layer].shape[0], dtype=dtype)
    _widen(weights, biases, layer, row, bias if has_bias else None, zeros)
    return _rebuild(model, weights, biases)


def _shares(size: int, alpha: float | str, generator: torch.Generator) -> list[float]:
    """Outgoing shares (summing to 1) of the original neuron and its size-1 copies, in order."""
    if alpha == "equal":
        return [1.0 / size] * size
    if alpha == "random":  # a random point of the open simplex
        draws = -torch.rand(size, generator=generator, dtype=torch.float64).log()
        return (draws / draws.sum()).tolist()
    # sequential splits of the original slot: alpha^k (original), alpha^(t-1) (1 - alpha) (t-th copy)
    return [alpha ** (size - 1)] + [alpha ** (t - 1) * (1 - alpha) for t in range(1, size)]


def embed(
    model: nn.Module,
    widths: Sequence[int],
    *,
    method: str = "split",
    alpha: float | str = "equal",
    seed: int | None = None,
) -> nn.Module:
    """A wider MLP with widths ``widths`` = (n_0, ..., n_L) computing the same function.

    ``method="split"``: hidden layers 1..L-1 in order; the k-th new neuron of layer l (k = 0, 1, ...)
    copies neuron k mod n_l (round robin), so neuron i ends in a group of s_i copies that share its
    outgoing column v_i with shares beta summing to 1. ``alpha`` chooses the shares: "equal"
    (beta = 1/s_i), "random" (a random point of the open simplex, from ``seed``), or a number a
    (the same as repeated ``split_neuron(model, l, i, a)`` on the original slot: a^(s_i - 1) for the
    original neuron, a^(t-1) (1 - a) for its t-th copy). ``method="zero"``: new neurons are zero
    neurons with random incoming weights (``add_zero_neuron`` with seeds drawn from ``seed``).
    """
    _check_model(model)
    old = widths_of(model)
    widths = list(widths)
    if (
        len(widths) != len(old)
        or any(isinstance(w, bool) or not isinstance(w, int) for w in widths)
        or widths[0] != old[0]
        or widths[-1] != old[-1]
        or any(new < now for new, now in zip(widths, old, strict=True))
    ):
        raise ValueError(
            f"widths: expected {len(old)} integers with the same input/output widths as {old} "
            f"and every hidden width at least as large, got {widths}"
        )
    if method not in ("split", "zero"):
        raise ValueError(f"method: expected 'split' or 'zero', got {method!r}")
    valid = alpha in ALPHA_CHOICES if isinstance(alpha, str) else isinstance(alpha, int | float)
    if not valid or isinstance(alpha, bool):
        raise ValueError(f"alpha: expected a number, 'equal' or 'random', got {alpha!r}")
    generator = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
    result = copy.deepcopy(model)
    for layer in range(1, len(old) - 1):
        extra = widths[layer] - old[layer]
        if method == "zero":
            for _ in range(extra):
                child_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
                result = add_zero_neuron(result, layer, seed=child_seed)
            continue
        weights, biases = _params(result)
        sources = [k % old[layer] for k in range(extra)]
        shares = [_shares(1 + sources.count(i), alpha, generator) for i in range(old[layer])]
        v = weights[layer].clone()
        for neuron in range(old[layer]):
            weights[layer][:, neuron] = shares[neuron][0] * v[:, neuron]
        for k, neuron in enumerate(sources):
            b = None if biases[layer - 1] is None else biases[layer - 1][neuron]
            share = shares[neuron][1 + k // old[layer]]  # the (k // n_l + 1)-th copy of neuron
            _widen(weights, biases, layer, weights[layer - 1][neuron], b, share * v[:, neuron])
        result = _rebuild(result, weights, biases)
    return result


@dataclass
class ReductionReport:
    """What ``reduce`` did, in the original model's neuron indices (hidden layers 1-based).

    ``merged``: (layer, kept, merged, scale) -- neuron ``merged`` had incoming weights and bias
    equal to ``scale`` times those of ``kept`` (scale 1; -1 for odd activations; > 0 for
    positively homogeneous ones; any non-zero scale for identity, which is both) and its outgoing
    column times ``scale`` was added to ``kept``'s.
    ``dropped``: (layer, neuron) of neurons whose outgoing weights were all within tolerance of 0.
    ``kept``: for each hidden layer, the original indices of the surviving neurons, in order.
    """

    widths_before: list[int]
    widths_after: list[int]
    merged: list[tuple[int, int, int, float]] = field(default_factory=list)
    dropped: list[tuple[int, int]] = field(default_factory=list)
    kept: dict[int, list[int]] = field(default_factory=dict)


def reduce(model: nn.Module, tol: float = 1e-8) -> tuple[nn.Module, ReductionReport]:
    """Undo embeddings: merge duplicate neurons, drop zero-output neurons, until nothing changes.

    Duplicates (layer l, neurons j < k): ||[W_l, b_l][k] - c [W_l, b_l][j]||_inf <= tol s_l with
    c = 1; or c = -1 when the activation is odd (tanh, identity: sigma(-z) = -sigma(z), the row
    and the bias flip together); or any c > 0 when it is positively homogeneous (relu,
    leaky_relu, identity: sigma(c z) = c sigma(z)), hence any c != 0 for identity;
    s_l = max(1, max |[W_l, b_l]|). Neuron k is removed and c W_{l+1}[:, k] is added to
    W_{l+1}[:, j] (the lowest index is kept). Zero-output neurons:
    ||W_{l+1}[:, j]||_inf <= tol max(1, max |W_{l+1}|); removed. Only these exact definitions are
    used (no data-dependent criteria such as never-active ReLUs). Layers are processed 1..L-1 and
    the passes repeat until a fixed point. The output changes by at most the merged/dropped
    residuals (exactly 0 for exact copies). ``tol`` is raised to 4 eps of the model's dtype when
    smaller. Cost: O(L n^2 n_prev) per pass (n loop iterations of vectorised tensor work).
    """
    if not isinstance(tol, int | float) or isinstance(tol, bool) or tol < 0:
        raise ValueError(f"tol: expected a non-negative number, got {tol!r}")
    weights, biases = _params(model)
    homogeneous = isinstance(activation_of(model), POSITIVELY_HOMOGENEOUS)
    odd = is_odd(activation_of(model))
    report = ReductionReport(widths_before=widths_of(model), widths_after=[])
    original = {layer: list(range(w.shape[0])) for layer, w in enumerate(weights[:-1], start=1)}
    changed = True
    while changed:
        changed = False
        for layer in range(1, len(weights)):
            changed |= _merge_layer(
                weights, biases, layer, tol, (homogeneous, odd), original, report
            )
            changed |= _drop_layer(weights, biases, layer, tol, original, report)
    report.kept = {layer: list(indices) for layer, indices in original.items()}
    reduced = _rebuild(model, weights, biases)
    report.widths_after = widths_of(reduced)
    return reduced, report


def _incoming(weights, biases, layer: int) -> torch.Tensor:
    w, b = weights[layer - 1], biases[layer - 1]
    return w if b is None else torch.cat([w, b[:, None]], dim=1)


def _remove(weights, biases, layer: int, neurons: list[int], original: dict) -> None:
    gone = set(neurons)
    keep = [j for j in range(weights[layer - 1].shape[0]) if j not in gone]
    weights[layer - 1] = weights[layer - 1][keep]
    if biases[layer - 1] is not None:
        biases[layer - 1] = biases[layer - 1][keep]
    weights[layer] = weights[layer][:, keep]
    original[layer] = [original[layer][j] for j in keep]


def _merge_layer(weights, biases, layer, tol, symmetries, original, report) -> bool:
    homogeneous, odd = symmetries
    rows = _incoming(weights, biases, layer)
    scale = max(1.0, float(rows.abs().max())) if rows.numel() else 1.0
    tol = max(tol, 4 * torch.finfo(rows.dtype).eps)
    n = rows.shape[0]
    alive = torch.ones(n, dtype=torch.bool)
    for j in range(n - 1):
        if not alive[j]:
            continue
        later = torch.arange(j + 1, n)[alive[j + 1 :]]
        c = torch.ones(len(later), dtype=rows.dtype)
        residual = (rows[later] - rows[j]).abs().amax(dim=1)
        norm = float(rows[j] @ rows[j])
        if odd:  # a flipped copy: rows[k] ~ -rows[j]
            flipped = (rows[later] + rows[j]).abs().amax(dim=1)
            use = (residual > tol * scale) & (flipped <= tol * scale)
            c, residual = torch.where(use, -c, c), torch.where(use, flipped, residual)
        if homogeneous and norm > 0.0:  # best c with rows[k] ~ c rows[j] where not a +-copy
            scaled = rows[later] @ rows[j] / norm
            c = torch.where(residual <= tol * scale, c, scaled)
            residual = (rows[later] - c[:, None] * rows[j]).abs().amax(dim=1)
        match = (residual <= tol * scale) & ((c > 0) | (odd & (c != 0)))
        for k, factor in zip(later[match].tolist(), c[match].tolist(), strict=True):
            weights[layer][:, j] += factor * weights[layer][:, k]
            alive[k] = False
            report.merged.append((layer, original[layer][j], original[layer][k], factor))
    removed = (~alive).nonzero().flatten().tolist()
    if removed:
        _remove(weights, biases, layer, removed, original)
    return bool(removed)


def _drop_layer(weights, biases, layer, tol, original, report) -> bool:
    out = weights[layer]
    scale = max(1.0, float(out.abs().max())) if out.numel() else 1.0
    tol = max(tol, 4 * torch.finfo(out.dtype).eps)
    zero = [j for j in range(out.shape[1]) if float(out[:, j].abs().max()) <= tol * scale]
    if len(zero) == out.shape[1]:
        zero = zero[1:]  # keep one neuron: a layer of width 0 is not an MLP
    if not zero:
        return False
    report.dropped.extend((layer, original[layer][j]) for j in zero)
    _remove(weights, biases, layer, zero, original)
    return True
