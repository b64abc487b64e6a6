"""Activation regions of a ReLU MLP on all of R^{n0}, enumerated layer by layer with LPs.

For a ReLU MLP F = A^L o relu o ... o relu o A^1 and an activation pattern s of the hidden
layers 1..l, the region R_s = {x : sign z^k_i(x) = s^k_i for k <= l} is an open polyhedron on
which a^l(x) = M_s x + m_s is affine (M_s, m_s: products of the masked weights). Refining R_s by
layer l + 1 splits it along the hyperplanes z^{l+1}_i(x) = W_{l+1}[i] (M_s x + m_s) + b_{l+1}[i]
= 0 that cross it. :func:`enumerate_regions` does this for l = 0, 1, ..., starting from R^{n0}:

- a neuron's side of a cell is nonempty iff the Chebyshev LP (max r s.t. a_k.x + d_k >= r for
  every normalized constraint row, r <= 1; scipy's HiGHS) has r > ``RADIUS_MIN``; a side that
  holds the cell's witness point (a previous LP centre) needs no LP; an LP that HiGHS ends
  without a verdict (neither optimal nor infeasible) raises :class:`LPFailure`;
- a neuron that crosses a cell adds its constraint row to the two halves; one that does not adds
  nothing (its sign is implied on the whole cell);
- before splitting by layer l, every neuron of layer l is tested on every cell of depth l - 1:
  ``positive[l-1]`` / ``negative[l-1]`` (cells x n_l) say on which cells it can be positive /
  negative. These tables are what :mod:`symlab.symmetry.kernel_proofs` turns into global proofs
  (a neuron positive on no cell is dead on all of R^{n0}).

A side whose Chebyshev LP gives r <= ``RADIUS_EMPTY`` = 1e-12 is empty (r = 0 up to rounding is
the common case of a cone that only touches a hyperplane at the origin, as with zero biases;
emptiness is as decided by HiGHS, whose feasibility tolerance is ~1e-7 on the unit rows). A side
with ``RADIUS_EMPTY`` < r <= ``RADIUS_MIN`` = 1e-9 is *thin*: neither split (no interior point
can be trusted to carry its pattern) nor declared empty. It counts as nonempty in the sign tables
(so no neuron is proven dead or always active by it) and the enumeration stops at the last depth
without a thin piece (``complete=False``, ``thin=True``): no decisive set, hence no exact value,
is claimed for such a network. ``min_radius`` reports the thinnest kept cell. The number of
cells is bounded by ``max_regions``; beyond it the enumeration stops at the last complete depth
(``complete=False``) and the sign tables of the next layer are still filled. Cost: one small LP
(~1 ms) per (cell, neuron) test, plus one per split; at most max_regions x (n_l + splits) LPs
per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from symlab.nets import activation_of, is_mlp, linear_layers
from symlab.symmetry.samplers import multiscale

RADIUS_MIN = 1e-9  # cells of smaller inradius are not split (thin) ...
RADIUS_EMPTY = 1e-12  # ... and count as empty only at or below this inradius
THIN = "thin"  # a side of inradius in (RADIUS_EMPTY, RADIUS_MIN]: neither empty nor usable
DEFAULT_MAX_REGIONS = 4096
POOL_POINTS = 4096  # multiscale points that witness nonempty cells without an LP
_FLAT = 1e-12  # a pre-activation row with |a| below this (relative) is constant on the cell


@dataclass
class Cell:
    """Open polyhedron {x : rows @ x + offsets > 0} (rows unit-norm), a witness point inside it
    with its clearance (min of rows @ point + offsets), the activation pattern of the layers
    enumerated so far (one bool array per layer) and the affine map of their last activations
    a^l(x) = linear @ x + shift."""

    rows: np.ndarray
    offsets: np.ndarray
    point: np.ndarray
    clearance: float
    pattern: tuple[np.ndarray, ...]
    linear: np.ndarray
    shift: np.ndarray
    members: np.ndarray  # indices of the witness pool's points inside the cell


@dataclass(frozen=True)
class LinearRegions:
    """Result of :func:`enumerate_regions`.

    cells: the cells of the deepest complete depth (``depth`` hidden layers); complete: depth ==
    the number of hidden layers (the cells are the activation regions of F); positive[l-1],
    negative[l-1] (cells of depth l - 1 x n_l bool): neuron i of hidden layer l is positive /
    negative somewhere in that cell, for l = 1 .. ``tested`` (tested = depth + 1, or depth when
    complete); parents[l-1]: the patterns of the depth-(l-1) cells (cells x sum of widths
    before l) those tables refer to; n_lps: LPs solved; min_radius: thinnest cell kept; thin:
    the enumeration stopped at a side of inradius in (RADIUS_EMPTY, RADIUS_MIN] (module
    docstring), not at ``max_regions``.
    """

    cells: list[Cell]
    depth: int
    complete: bool
    positive: tuple[np.ndarray, ...]
    negative: tuple[np.ndarray, ...]
    parent_patterns: tuple[tuple[tuple[np.ndarray, ...], ...], ...]
    n_lps: int
    min_radius: float
    max_regions: int
    thin: bool = False

    @property
    def tested(self) -> int:
        return len(self.positive)


def check_relu_mlp(model: object, function: str) -> list[nn.Linear]:
    """The Linear layers of a ReLU MLP with biases and at least one hidden layer, else a
    ValueError naming ``model``."""
    if not isinstance(model, nn.Module) or not is_mlp(model):
        raise ValueError(
            "model: expected an MLP (nn.Sequential of Linear, activation, ..., Linear) as built by "
            f"symlab.nets.mlp, got {type(model).__name__}"
        )
    layers = linear_layers(model)
    if len(layers) < 2 or not isinstance(activation_of(model), nn.ReLU):
        raise ValueError(
            f"model: {function} expects a ReLU MLP with at least one hidden layer, got "
            f"{len(layers) - 1} hidden layers and activation {type(activation_of(model)).__name__}"
        )
    if any(layer.bias is None for layer in layers):
        raise ValueError(f"model: {function} expects every Linear layer to have a bias")
    return layers


def float64_parameters(layers: list[nn.Linear]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases of the layers as float64 numpy arrays."""
    weights = [layer.weight.detach().to(torch.float64).cpu().numpy() for layer in layers]
    biases = [layer.bias.detach().to(torch.float64).cpu().numpy() for layer in layers]
    return weights, biases


