"""Learning-rate schedules: a factor ρ(t) that multiplies every group's learning rate at step t.

The loops of :mod:`symlab.train` take ``lr_schedule``: step t (0, 1, ..., T − 1) updates θ with
the learning rate η_g ρ(t) of each parameter group g (for Adam the step size; its moment estimates
are unchanged). A schedule is any callable t ↦ ρ(t) with finite ρ(t) ≥ 0; this module builds the
common ones:

- :func:`warmup_cosine` (Loshchilov & Hutter, "SGDR", ICLR 2017, with a linear warm-up as in
  Goyal et al. 2017): ρ rises linearly from 1/(w + 1) to 1 over the first w steps, then
  ρ(t) = f + (1 − f)(1 + cos(π (t − w) / (T − w))) / 2, from 1 down to f at the end;
- :func:`step_decay`: ρ(t) = γ^k after the k-th milestone (torch's ``MultiStepLR``).

A decaying schedule lets a run take large steps while the loss is far from its minimum and
small steps at the end, where an L2-regularized objective is minimized only slowly (its Hessian's
smallest directions are ~λ).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

LrSchedule = Callable[[int], float]


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def warmup_cosine(steps: int, *, warmup: int = 0, final: float = 0.0) -> LrSchedule:
    """Linear warm-up over ``warmup`` steps, then a cosine from 1 down to ``final`` at step
    ``steps`` − 1 (module docstring); steps past ``steps`` keep ``final``."""
    _positive_int("steps", steps)
    _positive_int("warmup", warmup, minimum=0)
    if warmup >= steps:
        raise ValueError(f"warmup: expected fewer warm-up steps than steps = {steps}, got {warmup}")
    if isinstance(final, bool) or not isinstance(final, int | float) or not 0 <= final <= 1:
        raise ValueError(f"final: expected a number in [0, 1], got {final!r}")
    span = max(steps - 1 - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        phase = min((step - warmup) / span, 1.0)
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * phase))

    return factor


def step_decay(milestones: Sequence[int], gamma: float) -> LrSchedule:
    """ρ(t) = ``gamma`` ** (number of milestones ≤ t): the rate is multiplied by ``gamma`` at each
    milestone step."""
    marks = list(milestones)
    if not marks or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in marks):
        raise ValueError(f"milestones: expected positive integer steps, got {milestones!r}")
    if sorted(set(marks)) != marks:
        raise ValueError(f"milestones: expected increasing steps, got {milestones!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 < gamma <= 1:
        raise ValueError(f"gamma: expected a number in (0, 1], got {gamma!r}")
    return lambda step: float(gamma) ** sum(step >= m for m in marks)


def check_factor(value, step: int) -> float:
    """ρ(t) as a float, refused unless finite and ≥ 0 (one sentence naming ``lr_schedule``)."""
    try:
        factor = float(value)
    except (TypeError, ValueError):
        factor = math.nan
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(
            f"lr_schedule: expected a finite factor >= 0 at step {step}, got {value!r}"
        )
    return factor
