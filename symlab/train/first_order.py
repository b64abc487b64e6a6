"""First-order training loops: full-batch gradient descent, minibatch SGD and Adam.

Conventions (data, loss, gradient ∞-norm, callbacks) are those of :mod:`symlab.train.trajectory`
(the ∞-norm follows MLPGradientFlow.jl, Brea et al. 2023, arXiv 2301.10638). Full-batch loops
read the record of step t off that step's own forward/backward pass (L(θ_t) and ∇L(θ_t) are what
the update uses), so recording is free; minibatch loops spend one full-batch pass per record.
Adam is Kingma & Ba 2015 (``torch.optim.Adam``); SGD with heavy-ball momentum is
``torch.optim.SGD``. All three share one loop, :func:`_first_order`, and differ only in the
optimizer and in their defaults.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from symlab.train.trajectory import (
    Callback,
    Data,
    Loss,
    Trajectory,
    _check_data,
    _check_positive,
    _Hooks,
    mse_loss,
)


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
    optimizer_class: type[torch.optim.Optimizer],
    options: dict[str, Any],
    *,
    steps: int,
    batch_size: int | None,
    seed: int,
    loss: Loss,
    tol: float,
    record_every: int | None,
    callback: Callback | None,
    callback_every: int,
) -> Trajectory:
    """Shared first-order loop with ``optimizer_class(model.parameters(), **options)``
    (``options["lr"]`` must be positive). Full batch: the step's own forward/backward pass gives
    L(θ_t) and ∇L(θ_t) before the update, so recording (and the ``tol`` test) is free at every
    step and a run of T steps costs T + 1 passes (the last records θ_T). Minibatches: a record is
    one extra full-batch forward+backward pass, and ``tol`` is tested only at recorded steps."""
    _check_positive("lr", options["lr"])
    optimizer = optimizer_class(model.parameters(), **options)
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
    return _first_order(
        "gd", model, data, torch.optim.SGD, {"lr": lr}, steps=steps, batch_size=None, seed=0,
        loss=loss, tol=tol, record_every=record_every, callback=callback,
        callback_every=callback_every,
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
    _check_positive("lr", lr)  # before momentum: the first bad argument is the one reported
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
    return _first_order(
        "sgd", model, data, torch.optim.SGD, {"lr": lr, "momentum": momentum}, steps=steps,
        batch_size=batch_size, seed=seed, loss=loss, tol=tol, record_every=record_every,
        callback=callback, callback_every=callback_every,
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
    return _first_order(
        "adam", model, data, torch.optim.Adam, {"lr": lr, "betas": betas}, steps=steps,
        batch_size=batch_size, seed=seed, loss=loss, tol=tol, record_every=record_every,
        callback=callback, callback_every=callback_every,
    )  # fmt: skip
