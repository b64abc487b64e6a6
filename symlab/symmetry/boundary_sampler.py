"""Region-seeking input sampler: points on both sides of every hidden neuron's bent hyperplane.

The batch functional dimension rank J E_Z|_theta is exact only on a decisive Z: n0 + 1 affinely
independent points in every linear region of F_theta (Grigsby, Lindsey, Meyerhoff, Wu 2022,
arXiv 2209.04036, §5; Grigsby, Lindsey, Rolnick 2023, "Hidden Symmetries of ReLU Networks",
ICML, arXiv 2306.06179). Gaussian or multiscale draws rarely
land in the regions where a deep neuron is active only on a thin slab of input space, so at
n0 = width = 10 the rank is still rising at 40000 points. This sampler looks for those regions.

A linear region is bounded by pieces of the bent hyperplanes B_h = {x : z_h(x) = 0} of the hidden
neurons h (z_h = pre-activation of h). For each line x0 + t v of the first kind:

1. a hidden neuron h is drawn (a layer uniformly, then a neuron of it uniformly, so deep
   layers get as many lines as the first);
2. x0 is multiscale (:func:`symlab.symmetry.samplers.multiscale`); v is, for half the lines, a
   uniformly random unit vector, for the other half the unit gradient -sign(z_h(x0)) grad_x
   z_h(x0) (the steepest route to B_h, through the region where h switches on when it is off
   at x0) with a random perturbation;
3. t -> z_h(x0 + t v) is piecewise linear in t: it is evaluated on the grid t in
   {0, +-10^s : s in linspace(-3, 3.5, 32)}; one sign change is chosen at random and its
   bracket shrunk on the float64 forward pass to 2^-``BISECTION_STEPS`` (< 4e-15) of its
   length, so |z_h(x*)| is at rounding level: secant steps (z_h is linear between kinks, so
   they land on the root once the bracket holds no kink), bisection for lines they leave open;
4. the two points x* -+ delta v are emitted, delta = 10^U(-6, -1) max(|x*|, 1e-2) (relative
   offsets over five decades), halved by factors of 10 (at most ``SHRINK_STEPS`` times) until
   z_h has opposite signs at the two points, so each pair straddles B_h: one point in the
   region on each side of the crossed piece.

With two or more hidden layers, a share ``PAIR_FRACTION`` of the lines are co-activation lines
instead (:func:`_pair_lines`): a neuron j of hidden layer l and a neuron i of layer l + 1 are
drawn; the line first reaches the side of B_j where j is active (the nearest crossing along the
z_j-gradient; x0 itself if j is active there, and x0 as it is when no crossing is found), then
runs along grad z_i projected off grad z_j to the nearest crossing of B_i, so that the pair
straddles B_i with j active: the regions where the weight W_{l+1}[i, j] reaches the output. These
lines never target the first hidden layer's neurons as i, so there the layers are not drawn
uniformly.

Lines without a sign change of z_h on the grid emit x0 and one random grid point of the line
(plain multiscale-like coverage). Every point is a valid input, so rank J E_Z stays a lower
bound on dim_fun(theta) whatever the sampler finds.

Cost per point: about len(grid) / 2 + 3 SECANT_STEPS / 2 + SHRINK_STEPS float64 forward passes
at most (the secant steps run on open lines only; 48 bisection steps per line before), O(sum_l
n_l n_{l-1}) each, plus one backward pass per line for the gradient; no Jacobian.
Deterministic given ``generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from symlab.symmetry.hidden_forward import (
    _check_model,
    _HiddenForward,
    _neuron_layers,
    _neuron_values,
    _OneNeuronPass,
    hidden_preactivations,
    neuron_preactivations,
)
from symlab.symmetry.samplers import multiscale

__all__ = [
    "BoundaryPairs",
    "LineCrossings",
    "boundary",
    "boundary_pairs",
    "hidden_preactivations",
    "neuron_crossings",
    "neuron_preactivations",
]

GRID_LOG10 = (-3.0, 3.5)  # |t| on the search grid spans these decades
GRID_POINTS = 32  # grid points per side of 0
BISECTION_STEPS = 48  # bracket / 2^48 < 4e-15 of its length
SECANT_STEPS = 6  # secant steps (3 forward passes each) before bisecting the lines left open
SHRINK_STEPS = 6  # delta / 10^k, k <= 6, until the pair straddles B_h
OFFSET_LOG10 = (-6.0, -1.0)  # delta / max(|x*|, 1e-2)
PAIR_FRACTION = 0.5  # share of co-activation lines (mode 2) when there are >= 2 hidden layers
_CHUNK_LINES = 2048


def _grid() -> torch.Tensor:
    side = torch.logspace(*GRID_LOG10, GRID_POINTS, dtype=torch.float64)
    return torch.cat([-side.flip(0), torch.zeros(1, dtype=torch.float64), side])


@dataclass(frozen=True)
class LineCrossings:
    """Zero crossings of z_{neuron[j]} along the lines base[j] + t direction[j].

    found[j]: a sign change was met on the grid; t[j]: the crossing (bisected; for lines without
    one, a random grid point); bracket (m, 2): the final bisection interval, with opposite signs
    of z at its ends where found.
    """

    base: torch.Tensor
    direction: torch.Tensor
    neuron: torch.Tensor
    t: torch.Tensor
    bracket: torch.Tensor
    found: torch.Tensor

    @property
    def points(self) -> torch.Tensor:
        """The crossing points base + t direction, (m, n0)."""
        return self.base + self.t[:, None] * self.direction


def neuron_crossings(
    model: nn.Module,
    base: torch.Tensor,
    direction: torch.Tensor,
    neuron: torch.Tensor,
    generator: torch.Generator,
    nearest: torch.Tensor | None = None,
) -> LineCrossings:
    """One zero of t -> z_{neuron[j]}(base[j] + t direction[j]) per line, in float64.

    Grid search over t in {0, +-10^s}, s in linspace(*GRID_LOG10, GRID_POINTS), one sign change
    picked at random per line (``generator``), its bracket then shrunk to 2^-``BISECTION_STEPS``
    of its length (:func:`_refine_roots`). Where ``nearest[j]`` (bool, (m,)) is set, the sign
    change nearest t = 0 is taken instead (a local move). Cost about
    O(m (2 GRID_POINTS + 1 + 3 SECANT_STEPS) sum_l n_l n_{l-1}).
    """
    forward = _HiddenForward.of(model)
    base, direction = base.to(torch.float64), direction.to(torch.float64)
    grid = _grid()
    m = base.shape[0]
    scores = torch.rand(m, grid.numel() - 1, generator=generator, dtype=torch.float64)
    if nearest is not None:  # score 2 - |t| / max|t| beats any random score in [0, 1)
        closeness = 2.0 - torch.maximum(grid[:-1].abs(), grid[1:].abs()) / grid.max()
        scores = torch.where(nearest[:, None], closeness[None, :], scores)
    pick_fallback = torch.randint(grid.numel(), (m,), generator=generator)
    # lines deepest neuron first (the draws above stay with their lines), so that every set of
    # points below is already in the one-neuron pass's order and needs no sort
    order = _deepest_first(forward, neuron)
    lines = (base[order], direction[order], neuron[order])
    scores, pick_fallback = scores[order], pick_fallback[order]
    lo = torch.empty(m, dtype=torch.float64)
    hi = torch.empty(m, dtype=torch.float64)
    z_lo = torch.zeros(m, dtype=torch.float64)
    z_hi = torch.zeros(m, dtype=torch.float64)
    found = torch.zeros(m, dtype=torch.bool)
    with torch.no_grad():
        for start in range(0, m, _CHUNK_LINES):
            stop = min(m, start + _CHUNK_LINES)
            rows = slice(start, stop)
            line_base, line_direction, line_neuron = (part[start:stop] for part in lines)
            x = line_base[:, None, :] + grid[None, :, None] * line_direction[:, None, :]
            z = _neuron_values(forward, x, line_neuron)
            change = (z[:, :-1] > 0) != (z[:, 1:] > 0)
            pick = torch.where(change, scores[rows], -1.0).argmax(dim=1)
            found[rows] = change.any(dim=1)
            lo[rows], hi[rows] = grid[pick], grid[pick + 1]
            z_lo[rows] = z.gather(1, pick[:, None])[:, 0]
            z_hi[rows] = z.gather(1, pick[:, None] + 1)[:, 0]
        lo = torch.where(found, lo, grid[pick_fallback])
        hi = torch.where(found, hi, grid[pick_fallback])
        lo, hi = _refine_roots(forward, *lines, found, (lo, hi, z_lo, z_hi))
    t = torch.where(found, 0.5 * (lo + hi), lo)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(m)
    bracket = torch.stack([lo, hi], dim=1)[inverse]
    return LineCrossings(base, direction, neuron, t[inverse], bracket, found[inverse])


def _deepest_first(forward: _HiddenForward, neuron: torch.Tensor) -> torch.Tensor:
    """The lines' order by their neuron's hidden layer, deepest first (stable)."""
    return torch.argsort(_neuron_layers(forward, neuron)[0], descending=True, stable=True)


def _refine_roots(forward, base, direction, neuron, active, bracket):
    """Shrink each active line's sign-change bracket [lo, hi] of z_h to 2^-BISECTION_STEPS of
    its length, as ``BISECTION_STEPS`` halvings would, in far fewer forward passes.

    z_h is piecewise linear along the line, so a secant step (regula falsi, Illinois variant:
    an end kept twice has its value halved) lands on the root to rounding once the bracket lies
    in one linear piece. Each of ``SECANT_STEPS`` steps evaluates the secant point t and the two
    probes t -+ w / 2 (w the target width): when the root is within w / 2 of t the probes
    straddle it and the line is done. Lines still open after them are bisected. Only open lines
    are evaluated; (lo, hi) keep opposite signs of z_h > 0 throughout."""
    lo, hi, z_lo, z_hi = (part.clone() for part in bracket)
    target = (hi - lo).abs() * 2.0**-BISECTION_STEPS
    open_ = active.clone()
    kept = torch.zeros(lo.shape, dtype=torch.int8)  # -1: lo kept last step, +1: hi kept
    for _ in range(SECANT_STEPS):
        rows = torch.nonzero(open_)[:, 0]
        if not len(rows):
            break
        a, b, za, zb = lo[rows], hi[rows], z_lo[rows], z_hi[rows]
        t = a - za * (b - a) / (zb - za)
        t = torch.where(torch.isfinite(t) & (t > a) & (t < b), t, 0.5 * (a + b))
        half = 0.5 * target[rows]
        probes = torch.stack([(t - half).clamp_min(a), t, (t + half).clamp_max(b)], dim=1)
        x = base[rows, None, :] + probes[:, :, None] * direction[rows, None, :]
        z = _neuron_values(forward, x, neuron[rows])
        # walk a < p0 <= p1 <= p2 < b: the first point whose sign differs from a's ends it
        ends = torch.cat([a[:, None], probes, b[:, None]], dim=1)
        values = torch.cat([za[:, None], z, zb[:, None]], dim=1)
        differs = (values > 0) != (za > 0)[:, None]
        first = differs.int().argmax(dim=1)  # b always differs
        before, after = (first - 1)[:, None], first[:, None]
        new_a, new_b = ends.gather(1, before)[:, 0], ends.gather(1, after)[:, 0]
        new_za, new_zb = values.gather(1, before)[:, 0], values.gather(1, after)[:, 0]
        # Illinois: an end kept on two steps running has its value halved
        keep_a, keep_b = first == 1, first == 4
        new_za = torch.where(keep_a & (kept[rows] == -1), 0.5 * new_za, new_za)
        new_zb = torch.where(keep_b & (kept[rows] == 1), 0.5 * new_zb, new_zb)
        kept[rows] = torch.where(keep_a, -1, torch.where(keep_b, 1, 0)).to(torch.int8)
        lo[rows], hi[rows], z_lo[rows], z_hi[rows] = new_a, new_b, new_za, new_zb
        open_[rows] = (new_b - new_a) > target[rows]
    rows = torch.nonzero(open_)[:, 0]
    if len(rows):  # lines the secant steps did not close: bisection, as before
        a, b = lo[rows], hi[rows]
        along = _OneNeuronPass.plan(forward, neuron[rows], (len(rows),))
        positive = along(base[rows] + a[:, None] * direction[rows]) > 0
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (a + b)
            same = (along(base[rows] + mid[:, None] * direction[rows]) > 0) == positive
            a, b = torch.where(same, mid, a), torch.where(same, b, mid)
        lo[rows], hi[rows] = a, b
    return lo, hi


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _value_and_gradient(
    forward: _HiddenForward, x: torch.Tensor, neuron: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """z_{neuron[j]}(x[j]) and its input gradient (m, n0) (autograd on the float64 forward)."""
    x = x.detach().clone().requires_grad_(True)
    z = _neuron_values(forward, x, neuron)
    (grad,) = torch.autograd.grad(z.sum(), x)
    return z.detach(), grad


def _random_neurons(
    widths: list[int], layer: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """A uniform neuron of hidden layer ``layer[j]``, as an index into the H pre-activations."""
    offsets = torch.tensor([0, *widths[:-1]]).cumsum(0)
    within = torch.rand(layer.shape[0], generator=generator, dtype=torch.float64)
    return offsets[layer] + (within * torch.tensor(widths)[layer]).long()


def _toward(
    z: torch.Tensor, grad: torch.Tensor, noise: torch.Tensor, weight: float = 0.3
) -> torch.Tensor:
    """Unit direction -sign(z) grad + weight noise (towards z = 0); noise where grad = 0."""
    g = _unit(-torch.sign(z)[:, None] * grad)
    g = torch.where(grad.norm(dim=1, keepdim=True) > 0, g, noise)
    return _unit(g + weight * noise)


def _single_lines(
    forward: _HiddenForward, widths: list[int], n_lines: int, n0: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mode 1: multiscale base, a random hidden neuron h, a random or z_h-gradient direction."""
    layer = torch.randint(len(widths), (n_lines,), generator=generator)
    neuron = _random_neurons(widths, layer, generator)
    base = multiscale(n_lines, n0, generator, torch.float64)
    noise = _unit(torch.randn(n_lines, n0, generator=generator, dtype=torch.float64))
    z, grad = _value_and_gradient(forward, base, neuron)
    use_gradient = torch.rand(n_lines, 1, generator=generator) < 0.5
    direction = torch.where(use_gradient, _toward(z, grad, noise), noise)
    return base, direction, neuron


