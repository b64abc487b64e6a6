"""First-order training: gradient descent, minibatch and online SGD, heavy ball, Nesterov and Adam.

One loop, :func:`train`, carries every first-order run of symlab; :func:`gradient_descent`,
:func:`sgd`, :func:`heavy_ball`, :func:`nesterov`, :func:`adam` and :func:`online_sgd` name its
common settings. Conventions (data, loss, gradient ∞-norm, callbacks, divergence) are those of
:mod:`symlab.train.trajectory` (the ∞-norm follows MLPGradientFlow.jl, Brea et al. 2023, arXiv
2301.10638); update rules, parameter groups and the L2 term are in :mod:`symlab.train.optimizers`.

Noise: ``noise_std`` τ adds τ ξ_t, ξ_t ~ N(0, I) (seeded), to every step's gradient: with full
batches and ``method="sgd"`` this is noisy gradient descent (Abbe & Boix-Adserà, NeurIPS 2022).

Batches: full batch (``batch_size=None``), seeded minibatches without replacement
(``batch_size=B``), or a fresh batch per step from ``sampler(step, generator) -> (x, y)`` (online
SGD; ``data``, when given, is then only the set the records are measured on).

Cost. A full-batch step of GD, heavy ball or Adam reads the record of step t off that step's own
pass (L(θ_t) and ∇L(θ_t) are what the update uses), so recording is free and a run of T steps
costs T + 1 passes. Minibatch, online and Nesterov steps (Nesterov differentiates at the look-ahead
point) spend one extra full-batch forward+backward pass per record; online SGD without ``data``
records the loss of the step's own batch, for free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from symlab.train.lr_schedules import LrSchedule, check_factor
from symlab.train.optimizers import MinibatchOrder, l2_penalty, make_optimizer, parameter_groups
from symlab.train.schedule import Schedule
from symlab.train.trajectory import (
    Callback,
    Data,
    Hooks,
    Loss,
    Trajectory,
    check_data,
    check_positive,
    mse_loss,
)

Sampler = Callable[[int, torch.Generator], Data]
NOISE_SEED_OFFSET = 1_000_003  # the gradient noise's generator is seeded with seed + this


def grad_inf_norm(params: Iterable[Tensor]) -> float:
    """max_i |∂L/∂θ_i| from the ``.grad`` fields left by ``backward`` (None counts as 0); one
    host synchronisation."""
    norms = [p.grad.abs().max() for p in params if p.grad is not None and p.grad.numel()]
    return float(torch.stack(norms).max()) if norms else 0.0


def _default_record_every(record_every, n: int, batch: int, free: bool):
    """None: every step when records are free, else every 10 epochs (≈ 10% extra cost)."""
    if record_every is not None:
        return record_every
    return 1 if free else 10 * math.ceil(n / batch)


def train(
    model: nn.Module,
    data: Data | None,
    *,
    method: str = "sgd",
    lr: float,
    steps: int,
    batch_size: int | None = None,
    sampler: Sampler | None = None,
    seed: int = 0,
    momentum: float | str | Callable[[int], float] = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    param_groups: list[dict[str, Any]] | None = None,
    loss: Loss = mse_loss,
    penalty: Callable[[nn.Module], Tensor] | None = None,
    tol: float = 0.0,
    plateau: tuple[int, float] | None = None,
    record_every: int | Schedule | Iterable[int] | None = None,
    max_records: int | None = None,
    record_grad_norm: bool = True,
    callback: Callback | None = None,
    callback_every: int | Schedule | Iterable[int] = 1,
    noise_std: float = 0.0,
    noise_transform: Callable[[str, Tensor], Tensor] | None = None,
    lr_schedule: LrSchedule | None = None,
) -> Trajectory:
    """Train ``model`` in place for ``steps`` steps of ``method`` ("sgd", "heavy_ball",
    "nesterov", "adam") on the objective L(θ) + Σ_g λ_g ‖θ_g‖² (+ ``penalty(model)``) and return
    its :class:`Trajectory`.

    ``momentum``: heavy ball's β, or Nesterov's constant β / ``"k/(k+3)"`` / callable t ↦ β_t.
    ``param_groups``: per-group ``lr`` and ``weight_decay`` (:mod:`symlab.train.optimizers`).
    ``penalty(model) -> scalar``: a differentiable regularizer evaluated at every step, added to
    the objective and to the reported loss; unlike ``weight_decay`` it may depend on buffers that
    a callback changes (e.g. per-layer steps of a Leaky ResNet, :mod:`symlab.nets.leaky_resnet`).
    ``record_every``: an int n, a :class:`~symlab.train.schedule.Schedule` (e.g.
    ``log_spaced(steps, 30)``) or a list of steps; None records every step when that is free and
    every 10 epochs otherwise; the end point is always recorded. ``max_records`` thins the record
    (every other one dropped when full). ``tol`` > 0 stops once the gradient ∞-norm of a record is
    ≤ tol. ``plateau=(window, rtol)`` stops once a record's loss is less than rtol · |L| below
    the last record at least ``window`` steps before it (``stop_reason = "plateau"``; records
    must come at least every ``window`` steps). ``record_grad_norm=False`` records the loss alone (NaN gradient norms; a record that is
    not free is then one forward pass, no backward). The run stops at the first non-finite loss (``diverged``). ``sampler(step, generator)``
    draws each step's batch (online SGD), with a generator seeded by ``seed``.

    ``noise_std`` τ > 0 adds Gaussian noise to every step's gradient, ∇L(θ_t) + τ ξ_t with
    ξ_t ~ N(0, I), so ``method="sgd"`` on full batches is noisy gradient descent,
    θ_{t+1} = θ_t − η_g (∇L(θ_t) + τ ξ_t) (the learner of Abbe & Boix-Adserà, NeurIPS 2022,
    arXiv 2208.03113; other methods receive the noisy gradient). ξ_t is drawn parameter by
    parameter, in the order of the parameter groups, from a generator seeded with
    ``seed`` + :data:`NOISE_SEED_OFFSET`; records are of the noise-free loss and gradient.
    ``noise_transform(name, ξ)`` replaces each draw (e.g. a symmetry acting on it, which couples
    two runs pathwise: equal in law, since the law of ξ is invariant under orthogonal maps).

    ``lr_schedule`` ρ: step t updates with each group's learning rate times ρ(t)
    (:mod:`symlab.train.lr_schedules`: ``warmup_cosine``, ``step_decay``, or any t ↦ ρ(t) ≥ 0)."""
    check_positive("steps", steps, integer=True)
    check_positive("lr", lr)
    if tol > 0 and not record_grad_norm:
        raise ValueError("tol: a gradient tolerance needs record_grad_norm=True")
    if sampler is None and data is None:
        raise ValueError("data: expected a pair (x, y), or a sampler for online SGD")
    if plateau is not None and not (
        isinstance(plateau, tuple | list) and len(plateau) == 2
        and isinstance(plateau[0], int) and not isinstance(plateau[0], bool) and plateau[0] >= 1
        and isinstance(plateau[1], int | float) and plateau[1] > 0
    ):  # fmt: skip
        raise ValueError(
            f"plateau: expected (window, rtol) with an integer window >= 1 and rtol > 0, "
            f"got {plateau!r}"
        )
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError(f"lr_schedule: expected a function step -> factor, got {lr_schedule!r}")
    if penalty is not None and not callable(penalty):
        raise ValueError(f"penalty: expected a function model -> scalar tensor, got {penalty!r}")
    if data is not None:
        data = check_data(model, data)
    if batch_size is not None and not (
        isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1
    ):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    if isinstance(noise_std, bool) or not isinstance(noise_std, int | float) or not noise_std >= 0:
        raise ValueError(f"noise_std: expected a non-negative number, got {noise_std!r}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = parameter_groups(named, param_groups, lr, weight_decay)
    add_noise = _gradient_noise(groups, noise_std, seed, noise_transform)
    optimizer = make_optimizer(method, groups, momentum, betas)
    params = [p for group in groups for p in group["params"]]
    at_iterate = getattr(optimizer, "evaluates_at_iterate", True)

    def objective(x: Tensor, y: Tensor) -> Tensor:
        value = loss(model(x), y)
        l2 = l2_penalty(groups)
        value = value if l2 is None else value + l2
        return value if penalty is None else value + penalty(model)

    n = 0 if data is None else data[0].shape[0]
    batch = n if batch_size is None or sampler is not None else min(batch_size, n)
    full_batch = sampler is None and batch == n
    free = at_iterate and (full_batch or data is None)
    generator = torch.Generator().manual_seed(int(seed))
    minibatches = None if full_batch or sampler is not None else MinibatchOrder(n, batch, seed)
    current: list[Data] = [data] if data is not None else []

    def evaluate() -> tuple[float, float]:  # the record at θ_t on data (or the step's batch)
        if not record_grad_norm:
            with torch.no_grad():
                return float(objective(*(data if data is not None else current[0]))), math.nan
        optimizer.zero_grad(set_to_none=True)
        value = objective(*(data if data is not None else current[0]))
        value.backward()
        result = float(value.detach()), grad_inf_norm(params)
        optimizer.zero_grad(set_to_none=True)
        return result

    record_every = _default_record_every(record_every, n, max(batch, 1), free)
    hooks = Hooks(
        model, data, loss, record_every, callback, callback_every, method,
        max_records=max_records, evaluate=evaluate,
    )  # fmt: skip
    for step in range(steps):
        hooks.call_back(step)  # before this step's backward: a callback cannot touch its .grad
        if hooks.stop_requested:
            return hooks.finish(step, tol)
        if sampler is not None:
            current[:] = [check_data(model, sampler(step, generator))]
        elif minibatches is not None:
            index = minibatches.next()
            current[:] = [(data[0][index], data[1][index])]

        def closure(noisy: bool = not free) -> Tensor:  # the free path adds it after recording
            optimizer.zero_grad(set_to_none=True)
            value = objective(*current[0])
            value.backward()
            if noisy:
                add_noise()
            return value

        if free:
            value = float(closure().detach())
            if not math.isfinite(value):
                return hooks.diverge(step, value)
            if not record_grad_norm:
                grad_norm = hooks.at(step, value=value, grad_norm=math.nan)
            else:
                due = hooks.due(step) or tol > 0
                grad_norm = hooks.at(
                    step, value=value, grad_norm=grad_inf_norm(params) if due else None
                )
        else:
            grad_norm = hooks.at(step)
            if hooks.trajectory.diverged:
                return hooks.diverge(step, hooks.trajectory.final_loss)
        if tol > 0 and grad_norm <= tol:
            return hooks.finish(step, tol)
        if plateau is not None and hooks.plateaued(step, *plateau):
            return hooks.finish(step, tol)
        if lr_schedule is not None:
            factor = check_factor(lr_schedule(step), step)
            for torch_group, group in zip(optimizer.param_groups, groups, strict=True):
                torch_group["lr"] = group["lr"] * factor
        if free:
            add_noise()
        value = optimizer.step() if free else float(optimizer.step(closure).detach())
        if not free and not math.isfinite(value):  # the step's batch loss
            return hooks.diverge(step, value)
    return hooks.finish(steps, tol)


def _gradient_noise(groups, noise_std: float, seed: int, transform) -> Callable[[], None]:
    """A function adding τ ξ (ξ ~ N(0, I), seeded; optionally transformed) to every gradient."""
    if noise_std == 0:
        return lambda: None
    generator = torch.Generator().manual_seed(int(seed) + NOISE_SEED_OFFSET)
    named = [
        (n, p) for group in groups for n, p in zip(group["names"], group["params"], strict=True)
    ]

    def add() -> None:
        with torch.no_grad():
            for name, p in named:
                xi = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
                if transform is not None:
                    xi = transform(name, xi)
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.add_(xi, alpha=noise_std)

    return add


def gradient_descent(
    model: nn.Module, data: Data, *, lr: float, steps: int, **options
) -> Trajectory:
    """Full-batch gradient descent θ ← θ − lr ∇L(θ); records every step for free by default.
    ``options`` are those of :func:`train` (loss, tol, weight_decay, param_groups, record_every,
    callback, ...)."""
    return _named("gd", model, data, method="sgd", lr=lr, steps=steps, **options)


def sgd(
    model: nn.Module, data: Data, *, lr: float, steps: int, batch_size: int, seed: int = 0,
    momentum: float = 0.0, **options,
) -> Trajectory:  # fmt: skip
    """Minibatch SGD, with heavy-ball ``momentum`` when > 0: each step uses ``batch_size``
    samples drawn without replacement from a permutation reshuffled every epoch by a generator
    seeded with ``seed``. Records are full-batch, every 10 epochs by default (about 10% extra
    work); with ``batch_size`` ≥ N this is full-batch gradient descent, recorded every step."""
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 <= momentum < 1:
        check_positive("lr", lr)  # the first bad argument is the one reported
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
    method = "heavy_ball" if momentum > 0 else "sgd"
    return _named(
        "sgd", model, data, method=method, lr=lr, steps=steps, batch_size=batch_size, seed=seed,
        momentum=momentum, **options,
    )  # fmt: skip


def heavy_ball(
    model: nn.Module, data: Data, *, lr: float, momentum: float, steps: int, **options
) -> Trajectory:
    """Polyak's heavy ball θ_{t+1} = θ_t − lr ∇L(θ_t) + β (θ_t − θ_{t−1}), β = ``momentum``;
    full batch unless ``batch_size`` is given (options of :func:`train`)."""
    return _named(
        "heavy_ball", model, data, method="heavy_ball", lr=lr, momentum=momentum, steps=steps,
        **options,
    )  # fmt: skip


def nesterov(
    model: nn.Module, data: Data, *, lr: float, steps: int,
    momentum: float | str | Callable[[int], float] = "k/(k+3)", **options,
) -> Trajectory:  # fmt: skip
    """Nesterov's accelerated gradient φ_t = θ_t + β_t (θ_t − θ_{t−1}), θ_{t+1} = φ_t − lr ∇L(φ_t),
    with β_t = t/(t+3) by default (or a constant / callable ``momentum``); records are at θ_t
    (one extra pass each). Options of :func:`train`."""
    return _named(
        "nesterov", model, data, method="nesterov", lr=lr, momentum=momentum, steps=steps,
        **options,
    )  # fmt: skip


def adam(model: nn.Module, data: Data, *, lr: float, steps: int, **options) -> Trajectory:
    """Adam (Kingma & Ba 2015), full batch when ``batch_size`` is None, else seeded minibatches;
    ``betas`` and the other options of :func:`train`."""
    return _named("adam", model, data, method="adam", lr=lr, steps=steps, **options)


def online_sgd(
    model: nn.Module, sampler: Sampler, *, lr: float, steps: int, data: Data | None = None,
    **options,
) -> Trajectory:  # fmt: skip
    """Online SGD: each step draws a fresh batch ``sampler(step, generator)`` (generator seeded
    by ``seed``), so no sample is seen twice. Records are on ``data`` when given (one extra pass
    each), else the loss of the step's own batch. Options of :func:`train` (e.g. ``method``)."""
    options.setdefault("method", "sgd")
    return _named("online_sgd", model, data, sampler=sampler, lr=lr, steps=steps, **options)


def _named(label: str, model: nn.Module, data, **options) -> Trajectory:
    trajectory = train(model, data, **options)
    trajectory.method = label
    return trajectory
