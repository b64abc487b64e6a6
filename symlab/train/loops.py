"""Training loops every study shares: full-batch GD, minibatch SGD, Adam, L-BFGS and damped Newton.

Each loop is a function ``loop(model, data, *, ...) -> Trajectory``. It trains ``model``'s
parameters **in place** (as ``torch.optim`` does), never prints, and returns a record of the loss
and of the gradient's ∞-norm every ``record_every`` steps. Full-batch first-order loops read
the record of step t off that step's own forward/backward pass (L(θ_t) and ∇L(θ_t) are what the
update uses), so recording is free; minibatch loops spend one full-batch pass per record.
``data = (x, y)`` with x of shape (N, n_0) and y of shape (N, K). The loss is a function ``loss(output, target) -> scalar`` averaged
over the data; the default is the mean squared error

    L(θ) = (1 / (N K)) Σ_n ‖f_θ(x_n) − y_n‖²    (``torch.nn.functional.mse_loss``).

The gradient norm is the ∞-norm max_i |∂L/∂θ_i| of the full-batch gradient of this mean loss, i.e.
MLPGradientFlow.jl's ``maximum(abs, ∇L)/N`` convention for a summed loss (Brea et al. 2023,
arXiv 2301.10638). A hook ``callback(step, model)`` runs at step 0 and every ``callback_every``
steps (trackers such as the NTK tracker plug in here); it must not change the parameters.

Reaching critical points (gradient ∞-norm ≤ 1e-10) needs float64 and second-order methods:
``lbfgs`` (``torch.optim.LBFGS`` with strong-Wolfe line search), ``levenberg_marquardt`` (on the
residuals of the MSE; a descent method that converges fast to zero-residual points even where
the Hessian is singular) and ``newton`` (Levenberg–Marquardt on the equation ∇L(θ) = 0 with the
dense Hessian from ``torch.func``; it converges to the nearby critical point whatever its index,
which is what a study of saddles needs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from symlab.nets.params import flatten_params, unflatten_params

Data = tuple[Tensor, Tensor]
Loss = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[int, nn.Module], None]


def mse_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error (1 / (N K)) Σ_n ‖output_n − target_n‖²."""
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


def _grad_inf_norm(params: list[Tensor]) -> float:
    """max_i |∂L/∂θ_i| from the ``.grad`` fields left by ``backward`` (None counts as 0)."""
    norms = [float(p.grad.abs().max()) for p in params if p.grad is not None and p.grad.numel()]
    return max(norms, default=0.0)


def _default_record_every(record_every: int | None, n: int, batch: int) -> int:
    """None: every step for full batch (free), else every 10 epochs (≈ 10% extra cost)."""
    if record_every is not None:
        return record_every
    return 1 if batch >= n else 10 * math.ceil(n / batch)


def _first_order(
    method: str,
    model: nn.Module,
    data: Data,
    optimizer: torch.optim.Optimizer,
    steps: int,
    batch_size: int | None,
    seed: int,
    loss: Loss,
    tol: float,
    record_every: int | None,
    callback: Callback | None,
    callback_every: int,
) -> Trajectory:
    """Shared first-order loop. Full batch: the step's own forward/backward pass gives L(θ_t) and
    ∇L(θ_t) before the update, so recording (and the ``tol`` test) is free at every step and a run
    of T steps costs T + 1 passes (the last records θ_T). Minibatches: a record is one extra
    full-batch forward+backward pass, and ``tol`` is tested only at recorded steps."""
    _check_positive("steps", steps, integer=True)
    data = _check_data(model, data)
    x, y = data
    n = x.shape[0]
    if batch_size is not None and not (isinstance(batch_size, int) and 1 <= batch_size):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    batch = n if batch_size is None else min(batch_size, n)
    record_every = _default_record_every(record_every, n, batch)
    generator = torch.Generator().manual_seed(int(seed))
    order, cursor = torch.arange(n), n
    hooks = _Hooks(model, data, loss, record_every, callback, callback_every, method)
    params = [p for p in model.parameters() if p.requires_grad]
    for step in range(steps):
        hooks.call_back(step)  # before this step's backward: a callback cannot touch its .grad
        if batch == n:
            optimizer.zero_grad(set_to_none=True)
            value = loss(model(x), y)
            value.backward()
            grad_norm = hooks.at(
                step, value=float(value.detach()), grad_norm=_grad_inf_norm(params)
            )
            if tol > 0 and grad_norm <= tol:
                return hooks.finish(step, tol)
            optimizer.step()
            continue
        grad_norm = hooks.at(step)  # sample without replacement, reshuffling each epoch
        if tol > 0 and grad_norm <= tol:
            return hooks.finish(step, tol)
        if cursor + batch > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        optimizer.zero_grad(set_to_none=True)
        loss(model(x[index]), y[index]).backward()
        optimizer.step()
    return hooks.finish(steps, tol)


