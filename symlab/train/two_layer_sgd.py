"""A fused, closed-form SGD step for a stack of S two-layer networks under the mean squared error.

For the bias-free network f(x) = c · Σ_{j=1}^N a_j σ(⟨w_j, x⟩) (c = 1/N in the mean-field scaling,
1/√N in the standard one; e.g. :class:`symlab.boolean.mean_field.MeanFieldNet`), a batch of B
inputs X (B × d), targets y (B,) and L = (1/B) Σ_b (f(x_b) − y_b)², with z = W Xᵀ (N × B),
r = f(X) − y and g = (2/B) r,

    ∂L/∂a = c · σ(z) g,        ∂L/∂W = U X,   U = c · a ⊙ σ'(z) ⊙ gᵀ   (N × B, a as a column),

and one SGD step is W ← W − η_W U X, a ← a − η_a ∂L/∂a. :func:`two_layer_pass` and
:meth:`TwoLayerPass.apply_` take it on S models stacked along a leading axis (W (S, N, d),
a (S, N), X (S, B, d) or one X (B, d) shared by all), in place, with no autograd graph: one batched
product reads W (zᵀ = X Wᵀ, the faster layout), and the update is one ``baddbmm_`` that reads and
writes W once (W ← W − η_W (c a ⊙ σ'(z)) (g ⊙ X), the factor g put on the smaller (B, d) side).
That is 3 passes over the first-layer weights where autograd + ``torch.optim.SGD`` makes 5 (read W
forward, write ∂W backward, read W and ∂W and write W in the update) — the cost that dominates
when S·N·d no longer fits in cache (at large batches the two GEMMs dominate instead).

:func:`symlab.train.train_ensemble` takes this route (``closed_form=True``, the default) for
``method="sgd"`` with no momentum, no weight decay and the MSE loss, when the model declares its
form by a method ``two_layer_form()`` returning a :class:`TwoLayerForm` (or None when it cannot,
e.g. a masked first layer); the iterates are those of the autograd route up to rounding (tested
step by step in float64 and float32).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TwoLayerForm:
    """What a model declares for the fused step: its first-layer (N, d) and readout (N,) parameter
    names, the output scale c, and ``activation(z, v) -> (σ(z), v ⊙ σ'(z))`` for v broadcasting
    against z (σ' as autograd computes it, e.g. 0 at the kink of a ReLU); it may overwrite z (the
    pre-activations are not used again), and its two results must not alias each other."""

    first: str
    readout: str
    scale: float
    activation: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class TwoLayerPass:
    """The residual pass of one fused SGD step at the current parameters (module docstring):
    ``losses`` (S,) at θ_t; :meth:`grad_norms` gives each model's gradient ∞-norm there;
    :meth:`apply_` then takes the step in place. Build it with :func:`two_layer_pass`."""

    def __init__(self, w: Tensor, a: Tensor, xs: Tensor, u: Tensor, grad_a: Tensor, losses: Tensor):
        self.w, self.a, self.xs, self.u, self.grad_a = w, a, xs, u, grad_a
        self.losses = losses
        self.grad_w: Tensor | None = None

    def grad_norms(self) -> Tensor:
        """max_i |∂L_s/∂θ_i| per model; forms ∂L/∂W = U X (one more pass, reused by apply_)."""
        with torch.no_grad():
            if self.grad_w is None:
                self.grad_w = torch.bmm(self.u, self.xs)
            return torch.maximum(self.grad_w.abs().amax((1, 2)), self.grad_a.abs().amax(1))

    def apply_(self, lr_first: float, lr_readout: float) -> None:
        """W ← W − η_W U X (one ``baddbmm_``: W read and written once), a ← a − η_a ∂L/∂a."""
        with torch.no_grad():
            if self.grad_w is None:
                self.w.baddbmm_(self.u, self.xs, alpha=-lr_first)
            else:
                self.w.sub_(self.grad_w, alpha=lr_first)
            self.a.sub_(self.grad_a, alpha=lr_readout)


def two_layer_pass(
    form: TwoLayerForm, params: dict[str, Tensor], x: Tensor, y: Tensor
) -> TwoLayerPass:
    """The residual pass of one fused SGD step of the MSE on each of S stacked models.

    ``params[form.first]`` is (S, N, d), ``params[form.readout]`` (S, N); ``x`` is (S, B, d) (one
    batch per model) or (B, d) (shared by all); ``y`` is (S, B, 1) or (B, 1), like the model's
    outputs. Reads W once (z = W Xᵀ) and keeps U (S, N, B) and ∂L/∂a for the update."""
    w, a = params[form.first], params[form.readout]
    if w.ndim != 3 or a.shape != w.shape[:2]:
        raise ValueError(
            f"params: expected {form.first!r} (S, N, d) and {form.readout!r} (S, N), got "
            f"{tuple(w.shape)} and {tuple(a.shape)}"
        )
    shared = x.ndim == 2
    count, batch = w.shape[0], x.shape[-2]
    expected = (batch, 1) if shared else (count, batch, 1)
    if x.shape[-1] != w.shape[-1] or tuple(y.shape) != expected:
        raise ValueError(
            f"data: expected x (..., {batch}, {w.shape[-1]}) and targets y shaped like the "
            f"model's outputs {expected}, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    with torch.no_grad():
        y = y.to(w.dtype)[..., 0]
        xs = x.expand(count, batch, x.shape[-1]) if shared else x
        # zᵀ = X Wᵀ, (S, B, N): the layout in which the batched products ran fastest
        z = torch.bmm(xs, w.transpose(1, 2))
        # U X = (c a ⊙ σ'(z)) (g ⊙ X): the factor g goes on the (B, d) side, the smaller one
        h, u = form.activation(z, a.unsqueeze(1) * form.scale)  # (S, B, N) each
        f = torch.bmm(h, a.unsqueeze(-1)).squeeze(-1).mul_(form.scale)  # (S, B)
        r = f.sub_(y)
        losses = r.square().mean(1)
        g = r.mul_(2.0 / batch)  # ∂L/∂f
        grad_a = torch.bmm(g.unsqueeze(1), h).squeeze(1).mul_(form.scale)  # (S, N)
        xg = xs * g.unsqueeze(-1)  # (S, B, d)
    return TwoLayerPass(w, a, xg, u.transpose(1, 2), grad_a, losses)
