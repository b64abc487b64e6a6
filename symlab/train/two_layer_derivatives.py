"""Closed-form derivatives of the mean squared error of a one-hidden-layer network.

For the network f_θ(x) = A σ(W x + b) + c (``nn.Sequential(Linear(d, m), σ, Linear(m, K))``,
either bias optional; the teacher–student nets of Fukumizu & Amari 2000 and Şimşek et al., ICML
2021, are the bias-free K = 1 case f(x) = Σ_j a_j σ(w_j·x)), inputs X (N × d), targets Y (N × K),
pre-activations z_nj = w_j·x̃_n (x̃ = (x, 1) with a bias), h = σ(z), residuals r = f_θ(X) − Y and

    L(θ) = ‖r‖² / (N K),

this module gives, with plain batched matmuls and no autograd graph:

- :func:`loss_and_gradient`: L and ∇L, with δ = (r A) ⊙ σ'(z):
  ∇_W L = (2/NK) δᵀ X, ∇_b L = (2/NK) Σ_n δ_n, ∇_A L = (2/NK) rᵀ h, ∇_c L = (2/NK) Σ_n r_n;
- :func:`residual_jacobian`: r and J = ∂r/∂θ (N K × D, rows point-major):
  ∂f_nk/∂w_j = A_kj σ'(z_nj) x̃_n, ∂f_nk/∂A_k'j = δ_kk' h_nj, ∂f_nk/∂c_k' = δ_kk';
- :func:`loss_hessian`: ∇²L = (2/NK) (JᵀJ + Σ_nk r_nk ∇²f_nk), whose only second-order blocks are
  ∂²f_nk/∂w_j∂w_j = A_kj σ''(z_nj) x̃_n x̃_nᵀ and ∂²f_nk/∂w_j∂A_kj = σ'(z_nj) x̃_n.

θ is the flat vector in ``model.parameters()`` order: W (m × d, row-major), b, A (K × m), c.
Cost: O(N m d) for L and ∇L, O(N K D) memory and O(N K m d) time for J, O(N K D² + N m d²) for
the Hessian — against one autograd graph per call (L-BFGS) or D forward-mode passes
(``torch.func.jacfwd``, Hessians) on the generic route. The trainers in
:mod:`symlab.train.second_order` use these when :func:`two_layer_structure` recognises the model.
Activations: those with closed-form σ' and σ'' in :mod:`symlab.nets.activation_calculus`
(:func:`symlab.nets.supports_closed_form`: ``nn.Tanh``, ``nn.Sigmoid``, ``nn.ReLU`` and
``nn.LeakyReLU`` (σ'' = 0; σ'(0) = 0, resp. the slope, as in autograd), ``nn.Softplus`` (with its
``beta`` and its linear branch above ``threshold``), ``nn.Identity``, and any module with a method
``derivatives(z, order) -> (σ(z), σ'(z), σ''(z))[: order + 1]``), matched by exact type.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symlab.nets import activation_derivatives, supports_closed_form
from symlab.train.trajectory import Data


@dataclass(frozen=True)
class TwoLayerStructure:
    """Shapes of ``Sequential(Linear(d, m), activation, Linear(m, K))`` and where each block of
    θ sits: W = θ[:m d], b = θ[m d : m d + m] (if ``bias1``), A, then c (if ``bias2``)."""

    d: int
    m: int
    k: int
    bias1: bool
    bias2: bool
    activation: nn.Module

    @property
    def n_params(self) -> int:
        return self.m * (self.d + self.bias1) + self.k * (self.m + self.bias2)

    def split(self, theta: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """(W, b, A, c) as views of θ (b, c None without biases)."""
        d, m, k = self.d, self.m, self.k
        w, offset = theta[: m * d].view(m, d), m * d
        b = theta[offset : offset + m] if self.bias1 else None
        offset += m * self.bias1
        a = theta[offset : offset + k * m].view(k, m)
        c = theta[offset + k * m :] if self.bias2 else None
        return w, b, a, c


def two_layer_structure(model: nn.Module) -> TwoLayerStructure | None:
    """The structure of ``model`` if it is exactly ``Sequential(Linear, σ, Linear)`` with a
    supported activation σ and all parameters trainable, else None (use the generic route)."""
    if type(model) is not nn.Sequential or len(model) != 3:
        return None
    first, activation, second = model
    if not (
        type(first) is nn.Linear and type(second) is nn.Linear and supports_closed_form(activation)
    ):
        return None
    if second.in_features != first.out_features or any(p.is_complex() for p in model.parameters()):
        return None
    if not all(p.requires_grad for p in model.parameters()):
        return None
    if len({(p.dtype, p.device) for p in model.parameters()}) != 1:
        return None
    return TwoLayerStructure(
        first.in_features, first.out_features, second.out_features,
        first.bias is not None, second.bias is not None, activation,
    )  # fmt: skip


def _forward(
    net: TwoLayerStructure, theta: Tensor, x: Tensor, order: int
) -> tuple[Tensor, list[Tensor]]:
    """Output f_θ(X) (N × K) and [h, σ'(z), σ''(z)][: order + 1]."""
    w, b, a, c = net.split(theta)
    z = x @ w.T if b is None else torch.addmm(b, x, w.T)
    values = activation_derivatives(net.activation, z, order)
    h = values[0]
    out = h @ a.T if c is None else torch.addmm(c, h, a.T)
    return out, list(values)


def _check(net: TwoLayerStructure, theta: Tensor, data: Data) -> tuple[Tensor, Tensor]:
    x, y = data
    if theta.ndim != 1 or theta.numel() != net.n_params:
        raise ValueError(
            f"theta: expected a flat vector of {net.n_params} parameters, got shape "
            f"{tuple(theta.shape)}"
        )
    if x.ndim != 2 or x.shape[1] != net.d or y.shape != (x.shape[0], net.k):
        raise ValueError(
            f"data: expected x (N, {net.d}) and y (N, {net.k}), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    if x.dtype != theta.dtype or y.dtype != theta.dtype:
        raise ValueError(
            f"data: expected x and y of theta's dtype {theta.dtype}, got {x.dtype} and {y.dtype}"
        )
    return x, y


def residual(net: TwoLayerStructure, theta: Tensor, data: Data) -> Tensor:
    """r(θ) = vec(f_θ(X) − Y), shape (N K,), point-major. Cost O(N m (d + K))."""
    x, y = _check(net, theta, data)
    return (_forward(net, theta, x, 0)[0] - y).reshape(-1)


def loss_and_gradient(net: TwoLayerStructure, theta: Tensor, data: Data) -> tuple[Tensor, Tensor]:
    """(L(θ), ∇L(θ)) of the mean squared error (module doc). Cost O(N m (d + K)).

    Computed in the transposed layout Z = W Xᵀ (m × N), the cheaper one for N ≫ m."""
    x, y = _check(net, theta, data)
    w, b, a, c = net.split(theta)
    z = w @ x.T if b is None else torch.addmm(b[:, None], w, x.T)
    h, d1 = activation_derivatives(net.activation, z, 1)
    out = a @ h if c is None else torch.addmm(c[:, None], a, h)
    r = out - y.T
    delta = (a.T @ r) * d1
    parts = [(delta @ x).reshape(-1)]
    if net.bias1:
        parts.append(delta.sum(1))
    parts.append((r @ h.T).reshape(-1))
    if net.bias2:
        parts.append(r.sum(1))
    return nn.functional.mse_loss(out, y.T), torch.cat(parts).mul_(2.0 / r.numel())


def gradient(net: TwoLayerStructure, theta: Tensor, data: Data) -> Tensor:
    """∇L(θ) (see :func:`loss_and_gradient`)."""
    return loss_and_gradient(net, theta, data)[1]


def _input_block(net: TwoLayerStructure, x: Tensor) -> Tensor:
    """x̃ = (x, 1) with a first-layer bias, else x (N × p, p = d + bias)."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1) if net.bias1 else x


def residual_jacobian(net: TwoLayerStructure, theta: Tensor, data: Data) -> tuple[Tensor, Tensor]:
    """(r(θ), J(θ)) with J = ∂r/∂θ of shape (N K, D), rows point-major (module doc).
    Cost O(N K D) time and memory."""
    x, y = _check(net, theta, data)
    out, (h, d1) = _forward(net, theta, x, 1)
    return (out - y).reshape(-1), _jacobian(net, net.split(theta)[2], x, h, d1)


def _jacobian(net: TwoLayerStructure, a: Tensor, x: Tensor, h: Tensor, d1: Tensor) -> Tensor:
    """J = ∂f/∂θ (N K, D) from the output weights A, the inputs and h = σ(z), d1 = σ'(z)."""
    n, d, m, k = x.shape[0], net.d, net.m, net.k
    xt = _input_block(net, x)
    # ∂f_nk/∂(w_j, b_j) = A_kj σ'(z_nj) x̃_n: (N, K, m, p)
    inner = (a[None, :, :] * d1[:, None, :])[..., None] * xt[:, None, None, :]
    blocks = [inner[..., :d].reshape(n * k, m * d)]
    if net.bias1:
        blocks.append(inner[..., d].reshape(n * k, m))
    eye = torch.eye(k, dtype=x.dtype, device=x.device)
    blocks.append((eye[None, :, :, None] * h[:, None, None, :]).reshape(n * k, k * m))
    if net.bias2:
        blocks.append(eye.expand(n, k, k).reshape(n * k, k))
    return torch.cat(blocks, dim=1)


def _neuron_indices(net: TwoLayerStructure, device: torch.device) -> tuple[Tensor, Tensor]:
    """Flat indices of (w_j, b_j) per neuron (m × p) and of A_kj per neuron (m × K)."""
    m, d, k = net.m, net.d, net.k
    rows = torch.arange(m, device=device)
    inner = rows[:, None] * d + torch.arange(d, device=device)[None, :]
    if net.bias1:
        inner = torch.cat([inner, (m * d + rows)[:, None]], dim=1)
    offset = m * (d + net.bias1)
    outer = offset + torch.arange(k, device=device)[None, :] * m + rows[:, None]
    return inner, outer


def loss_hessian(net: TwoLayerStructure, theta: Tensor, data: Data) -> Tensor:
    """∇²L(θ) = (2/NK)(JᵀJ + R), R the residual-weighted second derivatives (module doc),
    shape (D, D). Cost O(N K D² + N m p²), p = d + bias."""
    x, y = _check(net, theta, data)
    out, (h, d1, d2) = _forward(net, theta, x, 2)
    r = out - y
    a = net.split(theta)[2]
    jac = _jacobian(net, a, x, h, d1)
    xt = _input_block(net, x)
    inner, outer = _neuron_indices(net, x.device)
    p = inner.shape[1]
    hess = jac.T @ jac
    # R[w_j, w_j] = Σ_n (r_n · A_:j) σ''(z_nj) x̃_n x̃_nᵀ
    curvature = torch.einsum("nj,na,nb->jab", (r @ a) * d2, xt, xt)
    rows, cols = inner[:, :, None].expand(-1, -1, p), inner[:, None, :].expand(-1, p, -1)
    hess.index_put_((rows, cols), curvature, accumulate=True)
    # R[w_j, A_kj] = Σ_n r_nk σ'(z_nj) x̃_n (and its transpose)
    cross = torch.einsum("nk,nj,na->jak", r, d1, xt)
    rows = inner[:, :, None].expand(-1, -1, net.k)
    cols = outer[:, None, :].expand(-1, p, -1)
    hess.index_put_((rows, cols), cross, accumulate=True)
    hess.index_put_((cols, rows), cross, accumulate=True)
    return hess * (2.0 / r.numel())
