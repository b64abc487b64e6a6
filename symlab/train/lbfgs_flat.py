"""L-BFGS on a flat parameter vector: ``torch.optim.LBFGS``'s algorithm without its per-element
overhead.

:func:`lbfgs_step` is one call of ``torch.optim.LBFGS.step`` (strong-Wolfe line search,
``lr = 1``) for an objective θ ↦ (L(θ), ∇L(θ)) on a flat vector: the same direction (Liu &
Nocedal 1989, history of at most ``history_size`` pairs (s_i, y_i) with s_i·y_i > 1e-10, initial
scaling H_0 = s·y / y·y), the same initial step (min(1, 1/‖g‖₁) on the first iteration, then 1),
the same line search (torch7's ``lswolfe``: bracketing, cubic interpolation, c1 = 1e-4,
c2 = 0.9, at most ``max_eval`` − evaluations so far) and the same stopping tests, so that iterates
agree with ``torch.optim.LBFGS`` up to floating-point rounding. Two differences in how it is
computed: scalars are Python floats instead of 0-d tensors, and the two-loop recursion is done in
its compact form (Byrd, Nocedal & Schnabel 1994): with S, Y (k × D) the stored pairs (oldest
first), ρ_i = 1 / s_i·y_i and U the strictly upper part of S Yᵀ (U_ij = s_i·y_j for j > i),

    (I + diag(ρ) U) α = −ρ ⊙ S g,   q = −g − Yᵀα,   r = H_0 q,
    (I + diag(ρ) Uᵀ) c = α − ρ ⊙ Y r,   d = r + Sᵀ c,

which is the loop "α_i = ρ_i s_i·q, q −= α_i y_i (newest first); β_i = ρ_i y_i·r, r += (α_i − β_i)
s_i (oldest first)" with its scalar recurrences solved as two k × k triangular systems: about 15
tensor operations per iteration instead of ~7k (k = 50 by default), the same result up to
rounding. Cost per iteration: one or more objective evaluations plus O(k D + k²) flops, and
O(k² D) for S Yᵀ when a pair is stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Objective = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class LBFGSState:
    """What ``torch.optim.LBFGS`` keeps between ``step`` calls: iteration count, last direction
    and step length, the stored pairs (oldest first) with ρ and S Yᵀ, H_0's scale and the last
    gradient."""

    n_iter: int = 0
    direction: Tensor | None = None
    t: float = 1.0
    steps: Tensor | None = None
    diffs: Tensor | None = None
    rho: Tensor | None = None
    sy: Tensor | None = None
    h_diag: float = 1.0
    prev_grad: Tensor | None = None


def _direction(state: LBFGSState, grad: Tensor) -> Tensor:
    """−H g by the compact two-loop recursion (module doc)."""
    if state.steps is None:
        return torch.mul(grad.neg(), state.h_diag)
    s, y, rho = state.steps, state.diffs, state.rho[:, None]
    eye = torch.eye(rho.shape[0], dtype=grad.dtype, device=grad.device)
    coupling = torch.triu(state.sy, diagonal=1)  # U: s_i·y_j for j > i
    upper, lower = torch.addcmul(eye, rho, coupling), torch.addcmul(eye, rho, coupling.T)
    alpha = torch.linalg.solve_triangular(upper, (s @ grad)[:, None] * -rho, upper=True)
    r = torch.addmm(grad[:, None], y.T, alpha).mul_(-state.h_diag)
    rhs = alpha - rho * (y @ r)
    c = torch.linalg.solve_triangular(lower, rhs, upper=False)
    return torch.addmm(r, s.T, c)[:, 0]


def _update_memory(state: LBFGSState, grad: Tensor, history_size: int) -> None:
    """Store (s, y) = (t d, g − g_prev) when s·y > 1e-10, dropping the oldest pair when full."""
    y = grad.sub(state.prev_grad)
    s = state.direction.mul(state.t)
    ys = float(y.dot(s))
    if ys <= 1e-10:
        return
    if state.steps is None:
        steps, diffs, rho = s[None], y[None], grad.new_tensor([1.0 / ys])
    else:
        keep = 1 if state.steps.shape[0] == history_size else 0
        steps = torch.cat([state.steps[keep:], s[None]])
        diffs = torch.cat([state.diffs[keep:], y[None]])
        rho = torch.cat([state.rho[keep:], grad.new_tensor([1.0 / ys])])
    state.steps, state.diffs, state.rho = steps, diffs, rho
    state.sy = steps @ diffs.T
    state.h_diag = ys / float(y.dot(y))


def lbfgs_step(
    objective: Objective,
    theta: Tensor,
    loss: float,
    grad: Tensor,
    state: LBFGSState,
    *,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
) -> tuple[Tensor, float, Tensor, int]:
    """One ``torch.optim.LBFGS(..., line_search_fn="strong_wolfe").step`` from θ, whose loss and
    gradient (the step's first evaluation) are given. Returns (θ, L(θ), ∇L(θ), iterations done);
    ``state`` carries the memory to the next call. ``max_eval`` defaults to max_iter · 5 // 4."""
    max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
    if max_iter < 1 or max_eval < 1:
        raise ValueError(
            f"max_iter, max_eval: expected positive integers, got {max_iter} and {max_eval}"
        )
    if float(grad.abs().max()) <= tolerance_grad:
        return theta, loss, grad, 0
    current_evals, n_iter = 1, 0
    while n_iter < max_iter:
        n_iter += 1
        state.n_iter += 1
        if state.n_iter == 1:
            state.steps = state.diffs = state.rho = state.sy = None
            state.h_diag = 1.0
        else:
            _update_memory(state, grad, history_size)
        d = state.direction = _direction(state, grad)
        state.prev_grad, prev_loss = grad, loss
        t = state.t = min(1.0, 1.0 / float(grad.abs().sum())) if state.n_iter == 1 else 1.0
        gtd = float(grad.dot(d))
        if gtd > -tolerance_change:
            break

        def along(step: float, base: Tensor = theta, d: Tensor = d) -> tuple[float, Tensor]:
            value, g = objective(base.add(d, alpha=step))
            return float(value), g

        loss, grad, t, evals = strong_wolfe(along, t, d, loss, grad, gtd, current_evals, max_eval)
        state.t = t
        theta = theta.add(d, alpha=t)
        current_evals += evals
        if n_iter == max_iter or current_evals >= max_eval:
            break
        if float(grad.abs().max()) <= tolerance_grad:
            break
        if (
            float(d.mul(t).abs().max()) <= tolerance_change
            or abs(loss - prev_loss) < tolerance_change
        ):
            break
    return theta, loss, grad, n_iter


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """Minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clipped to ``bounds``."""
    xmin_bound, xmax_bound = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (xmin_bound + xmax_bound) / 2.0
    d2 = math.sqrt(d2_square)
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, xmin_bound), xmax_bound)


