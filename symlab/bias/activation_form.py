"""The L2-regularized loss written in the layers' activations (Jacot, Golikov, Hongler & Gabriel,
"Feature learning in L2-regularized DNNs: attraction/repulsion and sparsity", NeurIPS 2022,
arXiv 2205.15809, Sec. 2).

Convention (the paper's, columns are samples): for an MLP ``Sequential(Linear, σ, …, Linear)``
with L layers on inputs X ∈ R^{N×d}, Z_0^σ = [Xᵀ; β1ᵀ], Z_ℓ = W_ℓ Z_{ℓ−1}^σ ∈ R^{n_ℓ×N} (the
bias is the last column of W_ℓ, β = 1; no row without biases), Z_ℓ^σ = [σ(Z_ℓ); β1ᵀ]. The
training loss is C(Z_L) + λ ‖θ‖² with C the data loss (:func:`symlab.train.mse_loss` by default,
the objective :func:`symlab.train.train` minimizes with ``weight_decay=λ``).

Reformulation 1 (any σ): W_ℓ = Z_ℓ (Z_{ℓ−1}^σ)⁺ + W̃_ℓ with W̃_ℓ Z_{ℓ−1}^σ = 0, and the two parts
are orthogonal (the rows of the first lie in the row space of Z_{ℓ−1}^σ, those of W̃ in its
complement), so ‖W_ℓ‖² = ‖Z_ℓ (Z_{ℓ−1}^σ)⁺‖² + ‖W̃_ℓ‖², and

    L^r(Z) = C(Z_L) + λ Σ_ℓ ‖Z_ℓ (Z_{ℓ−1}^σ)⁺‖_F²  ≤  C(Z_L) + λ ‖θ‖²,

with equality iff every W̃_ℓ = 0, which holds at every local minimum (W̃ is invisible to C and
only the L2 term acts on it). :func:`optimal_weights` returns W_ℓ* = Z_ℓ (Z_{ℓ−1}^σ)⁺, the
least-norm weights that reproduce the same activations.

Reformulation 2 (σ positively 1-homogeneous): with K_ℓ = Z_ℓᵀ Z_ℓ and K_ℓ^σ = (Z_ℓ^σ)ᵀ Z_ℓ^σ
(N×N), ‖Z_ℓ (Z_{ℓ−1}^σ)⁺‖_F² = Tr[K_ℓ (K_{ℓ−1}^σ)⁺] (since A⁺A⁺ᵀ = (AᵀA)⁺), so
L^k = C(Z_L) + λ Σ_ℓ Tr[K_ℓ (K_{ℓ−1}^σ)⁺]. The identity holds for any σ; the paper states the
form for homogeneous σ, where (K_ℓ, K_ℓ^σ) ranges over a convex cone, and so it is refused here
for other activations. Everything is computed in float64; pseudo-inverses cut singular values
below max(n, N) · eps · s_max (the LAPACK default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symlab.train import mse_loss

HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity)
BETA = 1.0  # the bias row's constant β (torch's biases are the weights on a row of ones)


@dataclass(frozen=True)
class Activations:
    """The activations of an MLP on N inputs, in the paper's column convention (float64):
    ``pre[ℓ−1]`` = Z_ℓ ∈ R^{n_ℓ×N} (ℓ = 1..L) and ``post[ℓ]`` = Z_ℓ^σ (ℓ = 0..L−1, with the row
    β1ᵀ last when ``bias``), and the hidden activation modules ``sigma`` (L − 1 of them)."""

    pre: list[Tensor]
    post: list[Tensor]
    bias: bool
    sigma: list[nn.Module]

    def __post_init__(self) -> None:
        if len(self.pre) == 0 or len(self.pre) != len(self.post):
            raise ValueError(
                f"activations: expected as many pre-activations as layer inputs (>= 1), got "
                f"{len(self.pre)} and {len(self.post)}"
            )
        counts = {int(z.shape[-1]) for z in list(self.pre) + list(self.post)}
        if any(z.dim() != 2 for z in list(self.pre) + list(self.post)) or len(counts) != 1:
            shapes = [tuple(z.shape) for z in list(self.post)[:1] + list(self.pre)]
            raise ValueError(
                f"activations: expected 2-D matrices with the same number N of samples (columns), "
                f"got shapes {shapes}"
            )

    @property
    def n_samples(self) -> int:
        return int(self.pre[0].shape[1])


def mlp_layers(model: nn.Module) -> tuple[list[nn.Linear], list[nn.Module]]:
    """The Linear layers W_1..W_L and the L − 1 hidden activations of ``model``: an
    ``nn.Sequential`` alternating Linear and elementwise modules, or a model whose ``layers`` is a
    list of bias-free Linear layers applied in turn (:class:`symlab.bias.DeepLinearNetwork`)."""
    if isinstance(model, nn.Sequential):
        children = list(model)
        linears = children[0::2]
        sigmas = children[1::2]
        if (
            len(children) % 2 == 0
            or not all(isinstance(m, nn.Linear) for m in linears)
            or any(isinstance(m, nn.Linear) for m in sigmas)
        ):
            raise ValueError(
                "model: expected a Sequential(Linear, activation, ..., Linear) MLP, got "
                + ", ".join(type(m).__name__ for m in children)
            )
        return linears, sigmas
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.ModuleList) and all(isinstance(m, nn.Linear) for m in layers):
        return list(layers), [nn.Identity() for _ in range(len(layers) - 1)]
    raise ValueError(
        f"model: expected an MLP (Sequential of Linear layers and activations) or a deep linear "
        f"network, got {type(model).__name__}"
    )


def is_homogeneous(sigma: nn.Module) -> bool:
    """Whether σ is positively 1-homogeneous, σ(c x) = c σ(x) for c > 0 (ReLU, leaky ReLU, identity)."""
    return isinstance(sigma, HOMOGENEOUS)


def check_homogeneous(sigmas: Sequence[nn.Module], what: str) -> None:
    bad = [type(s).__name__ for s in sigmas if not is_homogeneous(s)]
    if bad:
        raise ValueError(
            f"model: {what} needs a positively homogeneous activation (ReLU, LeakyReLU, "
            f"Identity), got {bad[0]}"
        )


def check_lam(lam: object) -> float:
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not (lam > 0):
        raise ValueError(f"lam: expected a positive L2 coefficient λ, got {lam!r}")
    if not math.isfinite(lam):
        raise ValueError(f"lam: expected a finite positive L2 coefficient λ, got {lam!r}")
    return float(lam)


def with_bias_row(z: Tensor, bias: bool) -> Tensor:
    """[z; β1ᵀ] when ``bias`` (the paper's Z^σ), else z."""
    return torch.cat([z, torch.full((1, z.shape[1]), BETA, dtype=z.dtype)]) if bias else z


def layer_activations(model: nn.Module, x: Tensor) -> Activations:
    """Z_ℓ and Z_ℓ^σ of ``model`` on the inputs ``x`` (N, d), in float64 (module docstring)."""
    linears, sigmas = mlp_layers(model)
    bias = linears[0].bias is not None
    if any((m.bias is not None) != bias for m in linears):
        raise ValueError("model: expected biases on every layer or on none")
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != linears[0].in_features:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"X: expected inputs of shape (N, {linears[0].in_features}), got {shape}")
    post = [with_bias_row(x.detach().to(torch.float64).T, bias)]
    pre = []
    with torch.no_grad():
        for index, linear in enumerate(linears):
            z = weight_matrix(linear) @ post[-1]
            pre.append(z)
            if index < len(sigmas):
                post.append(with_bias_row(sigmas[index](z), bias))
    return Activations(pre=pre, post=post, bias=bias, sigma=list(sigmas))


