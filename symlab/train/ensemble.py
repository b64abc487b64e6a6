"""Many independent copies of a small network trained at once: a batch of seeds in one loop.

Studies that sweep seeds of tiny models (deep linear nets, two-layer nets on the Boolean cube) spend
most of their time in per-step Python and kernel-launch overhead when the runs go one after another.
:func:`train_ensemble` stacks the S models' parameters along a leading axis
(``torch.func.stack_module_state``), evaluates all S losses with one ``torch.func.vmap`` of
``functional_call`` (batched matmuls), and updates the stacked tensors with the same optimizers as
:func:`symlab.train.train`. Every update rule of :mod:`symlab.train.optimizers` acts elementwise, and
Σ_s L_s(θ_s) has block-separable gradient, so model s follows exactly the iterates of its own run
(``train(model_s, data, seed=seeds[s], ...)``) up to the rounding of batched vs. unbatched matmuls.

Model s draws its minibatches from a generator seeded with ``seeds[s]``, as its own run would. A
model that diverges (non-finite loss) or meets ``tol`` is frozen at that step (its parameters are
restored after each later update) and its :class:`~symlab.train.trajectory.Trajectory` ends there;
the loop ends when every model has stopped or after ``steps`` steps. Models must share their
architecture, and buffers are read but never updated (no BatchNorm in training mode).
Memory: S copies of the parameters, optimizer state and activations of one batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from symlab.train.first_order import _default_record_every
from symlab.train.optimizers import MinibatchOrder, l2_penalty, make_optimizer, parameter_groups
from symlab.train.schedule import Schedule, as_schedule
from symlab.train.trajectory import Data, Loss, Trajectory, check_positive, mse_loss
from symlab.train.two_layer_sgd import TwoLayerForm, two_layer_pass


@dataclass
class EnsembleResult:
    """One :class:`Trajectory` per model and the final stacked parameters {name: (S, ...)}
    (also written back into the models)."""

    trajectories: list[Trajectory]
    params: dict[str, Tensor]

    @property
    def final_losses(self) -> list[float]:
        return [t.final_loss for t in self.trajectories]


def train_ensemble(
    models: Sequence[nn.Module],
    data: Data | None,
    *,
    method: str = "sgd",
    lr: float,
    steps: int,
    batch_size: int | None = None,
    seeds: Sequence[int] | None = None,
    data_per_model: bool = False,
    sampler: Callable[[int, torch.Generator], Data] | None = None,
    momentum: float | str | Callable[[int], float] = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    param_groups: list[dict[str, Any]] | None = None,
    loss: Loss = mse_loss,
    tol: float = 0.0,
    record_every: int | Schedule | Iterable[int] | None = None,
    max_records: int | None = None,
    callback: Callable[[int, dict[str, Tensor]], bool | None] | None = None,
    callback_every: int | Schedule | Iterable[int] = 1,
    closed_form: bool = True,
) -> EnsembleResult:
    """Train the S ``models`` at once, each as :func:`symlab.train.train` would, and return their
    trajectories. ``data = (x, y)`` is shared by all models, or, with ``data_per_model=True``,
    stacked as (S, N, ...). ``seeds[s]`` seeds model s's minibatch order (default s).
    ``sampler(step, generator) -> (x, y)`` draws each step's batch (online SGD; generator seeded
    by ``seeds[0]``): one batch for all models, or stacked (S, B, ...) with ``data_per_model``;
    records are then on ``data`` when given (one extra pass each), else on the step's batch.
    ``param_groups`` name parameters (e.g. ``"0.weight"``); ``callback(step, params)`` sees the
    stacked parameters and may return True to stop every model. Other options as in ``train``.

    ``closed_form`` (default): plain SGD (no weight decay) of the MSE on a model that declares a
    two-layer form (``two_layer_form()``, :mod:`symlab.train.two_layer_sgd`) takes the fused
    closed-form step instead of autograd + ``torch.optim.SGD``; same iterates up to rounding."""
    models = list(models)
    if not models:
        raise ValueError("models: expected at least one model")
    check_positive("steps", steps, integer=True)
    check_positive("lr", lr)
    count = len(models)
    seeds = list(range(count)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != count:
        raise ValueError(f"seeds: expected {count} seeds (one per model), got {len(seeds)}")
    shapes = {tuple((n, p.shape) for n, p in m.named_parameters()) for m in models}
    if len(shapes) != 1:
        raise ValueError("models: expected copies of one architecture (same parameter shapes)")
    if data is None and sampler is None:
        raise ValueError("data: expected a pair (x, y), or a sampler for online SGD")
    x, y = (None, None) if data is None else _check_ensemble_data(models, data, data_per_model)
    n = 0 if x is None else x.shape[1] if data_per_model else x.shape[0]
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size: expected a positive integer or None, got {batch_size!r}")
    batch = n if batch_size is None or sampler is not None else min(batch_size, n)
    generator = torch.Generator().manual_seed(int(seeds[0]))

    params, buffers = stack_module_state(models)
    trainable = [name for name, p in models[0].named_parameters() if p.requires_grad]
    params = {name: params[name] for name in trainable}
    base = copy.deepcopy(models[0]).to("meta")
    groups = parameter_groups(list(params.items()), param_groups, lr, weight_decay)
    optimizer = make_optimizer(method, groups, momentum, betas)
    at_iterate = getattr(optimizer, "evaluates_at_iterate", True)
    free = at_iterate and (x is None if sampler is not None else batch == n)
    fused = _fused_form(models[0], params, groups, method, loss) if closed_form else None
    if fused is not None:
        form, fused_lrs = fused
        fused_lrs = (fused_lrs[form.first], fused_lrs[form.readout])

    def one_loss(p, b, xs, ys):
        return loss(functional_call(base, (p, b), (xs,)), ys)

    shared_loss = vmap(one_loss, in_dims=(0, 0, None, None))  # every model on the same batch
    stacked_loss = vmap(one_loss)  # model s on its own batch xs[s]
    orders = None if batch == n or sampler else [MinibatchOrder(n, batch, s) for s in seeds]

    def objective(xs: Tensor, ys: Tensor, batched: bool) -> Tensor:
        per_model = stacked_loss if batched or data_per_model else shared_loss
        values = per_model(params, buffers, xs, ys)
        penalty = l2_penalty(groups, dims=(0,))
        return values if penalty is None else values + penalty

    def pass_and_norms(xs, ys, batched) -> tuple[Tensor, Tensor]:
        optimizer.zero_grad(set_to_none=True)
        values = objective(xs, ys, batched)
        values.sum().backward()
        return values.detach(), grad_norms()

    def grad_norms() -> Tensor:  # per model max_i |∂L_s/∂θ_i|: one more pass over the gradient
        return torch.stack(
            [p.grad.abs().flatten(1).max(1).values for p in params.values() if p.grad is not None]
        ).amax(0)

    schedule = as_schedule("record_every", _default_record_every(record_every, n, batch, free))
    callbacks = as_schedule("callback_every", callback_every)
    trajectories = [Trajectory(method, max_records=max_records) for _ in range(count)]
    active = torch.ones(count, dtype=torch.bool)
    frozen = {name: p.detach().clone() for name, p in params.items()}

    def stop(rows: Tensor, step: int, reason: str) -> None:
        for s in rows.tolist():
            trajectories[s].n_steps, trajectories[s].stop_reason = step, reason
            trajectories[s].diverged = reason == "diverged"
            trajectories[s].converged = reason == "tol"
        with torch.no_grad():
            for name, p in params.items():
                frozen[name][rows] = p[rows]
        active[rows] = False

    def record(step: int, values: Tensor, norms: Tensor) -> None:
        values_list, norms_list = values.tolist(), norms.tolist()
        for s in torch.where(active)[0].tolist():
            trajectories[s].record(step, values_list[s], norms_list[s])
        finite = torch.isfinite(values)
        if bool((active & ~finite).any()):
            stop(torch.where(active & ~finite)[0], step, "diverged")
        if tol > 0 and bool((active & (norms <= tol)).any()):
            stop(torch.where(active & (norms <= tol))[0], step, "tol")

    step, stopped_by_callback = 0, False
    for step in range(steps):
        if callback is not None and callbacks.due(step):
            if callback(step, {k: v.detach() for k, v in params.items()}) is True:
                stopped_by_callback = True
                break
        if sampler is not None:
            xs, ys = _check_ensemble_data(models, sampler(step, generator), data_per_model)
        elif orders is not None:
            index = torch.stack([order.next() for order in orders])  # (S, B)
            xs, ys = _gather(x, index, data_per_model), _gather(y, index, data_per_model)
        else:
            xs, ys = x, y
        if free and fused is not None:  # closed-form residual pass at θ_t, the step after it
            pending = two_layer_pass(form, params, xs, ys)
            values = pending.losses
            if schedule.due(step) or tol > 0 or not bool(torch.isfinite(values).all()):
                record(step, values, pending.grad_norms())
        elif free:  # the step's own pass is the record at θ_t (norms only when recorded)
            optimizer.zero_grad(set_to_none=True)
            values = objective(xs, ys, False)
            values.sum().backward()
            values = values.detach()
            if schedule.due(step) or tol > 0 or not bool(torch.isfinite(values).all()):
                record(step, values, grad_norms())
        elif schedule.due(step):  # an extra full-data pass at θ_t
            record(step, *pass_and_norms(x, y, False))
        if not bool(active.any()):
            break
        if free and fused is not None:
            pending.apply_(*fused_lrs)
        elif free:
            optimizer.step()
        elif fused is not None:
            pending = two_layer_pass(form, params, xs, ys)
            pending.apply_(*fused_lrs)
            bad = active & ~torch.isfinite(pending.losses)
            if bool(bad.any()):
                stop(torch.where(bad)[0], step, "diverged")
        else:
            batch_values: list[Tensor] = []

            def closure(xs=xs, ys=ys, out=batch_values) -> Tensor:
                optimizer.zero_grad(set_to_none=True)
                values = objective(xs, ys, orders is not None)
                values.sum().backward()
                out[:] = [values.detach()]
                return values.sum()

            optimizer.step(closure)
            bad = active & ~torch.isfinite(batch_values[0])
            if bool(bad.any()):
                stop(torch.where(bad)[0], step, "diverged")
        _restore(params, frozen, active)
    else:
        step = steps
    if bool(active.any()):
        values, norms = pass_and_norms(*((x, y) if x is not None else (xs, ys)), False)
        for s in torch.where(active)[0].tolist():
            t = trajectories[s]
            if not t.steps or t.steps[-1] != step:
                t.record(step, float(values[s]), float(norms[s]))
            t.n_steps = step
            t.diverged = not math.isfinite(t.final_loss)
            t.converged = tol > 0 and t.final_grad_norm <= tol
            t.stop_reason = (
                "diverged" if t.diverged else "tol" if t.converged
                else "callback" if stopped_by_callback else "steps"
            )  # fmt: skip
    final = {name: p.detach() for name, p in params.items()}
    with torch.no_grad():
        for s, model in enumerate(models):
            for name, p in model.named_parameters():
                if name in final:
                    p.copy_(final[name][s])
    return EnsembleResult(trajectories, final)


def _fused_form(
    model: nn.Module, params: dict[str, Tensor], groups: list[dict[str, Any]], method: str, loss
) -> tuple[TwoLayerForm, dict[str, float]] | None:
    """(the model's two-layer form, lr per parameter name) when the fused closed-form SGD step
    applies: method "sgd", the MSE, no weight decay, exactly the form's two parameters trainable."""
    declare = getattr(model, "two_layer_form", None)
    form = declare() if callable(declare) else None
    if not isinstance(form, TwoLayerForm) or method != "sgd" or loss is not mse_loss:
        return None
    if set(params) != {form.first, form.readout} or any(g["weight_decay"] for g in groups):
        return None
    return form, {name: g["lr"] for g in groups for name in g["names"]}


def _check_ensemble_data(models, data, data_per_model: bool) -> Data:
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ValueError("data: expected a pair (x, y) of tensors")
    x, y = data
    if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
        raise ValueError("data: expected a pair (x, y) of tensors")
    axis = 1 if data_per_model else 0
    if data_per_model and (x.shape[0] != len(models) or y.shape[0] != len(models)):
        raise ValueError(f"data: expected x and y stacked over the {len(models)} models (axis 0)")
    if x.ndim <= axis or x.shape[axis] != y.shape[axis] or x.shape[axis] == 0:
        raise ValueError(
            "data: expected tensors x and y with the same, positive, number of samples"
        )
    dtype = next(models[0].parameters()).dtype
    return x.to(dtype), (y.to(dtype) if y.is_floating_point() else y)


def _gather(t: Tensor, index: Tensor, data_per_model: bool) -> Tensor:
    """(S, B, ...) minibatches: t[index[s]] per model s, or t[s, index[s]] for stacked data."""
    if data_per_model:
        return t[torch.arange(index.shape[0])[:, None], index]
    return t[index]


def _restore(params: dict[str, Tensor], frozen: dict[str, Tensor], active: Tensor) -> None:
    """Put stopped models back to the parameters they stopped at."""
    if bool(active.all()):
        return
    with torch.no_grad():
        for name, p in params.items():
            p[~active] = frozen[name][~active]