class ThinRegion(Exception):
    """A piece of a split has inradius in (RADIUS_EMPTY, RADIUS_MIN]: the enumeration stops."""


class LPFailure(RuntimeError):
    """HiGHS stopped without a verdict (iteration limit, numerical difficulties): no side of a
    cell may be declared empty on it, so no region-based proof is made."""


class _Solver:
    """Chebyshev-centre LPs, counted."""

    def __init__(self, n0: int):
        self.n0, self.count = n0, 0
        self.objective = np.zeros(n0 + 1)
        self.objective[-1] = -1.0  # maximize r
        upper = np.full(n0 + 1, np.inf)
        upper[-1] = 1.0
        self.bounds = Bounds(np.full(n0 + 1, -np.inf), upper)

    def centre(
        self, rows: np.ndarray, offsets: np.ndarray
    ) -> tuple[np.ndarray, float] | str | None:
        """(centre, radius) of {rows @ x + offsets > 0} if its inradius exceeds RADIUS_MIN, None
        if it is at most RADIUS_EMPTY (empty), else ``THIN``."""
        if rows.shape[0] == 0:
            return np.zeros(self.n0), 1.0
        self.count += 1
        # rows @ x + offsets >= r  <=>  -rows @ x + r <= offsets
        a_ub = np.hstack([-rows, np.ones((rows.shape[0], 1))])
        # scipy's milp with no integer variable: the same HiGHS LP as linprog(method="highs"),
        # about half its per-call overhead (these LPs are tiny; the overhead is most of the time)
        result = milp(
            self.objective, constraints=LinearConstraint(a_ub, -np.inf, offsets), bounds=self.bounds
        )
        if result.status == 2:  # infeasible: the cell is empty
            return None
        if result.status != 0:  # no verdict is no proof of emptiness
            raise LPFailure(
                f"HiGHS returned status {result.status} ({result.message}) on a Chebyshev-centre "
                "LP: no region claim is made"
            )
        radius = float(-result.fun)
        if radius <= RADIUS_EMPTY:
            return None
        if radius <= RADIUS_MIN:
            return THIN
        return result.x[:-1], radius


def _normalized(row: np.ndarray, offset: float) -> tuple[np.ndarray, float, bool]:
    """(unit row, scaled offset, flat): flat when the row is zero to working precision."""
    norm = float(np.linalg.norm(row))
    scale = max(norm, abs(offset), 1.0)
    if norm <= _FLAT * scale:
        return row, offset, True
    return row / norm, offset / norm, False