def weight_matrix(linear: nn.Linear) -> Tensor:
    """[W_ℓ | b_ℓ] in float64 (W_ℓ alone without a bias)."""
    w = linear.weight.detach().to(torch.float64)
    return w if linear.bias is None else torch.cat([w, linear.bias.detach().double()[:, None]], 1)


def optimal_weights(activations: Activations) -> list[Tensor]:
    """W_ℓ* = Z_ℓ (Z_{ℓ−1}^σ)⁺ for ℓ = 1..L (bias last column when the net has biases): the
    least-Frobenius-norm weights with W_ℓ* Z_{ℓ−1}^σ = Z_ℓ when Z_ℓ's rows lie in the row space
    of Z_{ℓ−1}^σ (always the case for activations of a network)."""
    if not isinstance(activations, Activations):
        raise ValueError(
            f"activations: expected an Activations record (layer_activations), got "
            f"{type(activations).__name__}"
        )
    return [z @ torch.linalg.pinv(s) for z, s in zip(activations.pre, activations.post)]


def set_weights(model: nn.Module, weights: Sequence[Tensor]) -> None:
    """Load [W_ℓ | b_ℓ] matrices into ``model``'s Linear layers (in their dtype), in place."""
    linears, _ = mlp_layers(model)
    if len(weights) != len(linears):
        raise ValueError(f"weights: expected {len(linears)} matrices, got {len(weights)}")
    with torch.no_grad():
        for linear, w in zip(linears, weights):
            cols = linear.in_features + (linear.bias is not None)
            if tuple(w.shape) != (linear.out_features, cols):
                raise ValueError(
                    f"weights: expected shape {(linear.out_features, cols)}, got {tuple(w.shape)}"
                )
            linear.weight.copy_(w[:, : linear.in_features])
            if linear.bias is not None:
                linear.bias.copy_(w[:, -1])