def gradient_descent(
    model: nn.Module,
    data: Data,
    *,
    lr: float,
    steps: int,
    loss: Loss = mse_loss,
    tol: float = 0.0,
    record_every: int = 1,
    callback: Callback | None = None,
    callback_every: int = 1,
) -> Trajectory:
    """Full-batch gradient descent θ ← θ − lr ∇L(θ) for ``steps`` steps (stops early once the
    gradient ∞-norm is ≤ ``tol`` when tol > 0).

    Cost: one forward+backward pass per step, plus one at the end to record θ_T. The record at
    step t (L(θ_t), ‖∇L(θ_t)‖_∞) is read off that step's own pass, so ``record_every`` costs
    nothing."""
    _check_positive("lr", lr)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return _first_order(
        "gd", model, data, optimizer, steps, None, 0, loss, tol, record_every, callback,
        callback_every,
    )  # fmt: skip


def sgd(
    model: nn.Module,
    data: Data,
    *,
    lr: float,
    steps: int,
    batch_size: int,
    seed: int = 0,
    momentum: float = 0.0,
    loss: Loss = mse_loss,
    tol: float = 0.0,
    record_every: int | None = None,
    callback: Callback | None = None,
    callback_every: int = 1,
) -> Trajectory:
    """Minibatch SGD (with optional heavy-ball ``momentum``): each step uses ``batch_size`` samples
    drawn without replacement from a permutation reshuffled every epoch by a generator seeded
    with ``seed``. The recorded loss and gradient are full-batch.

    Cost: one forward+backward pass on ``batch_size`` samples per step, plus one full-batch pass
    (≈ N / batch_size steps' worth) per record. ``record_every=None`` records every 10 epochs
    (10 ⌈N / batch_size⌉ steps, about 10% extra work) and at the end; ``tol`` is tested only at
    recorded steps. With ``batch_size`` ≥ N the loop is full-batch gradient descent and records
    every step for free (see :func:`gradient_descent`)."""
    _check_positive("lr", lr)
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return _first_order(
        "sgd", model, data, optimizer, steps, batch_size, seed, loss, tol, record_every,
        callback, callback_every,
    )  # fmt: skip


def adam(
    model: nn.Module,
    data: Data,
    *,
    lr: float,
    steps: int,
    batch_size: int | None = None,
    seed: int = 0,
    betas: tuple[float, float] = (0.9, 0.999),
    loss: Loss = mse_loss,
    tol: float = 0.0,
    record_every: int | None = None,
    callback: Callback | None = None,
    callback_every: int = 1,
) -> Trajectory:
    """Adam (Kingma & Ba 2015), full batch when ``batch_size`` is None, else seeded minibatches.

    Cost and recording as in :func:`gradient_descent` (full batch: free records, every step by
    default) or :func:`sgd` (minibatches: one full-batch pass per record, every 10 epochs by
    default)."""
    _check_positive("lr", lr)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    return _first_order(
        "adam", model, data, optimizer, steps, batch_size, seed, loss, tol, record_every,
        callback, callback_every,
    )  # fmt: skip


