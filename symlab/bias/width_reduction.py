"""Pruning a positively homogeneous network to few neurons per layer with its training outputs and
its L2 term kept: a Carathéodory reduction.

Background (Jacot, Golikov, Hongler & Gabriel, NeurIPS 2022, arXiv 2205.15809, Sec. 3): for σ
positively 1-homogeneous, the L2-regularized loss depends on layer ℓ only through the pair
(K_ℓ, K_ℓ^σ) = Σ_i (z_i z_iᵀ, σ(z_i) σ(z_i)ᵀ) (+ (0, β²11ᵀ) with biases), z_i ∈ R^N the i-th
neuron's pre-activations on the N training inputs. The pairs of symmetric N×N matrices span a
space of dimension N(N+1), so by Carathéodory's theorem for cones any such pair is a non-negative
combination of at most N(N+1) of the neurons' vectors: every local minimum can be realized with
≤ N(N+1) neurons per layer. The paper proves existence only.

The construction here is ours (not the paper's). Per hidden layer ℓ, in order:

1. drop dead neurons (z_i = 0) and merge positively proportional ones in closed form: neurons
   z_j = c_j z (c_j > 0) contribute (Σ_j c_j²)(z zᵀ, σ(z)σ(z)ᵀ), so one neuron √(Σ_j c_j²)·z does;
2. with v_i = vec(z_i z_iᵀ, σ(z_i)σ(z_i)ᵀ) and V = [v_i], find α ≥ 0 with V α = V 1 and at most
   rank V non-zero entries (a basic feasible point), by null-space elimination: take c ≠ 0 with
   V c = 0, step α ← α − t c with the largest t keeping α ≥ 0 (one entry reaches 0), remove that
   neuron, update the null-space basis by one Gaussian-elimination step, repeat while the null
   space is not empty. V is never formed: ⟨v_i, v_j⟩ = (z_iᵀz_j)² + (σ(z_i)ᵀσ(z_j))², so the
   Gram matrix G = VᵀV costs O(n²N) and its eigenvectors of eigenvalues ≤ ``rtol`` · λ_max give
   the null space; the final α on the support S is refined by solving G_SS α_S = (G 1)_S;
3. scale the kept neurons' incoming weights and biases by √α_i: then Σ_i α_i v_i = V 1 keeps
   (K_ℓ, K_ℓ^σ), hence every later layer's activations on the training inputs and the outputs;
4. reset every layer to its optimal weights W_ℓ = Z_ℓ (Z_{ℓ−1}^σ)⁺
   (:func:`symlab.bias.activation_form.optimal_weights`), whose L2 norm Σ_ℓ Tr[K_ℓ (K_{ℓ−1}^σ)⁺]
   depends only on the kept (K, K^σ): so the L2 term does not increase (it is unchanged at a local
   minimum, where the weights already are optimal).

The width reached is ≤ rank V ≤ N(N+1) per layer (rank V ≤ N(N+1)/2 for the identity, whose two
blocks coincide). Outputs on points outside the training set may change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from symlab.bias.activation_form import (
    Activations,
    check_homogeneous,
    check_lam,
    layer_activations,
    mlp_layers,
    optimal_weights,
    set_weights,
    with_bias_row,
)

GRAM_RTOL = 1e-13  # eigenvalues of G = VᵀV below this · λ_max(G) span the null space of V
REORTHONORMALIZE_EVERY = 16  # elimination steps between QR re-orthonormalizations of the basis
PROPORTIONAL_RTOL = 1e-10  # neurons whose directions z/‖z‖ differ by less than this are merged


@dataclass(frozen=True)
class WidthReduction:
    """A reduced network and what happened per hidden layer: widths before and after, the rank
    of the neurons' vectors V (the bound the reduction reaches), and λ‖θ‖² before and after."""

    model: nn.Sequential
    n_samples: int
    widths_before: list[int]
    widths_after: list[int]
    ranks: list[int]
    penalty_before: float
    penalty_after: float
    rtol: float = GRAM_RTOL

    @property
    def caratheodory_bound(self) -> int:
        """N(N+1), the dimension of the space of pairs of symmetric N×N matrices."""
        return self.n_samples * (self.n_samples + 1)


