"""Second-order loops that reach critical points in float64: L-BFGS, Levenberg–Marquardt and
damped Newton.

Reaching critical points (gradient ∞-norm ≤ 1e-10, the convention of MLPGradientFlow.jl, Brea et
al. 2023, arXiv 2301.10638) needs float64 and second-order methods: :func:`lbfgs`
(``torch.optim.LBFGS``, Liu & Nocedal 1989, with strong-Wolfe line search),
:func:`levenberg_marquardt` (Levenberg 1944; Marquardt 1963; on the residuals of the MSE; a
descent method that converges fast to zero-residual points even where the Hessian is singular)
and :func:`newton` (Levenberg–Marquardt on the equation ∇L(θ) = 0 with the dense Hessian from
``torch.func``; it converges to the nearby critical point whatever its index, which is what a
study of saddles needs). Data, loss and recording conventions: :mod:`symlab.train.trajectory`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from symlab.nets.params import flatten_params, unflatten_params
from symlab.train import two_layer_derivatives as closed
from symlab.train.lbfgs_flat import LBFGSState, lbfgs_step
from symlab.train.trajectory import (
    Callback,
    Data,
    Hooks,
    Loss,
    Trajectory,
    check_data,
    check_positive,
    full_loss,
    mse_loss,
)


def lbfgs(
    model: nn.Module,
    data: Data,
    *,
    max_iter: int = 2000,
    tol: float = 1e-10,
    history_size: int = 50,
    loss: Loss = mse_loss,
    weight_decay: float = 0.0,
    record_every: int = 20,
    callback: Callback | None = None,
    callback_every: int = 20,
    closed_form: bool = True,
) -> Trajectory:
    """Full-batch L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search) on the objective
    L(θ) + λ ‖θ‖² (λ = ``weight_decay``, over every trainable parameter, the convention of
    :func:`symlab.train.train`; the records include it) until the objective's gradient ∞-norm is
    ≤ ``tol`` or ``max_iter`` iterations, or until the line search stalls (no progress between
    two records: ``stop_reason = "stalled"``, typically where the objective's changes reach
    rounding; not a certificate of a minimum). Use float64 for tol ≲ 1e-6. With λ > 0 the end
    point approaches a critical point of L + λ‖θ‖² (e.g. a network polished after a first-order
    warm start); its gradient ∞-norm is ``final_grad_norm``.

    The optimizer runs in calls of ``record_every`` iterations (its memory carries over; the last
    call is cut so that at most ``max_iter`` iterations run; each call may evaluate the loss
    ⌊5 record_every / 4⌋ + 25 times, so that the cadence does not starve the line search); the
    loss and gradient are recorded between calls. With ``closed_form`` (default),
    ``weight_decay`` = 0 and a one-hidden-layer
    ``Sequential(Linear, σ, Linear)`` under the MSE (:func:`~symlab.train.two_layer_derivatives.
    two_layer_structure`), the same algorithm runs on the flat vector
    (:func:`symlab.train.lbfgs_flat.lbfgs_step`) with closed-form L and ∇L: the same iterates up
    to floating-point rounding, several times faster on small nets; ``closed_form=False`` forces
    ``torch.optim.LBFGS`` with autograd (any model and loss). "Up to rounding" is a statement
    about each step: L-BFGS amplifies rounding differences (in float32 within tens of
    iterations, in float64 within a few hundred on the critical-points study's nets), so the two
    routes' end points agree closely only in float64 and over short runs.

    Cost: about 1.2 forward+backward passes per iteration plus O(history_size · D)."""
    check_positive("max_iter", max_iter, integer=True)
    check_positive("tol", tol)
    data = check_data(model, data)
    if (
        isinstance(weight_decay, bool)
        or not isinstance(weight_decay, int | float)
        or not (0 <= weight_decay < math.inf)
    ):
        raise ValueError(
            f"weight_decay: expected a finite non-negative number, got {weight_decay!r}"
        )
    params = [p for p in model.parameters() if p.requires_grad]

    def objective() -> Tensor:
        value = full_loss(model, data, loss)
        if weight_decay > 0:
            value = value + weight_decay * sum(p.square().sum() for p in params)
        return value

    def evaluate() -> tuple[float, float]:
        value = objective()
        grads = torch.autograd.grad(value, params)
        return float(value.detach()), float(max(g.abs().max() for g in grads))

    hooks = Hooks(
        model, data, loss, record_every, callback, callback_every, "lbfgs", evaluate=evaluate
    )
    chunk = hooks.record_every
    net = closed_form_structure(model, loss, closed_form and weight_decay == 0)
    if net is not None:
        return _lbfgs_closed_form(model, net, data, hooks, max_iter, tol, history_size)
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=chunk,
        max_eval=_max_eval(chunk),
        history_size=history_size,
        tolerance_grad=tol,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = objective()
        value.backward()
        return value

    first, step, stalled = optimizer.param_groups[0]["params"][0], 0, False
    while step < max_iter:
        grad_norm = hooks.at(step, force=True)
        if grad_norm <= tol or not math.isfinite(grad_norm):
            break
        if _stalled(hooks.trajectory):  # the line search makes no progress (numerical floor)
            stalled = True
            break
        optimizer.param_groups[0]["max_iter"] = min(chunk, max_iter - step)  # never past max_iter
        before = optimizer.state[first].get("n_iter", 0)
        optimizer.step(closure)
        done = optimizer.state[first].get("n_iter", 0) - before
        if done == 0:  # L-BFGS made no progress (line search stalled)
            stalled = True
            break
        step += done
    hooks.stalled = stalled
    return hooks.finish(step, tol)


def closed_form_structure(
    model: nn.Module, loss: Loss, closed_form: bool
) -> closed.TwoLayerStructure | None:
    """The model's one-hidden-layer structure when the closed-form route applies, else None.

    It applies when ``closed_form`` is true, ``loss`` is
    :func:`~symlab.train.trajectory.mse_loss` itself and
    :func:`~symlab.train.two_layer_derivatives.two_layer_structure` recognises ``model``
    (``Sequential(Linear, σ, Linear)`` with closed-form σ′, σ″); the loops here and
    :mod:`symlab.critical.criticality` then take L, ∇L, J and ∇²L from
    :mod:`symlab.train.two_layer_derivatives`."""
    if not closed_form or loss is not mse_loss:
        return None
    return closed.two_layer_structure(model)


def _max_eval(chunk: int) -> int:
    """Loss evaluations allowed in one call of ``chunk`` iterations: torch's default
    ⌊5 chunk / 4⌋ plus 25 (torch's line-search limit), so that the record cadence does not
    starve a line search (with ⌊5 chunk / 4⌋ alone, ``record_every = 1`` left each line search
    one evaluation: a rejected unit step became a zero step and the run "stalled")."""
    return chunk * 5 // 4 + 25


def _stalled(trajectory: Trajectory) -> bool:
    """The last two records have equal loss and gradient norm (the line search is stuck)."""
    losses, grads = trajectory.losses[-2:], trajectory.grad_norms[-2:]
    return len(losses) == 2 and losses[0] == losses[1] and grads[0] == grads[1]


def _lbfgs_closed_form(
    model: nn.Module, net: closed.TwoLayerStructure, data: Data, hooks: Hooks, max_iter: int,
    tol: float, history_size: int,
) -> Trajectory:  # fmt: skip
    """:func:`lbfgs`'s loop with :func:`lbfgs_step` and closed-form derivatives: the same
    calls of ``record_every`` iterations, records and stopping tests as the generic route."""
    chunk, state = hooks.record_every, LBFGSState()
    theta = flatten_params(model)

    def objective(vector: Tensor) -> tuple[Tensor, Tensor]:
        return closed.loss_and_gradient(net, vector, data)

    value, grad = objective(theta)
    value, step, stalled = float(value), 0, False
    while step < max_iter:
        _load(model, theta)  # the callback of step t sees θ_t
        grad_norm = float(grad.abs().max())
        hooks.at(step, force=True, value=value, grad_norm=grad_norm)
        if grad_norm <= tol or not math.isfinite(grad_norm):
            break
        if _stalled(hooks.trajectory):
            stalled = True
            break
        theta, value, grad, done = lbfgs_step(
            objective, theta, value, grad, state, max_iter=min(chunk, max_iter - step),
            max_eval=_max_eval(chunk), tolerance_grad=tol, tolerance_change=0.0,
            history_size=history_size,
        )  # fmt: skip
        if done == 0:  # L-BFGS made no progress (line search stalled)
            stalled = True
            break
        step += done
    _load(model, theta)
    if not (hooks.trajectory.steps and hooks.trajectory.steps[-1] == step):
        hooks.at(step, force=True, value=value, grad_norm=float(grad.abs().max()))
    hooks.stalled = stalled
    return hooks.finish(step, tol)


def _load(model: nn.Module, theta: Tensor) -> None:
    """Copy the flat parameter vector ``theta`` into ``model`` (so records and callbacks see it)."""
    with torch.no_grad():
        for p, new in zip(model.parameters(), unflatten_params(model, theta).values(), strict=True):
            p.copy_(new)


def flat_loss(model: nn.Module, data: Data, loss: Loss) -> Callable[[Tensor], Tensor]:
    """The function θ ↦ L(θ) = ``loss``(f_θ(x), y) on the whole data set ``(x, y)``, θ the flat
    parameter vector in ``model.parameters()`` order (:func:`symlab.nets.flatten_params`), for
    ``torch.func`` transforms (``grad``, ``hessian``, ``vjp``). ``model`` is evaluated through
    ``functional_call``, so its own parameters are not changed."""
    x, y = data

    def value(theta: Tensor) -> Tensor:
        return loss(functional_call(model, unflatten_params(model, theta), (x,)), y)

    return value


def _damped_start(
    model: nn.Module, data: Data, tol: float, max_iter: int, damping: float, max_params: int
) -> tuple[Data, Tensor]:
    """Checks shared by the damped methods; returns the checked data and the flat θ_0."""
    check_positive("tol", tol)
    check_positive("max_iter", max_iter, integer=True)
    check_positive("damping", damping)
    data = check_data(model, data)
    theta = flatten_params(model)
    if theta.numel() > max_params:
        raise ValueError(
            f"max_params: the model has D = {theta.numel()} parameters, more than {max_params}"
        )
    return data, theta


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
    closed_form: bool = True,
) -> Trajectory:
    """Damped Newton (Levenberg–Marquardt) for the critical-point equation g(θ) = ∇L(θ) = 0.

    With the dense Hessian H = Q Λ Qᵀ (``torch.func.hessian``, D ≤ ``max_params``), the step is

        p = −(H² + μ I)⁻¹ H g = −Q diag(λ_i / (λ_i² + μ)) Qᵀ g,

    the Gauss–Newton step for the residual g, which is well defined at the singular Hessians of
    degenerate critical points (flat directions get no step) and is attracted by minima and saddles
    alike. μ = μ_rel · max λ_i², μ_rel starts at ``damping``; a backtracking line search on ‖g‖₂
    accepts the step, else μ_rel grows ×100. Stops when the gradient ∞-norm is ≤ ``tol``.
    Cost per iteration: one Hessian (≈ D Hessian-vector products) and one O(D³) eigendecomposition.
    With ``closed_form`` and a one-hidden-layer net under the MSE, ∇L and ∇²L come from
    :mod:`symlab.train.two_layer_derivatives` (same iterates up to rounding; ``False`` forces
    ``torch.func``).
    """
    data, theta = _damped_start(model, data, tol, max_iter, damping, max_params)
    net = closed_form_structure(model, loss, closed_form)
    if net is not None:
        gradient = functools.partial(closed.gradient, net, data=data)
        hessian = functools.partial(closed.loss_hessian, net, data=data)
    else:
        value = flat_loss(model, data, loss)
        gradient, hessian = torch.func.grad(value), torch.func.hessian(value)
    hooks = Hooks(model, data, loss, 1, callback, callback_every, "newton")
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
    closed_form: bool = True,
) -> Trajectory:
    """Levenberg–Marquardt (Levenberg 1944; Marquardt 1963) for the mean squared error.

    With residuals r(θ) = vec(f_θ(X) − Y) ∈ R^{NK}, L = ‖r‖² / (NK), the Jacobian J = ∂r/∂θ
    (``torch.func.jacfwd`` when D < NK, else ``jacrev``) and its SVD J = U S Vᵀ, the step is

        p = −(JᵀJ + μ I)⁻¹ Jᵀ r = −V diag(s_i / (s_i² + μ)) Uᵀ r,   μ = μ_rel · s_1²,

    accepted when it lowers L (then μ_rel ← μ_rel / 10), else μ_rel ← 10 μ_rel. It is a descent
    method (it does not stop at saddles) and converges fast to zero-residual points even where the
    Hessian is singular (flat directions of J get no step). Stops when the gradient ∞-norm
    2‖Jᵀr‖_∞ / (NK) is ≤ ``tol``. Cost per iteration: one Jacobian (NK × D) and its SVD,
    O(NK D²). Only for the MSE loss. With ``closed_form`` and a one-hidden-layer net, r and J
    come from :mod:`symlab.train.two_layer_derivatives` (same iterates up to rounding; ``False``
    forces ``torch.func``).
    """
    data, theta = _damped_start(model, data, tol, max_iter, damping, max_params)
    x, y = data
    net = closed_form_structure(model, mse_loss, closed_form)
    if net is not None:
        residual = functools.partial(closed.residual, net, data=data)

        def jacobian(vector: Tensor) -> Tensor:
            return closed.residual_jacobian(net, vector, data)[1]
    else:

        def residual(vector: Tensor) -> Tensor:
            return (functional_call(model, unflatten_params(model, vector), (x,)) - y).reshape(-1)

        # forward mode pushes D tangents, reverse mode pulls N K cotangents: take the fewer
        jacobian = (torch.func.jacfwd if theta.numel() < y.numel() else torch.func.jacrev)(residual)
    hooks = Hooks(model, data, mse_loss, 1, callback, callback_every, "levenberg_marquardt")
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
