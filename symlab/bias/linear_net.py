"""Deep linear networks trained on low-rank matrix tasks: the model, the tasks and the step size.

Model (Jacot, Ged, Şimşek, Hongler & Gabriel 2021, arXiv 2106.15933; Tu, Aranguri & Jacot,
NeurIPS 2024, arXiv 2405.17580): a stack of L bias-free linear layers
W_1 ∈ R^{w×d_in}, W_2, …, W_{L−1} ∈ R^{w×w}, W_L ∈ R^{d_out×w}, entries i.i.d. N(0, σ²), whose
end-to-end matrix is A_θ = W_L ⋯ W_1. Tu et al. scale both with the dimension d:
w = d^{γ_w}, σ² = d^{γ_σ²}.

Tasks on a d×d target A* of rank k (:func:`low_rank_task`):

- Tu et al.'s noisy target: A* = C Dᵀ with C, D ∈ R^{d×k} entries N(0, k^{−1/2}) (variance), so
  that E A*_ij² = 1; observations Y = A* + E, E i.i.d. N(0, 1);
- a separated spectrum: A* = U diag(s) Vᵀ with U, V Haar-orthonormal d×k frames and
  s_i ∝ ρ^{i−1}, scaled so that ‖A*‖_F = d (the same mean-square entry 1), which makes the
  saddle-to-saddle plateaus of Jacot et al. distinct;
- matrix completion: only a random fraction of the entries is observed (mask M).

Training objective C(A) = ½ ‖M ⊙ (A − Y)‖_F² (the gradient Tu et al.'s code steps with);
reported errors are the mean squared errors per entry, train = mean over the observed entries of
(A − Y)², test = ‖A − A*‖_F² / d² (Tu et al.: ‖A − (A* + E)‖_F²/d² and ‖A − A*‖_F²/d² at full
observation). The network learns the matrix as a function: on the inputs X = I_{d_in} its outputs
are X Aᵀ = Aᵀ, so the data pair is (I, Yᵀ) and every loop of :mod:`symlab.train` applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _positive_int(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}")
    return float(value)


def end_to_end_matrix(weights: Sequence[Tensor]) -> Tensor:
    """A = W_L ⋯ W_1 for weights [W_1, …, W_L] (W_ℓ of shape (n_ℓ, n_{ℓ−1})); batched weights
    (S, n_ℓ, n_{ℓ−1}) give (S, d_out, d_in). Cost: L − 1 matrix products."""
    if len(weights) == 0:
        raise ValueError("weights: expected at least one weight matrix")
    product = weights[0]
    for w in weights[1:]:
        if w.shape[-1] != product.shape[-2]:
            raise ValueError(
                f"weights: expected W_(l+1) with {product.shape[-2]} columns, got shape "
                f"{tuple(w.shape)}"
            )
        product = w @ product
    return product


class DeepLinearNetwork(nn.Module):
    """f(x) = A_θ x with A_θ = W_L ⋯ W_1: a stack of bias-free ``nn.Linear`` layers
    (``layers[ℓ−1].weight`` = W_ℓ), entries i.i.d. N(0, σ²) at initialization.

    The forward pass multiplies the weights first and the inputs last, x ↦ x (W_L ⋯ W_1)ᵀ: the
    same function as applying the layers in turn, at the cost of one product chain
    (about d_in·d_out·w for L = 2) plus N·d_in·d_out, which is cheaper when the inputs are the
    d × d identity of a matrix task (one d²w product instead of two)."""

    def __init__(
        self, d_in: int, d_out: int, width: int, depth: int, variance: float,
        seed: int | None = None, dtype: torch.dtype = torch.float32,
    ):  # fmt: skip
        super().__init__()
        for name, value in (("d_in", d_in), ("d_out", d_out), ("width", width)):
            _positive_int(name, value)
        _positive_int("depth", depth, low=2)
        std = math.sqrt(_positive("variance", variance))
        sizes = [d_in] + [width] * (depth - 1) + [d_out]
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        self.layers = nn.ModuleList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layer = nn.Linear(fan_in, fan_out, bias=False, dtype=dtype)
            with torch.no_grad():
                weight = torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64)
                layer.weight.copy_(std * weight)
            self.layers.append(layer)

    def end_to_end(self) -> Tensor:
        """A_θ = W_L ⋯ W_1 (differentiable)."""
        return end_to_end_matrix([layer.weight for layer in self.layers])

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.end_to_end().T


@dataclass(frozen=True)
class MatrixTask:
    """A d×d low-rank task: target A*, observations Y = A* + noise, mask M of observed entries
    (None: all observed). See the module docstring for the errors."""

    target: Tensor
    observations: Tensor
    mask: Tensor | None

    @property
    def dim(self) -> int:
        return int(self.target.shape[0])

    def to(self, device: torch.device | str) -> MatrixTask:
        """The same task with its tensors on ``device``."""
        mask = None if self.mask is None else self.mask.to(device)
        return MatrixTask(self.target.to(device), self.observations.to(device), mask)

    def data(self) -> tuple[Tensor, Tensor]:
        """(X, y) = (I_d, Yᵀ): a network f with f(X) = Aᵀ fits A to Y."""
        eye = torch.eye(self.target.shape[1], dtype=self.target.dtype, device=self.target.device)
        return eye, self.observations.T.contiguous()

    def loss(self) -> Callable[[Tensor, Tensor], Tensor]:
        """The objective on (f(X), y) = (Aᵀ, Yᵀ): ½ ‖Mᵀ ⊙ (Aᵀ − Yᵀ)‖_F², for :mod:`symlab.train`."""
        return half_squared_error(None if self.mask is None else self.mask.T.contiguous())

    def gradient(self, a: Tensor) -> Tensor:
        """∇C(A) = M ⊙ (A − Y) for C(A) = ½ ‖M ⊙ (A − Y)‖_F²."""
        residual = a - self.observations.to(a.dtype)
        return residual if self.mask is None else residual * self.mask.to(a.dtype)

    def train_error(self, a: Tensor) -> Tensor:
        """Mean over the observed entries of (A − Y)² (Tu et al.: ‖A − (A* + E)‖_F² / d²)."""
        residual = (a - self.observations.to(a.dtype)).square()
        if self.mask is None:
            return residual.mean(dim=(-2, -1))
        mask = self.mask.to(a.dtype)
        return (residual * mask).sum(dim=(-2, -1)) / mask.sum()

    def test_error(self, a: Tensor) -> Tensor:
        """‖A − A*‖_F² / d² (mean over all entries)."""
        return (a - self.target.to(a.dtype)).square().mean(dim=(-2, -1))


def half_squared_error(mask: Tensor | None = None) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss (output, target) ↦ ½ Σ_ij M_ij (output_ij − target_ij)² (M = 1 when None)."""

    def loss(output: Tensor, target: Tensor) -> Tensor:
        if output.shape != target.shape:
            raise ValueError(
                f"data: expected targets shaped like the outputs {tuple(output.shape)}, got "
                f"{tuple(target.shape)}"
            )
        residual = output - target
        if mask is not None:
            residual = residual * mask.to(residual.dtype)
        return 0.5 * residual.square().sum()

    return loss