def neuron_gram(z: Tensor, s: Tensor) -> Tensor:
    """G_ij = ⟨v_i, v_j⟩ = (z_iᵀ z_j)² + (s_iᵀ s_j)² for v_i = vec(z_i z_iᵀ, s_i s_iᵀ), rows of z, s
    (n, N) the neurons' pre- and post-activations (float64)."""
    return (z @ z.T).square() + (s @ s.T).square()


def merge_proportional(z: Tensor, rtol: float = PROPORTIONAL_RTOL) -> tuple[Tensor, Tensor]:
    """(kept, scale): indices of one representative per class of positively proportional non-zero
    rows of z (n, N), and the factor √(Σ_j ‖z_j‖²)/‖z_kept‖ its row is multiplied by (step 1)."""
    norms = z.norm(dim=1)
    alive = torch.nonzero(norms > rtol * float(norms.max().clamp_min(1e-300))).flatten()
    directions = z[alive] / norms[alive, None]
    kept, scale = [], []
    taken = torch.zeros(len(alive), dtype=torch.bool)
    for a in range(len(alive)):
        if taken[a]:
            continue
        same = ((directions - directions[a]).norm(dim=1) <= rtol) & ~taken
        taken |= same
        kept.append(int(alive[a]))
        scale.append(float(norms[alive[same]].square().sum().sqrt() / norms[alive[a]]))
    return torch.tensor(kept, dtype=torch.long), torch.tensor(scale, dtype=torch.float64)


def caratheodory_weights(gram: Tensor, rtol: float = GRAM_RTOL) -> Tensor:
    """α ≥ 0 with V α = V 1 and at most rank V non-zeros, from G = VᵀV alone (step 2)."""
    n = gram.shape[0]
    values, vectors = torch.linalg.eigh(gram)
    null = vectors[:, values <= rtol * float(values[-1].clamp_min(1e-300))].clone()
    alpha = torch.ones(n, dtype=torch.float64)
    alive = torch.ones(n, dtype=torch.bool)
    steps = 0
    while null.shape[1] > 0:
        column = int(null.abs().max(dim=0).values.argmax())
        c = null[:, column].clone()
        c[~alive] = 0.0
        if float(c.max()) <= 0:
            c = -c
        ratios = torch.where(c > 1e-14 * float(c.abs().max()), alpha / c, torch.inf)
        j = int(ratios.argmin())
        alpha = (alpha - float(ratios[j]) * c).clamp_min(0.0)
        alpha[j], alive[j] = 0.0, False
        rest = torch.cat([null[:, :column], null[:, column + 1 :]], dim=1)
        null = rest - torch.outer(c, rest[j] / c[j])
        null[j] = 0.0
        alive &= alpha > 0
        steps += 1
        if null.shape[1] and steps % REORTHONORMALIZE_EVERY == 0:
            null = torch.linalg.qr(null)[0]  # the elimination keeps a basis; QR keeps it tame
        if null.shape[1]:
            null = null / null.norm(dim=0).clamp_min(1e-300)
    support = torch.nonzero(alive).flatten()
    refined = torch.linalg.lstsq(gram[support][:, support], gram[support].sum(1)).solution
    out = torch.zeros(n, dtype=torch.float64)
    out[support] = refined.clamp_min(0.0)
    return out


def _l2(model: nn.Module) -> float:
    return sum(float(p.detach().double().square().sum()) for p in model.parameters())