def strong_wolfe(
    along: Callable[[float], tuple[float, Tensor]],
    t: float,
    d: Tensor,
    f: float,
    g: Tensor,
    gtd: float,
    evals_so_far: int,
    max_eval: int,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
) -> tuple[float, Tensor, float, int]:
    """torch's ``_strong_wolfe`` (port of torch7's lswolfe) with ``max_ls = max_eval −
    evals_so_far``: bracket a step satisfying the strong Wolfe conditions
    f(t) ≤ f + c1 t gtd and |g(t)·d| ≤ −c2 gtd, then zoom by safeguarded cubic interpolation.
    ``along(t)`` = (L, ∇L) at θ + t d. Returns (f, g, t, evaluations)."""
    max_ls = max_eval - evals_so_far
    d_norm = float(d.abs().max())
    f_new, g_new = along(t)
    ls_func_evals, gtd_new = 1, float(g_new.dot(d))
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done, ls_iter = False, 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g, done = [t], [f_new], [g_new], True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        min_step, max_step, tmp = t + 0.01 * (t - t_prev), t * 10, t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, (min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = along(t)
        ls_func_evals, gtd_new, ls_iter = ls_func_evals + 1, float(g_new.dot(d)), ls_iter + 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(
            bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]
        )
        # keep t at least 10% of the bracket away from its ends when progress is insufficient
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = along(t)
        ls_func_evals, gtd_new, ls_iter = ls_func_evals + 1, float(g_new.dot(d)), ls_iter + 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = (
                    bracket_g[low_pos],
                    bracket_gtd[low_pos],
                )
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals
