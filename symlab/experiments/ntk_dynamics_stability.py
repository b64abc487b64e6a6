"""Which runs of the ``ntk-dynamics`` study trained stably: the criterion and its bookkeeping.

At large learning rates SGD on a ReLU network can finish with a finite loss yet be broken: a loss
spike kills most hidden ReLUs and the network falls back to (near) chance, or never leaves it.
Such runs are not "diverged" (their loss is finite) but they are not the training dynamics that
Fort et al. (2020, "Deep learning versus kernel learning", NeurIPS) describe either, so the study
flags them (:func:`training_instability`), reports them, and keeps them out of its medians.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn


@dataclass(frozen=True)
class TrainState:
    """Full-batch training loss and accuracy, and which ReLU units are alive (see train_state)."""

    loss: float
    accuracy: float
    alive: list[torch.Tensor]
    dead_fraction: float


def train_state(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    alive_at_init: list[torch.Tensor] | None = None,
) -> TrainState:
    """Full-batch cross-entropy and accuracy of ``model`` on (x, y), and its dead ReLU units.

    A unit is an entry of one point's output of an ``nn.ReLU`` module (a neuron of an MLP layer,
    a channel-position of a conv layer); it is *alive* when it is positive on at least one point
    of x. ``dead_fraction`` is the largest, over ReLU modules, fraction of the units alive in
    ``alive_at_init`` (the ``alive`` masks of the state at initialisation; None: this is it) that
    are dead now; NaN without ReLUs. Units dead from the start (e.g. a conv position that only
    sees zero padding and constant pixels) are not counted: the fraction measures what training
    killed. One forward pass, O(forward(x)).
    """
    alive: list[torch.Tensor] = []

    def record(_module: torch.nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        alive.append(out.reshape(len(out), -1).amax(dim=0) > 0)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    reference = alive if alive_at_init is None else alive_at_init
    died = [
        float((was & ~now).sum()) / max(int(was.sum()), 1)
        for was, now in zip(reference, alive, strict=True)
    ]
    return TrainState(
        loss=float(nn.functional.cross_entropy(logits, y)),
        accuracy=float((logits.argmax(dim=1) == y).double().mean()),
        alive=alive,
        dead_fraction=max(died) if died else float("nan"),
    )


@dataclass(frozen=True)
class Instability:
    """Verdict of :func:`training_instability` on one run.

    ``cause`` is "collapse", "dead-relus" or "" (stable); ``step`` is the SGD step at which the
    run became unstable (None when stable).
    """

    unstable: bool
    step: int | None
    cause: str


def training_instability(
    record_steps: Sequence[int],
    train_acc: Sequence[float],
    dead_fraction: Sequence[float],
    chance: float,
) -> Instability:
    """Flag a finite SGD run that ended broken: it lost what it had learned, or its ReLUs died.

    Let a_i be the full-batch training accuracy and d_i the dead fraction (the largest fraction
    of one ReLU layer's units alive at initialisation that are now zero on every training point,
    :func:`train_state`; d_0 = 0) at the record steps 0 = t_0 < t_1 < ... < t_T, c the chance
    accuracy (the majority-class frequency of the training labels: what a constant predictor,
    e.g. a network whose hidden ReLUs all died, scores) and h = c + (1 - c) / 2 the
    *half-trained* accuracy, halfway from chance to a fitted training set. The run is
    **unstable** when it ends below half-trained, a_T < h, and either

    - **collapse**: it had been half-trained, max_i a_i >= h, then fell back below h and did not
      recover by the end; ``step`` is t_(j+1) for the last record j with a_j >= h (the start of
      the final stretch below h); or
    - **dead-relus**: training killed at least half of one ReLU layer's units, d_T >= 1/2 (in
      the runs we saw, a loss spike at a large learning rate did), and the network, left with
      half its width or less, stalled; ``step`` is the first t_i from which d stays >= 1/2.

    Why these thresholds: halfway from chance to a fitted training set is the natural line
    between "learned" and "did not", the same for every task, and halfway is likewise the line
    between a layer that lost "some" and "most" of its units. A ReLU unit dies only through a
    large update, so a slow but stable run (never half-trained, no dead layer) is not flagged;
    only the end state counts, so runs that dip and recover (common at large learning rates) are
    stable, and so are runs that lost many units but still fit their training set (the CNN at
    lr = 1 on the teacher task: up to 81 % of a layer dead). In the paper preset (100 runs) the
    four collapsed runs end within 0.075 of chance and the stalled one at 0.31 (chance 0.10,
    h = 0.55), all with 90-99 % of a layer dead, while every stable run ends at least 0.14 above
    h. Training accuracy, not test accuracy, is used: instability is a property of the
    optimisation, and a run that fits its training set but generalises poorly is not unstable.
    Without ReLUs (d all NaN) only a collapse is detected. Cost O(T). Raises ValueError for series
    of different lengths, fewer than two records, a non-finite accuracy (that run diverged) or a
    chance level outside [0, 1).
    """
    acc = np.asarray(train_acc, dtype=float)
    dead = np.asarray(dead_fraction, dtype=float)
    if not len(record_steps) == len(acc) == len(dead) >= 2:
        raise ValueError(
            "train_acc: expected record_steps, train_acc and dead_fraction of one length >= 2, "
            f"got {len(record_steps)}, {len(acc)} and {len(dead)}"
        )
    if not np.isfinite(acc).all():
        raise ValueError("train_acc: expected a finite series (a run with NaN diverged)")
    if not 0.0 <= chance < 1.0:
        raise ValueError(f"chance: expected an accuracy in [0, 1), got {chance}")
    half_trained = chance + (1.0 - chance) / 2.0
    if acc[-1] >= half_trained:
        return Instability(False, None, "")
    above = np.flatnonzero(acc >= half_trained)
    if len(above):
        return Instability(True, int(record_steps[above[-1] + 1]), "collapse")
    if dead[-1] >= 0.5:
        alive = np.flatnonzero(~(dead >= 0.5))  # NaN counts as alive
        return Instability(
            True, int(record_steps[alive[-1] + 1 if len(alive) else 0]), "dead-relus"
        )
    return Instability(False, None, "")


def run_kinds(rows: pd.DataFrame) -> pd.Series:
    """'diverged', 'unstable' or 'stable' for each row (diverged wins: its series hold NaN)."""
    diverged = rows["diverged"].astype(bool)
    unstable = rows["unstable"].astype(bool) & ~diverged
    return pd.Series(
        np.where(diverged, "diverged", np.where(unstable, "unstable", "stable")), index=rows.index
    )


def unstable_cells(rows: pd.DataFrame, kinds: pd.Series) -> str:
    """'mlp/digits lr=1: 2 of 5 (dead-relus at step 7, collapse at step 469)' for each cell.

    Equal events are merged: '3 x collapse at step 3115'.
    """
    parts = []
    for (model, task, lr), cell in rows.groupby(["model", "task", "lr"]):
        bad = cell[kinds[cell.index] == "unstable"].sort_values("unstable_step")
        if len(bad):
            events = Counter(
                f"{c} at step {int(s)}" for c, s in zip(bad["unstable_cause"], bad["unstable_step"])
            )
            text = ", ".join(e if n == 1 else f"{n} x {e}" for e, n in events.items())
            parts.append(f"{model}/{task} lr={lr:g}: {len(bad)} of {len(cell)} ({text})")
    return "; ".join(parts)
