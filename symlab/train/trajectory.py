"""What every training loop shares: the data and loss conventions, the :class:`Trajectory` record,
and the recording/callback hooks.

Each loop is a function ``loop(model, data, *, ...) -> Trajectory``. It trains ``model``'s
parameters **in place** (as ``torch.optim`` does), never prints, and returns a record of the loss
and of the gradient's ∞-norm every ``record_every`` steps. ``data = (x, y)`` with x of shape
(N, n_0) and y of shape (N, K). The loss is a function ``loss(output, target) -> scalar``
averaged over the data; the default is the mean squared error

    L(θ) = (1 / (N K)) Σ_n ‖f_θ(x_n) − y_n‖²    (``torch.nn.functional.mse_loss``).

The gradient norm is the ∞-norm max_i |∂L/∂θ_i| of the full-batch gradient of this mean loss, i.e.
MLPGradientFlow.jl's ``maximum(abs, ∇L)/N`` convention for a summed loss (Brea et al. 2023,
arXiv 2301.10638). A hook ``callback(step, model)`` runs at step 0 and every ``callback_every``
steps (trackers such as the NTK tracker plug in here); it must not change the parameters.
The loops themselves live in :mod:`symlab.train.first_order` (GD, SGD, Adam) and
:mod:`symlab.train.second_order` (L-BFGS, Levenberg–Marquardt, damped Newton).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

Data = tuple[Tensor, Tensor]
Loss = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, nn.Module], None]


def mse_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error (1 / (N K)) Σ_n ‖output_n − target_n‖². Targets must have the outputs'
    shape: (N, K) against (N,) would broadcast to an (N, N) loss, so it is refused."""
    if output.shape != target.shape:
        raise ValueError(
            f"data: expected targets y shaped like the model's outputs {tuple(output.shape)}, "
            f"got {tuple(target.shape)}"
        )
    return torch.nn.functional.mse_loss(output, target)


@dataclass
class Trajectory:
    """What a training loop did: recorded steps, losses and gradient ∞-norms, and whether it met
    its tolerance (``converged``; always False for loops run with ``tol=0``)."""

    method: str
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    converged: bool = False
    n_steps: int = 0

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    @property
    def final_grad_norm(self) -> float:
        return self.grad_norms[-1] if self.grad_norms else math.nan

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (the final values and the step count)."""
        return {
            "method": self.method,
            "converged": self.converged,
            "n_steps": self.n_steps,
            "final_loss": self.final_loss,
            "final_grad_norm": self.final_grad_norm,
        }

    def record(self, step: int, loss: float, grad_norm: float) -> None:
        self.steps.append(int(step))
        self.losses.append(float(loss))
        self.grad_norms.append(float(grad_norm))


def _check_data(model: nn.Module, data: Data) -> Data:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ValueError("data: expected a pair (x, y) of tensors")
    x, y = data
    if not (isinstance(x, Tensor) and isinstance(y, Tensor)) or x.shape[0] != y.shape[0]:
        raise ValueError("data: expected tensors x (N, n_0) and y (N, K) with the same N")
    if x.shape[0] == 0:
        raise ValueError("data: expected at least one sample, got N = 0")
    dtype = next(model.parameters()).dtype
    return x.to(dtype), y.to(dtype)


def _check_positive(name: str, value: float, integer: bool = False) -> None:
    if integer and (not isinstance(value, int) or value < 0):
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    if not integer and not value > 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")


def full_loss(model: nn.Module, data: Data, loss: Loss = mse_loss) -> Tensor:
    """L(θ) on the whole data set (differentiable)."""
    x, y = data
    return loss(model(x), y)


def loss_and_grad_norm(model: nn.Module, data: Data, loss: Loss = mse_loss) -> tuple[float, float]:
    """(L(θ), max_i |∂L/∂θ_i|) on the whole data set; one forward and one backward pass."""
    params = [p for p in model.parameters() if p.requires_grad]
    value = full_loss(model, data, loss)
    grads = torch.autograd.grad(value, params)
    return float(value.detach()), float(max(g.abs().max() for g in grads))


class _Hooks:
    """Recording and callbacks shared by the loops."""

    def __init__(self, model, data, loss, record_every, callback, callback_every, method):
        _check_positive("record_every", record_every, integer=True)
        _check_positive("callback_every", callback_every, integer=True)
        self.model, self.data, self.loss = model, data, loss
        self.record_every = max(int(record_every), 1)
        self.callback, self.callback_every = callback, max(int(callback_every), 1)
        self.trajectory = Trajectory(method)
        self.last_callback: int | None = None

    def due(self, step: int) -> bool:
        return step % self.record_every == 0

    def call_back(self, step: int) -> None:
        """Run the callback at ``step`` if it is due and has not run at this step yet."""
        if self.callback is not None and step % self.callback_every == 0:
            if self.last_callback != step:
                self.last_callback = step
                self.callback(step, self.model)

    def at(
        self, step: int, force: bool = False, value: float | None = None,
        grad_norm: float | None = None,
    ) -> float:  # fmt: skip
        """Record (if due or forced) and run the callback (if due); return the grad norm or nan.

        ``value`` and ``grad_norm``, when given, are the full-batch loss and gradient ∞-norm at
        the current parameters (computed by the caller's own pass); else they are computed here
        with one extra forward and backward pass."""
        if force or self.due(step):
            if value is None or grad_norm is None:
                value, grad_norm = loss_and_grad_norm(self.model, self.data, self.loss)
            if not self.trajectory.steps or self.trajectory.steps[-1] != step:
                self.trajectory.record(step, value, grad_norm)
        self.call_back(step)
        return math.nan if grad_norm is None else float(grad_norm)

    def finish(self, step: int, tol: float) -> Trajectory:
        """Record the end point (reusing the record of ``step`` when there is one)."""
        recorded = self.trajectory.steps and self.trajectory.steps[-1] == step
        if recorded:
            self.call_back(step)
            grad_norm = self.trajectory.grad_norms[-1]
        else:
            grad_norm = self.at(step, force=True)
        self.trajectory.n_steps = step
        self.trajectory.converged = bool(tol > 0 and grad_norm <= tol)
        return self.trajectory