def low_rank_task(
    dim: int, rank: int, *, spectrum: str = "gaussian", ratio: float = 0.5,
    noise: float = 0.0, observed: float = 1.0, seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> MatrixTask:  # fmt: skip
    """A rank-``rank`` d×d target and its observations (module docstring).

    ``spectrum="gaussian"``: A* = C Dᵀ, C, D entries N(0, k^{−1/2}) (Tu et al.);
    ``spectrum="geometric"``: singular values s_i ∝ ``ratio``^{i−1} with ‖A*‖_F = d.
    ``noise``: standard deviation of the i.i.d. Gaussian E added to A* (Tu et al.: 1).
    ``observed``: each entry is observed independently with this probability (1: all)."""
    dim = _positive_int("dim", dim)
    rank = _positive_int("rank", rank)
    if rank > dim:
        raise ValueError(f"rank: expected an integer <= dim = {dim}, got {rank}")
    if not (isinstance(noise, int | float) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise: expected a finite number >= 0, got {noise!r}")
    if not (isinstance(observed, int | float) and 0 < observed <= 1):
        raise ValueError(f"observed: expected a fraction in (0, 1], got {observed!r}")
    g = torch.Generator().manual_seed(int(seed))
    if spectrum == "gaussian":
        c, d = rank ** (-0.25) * torch.randn(2, dim, rank, generator=g, dtype=torch.float64)
        target = c @ d.T
    elif spectrum == "geometric":
        if not (isinstance(ratio, int | float) and 0 < ratio <= 1):
            raise ValueError(f"ratio: expected a number in (0, 1], got {ratio!r}")
        u = torch.linalg.qr(torch.randn(dim, rank, generator=g, dtype=torch.float64))[0]
        v = torch.linalg.qr(torch.randn(dim, rank, generator=g, dtype=torch.float64))[0]
        s = torch.tensor([ratio**i for i in range(rank)], dtype=torch.float64)
        s = s * dim / s.norm()
        target = (u * s) @ v.T
    else:
        raise ValueError(f"spectrum: expected 'gaussian' or 'geometric', got {spectrum!r}")
    noise_matrix = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    mask = None
    if observed < 1:
        mask = torch.rand(dim, dim, generator=g, dtype=torch.float64) < observed
    return MatrixTask(target.to(dtype), (target + noise * noise_matrix).to(dtype), mask)


def init_variance(scale: float, depth: int, width: int, dim: int, target_norm: float) -> float:
    """σ² such that the root-mean-square singular value of A_0 = W_L ⋯ W_1 is ``scale`` ·
    ``target_norm``, for a d×d net of width w: E ‖A_0‖_F² = d² σ^{2L} w^{L−1}, so
    σ² = (scale² · target_norm² / (d · w^{L−1}))^{1/L}."""
    _positive("scale", scale), _positive("target_norm", target_norm)
    depth = _positive_int("depth", depth, low=2)
    width, dim = _positive_int("width", width), _positive_int("dim", dim)
    log_var = 2 * math.log(scale * target_norm) - math.log(dim) - (depth - 1) * math.log(width)
    return math.exp(log_var / depth)


def dln_learning_rate(
    depth: int, width: int, variance: float, target_norm: float, dim: int, factor: float = 50.0
) -> float:
    """Gradient-descent step for C(A) = ½‖M ⊙ (A − Y)‖_F².

    Two layers: Tu et al.'s rule, η = 1/(factor · σ²w) if σ²w > d (γ_w + γ_σ² > 1, lazy side)
    else 1/(factor · ‖A*‖_op), factor 50. Deeper (our extension of the same scale argument): the
    NTK of A at a Gaussian init is ≈ L (σ²w)^{L−1}, the Hessian near a balanced fit of A* is
    ≈ L ‖A*‖_op^{2−2/L}, and η = 2 / (factor · L · max of the two), which is Tu et al.'s
    1/(factor · max(σ²w, ‖A*‖_op)) at L = 2."""
    depth = _positive_int("depth", depth, low=2)
    width, dim = _positive_int("width", width), _positive_int("dim", dim)
    variance, target_norm = _positive("variance", variance), _positive("target_norm", target_norm)
    factor = _positive("factor", factor)
    if depth == 2:
        scale = variance * width if variance * width > dim else target_norm
        return 1.0 / (factor * scale)
    lazy = (variance * width) ** (depth - 1)
    active = target_norm ** (2 - 2 / depth)
    return 2.0 / (factor * depth * max(lazy, active))
