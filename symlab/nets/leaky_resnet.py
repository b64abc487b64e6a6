"""Leaky ResNets with effective depth L̃ and per-layer steps ρ_ℓ (Jacot & Kaiser 2024, "Hamiltonian
mechanics of feature learning: bottleneck structure in Leaky ResNets", arXiv 2405.17573).

Width w, σ(z) = ([z_1]_+, …, [z_w]_+, 1) ∈ R^{w+1} (the appended 1 replaces the bias), W_ℓ ∈ R^{w×(w+1)},
steps ρ_1, …, ρ_L > 0 with Σ ρ_ℓ = 1 (layer ℓ sits at depth p_ℓ = ρ_1 + … + ρ_ℓ):

    α_0 = P_in x,   α_ℓ = (1 − ρ_ℓ L̃) α_{ℓ−1} + ρ_ℓ W_ℓ σ(α_{ℓ−1}),   f(x) = P_out α_L,

the discretization of ∂_p α_p = −L̃ α_p + W_p σ(α_p) (L̃ = 0: a ResNet / neural ODE; L̃ → ∞: a
fully connected net). ρ_ℓ L̃ < 1 is required (equidistant steps: L > L̃). The paper's objective,

    (1/N) Σ_i ‖f*(x_i) − f(x_i)‖² + (λ / (2L̃)) Σ_ℓ ρ_ℓ ‖W_ℓ‖_F²,

has its regularization in :meth:`LeakyResNet.regularization` (a per-layer weight decay
λ ρ_ℓ / (2L̃); with steps that change during training it must be read at every step, which
``symlab.train.train(..., penalty=...)`` does).

Step rules (:data:`STEP_RULES`): ``equidistant`` ρ_ℓ = 1/L; ``irregular`` ρ_ℓ ∝ 1 + a(1/4 − |u_ℓ − 1/2|),
u_ℓ = (ℓ − 1/2)/L, a ∈ [0, 1) (finer steps near the input and output; the paper's formula is
reconstructed from its description, normalized to Σρ = 1); ``adaptive`` (the paper's rule, applied
every few training steps by :class:`AdaptiveSteps`): c_ℓ = ‖A_ℓ − A_{ℓ−1}‖_F / (ρ_ℓ ‖A_ℓ‖_F), the
relative speed of the representation A_ℓ = α_ℓ(X) in layer ℓ, then ρ_ℓ ← c_ℓ⁻¹ / Σ_i c_i⁻¹, so
that every layer moves the representation by the same relative amount. Steps are capped at
ρ_ℓ ≤ cap / L̃ (default cap 0.9) to keep 1 − ρ_ℓ L̃ > 0, the excess spread over the other layers.

In and out maps P_in ∈ R^{w×d_in}, P_out ∈ R^{d_out×w}: entries N(0, 1/d_in) and N(0, 1/w), fixed
by default (``learn_maps=False``; the paper allows fixed or learned). Initialization (not given
in the paper): W_ℓ = max(L̃, 1) Ŵ_ℓ with Ŵ_ℓ's first w columns N(0, 2/w) (He) and its bias column
0, so each layer moves α toward a He layer's output Ŵσ(α) by a fraction ρ_ℓ L̃.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

STEP_RULES = ("equidistant", "irregular", "adaptive")
STEP_CAP = 0.9  # adaptive steps keep ρ_ℓ L̃ ≤ STEP_CAP


def leaky_sigma(a: Tensor) -> Tensor:
    """σ(α) = ([α]_+, 1) along the last axis: (..., w) → (..., w + 1)."""
    return torch.cat([torch.relu(a), torch.ones_like(a[..., :1])], dim=-1)


def _check_depths(depth: object, effective_depth: object) -> tuple[int, float]:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth: expected an integer >= 1, got {depth!r}")
    if isinstance(effective_depth, bool) or not isinstance(effective_depth, int | float):
        raise ValueError(f"effective_depth: expected a number >= 0, got {effective_depth!r}")
    if not effective_depth >= 0:
        raise ValueError(f"effective_depth: expected a number >= 0, got {effective_depth!r}")
    return depth, float(effective_depth)


def equidistant_steps(depth: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """ρ_ℓ = 1/L."""
    depth, _ = _check_depths(depth, 0.0)
    return torch.full((depth,), 1.0 / depth, dtype=dtype)


def irregular_steps(depth: int, a: float = 0.5, dtype: torch.dtype = torch.float64) -> Tensor:
    """ρ_ℓ ∝ 1 + a(1/4 − |(ℓ − 1/2)/L − 1/2|), normalized to Σρ = 1 (module docstring)."""
    depth, _ = _check_depths(depth, 0.0)
    if not 0 <= a < 1:
        raise ValueError(f"irregularity: expected a number in [0, 1), got {a!r}")
    u = (torch.arange(depth, dtype=dtype) + 0.5) / depth
    rho = 1 + a * (0.25 - (u - 0.5).abs())
    return rho / rho.sum()


def check_steps(rho: Tensor, effective_depth: float) -> Tensor:
    """``rho`` as float64 if it is a valid step vector: positive, summing to 1, ρ_ℓ L̃ < 1."""
    rho = torch.as_tensor(rho, dtype=torch.float64)
    if rho.dim() != 1 or len(rho) == 0 or not bool(torch.isfinite(rho).all()):
        raise ValueError("steps: expected a non-empty 1-D vector of finite step sizes")
    if bool((rho <= 0).any()) or abs(float(rho.sum()) - 1) > 1e-9:
        raise ValueError(f"steps: expected positive steps summing to 1, got sum {float(rho.sum())}")
    if float(rho.max()) * effective_depth >= 1:
        raise ValueError(
            f"steps: expected rho_l * effective_depth < 1 for every layer, got max "
            f"{float(rho.max()) * effective_depth:.3g} (use more layers or a smaller effective depth)"
        )
    return rho


def adaptive_steps(
    representations: Sequence[Tensor], rho: Tensor, effective_depth: float, cap: float = STEP_CAP
) -> Tensor:
    """The adaptive rule: c_ℓ = ‖A_ℓ − A_{ℓ−1}‖_F / (ρ_ℓ ‖A_ℓ‖_F), ρ_ℓ ← c_ℓ⁻¹ / Σ_i c_i⁻¹, then every
    ρ_ℓ above cap/L̃ is set to cap/L̃ and the rest rescaled to keep Σρ = 1 (repeated until none
    exceeds it). ``representations`` = [A_0, …, A_L] (any shape, same for all). A layer that does
    not move (c_ℓ = 0) gets the cap (the steps are returned unchanged when those layers alone
    would take all of Σρ = 1). Returns float64 steps."""
    rho = torch.as_tensor(rho, dtype=torch.float64)
    if len(representations) != len(rho) + 1:
        raise ValueError(
            f"representations: expected L + 1 = {len(rho) + 1} of them (A_0 to A_L), "
            f"got {len(representations)}"
        )
    if not 0 < cap < 1:
        raise ValueError(f"cap: expected a number in (0, 1), got {cap!r}")
    a = [r.detach().to(torch.float64) for r in representations]
    moves = torch.stack([(a[i + 1] - a[i]).norm() for i in range(len(rho))])
    sizes = torch.stack([a[i + 1].norm() for i in range(len(rho))])
    speed = moves / (rho * sizes.clamp_min(torch.finfo(torch.float64).tiny))
    limit = 1.0 if effective_depth == 0 else cap / effective_depth
    if len(rho) * limit < 1:
        raise ValueError(
            f"effective_depth: expected at most cap * depth = {cap * len(rho):g} for the capped "
            f"adaptive rule, got {effective_depth!r}"
        )
    inverse = torch.where(speed > 0, 1 / speed, torch.full_like(speed, torch.inf))
    capped = ~torch.isfinite(inverse)
    if int(capped.sum()) * limit >= 1:  # too many layers that do not move: no information
        return rho.clone()
    new = rho
    for _ in range(len(rho)):
        free = ~capped
        mass = 1 - limit * int(capped.sum())
        new = torch.full_like(rho, limit)
        if bool(free.any()):
            new[free] = mass * inverse[free] / inverse[free].sum()
        over = free & (new > limit)
        if not bool(over.any()):
            break
        capped |= over
    return new


class LeakyLayer(nn.Module):
    """α ↦ (1 − ρ L̃) α + ρ W σ(α) on rows α ∈ R^{N×w}; ``weight`` is W ∈ R^{w×(w+1)}, ``rho`` a
    buffer (a training callback may change it)."""

    def __init__(self, weight: Tensor, rho: float, effective_depth: float):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.register_buffer("rho", torch.tensor(float(rho), dtype=weight.dtype))
        self.effective_depth = float(effective_depth)

    def forward(self, a: Tensor) -> Tensor:
        step = float(
            self.rho
        )  # ρ W σ(α) = ρ ([α]_+ W_{:, :w}ᵀ + W_{:, w}): one addmm, no concatenation
        weight = self.weight
        update = torch.addmm(weight[:, -1], torch.relu(a), weight[:, :-1].T, beta=step, alpha=step)
        return (1 - step * self.effective_depth) * a + update


class LeakyResNet(nn.Module):
    """The Leaky ResNet of the module docstring: ``embed`` (P_in), ``layers`` (L :class:`LeakyLayer`),
    ``readout`` (P_out); float64 by default, every draw from one generator seeded by ``seed``."""

    def __init__(
        self,
        d_in: int,
        width: int,
        d_out: int,
        depth: int,
        effective_depth: float,
        *,
        steps: str | Tensor = "equidistant",
        irregularity: float = 0.5,
        learn_maps: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        depth, effective_depth = _check_depths(depth, effective_depth)
        for name, value in (("d_in", d_in), ("width", width), ("d_out", d_out)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if isinstance(steps, str):
            if steps not in STEP_RULES:
                raise ValueError(f"steps: expected one of {', '.join(STEP_RULES)}, got {steps!r}")
            rho = irregular_steps(depth, irregularity) if steps == "irregular" else None
            rho = equidistant_steps(depth) if rho is None else rho
        else:
            rho = torch.as_tensor(steps, dtype=torch.float64)
        if len(rho) != depth:
            raise ValueError(f"steps: expected {depth} step sizes, got {len(rho)}")
        rho = check_steps(rho, effective_depth)
        self.effective_depth = effective_depth
        generator = torch.Generator().manual_seed(int(seed))

        def draw(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=generator, dtype=dtype)

        self.embed = nn.Linear(d_in, width, bias=False, dtype=dtype)
        self.readout = nn.Linear(width, d_out, bias=False, dtype=dtype)
        with torch.no_grad():
            self.embed.weight.copy_(draw(width, d_in) / d_in**0.5)
            self.readout.weight.copy_(draw(d_out, width) / width**0.5)
        self.embed.weight.requires_grad_(learn_maps)
        self.readout.weight.requires_grad_(learn_maps)
        scale = max(effective_depth, 1.0) * (2.0 / width) ** 0.5
        self.layers = nn.ModuleList()
        for step in rho.tolist():
            weight = torch.cat([draw(width, width) * scale, torch.zeros(width, 1, dtype=dtype)], 1)
            self.layers.append(LeakyLayer(weight, step, effective_depth))

    @property
    def steps(self) -> Tensor:
        """ρ = (ρ_1, …, ρ_L), float64."""
        return torch.stack([layer.rho.detach().to(torch.float64) for layer in self.layers])

    def set_steps(self, rho: Tensor) -> None:
        """Set every layer's step (validated by :func:`check_steps`)."""
        rho = check_steps(rho, self.effective_depth)
        if len(rho) != len(self.layers):
            raise ValueError(f"steps: expected {len(self.layers)} step sizes, got {len(rho)}")
        for layer, step in zip(self.layers, rho.tolist()):
            layer.rho.fill_(step)

    def representations(self, x: Tensor) -> list[Tensor]:
        """[α_0(X), …, α_L(X)], each (N, w) (differentiable)."""
        out = [self.embed(x)]
        for layer in self.layers:
            out.append(layer(out[-1]))
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.representations(x)[-1])

    def regularization(self, lam: float) -> Tensor:
        """(λ / (2L̃)) Σ_ℓ ρ_ℓ ‖W_ℓ‖_F² (differentiable; L̃ = 0 is refused: the term is undefined)."""
        if self.effective_depth == 0:
            raise ValueError("effective_depth: the regularization λ/(2L̃) needs L̃ > 0, got 0")
        terms = [layer.rho * layer.weight.square().sum() for layer in self.layers]
        return lam / (2 * self.effective_depth) * torch.stack(terms).sum()


class AdaptiveSteps:
    """A ``symlab.train`` callback that applies :func:`adaptive_steps` to ``model`` from its
    representations on ``x`` (no gradients) and keeps the history ``(offset + step, ρ)``. Never
    stops the run. Use with ``callback_every`` (the paper updates "every few steps"); set
    ``offset`` to the steps already run when one callback serves several training calls."""

    def __init__(self, x: Tensor, cap: float = STEP_CAP):
        self.x, self.cap, self.offset = x, cap, 0
        self.history: list[tuple[int, list[float]]] = []

    def __call__(self, step: int, model: nn.Module) -> None:
        if not isinstance(model, LeakyResNet):
            raise ValueError(f"model: expected a LeakyResNet, got {type(model).__name__}")
        with torch.no_grad():
            reps = model.representations(self.x.to(model.embed.weight.dtype))
        rho = adaptive_steps(reps, model.steps, model.effective_depth, self.cap)
        model.set_steps(rho)
        self.history.append((self.offset + int(step), rho.tolist()))
