"""Sparse polynomial targets f*(x) = Σ_S ĉ_S φ_S(x) and their data, on the cube or in Gaussian space.

A target is a short list of supports with coefficients. On the Boolean cube x ~ Unif{±1}^d the
basis φ_S is the Walsh character χ_S(x) = Π_{i∈S} x_i; in Gaussian space x ~ N(0, I_d) it is the
normalized Hermite monomial H_α (a Boolean support S stands for the multilinear α = 1_S, which is
χ_S's Gaussian counterpart). Both bases are orthonormal (:mod:`symlab.boolean.monomials`), so
ĉ_S = E[f*(x) φ_S(x)] and E[f*(x)²] = Σ_S ĉ_S². These are the targets of Abbe, Boix-Adserà &
Misiakiewicz (COLT 2022, arXiv 2202.08658; COLT 2023, arXiv 2302.11055): functions of a few
coordinates, learned by SGD from fresh samples (:func:`monomial_sampler`) or a fixed sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from symlab.boolean.monomials import (
    boolean_support,
    characters,
    check_dimension,
    gaussian_support,
    hermite_monomial,
    uniform_cube,
)

INPUTS = ("boolean", "gaussian")


@dataclass(frozen=True)
class MonomialTarget:
    """f*(x) = Σ_i ĉ_i φ_{S_i}(x): ``supports`` (Boolean sets, or Hermite multi-indices
    {coordinate: degree} with ``inputs="gaussian"``), ``coefficients`` ĉ_i, ``inputs`` the law of
    x ("boolean": uniform ±1; "gaussian": N(0, I_d)). Build it with :func:`monomial_target`."""

    supports: tuple
    coefficients: tuple[float, ...]
    inputs: str = "boolean"

    @property
    def coordinates(self) -> frozenset[int]:
        """The union of the supports (the latent coordinates; 1-based)."""
        return frozenset(c for s in self.supports for c in _coords(s))

    @property
    def norm_squared(self) -> float:
        """E[f*(x)²] = Σ_i ĉ_i² (orthonormal basis)."""
        return float(sum(c * c for c in self.coefficients))

    def features(self, x: Tensor, supports: Sequence | None = None) -> Tensor:
        """(n, m) matrix φ_{S_j}(x_i) for ``supports`` (default: the target's own)."""
        return monomial_features(x, self.supports if supports is None else supports, self.inputs)

    def __call__(self, x: Tensor) -> Tensor:
        """f*(x), shape (n,)."""
        coefficients = torch.tensor(self.coefficients, dtype=x.dtype, device=x.device)
        return self.features(x) @ coefficients

    def sample_inputs(
        self, n: int, d: int, generator: torch.Generator | None = None, dtype=torch.float32
    ) -> Tensor:
        """n inputs from the target's law in dimension d, shape (n, d)."""
        return sample_inputs(n, d, self.inputs, generator, dtype)


def monomial_target(
    supports: Iterable, coefficients: Iterable[float] | None = None, inputs: str = "boolean"
) -> MonomialTarget:
    """A validated :class:`MonomialTarget` (coefficients default to 1; supports must be distinct
    and non-empty, so that f* has mean zero)."""
    if inputs not in INPUTS:
        raise ValueError(f"inputs: expected one of {', '.join(INPUTS)}, got {inputs!r}")
    parsed = tuple(_parse_support(s, inputs) for s in supports)
    if not parsed:
        raise ValueError("supports: expected at least one support")
    if any(len(s) == 0 for s in parsed):
        raise ValueError("supports: expected non-empty supports (the target has mean zero)")
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"supports: expected distinct supports, got {list(supports)!r}")
    values = tuple(1.0 for _ in parsed) if coefficients is None else tuple(map(float, coefficients))
    if len(values) != len(parsed) or not all(v == v and abs(v) < float("inf") for v in values):
        raise ValueError(
            f"coefficients: expected {len(parsed)} finite numbers (one per support), got {values!r}"
        )
    return MonomialTarget(parsed, values, inputs)


def monomial_features(x: Tensor, supports: Sequence, inputs: str = "boolean") -> Tensor:
    """(n, m) matrix of the orthonormal monomials φ_{S_j}(x_i): Walsh characters for Boolean
    inputs, normalized Hermite monomials for Gaussian inputs (a set S meaning α = 1_S)."""
    if inputs == "boolean":
        return characters(x, supports)
    parsed = [_parse_support(s, "gaussian") for s in supports]
    return torch.stack([hermite_monomial(x, dict(s)) for s in parsed], dim=-1)


