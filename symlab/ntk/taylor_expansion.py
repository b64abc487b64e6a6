"""How much of a training run a kernel explains: the Taylor split of the function change.

For parameters θ_0 (initialisation) and θ_t (after training), Δθ = θ_t − θ_0 and the change of the
network function on inputs x is Δf = f(θ_t, x) − f(θ_0, x). Its Taylor terms along the straight
line θ_0 + sΔθ are

    T₁ = J(θ_0, x) Δθ = d/ds f(θ_0 + sΔθ, x) at s = 0                     (the NTK / linear model)
    T₂ = ½ d²/ds² f(θ_0 + sΔθ, x) at s = 0 = ½ Δθᵀ ∇²_θ f(θ_0, x) Δθ      (the quadratic model)

computed with ``torch.func.jvp`` (T₁) and a jvp of that jvp (T₂; one nested forward-mode pass, no
Jacobian, no Hessian). The fractions of Δf they explain are

    R²₁ = 1 − ‖Δf − T₁‖² / ‖Δf‖²,     R²₂ = 1 − ‖Δf − T₁ − T₂‖² / ‖Δf‖².

Allen-Zhu, Li & Liang ("Learning and Generalization in Overparameterized Neural Networks, Going
Beyond Two Layers", NeurIPS 2019, arXiv 1811.04918) show that the learning of three-layer networks
is carried by the second-order, cross-layer term once the first-order terms cancel; this split
measures that on any training run.

ReLU networks. With every ReLU gate frozen at its sign under θ_0 (the *pseudo network* of AZLL
§6), a ReLU MLP is multilinear in its layer matrices, so its Taylor series in Δθ stops at the
number of trained layers, and its second derivative inside one layer is zero. Torch's ReLU has
zero second derivative as well, so T₁ and T₂ are exactly the pseudo network's first two Taylor
terms. For modules containing ``nn.ReLU`` / ``nn.LeakyReLU`` layers the split also evaluates the
pseudo network at θ_t (forward hooks that replace each activation's gate by its θ_0 gate) and
reports

    higher_order = f_pseudo(θ_t) − f(θ_0) − T₁ − T₂    (zero with two trained layers or fewer)
    gate_flips   = Δf − (f_pseudo(θ_t) − f(θ_0))       (what the gates that flipped changed)

so Δf = T₁ + T₂ + higher_order + gate_flips exactly, and the fraction of gates (unit × input) of
each activation layer whose sign differs between θ_0 and θ_t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp

GATED_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)
ELEMENTWISE_ACTIVATIONS = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
    nn.ELU,
    nn.Identity,
)


def gate_values(on: Tensor, slope: float, like: Tensor) -> Tensor:
    """1 where ``on``, else ``slope`` (0 for ReLU), in the dtype of ``like`` (the slope is not
    rounded through float32)."""
    one = torch.ones((), dtype=like.dtype, device=like.device)
    return torch.where(on, one, torch.full((), slope, dtype=like.dtype, device=like.device))


@dataclass(frozen=True)
class TaylorSplit:
    """Δf and its Taylor terms on one set of inputs, each (N, K); see the module docstring.

    ``higher_order``, ``gate_flips`` and ``flip_fraction`` (activation name -> fraction of gates
    that flipped) are None / empty when the model has no ReLU-type ``nn.Module`` activations.
    """

    delta_f: Tensor
    first_order: Tensor
    second_order: Tensor
    higher_order: Tensor | None = None
    gate_flips: Tensor | None = None
    flip_fraction: dict[str, float] = field(default_factory=dict)

    @property
    def r2_first(self) -> float:
        """R²₁ = 1 − ‖Δf − T₁‖² / ‖Δf‖² (NaN when Δf = 0)."""
        return explained_fraction(self.delta_f, self.first_order)

    @property
    def r2_second(self) -> float:
        """R²₂ = 1 − ‖Δf − T₁ − T₂‖² / ‖Δf‖² (NaN when Δf = 0)."""
        return explained_fraction(self.delta_f, self.first_order + self.second_order)

    @property
    def flip_share(self) -> float:
        """‖gate_flips‖² / ‖Δf‖²: the part of the change owed to flipped gates (NaN if unknown)."""
        if self.gate_flips is None:
            return float("nan")
        total = float(self.delta_f.double().pow(2).sum())
        return float(self.gate_flips.double().pow(2).sum()) / total if total > 0 else float("nan")

    def as_record(self) -> dict[str, float]:
        """Scalars for a table row: R²₁, R²₂, the flip share and each layer's flip fraction."""
        row = {
            "r2_first": self.r2_first,
            "r2_second": self.r2_second,
            "flip_share": self.flip_share,
            "delta_f_norm": float(self.delta_f.double().norm()),
        }
        row.update({f"flips[{name}]": frac for name, frac in self.flip_fraction.items()})
        return row


def explained_fraction(target: Tensor, approximation: Tensor) -> float:
    """1 − ‖target − approximation‖² / ‖target‖², in float64 (NaN when target = 0)."""
    t = target.double()
    total = float(t.pow(2).sum())
    if total == 0:
        return float("nan")
    return 1.0 - float((t - approximation.double()).pow(2).sum()) / total


