"""Training error of the linearised model under GD, heavy ball and Nesterov, from the kernel's spectrum.

In the kernel regime (Jacot et al. 2018; Lee et al. 2019) a network trained on the MSE
L(θ) = ‖f_θ(X) − y‖² / (2N) follows its linearisation f_0 + J (θ − θ_0), whose residual
r_t = f_t(X) − y evolves, with H = Θ_0 / N = J Jᵀ / N = U diag(λ) Uᵀ and c = Uᵀ r, per
eigen-direction as

- gradient descent (step η):   c_{t+1} = (1 − η λ) c_t,
- heavy ball (Polyak 1964):    c_{t+1} = (1 + β − η λ) c_t − β c_{t−1}          (c_{−1} = c_0),
- Nesterov (1983):             c_{t+1} = (1 − η λ) (c_t + β_t (c_t − c_{t−1})),  β_t = t / (t + 3)
                               by default, as in :class:`symlab.train.Nesterov`.

:func:`linearized_training_error` iterates these exactly; :func:`optimizer_hyperparameters` gives the
classical step sizes (η = 1/λ_max; Polyak's optimum for heavy ball). Cost O(T N).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from symlab.train.momentum import momentum_at

KERNEL_OPTIMIZERS = ("gd", "heavy_ball", "nesterov")


def optimizer_hyperparameters(
    optimizer: str, lam_min: float, lam_max: float, margin: float = 0.0
) -> tuple[float, float]:
    """(η, β) from the extreme eigenvalues of H = Θ_0 / N (β is 0 for GD and unused by Nesterov).

    GD and Nesterov: η = 1 / λ_max. Heavy ball: Polyak's optimum for [μ, L] =
    [λ_min / (1 + margin), λ_max (1 + margin)], η = 4 / (√L + √μ)², β = ((√κ − 1)/(√κ + 1))², κ = L/μ,
    whose slowest mode decays like √β per step. margin = 0 is the exact optimum, where the extreme
    modes sit on a double root (c_t ∝ t ρ^t) that any kernel drift splits; a small margin keeps
    every mode strictly oscillating."""
    if optimizer in ("gd", "nesterov"):
        return 1.0 / lam_max, 0.0
    if optimizer == "heavy_ball":
        lam_min, lam_max = lam_min / (1 + margin), lam_max * (1 + margin)
        kappa = lam_max / lam_min
        beta = ((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2
        return 4.0 / (math.sqrt(lam_max) + math.sqrt(lam_min)) ** 2, beta
    raise ValueError(
        f"optimizer: expected one of {', '.join(KERNEL_OPTIMIZERS)}, got {optimizer!r}"
    )


def linearized_training_error(
    optimizer: str,
    eigenvalues: torch.Tensor,
    c0: torch.Tensor,
    eta: float,
    beta: float | str | Callable[[int], float],
    steps: int,
) -> np.ndarray:
    """E_t = Σ_i c_i(t)² / (2N), t = 0..steps, of the linearised model (recurrences above).

    ``eigenvalues`` are those of H = Θ_0 / N, ``c0`` = Uᵀ r_0 the initial residual in its
    eigenbasis; ``beta`` is heavy ball's momentum, or Nesterov's (a constant, ``"k/(k+3)"`` or a
    callable)."""
    if optimizer not in KERNEL_OPTIMIZERS:
        raise ValueError(
            f"optimizer: expected one of {', '.join(KERNEL_OPTIMIZERS)}, got {optimizer!r}"
        )
    lam = eigenvalues.to(torch.float64)
    c_prev = c = c0.to(torch.float64)
    n = len(c0)
    out = [float(c.square().sum()) / (2 * n)]
    for t in range(steps):
        if optimizer == "gd":
            c_next = (1 - eta * lam) * c
        elif optimizer == "heavy_ball":
            c_next = (1 + beta - eta * lam) * c - beta * c_prev
        else:
            c_next = (1 - eta * lam) * (c + momentum_at(beta, t) * (c - c_prev))
        c_prev, c = c, c_next
        out.append(float(c.square().sum()) / (2 * n))
    return np.asarray(out)