def sample_inputs(
    n: int, d: int, inputs: str, generator: torch.Generator | None = None, dtype=torch.float32
) -> Tensor:
    """n points of Unif{±1}^d (``inputs="boolean"``) or N(0, I_d) (``"gaussian"``)."""
    if inputs == "boolean":
        return uniform_cube(n, d, generator, dtype)
    if inputs == "gaussian":
        return torch.randn(n, d, generator=generator, dtype=dtype)
    raise ValueError(f"inputs: expected one of {', '.join(INPUTS)}, got {inputs!r}")


def monomial_sampler(
    target: MonomialTarget,
    d: int,
    batch: int,
    models: int | None = None,
    dtype=torch.float32,
) -> Callable[[int, torch.Generator], tuple[Tensor, Tensor]]:
    """``sampler(step, generator) -> (x, y)`` of fresh samples for online SGD
    (:func:`symlab.train.online_sgd`, :func:`symlab.train.train_ensemble`): x of shape
    (batch, d) and y = f*(x) of shape (batch, 1), or stacked (models, batch, ...) — one independent
    batch per model, for ``train_ensemble(..., data_per_model=True)``."""
    check_dimension(target.supports if target.inputs == "boolean" else _as_sets(target), d)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected a positive integer, got {batch!r}")
    if models is not None and (
        isinstance(models, bool) or not isinstance(models, int) or models < 1
    ):
        raise ValueError(f"models: expected a positive integer or None, got {models!r}")
    count = 1 if models is None else models
    evaluate = _fast_evaluator(target)

    def sampler(step: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = sample_inputs(count * batch, d, target.inputs, generator, dtype)
        y = evaluate(x).unsqueeze(-1)
        if models is None:
            return x, y
        return x.reshape(count, batch, d), y.reshape(count, batch, 1)

    return sampler


def control_supports(target: MonomialTarget, d: int, count: int = 4) -> list[frozenset[int]]:
    """A few Boolean supports outside the target's support, as controls whose coefficients must
    stay at 0: a fresh coordinate u = max(S) + 1 alone, {1, u}, {u, u + 1}, then the union of the
    latent coordinates when it is not itself a support (as far as d allows)."""
    latent = sorted(target.coordinates)
    u = latent[-1] + 1
    own = {frozenset(_coords(s)) for s in target.supports}
    candidates = [{u}, {latent[0], u}, {u, u + 1}, set(latent)]
    chosen: list[frozenset[int]] = []
    for c in candidates:
        c = frozenset(c)
        if max(c) <= d and c not in own and c not in chosen:
            chosen.append(c)
    return chosen[:count]


def _fast_evaluator(target: MonomialTarget) -> Callable[[Tensor], Tensor]:
    """f* with the coordinate indices built once (an online sampler calls it every step);
    Boolean targets only, Gaussian ones are evaluated by ``target`` itself."""
    if target.inputs != "boolean":
        return target
    pairs = [
        (c, torch.tensor(sorted(s), dtype=torch.long) - 1)
        for c, s in zip(target.coefficients, target.supports)
    ]

    def evaluate(x: Tensor) -> Tensor:
        out = pairs[0][0] * x[:, pairs[0][1]].prod(-1)
        for c, index in pairs[1:]:
            out = out + c * x[:, index].prod(-1)
        return out

    return evaluate


def _coords(support) -> tuple[int, ...]:
    """The coordinates of a Boolean set or of a Hermite multi-index ((coordinate, degree), ...)."""
    if isinstance(support, frozenset):
        return tuple(sorted(support))
    return tuple(c for c, _ in support)


def _parse_support(support, inputs: str):
    if inputs == "boolean":
        return boolean_support(support)
    if isinstance(support, Mapping):
        return gaussian_support(support)
    if isinstance(support, tuple) and all(isinstance(p, tuple) for p in support):
        return gaussian_support(dict(support))
    return gaussian_support({c: 1 for c in boolean_support(support)})


def _as_sets(target: MonomialTarget) -> list[frozenset[int]]:
    return [frozenset(_coords(s)) for s in target.supports]