def _sides(
    cell: Cell, row: np.ndarray, offset: float, solver: _Solver, pool: np.ndarray
) -> dict[bool, tuple[np.ndarray, float, np.ndarray] | None]:
    """{True: (witness, clearance, pool members) of cell ∩ {row.x + offset > 0} or None if
    empty, False: the same for < 0}, for a unit ``row``; ``THIN`` for a side of inradius in
    (RADIUS_EMPTY, RADIUS_MIN]. A side holding the cell's witness or a pool point (clearance >
    RADIUS_MIN) needs no LP."""
    value = float(row @ cell.point + offset)
    values = pool[cell.members] @ row + offset
    out: dict[bool, tuple[np.ndarray, float, np.ndarray] | None] = {}
    for side in (True, False):
        sign = 1.0 if side else -1.0
        inside = sign * values > RADIUS_MIN
        members = cell.members[inside]
        if sign * value > RADIUS_MIN:
            out[side] = (cell.point, min(cell.clearance, sign * value), members)
        elif members.size:
            best = int(np.argmax(sign * values[inside]))
            point = pool[members[best]]
            clearance = min(float(sign * values[inside][best]), _clearance(cell, point))
            out[side] = (point, clearance, members)
        else:
            rows = np.vstack([cell.rows, sign * row[None, :]])
            found = solver.centre(rows, np.append(cell.offsets, sign * offset))
            out[side] = found if found is None or found is THIN else (*found, members)
    return out


def _clearance(cell: Cell, point: np.ndarray) -> float:
    """min over the cell's rows of row.x + offset at ``point`` (1 with no rows)."""
    return float((cell.rows @ point + cell.offsets).min()) if cell.offsets.size else 1.0


