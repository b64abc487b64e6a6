"""What every training loop shares: the data and loss conventions, the :class:`Trajectory` record,
and the recording/callback hooks.

Each loop is a function ``loop(model, data, *, ...) -> Trajectory``. It trains ``model``'s
parameters **in place** (as ``torch.optim`` does), never prints, and returns a record of the loss
and of the gradient's ∞-norm at the steps of its recording schedule (every n steps, log-spaced
steps, or given steps: :mod:`symlab.train.schedule`). ``data = (x, y)`` with x of shape (N, ...)
and y of shape (N, K), or (N,) integer class labels for a classification loss: floating targets
are cast to the model's dtype, integer targets stay integers (``torch.nn.functional.cross_entropy``
needs them so; :func:`mse_loss` and :func:`logistic_loss` cast ±1 integer labels themselves).
The loss is a function ``loss(output, target) -> scalar`` averaged over the data; the default is
the mean squared error

    L(θ) = (1 / (N K)) Σ_n ‖f_θ(x_n) − y_n‖²    (``torch.nn.functional.mse_loss``).

The gradient norm is the ∞-norm max_i |∂L/∂θ_i| of the full-batch gradient of this mean loss, i.e.
MLPGradientFlow.jl's ``maximum(abs, ∇L)/N`` convention for a summed loss (Brea et al. 2023,
arXiv 2301.10638). A hook ``callback(step, model)`` runs at step 0 and at the steps of its
schedule (trackers such as the NTK tracker plug in here); it must not change the parameters, and
it may return True to stop the run at that step (the parameters it saw are the final ones;
``stop_reason = "callback"``). A run stops at
the first non-finite loss it sees, with ``diverged = True`` and ``stop_reason = "diverged"``.
The loops themselves live in :mod:`symlab.train.first_order` (GD, SGD, heavy ball, Nesterov,
Adam, online SGD), :mod:`symlab.train.ensemble` (many small networks at once) and
:mod:`symlab.train.second_order` (L-BFGS, Levenberg–Marquardt, damped Newton).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from symlab.train.schedule import Schedule, as_schedule

Data = tuple[Tensor, Tensor]
Loss = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, nn.Module], "bool | None"]


def _as_output_dtype(output: Tensor, target: Tensor) -> Tensor:
    """Integer labels (e.g. ±1 stored as int64) are compared in the output's floating dtype."""
    return target if target.is_floating_point() else target.to(output.dtype)


def mse_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error (1 / (N K)) Σ_n ‖output_n − target_n‖². Targets must have the outputs'
    shape: (N, K) against (N,) would broadcast to an (N, N) loss, so it is refused. Integer
    targets (±1 labels) are cast to the outputs' dtype."""
    if output.shape != target.shape:
        raise ValueError(
            f"data: expected targets y shaped like the model's outputs {tuple(output.shape)}, "
            f"got {tuple(target.shape)}"
        )
    return torch.nn.functional.mse_loss(output, _as_output_dtype(output, target))


def sample_mse_loss(output: Tensor, target: Tensor) -> Tensor:
    """Squared error summed over outputs, averaged over samples: (1 / N) Σ_n ‖output_n − target_n‖²
    (= K · :func:`mse_loss` for K outputs; the cost of Jacot's papers on bottleneck ranks and
    Leaky ResNets). Targets must have the outputs' shape; integer targets are cast."""
    if output.shape != target.shape:
        raise ValueError(
            f"data: expected targets y shaped like the model's outputs {tuple(output.shape)}, "
            f"got {tuple(target.shape)}"
        )
    return (output - _as_output_dtype(output, target)).square().sum() / output.shape[0]


def logistic_loss(output: Tensor, target: Tensor) -> Tensor:
    """Logistic loss for ±1 labels, (1 / (N K)) Σ log(1 + exp(−y f(x))) (softplus, stable for
    large margins). Targets must have the outputs' shape; integer labels are cast."""
    if output.shape != target.shape:
        raise ValueError(
            f"data: expected ±1 targets y shaped like the model's outputs {tuple(output.shape)}, "
            f"got {tuple(target.shape)}"
        )
    return torch.nn.functional.softplus(-_as_output_dtype(output, target) * output).mean()