def lbfgs(
    model: nn.Module,
    data: Data,
    *,
    max_iter: int = 2000,
    tol: float = 1e-10,
    history_size: int = 50,
    loss: Loss = mse_loss,
    record_every: int = 20,
    callback: Callback | None = None,
    callback_every: int = 20,
) -> Trajectory:
    """Full-batch L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search) until the gradient
    ∞-norm is ≤ ``tol`` or ``max_iter`` iterations. Use float64 for tol ≲ 1e-6.

    Cost: about 1.2 forward+backward passes per iteration plus O(history_size · D)."""
    _check_positive("max_iter", max_iter, integer=True)
    _check_positive("tol", tol)
    data = _check_data(model, data)
    hooks = _Hooks(model, data, loss, record_every, callback, callback_every, "lbfgs")
    chunk = hooks.record_every
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=chunk,
        history_size=history_size,
        tolerance_grad=tol,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = full_loss(model, data, loss)
        value.backward()
        return value

    first, step = optimizer.param_groups[0]["params"][0], 0
    while step < max_iter:
        grad_norm = hooks.at(step, force=True)
        if grad_norm <= tol or not math.isfinite(grad_norm):
            break
        recent = hooks.trajectory.losses[-2:], hooks.trajectory.grad_norms[-2:]
        if len(recent[0]) == 2 and recent[0][0] == recent[0][1] and recent[1][0] == recent[1][1]:
            break  # stalled: the line search makes no progress (numerical floor)
        before = optimizer.state[first].get("n_iter", 0)
        optimizer.step(closure)
        done = optimizer.state[first].get("n_iter", 0) - before
        if done == 0:  # L-BFGS made no progress (line search stalled)
            break
        step += done
    return hooks.finish(step, tol)


def _load(model: nn.Module, theta: Tensor) -> None:
    """Copy the flat parameter vector ``theta`` into ``model`` (so records and callbacks see it)."""
    with torch.no_grad():
        for p, new in zip(model.parameters(), unflatten_params(model, theta).values(), strict=True):
            p.copy_(new)


def _flat_loss(model: nn.Module, data: Data, loss: Loss) -> Callable[[Tensor], Tensor]:
    x, y = data

    def value(theta: Tensor) -> Tensor:
        return loss(functional_call(model, unflatten_params(model, theta), (x,)), y)

    return value


def newton(
    model: nn.Module,
    data: Data,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    damping: float = 1e-12,
    max_params: int = 4000,
    loss: Loss = mse_loss,
    callback: Callback | None = None,
    callback_every: int = 1,
) -> Trajectory:
    """Damped Newton (Levenberg–Marquardt) for the critical-point equation g(θ) = ∇L(θ) = 0.

    With the dense Hessian H = Q Λ Qᵀ (``torch.func.hessian``, D ≤ ``max_params``), the step is

        p = −(H² + μ I)⁻¹ H g = −Q diag(λ_i / (λ_i² + μ)) Qᵀ g,

    the Gauss–Newton step for the residual g, which is well defined at the singular Hessians of
    degenerate critical points (flat directions get no step) and is attracted by minima and saddles
    alike. μ = μ_rel · max λ_i², μ_rel starts at ``damping``; a backtracking line search on ‖g‖₂
    accepts the step, else μ_rel grows ×100. Stops when the gradient ∞-norm is ≤ ``tol``.
    Cost per iteration: one Hessian (≈ D Hessian-vector products) and one O(D³) eigendecomposition.
    """
    _check_positive("tol", tol)
    _check_positive("max_iter", max_iter, integer=True)
    _check_positive("damping", damping)
    data = _check_data(model, data)
    theta = flatten_params(model)
    if theta.numel() > max_params:
        raise ValueError(
            f"max_params: the model has D = {theta.numel()} parameters, more than {max_params}"
        )
    value = _flat_loss(model, data, loss)
    gradient = torch.func.grad(value)
    hessian = torch.func.hessian(value)
    hooks = _Hooks(model, data, loss, 1, callback, callback_every, "newton")
    mu_rel, step = float(damping), 0
    g = gradient(theta)
    while step < max_iter and g.abs().max() > tol:
        _load(model, theta)  # the record and the callback of step t see θ_t
        hooks.at(step, force=True)
        lam, q = torch.linalg.eigh(hessian(theta))
        qg, g_norm = q.T @ g, torch.linalg.vector_norm(g)
        scale = float(lam.abs().max()) ** 2 or 1.0
        accepted = False
        while mu_rel < 1e4 and not accepted:
            p = -q @ (lam / (lam**2 + mu_rel * scale) * qg)
            t = 1.0
            for _ in range(12):
                trial = theta + t * p
                g_trial = gradient(trial)
                if torch.linalg.vector_norm(g_trial) < (1 - 1e-4 * t) * g_norm:
                    accepted = True
                    break
                t *= 0.5
            if not accepted:
                mu_rel *= 100.0
        if not accepted:  # no descent on ‖g‖ at any damping: numerical floor reached
            break
        theta, g = trial, g_trial
        mu_rel = max(mu_rel / 10.0, float(damping)) if t == 1.0 else mu_rel
        step += 1
    _load(model, theta)
    return hooks.finish(step, tol)


