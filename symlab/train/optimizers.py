"""The update rules and their parameter groups, shared by the single-model and the ensemble loops.

Methods: ``"sgd"`` (θ ← θ − η ∇L; full batch = gradient descent), ``"heavy_ball"`` (Polyak),
``"nesterov"`` (:class:`symlab.train.momentum.Nesterov`) and ``"adam"`` (Kingma & Ba 2015,
``torch.optim.Adam``). Per-group learning rates and L2 terms: a group is a dict
``{"params": [...], "lr": η_g, "weight_decay": λ_g}`` whose params are tensors or parameter names
(a name also matches every parameter under it: ``"0"`` matches ``"0.weight"`` and ``"0.bias"``).
Parameters in no group form a last group with the run's ``lr`` and ``weight_decay``.

The weight-decay term is part of the objective that is reported and differentiated,

    L_λ(θ) = L(θ) + Σ_g λ_g ‖θ_g‖²,

so its gradient adds 2 λ_g θ_g (torch's ``weight_decay=λ`` would add λ θ and leave the term out of
the reported loss); with Adam this is L2 regularization, not AdamW's decoupled decay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from symlab.train.momentum import Nesterov, check_momentum, heavy_ball_optimizer

METHODS = ("sgd", "heavy_ball", "nesterov", "adam")


def parameter_groups(
    named: Sequence[tuple[str, Tensor]],
    groups: Iterable[dict[str, Any]] | None,
    lr: float,
    weight_decay: float,
) -> list[dict[str, Any]]:
    """Resolve ``groups`` (see the module docstring) against the named trainable parameters
    ``named``; every parameter lands in exactly one group, each with "params", "lr" and
    "weight_decay". A parameter claimed twice, or a name that matches nothing, is refused."""
    by_id = {id(p): name for name, p in named}
    claimed: dict[str, int] = {}
    resolved = []
    for index, group in enumerate(groups or []):
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError(f"param_groups[{index}]: expected a dict with a 'params' entry")
        unknown = set(group) - {"params", "lr", "weight_decay"}
        if unknown:
            raise ValueError(
                f"param_groups[{index}]: expected keys params, lr, weight_decay, got {sorted(unknown)}"
            )
        names = []
        for entry in group["params"]:
            if isinstance(entry, str):
                matched = [n for n, _ in named if n == entry or n.startswith(entry + ".")]
                if not matched:
                    raise ValueError(
                        f"param_groups[{index}]: no trainable parameter is named {entry!r} "
                        f"(names: {', '.join(n for n, _ in named)})"
                    )
                names += matched
            elif id(entry) in by_id:
                names.append(by_id[id(entry)])
            else:
                raise ValueError(
                    f"param_groups[{index}]: expected parameter names or the model's trainable "
                    "parameters"
                )
        for name in names:
            if name in claimed:
                raise ValueError(f"param_groups[{index}]: parameter {name!r} is already in a group")
            claimed[name] = index
        resolved.append(
            {
                "names": names,
                "lr": float(group.get("lr", lr)),
                "weight_decay": float(group.get("weight_decay", weight_decay)),
            }
        )
    rest = [n for n, _ in named if n not in claimed]
    if rest:
        resolved.append({"names": rest, "lr": float(lr), "weight_decay": float(weight_decay)})
    tensors = dict(named)
    for index, group in enumerate(resolved):
        if not 0 < group["lr"] < math.inf:
            raise ValueError(
                f"lr: expected a finite positive number, got {group['lr']!r} (group {index})"
            )
        if not 0 <= group["weight_decay"] < math.inf:
            raise ValueError(
                f"weight_decay: expected a finite non-negative number, got {group['weight_decay']!r}"
            )
        group["params"] = [tensors[n] for n in group["names"]]
    return resolved


def l2_penalty(groups: list[dict[str, Any]], dims: tuple[int, ...] | None = None) -> Tensor | None:
    """Σ_g λ_g ‖θ_g‖² over ``groups`` (None when every λ_g is 0). ``dims`` sums over these
    dimensions only (an ensemble keeps its leading model axis: one penalty per model)."""
    terms = [
        group["weight_decay"] * (p.square().sum() if dims is None else p.square().flatten(1).sum(1))
        for group in groups
        if group["weight_decay"] > 0
        for p in group["params"]
    ]
    return sum(terms[1:], terms[0]) if terms else None


def make_optimizer(
    method: str,
    groups: list[dict[str, Any]],
    momentum: float | str | Callable[[int], float],
    betas: tuple[float, float],
) -> torch.optim.Optimizer:
    """The torch optimizer of ``method`` over ``groups`` (their lr; the L2 term is in the loss)."""
    torch_groups = [{"params": g["params"], "lr": g["lr"]} for g in groups]
    if method == "sgd":
        return torch.optim.SGD(torch_groups, lr=groups[0]["lr"])
    if method == "heavy_ball":
        check_momentum(momentum)
        if not isinstance(momentum, int | float):
            raise ValueError(f"momentum: heavy ball expects a number in [0, 1), got {momentum!r}")
        return heavy_ball_optimizer(torch_groups, lr=groups[0]["lr"], momentum=float(momentum))
    if method == "nesterov":
        return Nesterov(torch_groups, lr=groups[0]["lr"], momentum=momentum)
    if method == "adam":
        return torch.optim.Adam(torch_groups, lr=groups[0]["lr"], betas=betas)
    raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")


class MinibatchOrder:
    """Indices of minibatches of ``batch`` samples out of ``n``, drawn without replacement from a
    permutation reshuffled every epoch by a generator seeded with ``seed`` (a new epoch starts when
    fewer than ``batch`` unused samples remain)."""

    def __init__(self, n: int, batch: int, seed: int):
        self.n, self.batch = n, batch
        self.generator = torch.Generator().manual_seed(int(seed))
        self.order, self.cursor = torch.arange(n), n

    def next(self) -> Tensor:
        if self.cursor + self.batch > self.n:
            self.order, self.cursor = torch.randperm(self.n, generator=self.generator), 0
        index = self.order[self.cursor : self.cursor + self.batch]
        self.cursor += self.batch
        return index
