"""Criticality checks: gradient norm, Hessian and its inertia, training to a critical point.

A point θ is (numerically) critical when the ∞-norm of the gradient of the mean loss is ≤ tol
(MLPGradientFlow.jl's convention ``maximum(abs, ∇L)/N`` for a summed loss; Brea et al. 2023).
Its type is read from the **inertia** of the Hessian H = ∇²L(θ): the numbers of negative, zero
(|λ| ≤ tol) and positive eigenvalues. By Sylvester's law of inertia these counts are invariant
under linear reparametrisation, which is what makes the embedding principle's "inertia never
decreases under a critical embedding" statement checkable (Zhang, Zhang, Luo, Xu, NeurIPS 2021,
arXiv 2105.14573; JML 2022, arXiv 2111.15527). Splitting a neuron (Fukumizu & Amari 2000) of a
two-layer scalar-output net at a critical point adds exactly

    inertia(α(1 − α) B) + (0, 1, 0),   B = E_n[∂ℓ/∂f(x_n) · a_s σ''(w_s·x_n) x̃_n x̃_nᵀ]

(x̃ = x, or (x, 1) with a bias), see :func:`splitting_matrix` and :func:`predicted_split_inertia`.

Dense Hessians use ``torch.func.hessian`` over the flat parameter vector (``functional_call``);
Hessian-vector products are vector-Jacobian products of the gradient map ``torch.func.grad(L)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from symlab.nets import autograd_derivatives
from symlab.nets.feedforward import linear_layers
from symlab.nets.params import flatten_params
from symlab.train import two_layer_derivatives as closed
from symlab.train.second_order import (
    closed_form_structure,
    flat_loss,
    lbfgs,
    levenberg_marquardt,
    newton,
)
from symlab.train.trajectory import Data, Loss, check_data, loss_and_grad_norm, mse_loss

Method = Literal["auto", "dense", "lanczos"]


def gradient_norm(
    model: nn.Module, data: Data, *, loss: Loss = mse_loss, ord: float = math.inf
) -> float:
    """‖∇L(θ)‖_ord of the full-batch mean loss (default the ∞-norm). Cost: one backward pass."""
    data = check_data(model, data)
    value = loss(model(data[0]), data[1])
    grads = torch.autograd.grad(value, [p for p in model.parameters()])
    return float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]), ord=ord))


def hessian(
    model: nn.Module, data: Data, *, loss: Loss = mse_loss, closed_form: bool = True
) -> Tensor:
    """Dense Hessian ∇²L(θ), shape (D, D), in the flat parameter order of ``flatten_params``.

    ``torch.func.hessian`` (forward-over-reverse) of θ ↦ L(functional_call(model, θ, x), y).
    Cost: O(D) Hessian-vector products (vectorised), memory O(D²) plus D activations copies.
    With ``closed_form`` (default), a one-hidden-layer net under the MSE gets the closed form
    (2/NK)(JᵀJ + Σ r ∇²f) of :func:`symlab.train.two_layer_derivatives.loss_hessian` instead
    (equal up to rounding; O(N K D²)).
    """
    data = check_data(model, data)
    theta = flatten_params(model)
    net = closed_form_structure(model, loss, closed_form)
    if net is not None:
        return closed.loss_hessian(net, theta, data)
    return torch.func.hessian(flat_loss(model, data, loss))(theta).detach()


def hessian_vector_product(model: nn.Module, data: Data, *, loss: Loss = mse_loss):
    """The map v ↦ ∇²L(θ) v at the model's current θ (reverse-over-reverse through the gradient
    map, linearised once: ≈ 2 backward passes per product, memory O(D + graph))."""
    data = check_data(model, data)
    theta = flatten_params(model)
    # reverse-over-reverse, linearised once: vjp of the gradient map is H v since H = Hᵀ
    _, vjp_fn = torch.func.vjp(torch.func.grad(flat_loss(model, data, loss)), theta)

    def product(v: Tensor) -> Tensor:
        return vjp_fn(v.to(theta.dtype))[0].detach()

    return product


@dataclass(frozen=True)
class Inertia:
    """Hessian inertia (negative, zero, positive) at tolerance ``tol`` (|λ| ≤ tol counts as zero).

    ``gap`` = (smallest |λ| above tol) / (largest |λ| at or below tol), inf when one side is empty;
    ``ambiguous`` when gap < 100. ``eigenvalues``: all of them (dense) or those computed (Lanczos,
    ascending). ``complete`` is False when Lanczos did not reach past tol, so that ``negative`` and
    ``zero`` are only lower bounds and ``positive`` an upper bound.
    """

    negative: int
    zero: int
    positive: int
    tol: float
    gap: float
    method: str
    complete: bool = True
    eigenvalues: Tensor | None = field(default=None, repr=False)

    @property
    def ambiguous(self) -> bool:
        return self.gap < 100.0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.negative, self.zero, self.positive)


def _gap(abs_values: np.ndarray, tol: float) -> float:
    below, above = abs_values[abs_values <= tol], abs_values[abs_values > tol]
    if below.size == 0 or above.size == 0:
        return math.inf
    return float(above.min() / below.max()) if below.max() > 0 else math.inf


def _default_tol(scale: float, dtype: torch.dtype) -> float:
    # sqrt(eps) relative: perturbations of exact zeros at a critical point with gradient ~ g are
    # O(g · third derivative / curvature), far above D·eps·λ_max at practical gradient norms.
    return math.sqrt(torch.finfo(dtype).eps) * max(scale, torch.finfo(dtype).tiny)


def hessian_inertia(
    model: nn.Module,
    data: Data,
    *,
    tol: float | None = None,
    method: Method = "auto",
    loss: Loss = mse_loss,
    k: int = 16,
    dense_max_params: int = 1500,
    return_eigenvalues: bool = True,
    seed: int = 0,
    closed_form: bool = True,
) -> Inertia:
    """Numbers of negative, zero (|λ| ≤ tol) and positive eigenvalues of H = ∇²L(θ).

    ``tol`` defaults to sqrt(eps) · max|λ| (eps of the model's dtype).

    - ``"dense"``: H from :func:`hessian`, then ``torch.linalg.eigvalsh``; exact counts up to
      rounding. Cost O(D) HVPs + O(D³), memory O(D²).
    - ``"lanczos"``: matrix-free. ARPACK (``scipy.sparse.linalg.eigsh``, implicitly restarted
      Lanczos) on a ``LinearOperator`` of Hessian-vector products computes max|λ| (which="LM")
      and the k algebraically smallest eigenvalues (the largest of c I − H, c = 1.1 max|λ|, to
      relative accuracy 1e-12 of c), doubling k until the largest of them exceeds tol, i.e. until every eigenvalue ≤ tol has been found; then negative and zero
      are counted among them and positive = D − negative − zero. Limits: k stops at
      min(D − 1, 4 · initial k · 8); if the bottom of the spectrum is not passed by then,
      ``complete=False``; exactly repeated eigenvalues (multiplicity > 1, e.g. many zero modes)
      are found only through ARPACK's restarts and rounding, so a multiplicity can be
      under-counted — check against dense on a model of the same kind. Cost per k: O(k · iters)
      HVPs, memory O(D · ncv); k must exceed #negative + #zero, so at embedded (highly
      degenerate) critical points Lanczos is far slower than dense (benchmarks/bench_hessian.py:
      5–120 s vs 0.02–0.2 s for D = 97–369). Use it only where the dense D × D Hessian does not
      fit and few eigenvalues are ≤ tol.
    - ``"auto"``: dense when D ≤ ``dense_max_params``, else Lanczos.

    ``closed_form`` is passed to :func:`hessian` (dense route).
    """
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"method: expected 'auto', 'dense' or 'lanczos', got {method!r}")
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol: expected a non-negative number or None, got {tol!r}")
    dim = sum(p.numel() for p in model.parameters())
    dtype = next(model.parameters()).dtype
    if method == "auto":
        method = "dense" if dim <= dense_max_params else "lanczos"
    if method == "lanczos" and dim < 3:
        method = "dense"
    if method == "dense":
        lam = torch.linalg.eigvalsh(hessian(model, data, loss=loss, closed_form=closed_form))
        values = lam.double().cpu().numpy()
        if tol is None:
            tol = _default_tol(float(np.abs(values).max()), dtype)
        neg, zero = int((values < -tol).sum()), int((np.abs(values) <= tol).sum())
        return Inertia(
            neg, zero, dim - neg - zero, float(tol), _gap(np.abs(values), tol), "dense", True,
            lam if return_eigenvalues else None,
        )  # fmt: skip
    return _lanczos_inertia(model, data, tol, loss, k, dim, dtype, return_eigenvalues, seed)


def _lanczos_inertia(model, data, tol, loss, k, dim, dtype, return_eigenvalues, seed):
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k: expected a positive integer, got {k!r}")
    product = hessian_vector_product(model, data, loss=loss)

    def matvec(v: np.ndarray) -> np.ndarray:
        out = product(torch.from_numpy(np.ascontiguousarray(v).reshape(-1)))
        return out.double().cpu().numpy()

    op = LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(dim)
    top = float(
        np.abs(eigsh(op, k=1, which="LM", v0=v0, tol=1e-6, return_eigenvectors=False)).max()
    )
    if tol is None:
        tol = _default_tol(top, dtype)
    # the bottom of H is the top of c I − H (c ≥ λ_max): ARPACK's relative accuracy then holds
    # relative to c, not to the near-zero eigenvalues themselves (which would never converge)
    shift = 1.1 * top
    shifted = LinearOperator((dim, dim), matvec=lambda v: shift * v - matvec(v), dtype=np.float64)
    k_now, k_max = min(k, dim - 1), min(dim - 1, 32 * k)
    while True:
        ncv = min(dim, max(2 * k_now + 1, k_now + 20))
        try:
            values = eigsh(
                shifted, k=k_now, which="LA", v0=v0, ncv=ncv, tol=1e-12, return_eigenvectors=False
            )
        except ArpackNoConvergence as error:  # keep what converged
            values = error.eigenvalues
        values = np.sort(shift - np.asarray(values, dtype=np.float64))
        complete = bool(values.size and values.max() > tol)
        if complete or k_now >= k_max:
            break
        k_now = min(2 * k_now, k_max)
    neg, zero = int((values < -tol).sum()), int((np.abs(values) <= tol).sum())
    abs_values = np.concatenate([np.abs(values), [top]])
    return Inertia(
        neg, zero, dim - neg - zero, float(tol), _gap(abs_values, tol), "lanczos", complete,
        torch.from_numpy(values) if return_eigenvalues else None,
    )  # fmt: skip


@dataclass(frozen=True)
class CriticalPoint:
    """Result of :func:`train_to_critical` (the model itself was trained in place)."""

    converged: bool
    loss: float
    grad_norm: float
    lbfgs_iterations: int
    newton_iterations: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def train_to_critical(
    model: nn.Module,
    data: Data,
    *,
    tol: float = 1e-10,
    max_iter: int = 5000,
    newton_max_params: int = 1500,
    newton_max_iter: int = 50,
    loss: Loss = mse_loss,
    closed_form: bool = True,
) -> CriticalPoint:
    """Train ``model`` in place to a point with gradient ∞-norm ≤ ``tol`` (float64 advised).

    L-BFGS (strong Wolfe) for up to ``max_iter`` iterations; then, when D ≤ ``newton_max_params``,
    Levenberg–Marquardt on the residuals (MSE loss only; fast at zero-residual points, where the
    Hessian is singular) and damped Newton on ∇L = 0 towards tol / 1000 (it converges to the
    nearby critical point, minimum or saddle; see ``symlab.train.newton``). ``converged`` means
    gradient ∞-norm ≤ tol at the end; ``newton_iterations`` counts both second-order polishers.
    ``closed_form`` (default) lets the three loops use the closed-form derivatives of a
    one-hidden-layer net (:mod:`symlab.train.two_layer_derivatives`; same iterates up to
    rounding, several times faster); ``False`` forces the generic autograd / ``torch.func`` route.
    """
    data = check_data(model, data)
    first = lbfgs(
        model, data, max_iter=max_iter, tol=tol, loss=loss, record_every=50,
        closed_form=closed_form,
    )  # fmt: skip
    polish_steps = 0
    if sum(p.numel() for p in model.parameters()) <= newton_max_params:
        if loss is mse_loss and first.final_grad_norm > tol * 1e-3:
            polish_steps += levenberg_marquardt(
                model, data, tol=tol * 1e-3, max_iter=4 * newton_max_iter, closed_form=closed_form
            ).n_steps
        polish = newton(
            model, data, tol=tol * 1e-3, max_iter=newton_max_iter, loss=loss,
            closed_form=closed_form,
        )  # fmt: skip
        polish_steps += polish.n_steps
    value, grad_norm = loss_and_grad_norm(model, data, loss)
    finite = math.isfinite(grad_norm) and math.isfinite(value)
    return CriticalPoint(finite and grad_norm <= tol, value, grad_norm, first.n_steps, polish_steps)


def _two_layer(model: nn.Module) -> tuple[nn.Linear, nn.Module, nn.Linear]:
    layers = linear_layers(model)
    children = list(model.children()) if isinstance(model, nn.Sequential) else []
    if len(layers) != 2 or len(children) != 3 or layers[1].out_features != 1:
        raise ValueError(
            "model: expected a two-layer Sequential(Linear, activation, Linear) with one output"
        )
    return layers[0], children[1], layers[1]


def splitting_matrix(model: nn.Module, data: Data, neuron: int, *, loss: Loss = mse_loss) -> Tensor:
    """Fukumizu–Amari's stability matrix of hidden ``neuron`` s of a two-layer scalar-output net,

        B = Σ_n ∂L/∂f(x_n) · a_s σ''(w_s·x̃_n) x̃_n x̃_nᵀ,   x̃_n = (x_n, 1) with a bias, else x_n,

    where ∂L/∂f(x_n) is the derivative of the (mean) loss with respect to the n-th output (it
    carries the 1/N). At a critical point, splitting s into (w_s, α a_s), (w_s, (1 − α) a_s) adds
    inertia(α(1 − α) B) + (0, 1, 0) to the Hessian's inertia (Fukumizu & Amari 2000, Thm 3; exact
    by Sylvester's law, see :func:`predicted_split_inertia`). σ'' comes from autograd
    (:func:`symlab.nets.autograd_derivatives`), so any twice-differentiable elementwise activation
    module works. Cost O(N d²).
    """
    first, activation, second = _two_layer(model)
    x, y = check_data(model, data)
    if not 0 <= neuron < first.out_features:
        raise ValueError(f"neuron: expected an index in [0, {first.out_features}), got {neuron}")
    output = model(x).detach().requires_grad_(True)
    (dloss,) = torch.autograd.grad(loss(output, y), output)
    pre = (x @ first.weight[neuron].detach()).detach()
    if first.bias is not None:
        pre = pre + first.bias[neuron].detach()
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    d2 = autograd_derivatives(activation, pre)[2]
    weights = dloss[:, 0] * second.weight[0, neuron].detach() * d2
    return (x * weights[:, None]).T @ x


def predicted_split_inertia(
    narrow: Inertia, matrix: Tensor, alpha: float, tol: float | None = None
) -> tuple[int, int, int]:
    """Inertia after splitting: ``narrow`` + inertia(α(1 − α) B) + (0, 1, 0) (see module doc).

    Eigenvalues of α(1 − α) B with |·| ≤ tol (default ``narrow.tol``) count as zero; at α ∈ {0, 1}
    the whole block is zero (the silenced copy's incoming weights become flat)."""
    tol = narrow.tol if tol is None else tol
    values = alpha * (1 - alpha) * torch.linalg.eigvalsh(matrix.double())
    neg, zero = int((values < -tol).sum()), int((values.abs() <= tol).sum())
    pos = values.numel() - neg - zero
    return (narrow.negative + neg, narrow.zero + zero + 1, narrow.positive + pos)
