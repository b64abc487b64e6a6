"""Momentum methods: Polyak's heavy ball and Nesterov's accelerated gradient, in their textbook forms.

- Heavy ball (Polyak 1964): θ_{t+1} = θ_t − η ∇L(θ_t) + β (θ_t − θ_{t−1}), θ_{−1} = θ_0. This is
  ``torch.optim.SGD(momentum=β, dampening=0)`` exactly (its buffer v_{t+1} = β v_t + ∇L(θ_t) gives
  θ_{t+1} − θ_t = −η ∇L(θ_t) + β (θ_t − θ_{t−1}) at a constant η), so :func:`heavy_ball_optimizer`
  returns that.
- Nesterov (1983): φ_t = θ_t + β_t (θ_t − θ_{t−1}), θ_{t+1} = φ_t − η ∇L(φ_t), with a constant β or
  the schedule β_t = t / (t + 3) (t = 0, 1, ...; Nesterov's k/(k+3), whose momentum tends to 1).
  :class:`Nesterov` keeps the iterate θ_t in the model between steps (so a record or a callback sees
  θ_t, not the look-ahead point) and evaluates the gradient at φ_t through the step's closure.
  ``torch.optim.SGD(nesterov=True)`` instead stores the look-ahead point and supports only a
  constant β.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

NESTEROV_SCHEDULE = "k/(k+3)"


def momentum_at(momentum: float | str | Callable[[int], float], step: int) -> float:
    """β_t for a constant β, the schedule ``"k/(k+3)"`` (β_t = t / (t + 3)) or a callable t ↦ β_t."""
    if momentum == NESTEROV_SCHEDULE:
        return step / (step + 3)
    if callable(momentum):
        return float(momentum(step))
    return float(momentum)


def check_momentum(momentum) -> None:
    """One-sentence ValueError unless ``momentum`` is in [0, 1), ``"k/(k+3)"`` or a callable."""
    if momentum == NESTEROV_SCHEDULE or callable(momentum):
        return
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 <= momentum < 1:
        raise ValueError(
            f"momentum: expected a number in [0, 1), {NESTEROV_SCHEDULE!r} or a callable step -> β, "
            f"got {momentum!r}"
        )


def heavy_ball_optimizer(params: Iterable, lr: float, momentum: float) -> torch.optim.SGD:
    """Polyak's heavy ball with step ``lr`` and momentum β = ``momentum`` (torch's SGD, dampening 0)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=0.0)


class Nesterov(torch.optim.Optimizer):
    """Nesterov's accelerated gradient φ_t = θ_t + β_t (θ_t − θ_{t−1}), θ_{t+1} = φ_t − η ∇L(φ_t).

    ``momentum`` is a constant β ∈ [0, 1), ``"k/(k+3)"`` or a callable t ↦ β_t. ``step(closure)``
    needs the closure (it evaluates the loss and gradient at φ_t) and returns the closure's loss,
    L(φ_t); between steps the parameters hold θ_t. Memory: one copy of θ_{t−1} per parameter."""

    # the loops of symlab.train read this: the step's own pass is not at the iterate θ_t
    evaluates_at_iterate = False

    def __init__(self, params, lr: float, momentum: float | str | Callable[[int], float] = 0.9):
        check_momentum(momentum)
        super().__init__(params, {"lr": lr, "momentum": momentum})
        self.iteration = 0

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise ValueError("closure: Nesterov evaluates the gradient at the look-ahead point")
        for group in self.param_groups:
            beta = momentum_at(group["momentum"], self.iteration)
            for p in group["params"]:
                state = self.state[p]
                theta = p.detach().clone()
                previous = state.get("previous", theta)
                p.add_(theta - previous, alpha=beta)  # p = φ_t
                state["previous"] = theta
        with torch.enable_grad():
            value = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        self.iteration += 1
        return value
