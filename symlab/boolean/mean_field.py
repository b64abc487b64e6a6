"""Two-layer networks in the mean-field parameterisation, trained by SGD on sparse targets, with the
projection of the learned function on each support monomial recorded along the way.

The network (Abbe, Boix-Adserà & Misiakiewicz, COLT 2022, arXiv 2202.08658; COLT 2023,
arXiv 2302.11055) is

    f(x) = (1/N^p) Σ_{j=1}^N a_j σ(⟨w_j, x⟩),   p = 1 (mean field, default) or 1/2 (standard),

with no bias. Settings taken from third-party notes on the papers' Figure 1 (**secondary**, not
checked against the paper text): √d·w_{jl} ~ N(0, 1) i.i.d., a_j ~ U[−1, 1], the shifted sigmoid
σ(z) = 1/(1 + e^{−z+0.5}) (every derivative σ^{(r)}(0) ≠ 0), square loss, plain SGD with one step
size per layer. In the mean-field scaling the gradient of each particle (a_j, w_j) carries a
factor 1/N, so :func:`layer_learning_rates` multiplies both step sizes by N (the particles then
move at a width-independent speed); with p = 1/2 the step sizes are used as given.

What is recorded (:class:`MonomialTracker`, a ``train_ensemble`` callback on the stacked
parameters): for each model and each support S (the target's and a few controls outside it),
c_S(t) = E[f_t(x) φ_S(x)] with φ_S the Walsh character χ_S (Boolean inputs) or the normalized
Hermite monomial H_S (Gaussian inputs), estimated on a fixed test sample of n points as
ĉ_S = (1/n) Σ_i f_t(x_i) φ_S(x_i), standard error √((mean((fφ_S)²) − ĉ_S²)/(n − 1)); and the test
error E[(f_t − f*)²] on the same sample. :func:`train_on_target` runs a batch of seeds at once
with :func:`symlab.train.train_ensemble` (online SGD from fresh samples, or SGD on a fixed sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from symlab.boolean.targets import MonomialTarget, monomial_features, monomial_sampler
from symlab.train import Schedule, TwoLayerForm, train_ensemble

SCALINGS = ("mean_field", "standard")
ACTIVATIONS = ("shifted_sigmoid", "relu", "tanh")
SIGMOID_SHIFT = 0.5  # σ(z) = 1/(1 + e^{−z+0.5}): σ^{(r)}(0) ≠ 0 for every r [secondary]


def activation_function(name: str, shift: float = SIGMOID_SHIFT) -> Callable[[Tensor], Tensor]:
    """σ by name: ``"shifted_sigmoid"`` z ↦ 1/(1 + e^{−z+s}) with s = ``shift`` (0.5 in the
    notes), ``"relu"``, ``"tanh"`` (``shift`` is ignored by the last two)."""
    if name == "shifted_sigmoid":
        return lambda z: torch.sigmoid(z - shift)
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {name!r}")


def activation_and_slope(
    name: str, shift: float = SIGMOID_SHIFT
) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(z, v) ↦ (σ(z), v ⊙ σ'(z)) for :func:`activation_function`'s σ (v broadcasts against z),
    by autograd's own backward kernels: v σ(1 − σ) for the shifted sigmoid, v (1 − tanh²) for
    tanh, v 1[z > 0] for ReLU (0 at the kink). Overwrites z with σ(z) (the fused SGD step of
    :mod:`symlab.train.two_layer_sgd` has no further use for z): one pass for σ, one for v σ'."""
    activation_function(name, shift)
    backward = {
        "shifted_sigmoid": torch.ops.aten.sigmoid_backward,
        "tanh": torch.ops.aten.tanh_backward,
    }.get(name)

    def values(z: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if name == "relu":
            h = z.clamp_min_(0)
            return h, torch.ops.aten.threshold_backward(v.expand_as(h), h, 0)
        h = z.sub_(shift).sigmoid_() if name == "shifted_sigmoid" else z.tanh_()
        return h, backward(v.expand_as(h), h)

    return values


def output_scale(width: int, scaling: str) -> float:
    """1/N (mean field) or 1/√N (standard)."""
    if scaling == "mean_field":
        return 1.0 / width
    if scaling == "standard":
        return 1.0 / math.sqrt(width)
    raise ValueError(f"scaling: expected one of {', '.join(SCALINGS)}, got {scaling!r}")


def two_layer_output(
    w: Tensor, a: Tensor, x: Tensor, scale: float, activation: str = "shifted_sigmoid",
    mask: Tensor | None = None, chunk: int = 1 << 22, shift: float = SIGMOID_SHIFT,
) -> Tensor:  # fmt: skip
    """f(x) = scale · Σ_j a_j σ(⟨w_j ⊙ m_j, x⟩) for one model (w (N, d), a (N,)) or a stack of S
    models (w (S, N, d), a (S, N)); x is (n, d). Returns (n,) or (S, n). ``mask`` m (N, d) or
    (S, N, d) multiplies the first layer (1 when None); ``shift`` is the sigmoid's s. Inputs are
    processed in chunks so that at most ``chunk`` pre-activations live at once."""
    sigma = activation_function(activation, shift)
    weights = w if mask is None else w * mask
    width = weights.shape[-2]
    rows = max(1, chunk // (width * (weights.shape[0] if weights.ndim == 3 else 1)))
    parts = []
    for start in range(0, x.shape[0], rows):
        # (S, N, n) = w x^T: no transposed copy of w forward, a contiguous gradient backward
        pre = weights @ x[start : start + rows].transpose(-1, -2)
        parts.append((a.unsqueeze(-2) @ sigma(pre)).squeeze(-2))
    return scale * (parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1))


class MeanFieldNet(nn.Module):
    """f(x) = (1/N^p) Σ_j a_j σ(⟨w_j ⊙ m_j, x⟩) with parameters ``w`` (N, d) and ``a`` (N,), output
    (n, 1). Init (secondary): √d·w_{jl} ~ N(0, 1), a_j ~ U[−1, 1], from a generator seeded with
    ``seed``. ``mask`` (N, d), optional, is a fixed buffer (a first layer that is not equivariant
    under permutations of the inputs); ``shift`` is the shifted sigmoid's s. Stackable by
    :func:`symlab.train.train_ensemble`, which takes the fused closed-form SGD step of
    :mod:`symlab.train.two_layer_sgd` on it (declared by :meth:`two_layer_form`; not with a mask)."""

    def __init__(
        self, dim: int, width: int, *, scaling: str = "mean_field",
        activation: str = "shifted_sigmoid", shift: float = SIGMOID_SHIFT,
        mask: Tensor | None = None, seed: int | None = None, dtype: torch.dtype = torch.float32,
    ):  # fmt: skip
        super().__init__()
        for name, value in (("dim", dim), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        self.scale = output_scale(width, scaling)
        activation_function(activation)
        self.scaling, self.activation, self.shift = scaling, activation, float(shift)
        generator = torch.Generator()
        generator.manual_seed(0 if seed is None else int(seed))
        if seed is None:
            generator.seed()
        w = torch.randn(width, dim, generator=generator, dtype=dtype) / math.sqrt(dim)
        a = 2 * torch.rand(width, generator=generator, dtype=dtype) - 1
        self.w, self.a = nn.Parameter(w), nn.Parameter(a)
        if mask is not None and tuple(mask.shape) != (width, dim):
            raise ValueError(f"mask: expected shape ({width}, {dim}), got {tuple(mask.shape)}")
        self.register_buffer("mask", None if mask is None else mask.to(dtype))

    def forward(self, x: Tensor) -> Tensor:
        out = two_layer_output(
            self.w, self.a, x, self.scale, self.activation, self.mask, shift=self.shift
        )
        return out.unsqueeze(-1)

    def two_layer_form(self) -> TwoLayerForm | None:
        """f = scale · Σ_j a_j σ(⟨w_j, x⟩) for the fused SGD step; None with a mask."""
        if self.mask is not None:
            return None
        slope = activation_and_slope(self.activation, self.shift)
        return TwoLayerForm(first="w", readout="a", scale=self.scale, activation=slope)


def layer_learning_rates(
    width: int, lr_first: float, lr_second: float, scaling: str = "mean_field"
) -> list[dict]:
    """``param_groups`` for :mod:`symlab.train`: step sizes of the first layer (``w``) and of the
    readout (``a``), multiplied by N in the mean-field scaling (each particle's gradient is O(1/N)),
    as given in the standard one."""
    factor = width if output_scale(width, scaling) == 1.0 / width else 1.0
    for name, value in (("lr_first", lr_first), ("lr_second", lr_second)):
        if not value > 0:
            raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return [
        {"params": ["w"], "lr": float(lr_first) * factor},
        {"params": ["a"], "lr": float(lr_second) * factor},
    ]


class MonomialTracker:
    """``callback(step, stacked_params)`` for :func:`symlab.train.train_ensemble` that records, per
    model, ĉ_S(t) and its standard error for each of ``supports`` and the test error on the fixed
    sample ``x_test`` (see the module docstring); ``mask`` is the first layer's fixed mask, if any.
    ``stop_when(tracker)`` (optional) is asked after
    each record; True stops the ensemble (e.g. once every model has learned the target)."""

    def __init__(
        self, target: MonomialTarget, x_test: Tensor, supports: Sequence, *, scale: float,
        activation: str = "shifted_sigmoid", shift: float = SIGMOID_SHIFT,
        mask: Tensor | None = None, stop_when: Callable[[MonomialTracker], bool] | None = None,
    ):  # fmt: skip
        self.target, self.x_test, self.supports = target, x_test, list(supports)
        self.mask, self.shift = mask, shift
        self.scale, self.activation, self.stop_when = scale, activation, stop_when
        self.features = monomial_features(x_test, self.supports, target.inputs)  # (n, m)
        self.y_test = target(x_test)
        self.steps: list[int] = []
        self.coefficients: list[np.ndarray] = []  # each (S, m)
        self.standard_errors: list[np.ndarray] = []
        self.test_errors: list[np.ndarray] = []  # each (S,)

    def __call__(self, step: int, params: dict[str, Tensor]) -> bool:
        with torch.no_grad():
            f = two_layer_output(
                params["w"], params["a"], self.x_test, self.scale, self.activation, self.mask,
                shift=self.shift,
            )  # fmt: skip
            n = self.x_test.shape[0]
            c = f @ self.features / n
            second = f.square() @ self.features.square() / n
            se = ((second - c.square()).clamp_min(0) / max(n - 1, 1)).sqrt()
            error = (f - self.y_test).square().mean(-1)
        if self.steps and self.steps[-1] == step:
            return False
        self.steps.append(int(step))
        self.coefficients.append(c.double().numpy())
        self.standard_errors.append(se.double().numpy())
        self.test_errors.append(error.double().numpy())
        return bool(self.stop_when is not None and self.stop_when(self))


@dataclass
class MonomialRun:
    """Records of :func:`train_on_target` for S models: ``steps`` (T,), ``coefficients`` and
    ``standard_errors`` (T, S, m) on ``supports`` (the target's m₀ first, then the controls),
    ``test_errors`` (T, S) = E[(f_t − f*)²] on the test sample; ``samples_per_step`` = batch."""

    steps: np.ndarray
    coefficients: np.ndarray
    standard_errors: np.ndarray
    test_errors: np.ndarray
    supports: list
    n_target: int
    samples_per_step: int
    stop_reason: str
    params: dict[str, Tensor]


def train_on_target(
    target: MonomialTarget, d: int, *, width: int, seeds: Sequence[int], steps: int,
    lr_first: float, lr_second: float, batch: int = 1, n_train: int | None = None,
    scaling: str = "mean_field", activation: str = "shifted_sigmoid", shift: float = SIGMOID_SHIFT,
    method: str = "sgd",
    controls: Iterable = (), test_size: int = 4096, test_seed: int = 12345,
    record_every: int | Schedule | Iterable[int] = 100,
    stop_when: Callable[[MonomialTracker], bool] | None = None, dtype: torch.dtype = torch.float32,
) -> MonomialRun:  # fmt: skip
    """Train one :class:`MeanFieldNet` per seed on ``target`` in dimension d, all at once
    (:func:`symlab.train.train_ensemble`), and record the monomial projections.

    Online (``n_train=None``): each step draws a fresh batch per model (samples = steps × batch).
    Fixed sample: each model gets its own ``n_train`` points (drawn from its seed) and SGD takes
    minibatches of ``batch`` from them. Step sizes per layer by :func:`layer_learning_rates`.
    ``record_every`` schedules the records (the end point is always recorded)."""
    seeds = [int(s) for s in seeds]
    models = [
        MeanFieldNet(
            d, width, scaling=scaling, activation=activation, shift=shift, seed=s, dtype=dtype
        )
        for s in seeds
    ]
    groups = layer_learning_rates(width, lr_first, lr_second, scaling)
    x_test = target.sample_inputs(test_size, d, torch.Generator().manual_seed(test_seed), dtype)
    supports = list(target.supports) + list(controls)
    tracker = MonomialTracker(
        target, x_test, supports, scale=models[0].scale, activation=activation, shift=shift,
        stop_when=stop_when,
    )  # fmt: skip
    options = dict(
        method=method, lr=groups[0]["lr"], steps=steps, param_groups=groups, seeds=seeds,
        data_per_model=True, record_every=[0], callback=tracker, callback_every=record_every,
    )  # fmt: skip
    if n_train is None:
        sampler = monomial_sampler(target, d, batch, models=len(models), dtype=dtype)
        result = train_ensemble(models, None, sampler=sampler, **options)
    else:
        xs = torch.stack(
            [
                target.sample_inputs(n_train, d, torch.Generator().manual_seed(s), dtype)
                for s in seeds
            ]
        )
        ys = torch.stack([target(x) for x in xs]).unsqueeze(-1)
        result = train_ensemble(models, (xs, ys), batch_size=batch, **options)
    last = max(t.n_steps for t in result.trajectories)
    tracker(last, result.params)
    return MonomialRun(
        steps=np.asarray(tracker.steps),
        coefficients=np.stack(tracker.coefficients),
        standard_errors=np.stack(tracker.standard_errors),
        test_errors=np.stack(tracker.test_errors),
        supports=supports,
        n_target=len(target.supports),
        samples_per_step=batch,
        stop_reason=result.trajectories[0].stop_reason,
        params=result.params,
    )


def first_passage(
    steps: np.ndarray, values: np.ndarray, level: float, above: bool = True
) -> tuple[float, bool]:
    """First time the recorded ``values`` reach ``level`` (≥ when ``above``, else ≤), linearly
    interpolated in log t between the two records around the crossing (t = 0 counts as t = 1).
    Returns (time, censored): a curve that never crosses gives (last recorded step, True), a lower
    bound on its passage time, never a value."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    hit = values >= level if above else values <= level
    if not hit.any():
        return float(steps[-1]), True
    i = int(np.argmax(hit))
    if i == 0:
        return float(steps[0]), False
    t0, t1 = max(steps[i - 1], 1.0), max(steps[i], 1.0)
    v0, v1 = values[i - 1], values[i]
    frac = 1.0 if v1 == v0 else float(np.clip((level - v0) / (v1 - v0), 0.0, 1.0))
    return float(math.exp(math.log(t0) + frac * (math.log(t1) - math.log(t0)))), False