def levenberg_marquardt(
    model: nn.Module,
    data: Data,
    *,
    tol: float = 1e-10,
    max_iter: int = 200,
    damping: float = 1e-6,
    max_params: int = 4000,
    callback: Callback | None = None,
    callback_every: int = 1,
) -> Trajectory:
    """Levenberg–Marquardt (Levenberg 1944; Marquardt 1963) for the mean squared error.

    With residuals r(θ) = vec(f_θ(X) − Y) ∈ R^{NK}, L = ‖r‖² / (NK), the Jacobian J = ∂r/∂θ
    (``torch.func.jacrev``) and its SVD J = U S Vᵀ, the step is

        p = −(JᵀJ + μ I)⁻¹ Jᵀ r = −V diag(s_i / (s_i² + μ)) Uᵀ r,   μ = μ_rel · s_1²,

    accepted when it lowers L (then μ_rel ← μ_rel / 10), else μ_rel ← 10 μ_rel. It is a descent
    method (it does not stop at saddles) and converges fast to zero-residual points even where the
    Hessian is singular (flat directions of J get no step). Stops when the gradient ∞-norm
    2‖Jᵀr‖_∞ / (NK) is ≤ ``tol``. Cost per iteration: one Jacobian (NK × D) and its SVD,
    O(NK D²). Only for the MSE loss.
    """
    _check_positive("tol", tol)
    _check_positive("max_iter", max_iter, integer=True)
    _check_positive("damping", damping)
    data = _check_data(model, data)
    x, y = data
    theta = flatten_params(model)
    if theta.numel() > max_params:
        raise ValueError(
            f"max_params: the model has D = {theta.numel()} parameters, more than {max_params}"
        )

    def residual(vector: Tensor) -> Tensor:
        return (functional_call(model, unflatten_params(model, vector), (x,)) - y).reshape(-1)

    jacobian = torch.func.jacrev(residual)
    hooks = _Hooks(model, data, mse_loss, 1, callback, callback_every, "levenberg_marquardt")
    mu_rel, step, count = float(damping), 0, y.numel()
    r = residual(theta)
    while step < max_iter:
        jac = jacobian(theta)
        grad_norm = float((2 * jac.T @ r / count).abs().max())
        if grad_norm <= tol:
            break
        _load(model, theta)  # the callback of step t sees θ_t; the record is L and ∇L at θ_t
        hooks.at(step, force=True, value=float(r @ r) / count, grad_norm=grad_norm)
        u, sv, vh = torch.linalg.svd(jac, full_matrices=False)
        ur, value, accepted = u.T @ r, float(r @ r), False
        while mu_rel < 1e8 and not accepted:
            trial = theta - vh.T @ (sv / (sv**2 + mu_rel * float(sv[0]) ** 2) * ur)
            r_trial = residual(trial)
            accepted = float(r_trial @ r_trial) < value
            mu_rel = max(mu_rel / 10.0, 1e-15) if accepted else mu_rel * 10.0
        if not accepted:  # no descent at any damping: numerical floor reached
            break
        theta, r = trial, r_trial
        step += 1
    _load(model, theta)
    return hooks.finish(step, tol)