def parameter_loss(
    model: nn.Module, x: Tensor, y: Tensor, lam: float, loss: Callable = mse_loss
) -> float:
    """C(f_θ(X)) + λ ‖θ‖² (float64), the objective of :func:`symlab.train.train` with
    ``weight_decay=λ`` on every parameter."""
    lam = check_lam(lam)
    linears, _ = mlp_layers(model)
    acts = layer_activations(model, x)
    data = float(loss(acts.pre[-1].T, y.detach().to(torch.float64)))
    return data + lam * sum(float(weight_matrix(m).square().sum()) for m in linears)


def activation_penalty(activations: Activations, form: str = "activations") -> Tensor:
    """Σ_ℓ ‖Z_ℓ (Z_{ℓ−1}^σ)⁺‖_F² (``form="activations"``) or Σ_ℓ Tr[K_ℓ (K_{ℓ−1}^σ)⁺]
    (``form="covariances"``, positively homogeneous σ only)."""
    if form == "activations":
        return sum(w.square().sum() for w in optimal_weights(activations))
    if form != "covariances":
        raise ValueError(f"form: expected 'activations' or 'covariances', got {form!r}")
    check_homogeneous(activations.sigma, "the covariance form")
    total = torch.zeros((), dtype=torch.float64)
    for z, s in zip(activations.pre, activations.post):
        k, k_sigma = z.T @ z, s.T @ s
        total = total + torch.trace(k @ torch.linalg.pinv(k_sigma, hermitian=True))
    return total


def activation_loss(
    model: nn.Module, x: Tensor, y: Tensor, lam: float, *, form: str = "activations",
    loss: Callable = mse_loss,
) -> float:  # fmt: skip
    """L^r = C(Z_L) + λ Σ_ℓ ‖Z_ℓ (Z_{ℓ−1}^σ)⁺‖_F² or L^k = C(Z_L) + λ Σ_ℓ Tr[K_ℓ (K_{ℓ−1}^σ)⁺]
    of ``model`` on (X, Y) (module docstring; float64). Both are ≤ :func:`parameter_loss`, with
    equality at every local minimum of the parameter loss."""
    lam = check_lam(lam)
    if form == "covariances":
        check_homogeneous(mlp_layers(model)[1], "the covariance form")
    acts = layer_activations(model, x)
    if not isinstance(y, Tensor) or y.shape != acts.pre[-1].T.shape:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"Y: expected targets of shape {tuple(acts.pre[-1].T.shape)}, got {shape}")
    data = float(loss(acts.pre[-1].T, y.detach().to(torch.float64)))
    return data + lam * float(activation_penalty(acts, form))