def _test_layer(
    cells: list[Cell], weight: np.ndarray, bias: np.ndarray, solver: _Solver, pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Sign tables (cells x n) of the layer's neurons on each cell, and per cell the sides found
    (neuron -> sides) for the crossing neurons."""
    n = weight.shape[0]
    positive = np.zeros((len(cells), n), dtype=bool)
    negative = np.zeros((len(cells), n), dtype=bool)
    crossing: list[dict] = []
    for index, cell in enumerate(cells):
        pre_rows, pre_offsets = weight @ cell.linear, weight @ cell.shift + bias
        found = {}
        for i in range(n):
            row, offset, flat = _normalized(pre_rows[i], float(pre_offsets[i]))
            if flat:  # constant on the cell: its sign (zero: both, nothing is proven)
                positive[index, i] = offset >= 0
                negative[index, i] = offset <= 0
                continue
            sides = _sides(cell, row, offset, solver, pool)
            positive[index, i], negative[index, i] = (
                sides[True] is not None,
                sides[False] is not None,
            )
            if positive[index, i] and negative[index, i]:
                found[i] = (row, offset)
        crossing.append(found)
    return positive, negative, crossing


def _split(
    cell: Cell,
    crossing: dict,
    positive: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    solver: _Solver,
    pool: np.ndarray,
    limit: int,
) -> list[Cell] | None:
    """The depth-(l+1) cells inside ``cell``: split by the crossing neurons one at a time
    (None once there are more than ``limit`` pieces; :class:`ThinRegion` at a thin piece)."""
    pieces = [(cell.rows, cell.offsets, cell.point, cell.clearance, {}, cell.members)]
    for i, (row, offset) in crossing.items():
        if len(pieces) > limit:
            return None
        refined = []
        for rows, offsets, point, clearance, signs, members in pieces:
            piece = Cell(rows, offsets, point, clearance, (), cell.linear, cell.shift, members)
            sides = _sides(piece, row, offset, solver, pool)
            both = sides[True] is not None and sides[False] is not None
            for side, found in sides.items():
                if found is THIN:
                    raise ThinRegion
                if found is None:
                    continue
                sign = 1.0 if side else -1.0
                new_rows = np.vstack([rows, sign * row[None, :]]) if both else rows
                new_offsets = np.append(offsets, sign * offset) if both else offsets
                refined.append(
                    (new_rows, new_offsets, found[0], found[1], {**signs, i: side}, found[2])
                )
        pieces = refined
    if len(pieces) > limit:
        return None
    out = []
    for rows, offsets, point, clearance, signs, members in pieces:
        active = positive.copy()  # non-crossing neurons: positive iff positive on the cell
        for i, side in signs.items():
            active[i] = side
        mask = active.astype(np.float64)[:, None]
        out.append(
            Cell(
                rows,
                offsets,
                point,
                clearance,
                (*cell.pattern, active),
                mask * (weight @ cell.linear),
                mask[:, 0] * (weight @ cell.shift + bias),
                members,
            )
        )
    return out


def enumerate_regions(
    model: nn.Module,
    *,
    max_regions: int = DEFAULT_MAX_REGIONS,
    depth: int | None = None,
    pool_points: int = POOL_POINTS,
) -> LinearRegions:
    """Activation regions of the ReLU MLP ``model`` on R^{n0} (module docstring), layer by layer,
    up to ``depth`` hidden layers (default all) and at most ``max_regions`` cells.

    ``pool_points`` multiscale points (seed 0, :func:`symlab.symmetry.samplers.multiscale`)
    witness nonempty sides without an LP (only emptiness needs one); the result does not depend
    on them beyond the choice of witness points. Returns the cells of the deepest depth reached
    and the sign tables of every neuron tested.
    """
    layers = check_relu_mlp(model, "enumerate_regions")
    if isinstance(max_regions, bool) or not isinstance(max_regions, int) or max_regions < 1:
        raise ValueError(f"max_regions: expected a positive integer, got {max_regions!r}")
    n_hidden = len(layers) - 1
    depth = n_hidden if depth is None else depth
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= n_hidden:
        raise ValueError(f"depth: expected an integer in [0, {n_hidden}], got {depth!r}")
    if isinstance(pool_points, bool) or not isinstance(pool_points, int) or pool_points < 0:
        raise ValueError(f"pool_points: expected a non-negative integer, got {pool_points!r}")
    weights, biases = float64_parameters(layers)
    n0 = weights[0].shape[1]
    solver = _Solver(n0)
    pool = multiscale(pool_points, n0, torch.Generator().manual_seed(0)).numpy()
    start = Cell(
        np.zeros((0, n0)),
        np.zeros(0),
        np.zeros(n0),
        1.0,
        (),
        np.eye(n0),
        np.zeros(n0),
        np.arange(pool_points),
    )
    cells = [start]
    positives, negatives, parents = [], [], []
    reached, thin = 0, False
    for layer in range(depth):
        positive, negative, crossing = _test_layer(
            cells, weights[layer], biases[layer], solver, pool
        )
        positives.append(positive)
        negatives.append(negative)
        parents.append(tuple(cell.pattern for cell in cells))
        # each crossing hyperplane adds at least one piece: a lower bound on the next count
        if sum(len(found) + 1 for found in crossing) > max_regions:
            break
        refined: list[Cell] | None = []
        for cell, found, pos in zip(cells, crossing, positive, strict=True):
            limit = max_regions - len(refined)
            try:
                pieces = _split(
                    cell, found, pos, weights[layer], biases[layer], solver, pool, limit
                )
            except ThinRegion:
                pieces, thin = None, True
            if pieces is None:
                refined = None
                break
            refined += pieces
        if refined is None:
            break
        cells, reached = refined, layer + 1
    min_radius = min((cell.clearance for cell in cells), default=1.0)
    return LinearRegions(
        cells=cells,
        depth=reached,
        complete=reached == n_hidden,
        positive=tuple(positives),
        negative=tuple(negatives),
        parent_patterns=tuple(parents),
        n_lps=solver.count,
        min_radius=min_radius,
        max_regions=max_regions,
        thin=thin,
    )


def chebyshev_centre(cell: Cell, good: float = 1e-3) -> tuple[np.ndarray, float]:
    """A centre and radius of a ball inside the cell: the witness point when its clearance is at
    least ``good`` x max(1, |witness|), else the Chebyshev centre by one LP (inradius capped at
    1; the witness when the LP finds nothing thicker). The cell is the intersection of its rows'
    half-spaces, so the ball of radius ``clearance`` around the witness lies inside it."""
    if cell.clearance >= good * max(1.0, float(np.linalg.norm(cell.point))):
        return cell.point, min(cell.clearance, 1.0)
    found = _Solver(cell.point.shape[0]).centre(cell.rows, cell.offsets)
    if found is None or found is THIN or found[1] < cell.clearance:
        return cell.point, cell.clearance
    return found