def reduce_width(
    model: nn.Module, x: Tensor, lam: float, *, rtol: float = GRAM_RTOL
) -> WidthReduction:
    """Prune every hidden layer of the positively homogeneous MLP ``model`` to at most rank V ≤
    N(N+1) neurons with its outputs on the training inputs ``x`` (N, d) unchanged and the L2 term
    λ‖θ‖² not increased (our Carathéodory construction, module docstring). Returns a new float64
    ``nn.Sequential``; ``model`` is left as it is.

    The L2 term is kept in exact arithmetic; in floating point, dropping the null-space
    directions of V below ``rtol`` perturbs Tr[K_ℓ (K_{ℓ−1}^σ)⁺] where K^σ is ill-conditioned.
    So the result is checked: when λ‖θ‖² rose, the reduction is redone with ``rtol`` / 100 (down
    to 1e-17), and if it still rose, the result is ``model`` itself with its optimal weights
    Z_ℓ (Z_{ℓ−1}^σ)⁺ (no neuron removed; the L2 term can only fall). ``WidthReduction.rtol`` is
    the threshold used (0 for that last case)."""
    lam = check_lam(lam)
    check_homogeneous(mlp_layers(model)[1], "reduce_width")
    while True:
        result = _reduce_once(model, x, lam, rtol=rtol)
        if result.penalty_after <= result.penalty_before or rtol < 1e-17:
            break
        rtol = rtol / 100
    if result.penalty_after > result.penalty_before:
        linears, sigmas = mlp_layers(model)
        acts = layer_activations(model, x)
        same = _build(optimal_weights(acts), sigmas, acts.bias)
        widths = [m.out_features for m in linears[:-1]]
        result = WidthReduction(
            model=same, n_samples=int(x.shape[0]), widths_before=widths, widths_after=widths,
            ranks=result.ranks, penalty_before=result.penalty_before,
            penalty_after=lam * _l2(same), rtol=0.0,
        )  # fmt: skip
    return result


def _reduce_once(
    model: nn.Module, x: Tensor, lam: float, *, rtol: float = GRAM_RTOL
) -> WidthReduction:
    """One reduction at the Gram threshold ``rtol`` (:func:`reduce_width` checks its L2 term)."""
    linears, sigmas = mlp_layers(model)
    acts = layer_activations(model, x)
    post = [acts.post[0]]  # the reduced net's Z_ℓ^σ
    pre = []  # the reduced net's Z_ℓ: kept rows of the original Z_ℓ, scaled
    ranks, after = [], []
    for z, sigma in zip(acts.pre[:-1], sigmas):
        kept, scale = merge_proportional(z)
        merged = z[kept] * scale[:, None]
        with torch.no_grad():
            gram = neuron_gram(merged, sigma(merged))
        values = torch.linalg.eigvalsh(gram)
        ranks.append(int((values > rtol * float(values[-1].clamp_min(1e-300))).sum()))
        alpha = caratheodory_weights(gram, rtol)
        support = torch.nonzero(alpha > 0).flatten()
        pre.append(merged[support] * alpha[support].sqrt()[:, None])
        with torch.no_grad():
            post.append(with_bias_row(sigma(pre[-1]), acts.bias))
        after.append(len(support))
    pre.append(acts.pre[-1])
    reduced_acts = Activations(pre=pre, post=post, bias=acts.bias, sigma=list(sigmas))
    weights = optimal_weights(reduced_acts)
    reduced = _build(weights, sigmas, acts.bias)
    return WidthReduction(
        model=reduced, n_samples=int(x.shape[0]),
        widths_before=[m.out_features for m in linears[:-1]], widths_after=after, ranks=ranks,
        penalty_before=lam * _l2(model), penalty_after=lam * _l2(reduced), rtol=rtol,
    )  # fmt: skip


def _build(weights: list[Tensor], sigmas: list[nn.Module], bias: bool) -> nn.Sequential:
    """A float64 Sequential(Linear, σ, …, Linear) holding the [W | b] matrices ``weights``."""
    layers: list[nn.Module] = []
    for index, w in enumerate(weights):
        linear = nn.Linear(w.shape[1] - bias, w.shape[0], bias=bias, dtype=torch.float64)
        layers.append(linear)
        if index < len(sigmas):
            layers.append(copy.deepcopy(sigmas[index]))
    model = nn.Sequential(*layers)
    set_weights(model, weights)
    return model
