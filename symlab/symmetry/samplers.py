"""Input samplers for batch functional dimension.

The batch functional dimension rank J E_Z|_theta is a lower bound on dim_fun(theta) that is exact
only when Z is decisive: n0 + 1 affinely independent points in every linear region of F_theta,
including the unbounded far-away regions and the small regions near the origin (Grigsby,
Lindsey, Meyerhoff, Wu 2022, arXiv 2209.04036, §5; Grigsby, Lindsey, Rolnick 2023, "Hidden
Symmetries of ReLU Networks", ICML, arXiv 2306.06179, estimate dim_fun from such samples).

A sampler is a function ``(n_points, n0, generator, dtype) -> Tensor (n_points, n0)``; all
randomness comes from ``generator``, so a seed fixes the sample.

- ``"gaussian"``: x ~ N(0, I_{n0}).
- ``"multiscale"`` (the default of :func:`symlab.symmetry.functional_dimension`):
  x = r u with u ~ N(0, I_{n0}) and log10 r ~ U(-2, 3), so the radii span five decades. Plain
  N(0, I) inputs undersample the far regions: on the paper's cells (n0 = width = 10, depth 4-6,
  benchmarks/RESULTS.md) multiscale finds a higher rank than gaussian on 27 of 30 networks
  (summed deficit 505 against 725).
- ``"mixture"``: half multiscale, half gaussian (dense near the origin as well as far out).

Model-aware samplers (``MODEL_SAMPLERS``) also read the network: ``(model, n_points, generator,
dtype)``; :func:`get_sampler` with ``model=`` binds it, giving a plain sampler.

- ``"boundary"`` (:mod:`symlab.symmetry.boundary_sampler`): pairs of points straddling the bent
  hyperplane of a random hidden neuron, found by secant steps along random and gradient-directed
  lines, so the regions where deep neurons switch on are met (MLPs only).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Sampler = Callable[[int, int, torch.Generator, torch.dtype], torch.Tensor]

MULTISCALE_LOG10_RADIUS = (-2.0, 3.0)


def _check(n_points: int, n0: int) -> None:
    if not isinstance(n_points, int) or n_points < 0:
        raise ValueError(f"n_points: expected a non-negative integer, got {n_points!r}")
    if not isinstance(n0, int) or n0 < 1:
        raise ValueError(f"n0: expected a positive integer, got {n0!r}")


def gaussian(
    n_points: int, n0: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """n_points draws of x ~ N(0, I_{n0})."""
    _check(n_points, n0)
    return torch.randn(n_points, n0, generator=generator, dtype=dtype)


def multiscale(
    n_points: int, n0: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """x = r u, u ~ N(0, I_{n0}), log10 r ~ U(-2, 3) (radii over five decades, see above)."""
    _check(n_points, n0)
    low, high = MULTISCALE_LOG10_RADIUS
    u = torch.randn(n_points, n0, generator=generator, dtype=torch.float64)
    log_r = low + (high - low) * torch.rand(n_points, 1, generator=generator, dtype=torch.float64)
    return (u * 10.0**log_r).to(dtype)


def mixture(
    n_points: int, n0: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The first ceil(n/2) points multiscale, the rest gaussian."""
    _check(n_points, n0)
    far = (n_points + 1) // 2
    return torch.cat(
        [multiscale(far, n0, generator, dtype), gaussian(n_points - far, n0, generator, dtype)]
    )


SAMPLERS: dict[str, Sampler] = {"gaussian": gaussian, "multiscale": multiscale, "mixture": mixture}
# names of the model-aware samplers (imported lazily: their module imports this one)
MODEL_SAMPLERS = ("boundary",)
SAMPLER_NAMES = (*SAMPLERS, *MODEL_SAMPLERS)


def get_sampler(sampler: str | Sampler, model: nn.Module | None = None) -> Sampler:
    """The sampler called ``sampler`` (a name in ``SAMPLER_NAMES``), or ``sampler`` if callable.

    A model-aware sampler (``MODEL_SAMPLERS``) needs ``model``, an MLP, and is returned bound to
    it with the plain signature ``(n_points, n0, generator, dtype)``.
    """
    if callable(sampler):
        return sampler
    if sampler in MODEL_SAMPLERS:
        from symlab.nets import is_mlp, linear_layers
        from symlab.symmetry.boundary_sampler import boundary

        if not isinstance(model, nn.Module) or not is_mlp(model):
            raise ValueError(
                f"model: the {sampler!r} sampler reads the network and expects an MLP "
                f"(Linear, activation, ..., Linear), got {type(model).__name__}"
            )
        n_in = linear_layers(model)[0].in_features

        def bound(
            n_points: int, n0: int, generator: torch.Generator, dtype: torch.dtype = torch.float64
        ) -> torch.Tensor:
            _check(n_points, n0)
            if n0 != n_in:
                raise ValueError(f"n0: expected the model's input dimension {n_in}, got {n0}")
            return boundary(model, n_points, generator, dtype)

        return bound
    if sampler not in SAMPLERS:
        raise ValueError(
            f"sampler: expected one of {', '.join(SAMPLER_NAMES)} or a callable, got {sampler!r}"
        )
    return SAMPLERS[sampler]