@dataclass
class Trajectory:
    """What a training loop did: recorded steps, losses and gradient ∞-norms, and how it ended.

    ``stop_reason`` is "steps" (ran them all), "tol" (gradient ∞-norm ≤ tol; ``converged``),
    "diverged" (a non-finite loss at step ``n_steps``; ``diverged``), "callback" (a callback
    returned True), "plateau" (the loss stopped falling: ``train(..., plateau=...)``) or
    "stalled" (second-order loops: no progress). ``max_records`` bounds the
    records kept: when exceeded, every other record is dropped (the first and the end point are
    always kept), so memory stays O(max_records) however long the run."""

    method: str
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    converged: bool = False
    n_steps: int = 0
    diverged: bool = False
    stop_reason: str = "steps"
    max_records: int | None = None

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    @property
    def final_grad_norm(self) -> float:
        return self.grad_norms[-1] if self.grad_norms else math.nan

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (the final values, the step count and how the run ended)."""
        return {
            "method": self.method,
            "converged": self.converged,
            "diverged": self.diverged,
            "stop_reason": self.stop_reason,
            "n_steps": self.n_steps,
            "final_loss": self.final_loss,
            "final_grad_norm": self.final_grad_norm,
        }

    def record(self, step: int, loss: float, grad_norm: float) -> None:
        self.steps.append(int(step))
        self.losses.append(float(loss))
        self.grad_norms.append(float(grad_norm))
        if self.max_records is not None and len(self.steps) > self.max_records:
            for values in (self.steps, self.losses, self.grad_norms):
                values[:] = values[:-1:2] + values[-1:]


def check_data(model: nn.Module, data: Data) -> Data:
    """Validate ``data = (x, y)`` for ``model`` and return it with floating tensors in the model's
    dtype; integer targets (class labels, ±1 labels) are kept as they are."""
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ValueError("data: expected a pair (x, y) of tensors")
    x, y = data
    if not (isinstance(x, Tensor) and isinstance(y, Tensor)) or x.shape[0] != y.shape[0]:
        raise ValueError("data: expected tensors x (N, n_0) and y (N, K) with the same N")
    if x.shape[0] == 0:
        raise ValueError("data: expected at least one sample, got N = 0")
    dtype = next(model.parameters()).dtype
    return x.to(dtype), (y.to(dtype) if y.is_floating_point() else y)


def check_positive(name: str, value: float, integer: bool = False) -> None:
    """One-sentence ValueError unless ``value`` is a positive number (or a non-negative int)."""
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


class Hooks:
    """Recording and callbacks shared by the loops.

    ``evaluate()`` → (loss, gradient ∞-norm) at the current parameters, for records that the
    loop cannot read off its own pass (default: the full-batch loss of ``data``)."""

    def __init__(
        self, model, data, loss, record_every, callback, callback_every, method,
        max_records: int | None = None, evaluate=None,
    ):  # fmt: skip
        self.schedule: Schedule = as_schedule("record_every", record_every)
        self.callback_schedule: Schedule = as_schedule("callback_every", callback_every)
        if max_records is not None and (not isinstance(max_records, int) or max_records < 2):
            raise ValueError(f"max_records: expected an integer >= 2 or None, got {max_records!r}")
        self.model, self.data, self.loss = model, data, loss
        self.record_every = self.schedule.every or 1  # chunk length of the second-order loops
        self.callback = callback
        self.trajectory = Trajectory(method, max_records=max_records)
        self.last_callback: int | None = None
        self.stop_requested = False
        self.plateau_reached = False
        self.stalled = False  # a second-order loop made no progress before its last iteration
        self.evaluate = evaluate or (lambda: loss_and_grad_norm(model, data, loss))

    def due(self, step: int) -> bool:
        return self.schedule.due(step)

    def call_back(self, step: int) -> None:
        """Run the callback at ``step`` if it is due and has not run at this step yet; a callback
        returning True asks the loop to stop."""
        if self.callback is not None and self.callback_schedule.due(step):
            if self.last_callback != step:
                self.last_callback = step
                if self.callback(step, self.model) is True:
                    self.stop_requested = True

    def at(
        self, step: int, force: bool = False, value: float | None = None,
        grad_norm: float | None = None,
    ) -> float:  # fmt: skip
        """Record (if due or forced) and run the callback (if due); return the grad norm or nan.

        ``value`` and ``grad_norm``, when given, are the full-batch loss and gradient ∞-norm at
        the current parameters (computed by the caller's own pass); else they are computed here
        with ``evaluate`` (one extra forward and backward pass). A non-finite recorded loss marks
        the run diverged."""
        if force or self.due(step):
            if value is None or grad_norm is None:
                value, grad_norm = self.evaluate()
            if not self.trajectory.steps or self.trajectory.steps[-1] != step:
                self.trajectory.record(step, value, grad_norm)
            if not math.isfinite(value):
                self.trajectory.diverged = True
        if not self.trajectory.diverged:
            self.call_back(step)
        return math.nan if grad_norm is None else float(grad_norm)

    def plateaued(self, step: int, window: int, rtol: float) -> bool:
        """True (and remembered) when ``step`` was recorded and the loss fell by less than
        ``rtol`` · |L| since the last record at least ``window`` steps earlier."""
        steps, losses = self.trajectory.steps, self.trajectory.losses
        if not steps or steps[-1] != step:
            return False
        earlier = bisect.bisect_right(steps, step - window) - 1  # steps are increasing
        if earlier < 0:
            return False
        then, now = losses[earlier], losses[-1]
        self.plateau_reached = bool(then - now < rtol * abs(then))
        return self.plateau_reached

    def diverge(self, step: int, value: float) -> Trajectory:
        """End the run at ``step``, where the loss ``value`` was not finite (recorded as is)."""
        if not self.trajectory.steps or self.trajectory.steps[-1] != step:
            self.trajectory.record(step, value, math.nan)
        self.trajectory.diverged, self.trajectory.stop_reason = True, "diverged"
        self.trajectory.n_steps = step
        return self.trajectory

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
        if self.trajectory.diverged:
            self.trajectory.stop_reason = "diverged"
        elif self.trajectory.converged:
            self.trajectory.stop_reason = "tol"
        elif self.stop_requested:
            self.trajectory.stop_reason = "callback"
        elif self.plateau_reached:
            self.trajectory.stop_reason = "plateau"
        elif self.stalled:
            self.trajectory.stop_reason = "stalled"
        return self.trajectory