def trainable_state(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the trainable parameters (name -> tensor): a trajectory point θ."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def check_trajectory_point(model: nn.Module, name: str, params: dict[str, Tensor]) -> None:
    """Refuse a parameter dict of another architecture than ``model`` or with non-finite values."""
    own = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not isinstance(params, dict):
        raise TypeError(f"{name}: expected a dict name -> tensor, got {type(params).__name__}")
    if set(params) != set(own) or any(params[n].shape != own[n].shape for n in own):
        raise ValueError(
            f"{name}: expected the trainable parameters of the model (names and shapes), "
            f"got another architecture"
        )
    bad = [n for n, p in params.items() if not bool(torch.isfinite(p).all())]
    if bad:
        raise ValueError(f"{name}: expected finite parameters, non-finite values in {bad}")


def is_jet_sequential(model: nn.Module) -> bool:
    """True for an nn.Sequential of Linear layers and elementwise activations (the jet route)."""
    return isinstance(model, nn.Sequential) and all(
        isinstance(m, (nn.Linear, *ELEMENTWISE_ACTIVATIONS)) for m in model
    )


def sequential_jet(
    model: nn.Sequential, params_0: dict[str, Tensor], direction: dict[str, Tensor], x: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(f(θ_0, x), T₁, T₂) of a Sequential of Linear layers and elementwise activations by
    propagating the second-order jet z(s) = z₀ + s z₁ + s² z₂ of every activation along
    θ_0 + sΔθ (Taylor-mode differentiation; Griewank & Walther, "Evaluating Derivatives", ch. 13):

        Linear:      y₀ = W z₀ + b,   y₁ = ΔW z₀ + W z₁ + Δb,   y₂ = ΔW z₁ + W z₂;
        activation:  a₀ = σ(z₀),      a₁ = σ′(z₀) z₁,           a₂ = σ′(z₀) z₂ + ½ σ″(z₀) z₁²,

    with σ′, σ″ of the elementwise activation by forward-mode AD on the activations alone. At
    the output T₁ = y₁ and T₂ = y₂. Five GEMMs per hidden Linear layer (two on the first), against
    eight for the generic jvp of a jvp.
    """
    z0, z1, z2 = x, None, None
    for index, module in enumerate(model):
        if isinstance(module, nn.Linear):
            w = params_0.get(f"{index}.weight", module.weight.detach())
            b = params_0.get(
                f"{index}.bias", module.bias.detach() if module.bias is not None else None
            )
            dw, db = direction.get(f"{index}.weight"), direction.get(f"{index}.bias")
            y0 = z0 @ w.T if b is None else torch.addmm(b, z0, w.T)
            y1 = z1 @ w.T if z1 is not None else torch.zeros_like(y0)
            if dw is not None:
                y1.addmm_(z0, dw.T)
            if db is not None:
                y1.add_(db)
            y2 = z2 @ w.T if z2 is not None else torch.zeros_like(y0)
            if dw is not None and z1 is not None:
                y2.addmm_(z1, dw.T)
            z0, z1, z2 = y0, y1, y2
        elif isinstance(module, nn.Identity):
            continue
        elif z1 is None:  # an activation on the inputs: no tangent yet
            z0 = module(z0)
        elif isinstance(module, GATED_ACTIVATIONS):  # piecewise linear: σ″ = 0, σ′ = the gate
            slope = getattr(module, "negative_slope", 0.0)
            gate = gate_values(z0 > 0, slope, z0)
            z0, z1, z2 = gate * z0, gate * z1, gate * z2
        else:
            ones = torch.ones_like(z0)

            def slope(z, m=module, ones=ones):
                return jvp(m, (z,), (ones,))[1]

            a0, d1 = jvp(module, (z0,), (ones,))
            d2 = jvp(slope, (z0,), (ones,))[1]
            z0, z1, z2 = a0, d1 * z1, d1 * z2 + 0.5 * d2 * z1 * z1
    return z0, z1, z2


def taylor_terms(
    model: nn.Module, params_0: dict[str, Tensor], params_t: dict[str, Tensor], x: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(f(θ_0, x), T₁, T₂) along Δθ = θ_t − θ_0, outputs flattened to (N, K): by
    :func:`sequential_jet` for a Sequential of Linear layers and elementwise activations, else by
    a jvp of a jvp (any module)."""
    direction = {n: params_t[n] - params_0[n] for n in params_0}
    if is_jet_sequential(model):
        with torch.no_grad():
            f0, t1, t2 = sequential_jet(model, params_0, direction, x)
        return f0.reshape(f0.shape[0], -1), t1.reshape(t1.shape[0], -1), t2.reshape(t2.shape[0], -1)
    return nested_jvp_terms(model, params_0, direction, x)


def nested_jvp_terms(
    model: nn.Module, params_0: dict[str, Tensor], direction: dict[str, Tensor], x: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(f(θ_0, x), T₁, T₂) by ``torch.func.jvp`` of a jvp, for any module."""

    def f(p):
        out = functional_call(model, p, (x,))
        return out.reshape(out.shape[0], -1)

    def directional(p):
        return jvp(f, (p,), (direction,))

    (f0, t1), (_, d2) = jvp(directional, (params_0,), (direction,))
    return f0, t1, 0.5 * d2


def gated_activations(model: nn.Module) -> dict[str, nn.Module]:
    """The model's ReLU-type activation modules by name (those whose gates can flip)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, GATED_ACTIVATIONS)}


def activation_inputs(model: nn.Module, params: dict[str, Tensor], x: Tensor) -> dict[str, Tensor]:
    """Each gated activation's input (pre-activation) on x under ``params``."""
    captured: dict[str, Tensor] = {}
    handles = [
        module.register_forward_hook(
            lambda m, inp, out, name=name: captured.__setitem__(name, inp[0])
        )
        for name, module in gated_activations(model).items()
    ]
    try:
        with torch.no_grad():
            functional_call(model, params, (x,))
    finally:
        for h in handles:
            h.remove()
    return captured


def pseudo_network_output(
    model: nn.Module, params: dict[str, Tensor], x: Tensor, gates: dict[str, Tensor]
) -> Tensor:
    """f on x under ``params`` with every gated activation's gate frozen to ``gates[name]``
    (boolean, the sign pattern at θ_0): out = z · (slope where the gate is off, 1 where on)."""

    def frozen(name: str) -> Callable:
        def hook(module, inp, out):
            slope = getattr(module, "negative_slope", 0.0)
            on = gates[name]
            return inp[0] * gate_values(on, slope, inp[0])

        return hook

    handles = [
        module.register_forward_hook(frozen(name))
        for name, module in gated_activations(model).items()
    ]
    try:
        with torch.no_grad():
            out = functional_call(model, params, (x,))
    finally:
        for h in handles:
            h.remove()
    return out.reshape(out.shape[0], -1)


def taylor_split(
    model: nn.Module,
    params_0: dict[str, Tensor],
    x: Tensor,
    params_t: dict[str, Tensor] | None = None,
) -> TaylorSplit:
    """The Taylor split of f(θ_t) − f(θ_0) on inputs ``x`` (see the module docstring).

    ``params_0`` / ``params_t`` map each trainable parameter's name to its value (e.g.
    :func:`trainable_state` at init and now); ``params_t`` defaults to the model's current
    parameters. Parameters that do not require grad and buffers are taken from ``model``.
    Cost: one nested jvp (about 4–6 forward passes) plus two forward passes, and two more for
    the pseudo network when the model has ReLU-type activation modules.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError("x: expected a floating-point tensor of inputs")
    if params_t is None:
        params_t = trainable_state(model)
    check_trajectory_point(model, "params_0", params_0)
    check_trajectory_point(model, "params_t", params_t)
    with torch.no_grad():
        f_t = functional_call(model, params_t, (x,))
    f_t = f_t.reshape(f_t.shape[0], -1)
    f0, t1, t2 = taylor_terms(model, params_0, params_t, x)
    delta_f = f_t - f0
    if not gated_activations(model):
        return TaylorSplit(delta_f, t1, t2)
    z0 = activation_inputs(model, params_0, x)
    zt = activation_inputs(model, params_t, x)
    gates = {name: z > 0 for name, z in z0.items()}
    flips = {name: float(((zt[name] > 0) != gates[name]).double().mean()) for name in z0}
    pseudo = pseudo_network_output(model, params_t, x, gates) - f0
    return TaylorSplit(
        delta_f=delta_f,
        first_order=t1,
        second_order=t2,
        higher_order=pseudo - t1 - t2,
        gate_flips=delta_f - pseudo,
        flip_fraction=flips,
    )


class TaylorSplitTracker:
    """Record the Taylor split on fixed inputs during a user's own training loop.

    ``tracker = TaylorSplitTracker(model, {"train": x_train, "test": x_test})`` stores θ_0 at
    construction; call ``tracker.update(step)`` after an optimiser step (or pass
    ``callback=tracker.callback`` to :func:`symlab.train.train`), and read ``tracker.records``
    (one row per update and input set: step, split, R²₁, R²₂, flip share and per-layer flip
    fractions).
    """

    def __init__(self, model: nn.Module, inputs: dict[str, Tensor], every: int = 1):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected a positive integer, got {every!r}")
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError("inputs: expected a non-empty dict name -> input tensor")
        self.model, self.inputs, self.every = model, inputs, every
        self.params_0 = trainable_state(model)
        self.records: list[dict[str, float | int | str]] = []

    def update(self, step: int) -> None:
        """Record the split at ``step`` if it is a multiple of ``every``."""
        if step % self.every:
            return
        params_t = trainable_state(self.model)
        for split, x in self.inputs.items():
            result = taylor_split(self.model, self.params_0, x, params_t)
            self.records.append({"step": step, "split": split, **result.as_record()})

    def callback(self, step: int, model: nn.Module) -> None:
        """A :mod:`symlab.train` callback (``callback=tracker.callback``)."""
        self.update(step)