def _pair_lines(
    forward: _HiddenForward, widths: list[int], n_lines: int, n0: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mode 2 (co-activation): neuron j of hidden layer l and i of layer l + 1.

    From a multiscale x0, the nearest crossing of B_j along the z_j-gradient line gives a point
    p with z_j(p) > 0 (x0 itself if z_j(x0) > 0, and x0 unchanged, j still inactive, when no
    crossing is found); from p the line runs along grad z_i projected
    off grad z_j (z_j constant to first order), towards B_i. Its nearest crossing then has
    j active on both sides: the regions where W_{l+1}[i, j] acts on the output.
    """
    layer = torch.randint(len(widths) - 1, (n_lines,), generator=generator)
    lower = _random_neurons(widths, layer, generator)
    upper = _random_neurons(widths, layer + 1, generator)
    base = multiscale(n_lines, n0, generator, torch.float64)
    noise = _unit(torch.randn(n_lines, n0, generator=generator, dtype=torch.float64))
    z, grad = _value_and_gradient(forward, base, lower)
    toward = _toward(z, grad, noise)
    near = torch.ones(n_lines, dtype=torch.bool)
    cross = neuron_crossings(forward, base, toward, lower, generator, nearest=near)
    step = 1e-6 * cross.points.norm(dim=1).clamp_min(1e-2)
    with torch.no_grad():
        ahead = cross.points + step[:, None] * toward
        behind = cross.points - step[:, None] * toward
        on = torch.where((_neuron_values(forward, ahead, lower) > 0)[:, None], ahead, behind)
    start = torch.where((cross.found & (z <= 0))[:, None], on, base)
    z_i, g_i = _value_and_gradient(forward, start, upper)
    _, g_j = _value_and_gradient(forward, start, lower)
    coefficient = (g_i * g_j).sum(1) / (g_j * g_j).sum(1).clamp_min(1e-300)
    projected = g_i - coefficient[:, None] * g_j
    return start, _toward(z_i, projected, noise, weight=0.1), upper


@dataclass(frozen=True)
class BoundaryPairs:
    """Points straddling bent hyperplanes: minus[j], plus[j] around line j's crossing of B_h.

    neuron[j] = h (index into the H hidden pre-activations, layer order); crossings: the lines
    and roots. Where ``crossings.found[j]`` is False, minus[j] is the line's base point and
    plus[j] a random grid point of the line.
    """

    minus: torch.Tensor
    plus: torch.Tensor
    neuron: torch.Tensor
    crossings: LineCrossings


def boundary_pairs(model: nn.Module, n_lines: int, generator: torch.Generator) -> BoundaryPairs:
    """``n_lines`` lines (half mode 1, half mode 2 when there are two hidden layers), each
    giving the pair x* -+ delta v around its crossing (module docstring), float64."""
    layers = _check_model(model)
    n0 = layers[0].in_features
    widths = [layer.out_features for layer in layers[:-1]]
    forward = _HiddenForward.of(model)
    n_pair = int(n_lines * PAIR_FRACTION) if len(widths) > 1 else 0
    lines = [_single_lines(forward, widths, n_lines - n_pair, n0, generator)]
    if n_pair:  # needs two hidden layers
        lines.append(_pair_lines(forward, widths, n_pair, n0, generator))
    base, direction, neuron = (torch.cat(parts) for parts in zip(*lines, strict=True))
    nearest = torch.arange(n_lines) >= n_lines - n_pair
    cross = neuron_crossings(forward, base, direction, neuron, generator, nearest=nearest)
    point = cross.points
    low, high = OFFSET_LOG10
    log_delta = low + (high - low) * torch.rand(n_lines, generator=generator, dtype=torch.float64)
    delta = 10.0**log_delta * point.norm(dim=1).clamp_min(1e-2)
    along = _OneNeuronPass.plan(forward, neuron, (n_lines,))
    with torch.no_grad():
        for _ in range(SHRINK_STEPS):
            minus = along(point - delta[:, None] * direction) > 0
            plus = along(point + delta[:, None] * direction) > 0
            retry = cross.found & (minus == plus)
            if not bool(retry.any()):
                break
            delta = torch.where(retry, delta / 10, delta)
    # lines without a crossing: the base point and a random grid point of the line
    found = cross.found[:, None]
    return BoundaryPairs(
        torch.where(found, point - delta[:, None] * direction, base),
        torch.where(found, point + delta[:, None] * direction, point),
        neuron,
        cross,
    )


def boundary(
    model: nn.Module,
    n_points: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``n_points`` inputs (n_points, n0) straddling the hidden neurons' bent hyperplanes.

    Model-aware sampler (module docstring): the pairs of :func:`boundary_pairs` for
    ceil(n_points / 2) lines, interleaved (minus_1, plus_1, minus_2, ...). An MLP without
    hidden neurons gets multiscale points. Computed in float64, returned in ``dtype`` (float32
    rounding can move a pair's points off their sides of B_h).
    """
    layers = _check_model(model)
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 0:
        raise ValueError(f"n_points: expected a non-negative integer, got {n_points!r}")
    n0 = layers[0].in_features
    if len(layers) == 1 or n_points == 0:
        return multiscale(n_points, n0, generator, dtype)
    pairs = boundary_pairs(model, math.ceil(n_points / 2), generator)
    points = torch.stack([pairs.minus, pairs.plus], dim=1).reshape(-1, n0)
    return points[:n_points].to(dtype)
