"""Plateaus of a training curve in log-time, and the rank sequence they visit.

Saddle-to-saddle dynamics (Jacot, Ged, Şimşek, Hongler & Gabriel 2021, arXiv 2106.15933): from a
small initialization, gradient descent on a deep linear network stays for long times near saddles
whose end-to-end matrices have rank 0, 1, 2, …; the loss then shows a staircase of plateaus in
log-time, one per rank, and the number of large singular values steps up by one at each drop.

The rule (:func:`detect_plateaus`), on records (t_j, L_j, r_j) at times t_j ≥ 1 (steps; earlier
records are ignored), with a tolerance f (``flat_fraction``) and a length ℓ (``min_decades``):

- the interval between records j and j + 1 is *flat* when the loss changes by less than the
  fraction f per decade of time, |ln(L_{j+1} / L_j)| ≤ ln(1 + f) · log₁₀(t_{j+1} / t_j), and the
  rank is the same at both ends, r_j = r_{j+1}; intervals with a loss at or below ``floor``
  (converged to round-off) or with a non-finite loss are never flat;
- a plateau is a maximal run of consecutive flat intervals spanning at least ℓ decades,
  log₁₀(t_end / t_start) ≥ ℓ.

So a plateau is where the loss is flat on the log-time axis and the rank does not move; a curve
that decays steadily (lazy training: L ∝ e^{−ct}) has none, and neither has a curve whose rank
changes inside every flat stretch. The rank r_j is supplied by the caller (e.g. the number of
singular values of A_θ above a threshold: :func:`symlab.bias.numerical_rank`).
Cost: O(number of records).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plateau:
    """One plateau: its first and last record times, the rank held, the geometric-mean loss over
    its records and its length in decades of time."""

    start: float
    end: float
    rank: int
    loss: float
    decades: float


def _as_array(name: str, values: Sequence[float], length: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got shape {array.shape}")
    if length is not None and len(array) != length:
        raise ValueError(f"{name}: expected {length} values (one per record), got {len(array)}")
    return array


def detect_plateaus(
    times: Sequence[float],
    losses: Sequence[float],
    ranks: Sequence[int],
    *,
    flat_fraction: float = 0.1,
    min_decades: float = 0.25,
    floor: float = 0.0,
) -> list[Plateau]:
    """The plateaus of the curve (t_j, L_j) with ranks r_j under the rule of the module docstring,
    in order of time. ``times`` must increase strictly; records before t = 1 are ignored."""
    t = _as_array("times", times)
    loss = _as_array("losses", losses, len(t))
    rank = _as_array("ranks", ranks, len(t))
    if len(t) > 1 and not bool(np.all(np.diff(t) > 0)):
        raise ValueError("times: expected strictly increasing record times")
    if not (math.isfinite(flat_fraction) and flat_fraction > 0):
        raise ValueError(f"flat_fraction: expected a positive number, got {flat_fraction!r}")
    if not (math.isfinite(min_decades) and min_decades > 0):
        raise ValueError(f"min_decades: expected a positive number, got {min_decades!r}")
    keep = t >= 1
    t, loss, rank = t[keep], loss[keep], rank[keep]
    if len(t) < 2:
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        decades = np.diff(np.log10(t))
        change = np.abs(np.diff(np.log(loss)))
    valid = np.isfinite(loss) & (loss > floor)
    flat = (
        valid[:-1]
        & valid[1:]
        & (rank[:-1] == rank[1:])
        & (change <= math.log1p(flat_fraction) * decades)
    )
    plateaus: list[Plateau] = []
    j = 0
    while j < len(flat):
        if not flat[j]:
            j += 1
            continue
        end = j
        while end + 1 < len(flat) and flat[end + 1]:
            end += 1
        first, last = j, end + 1  # records first..last
        length = float(np.log10(t[last] / t[first]))
        if length >= min_decades:
            level = float(np.exp(np.mean(np.log(loss[first : last + 1]))))
            plateaus.append(
                Plateau(float(t[first]), float(t[last]), int(rank[first]), level, length)
            )
        j = end + 1
    return plateaus


def rank_sequence(plateaus: Sequence[Plateau]) -> list[int]:
    """The ranks of successive plateaus, e.g. [0, 1, 2] for saddle-to-saddle with three saddles."""
    return [p.rank for p in plateaus]


def is_saddle_to_saddle(plateaus: Sequence[Plateau], target_rank: int) -> bool:
    """True when the plateaus visit the ranks 0, 1, …, k − 1 in this order, one plateau each
    (k = ``target_rank``), possibly followed by one plateau at rank k (a noisy target: the fit of
    the signal before the noise is learned). Where the run ends is the caller's to check."""
    ranks = rank_sequence(plateaus)
    return ranks in (list(range(target_rank)), list(range(target_rank + 1)))
