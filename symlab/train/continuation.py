"""λ-continuation of the L2 objective: L-BFGS on L + λ_i ‖θ‖² along an increasing ladder of λ.

For a deep positively homogeneous network (bias-free ReLU or linear layers, depth D) the L2
objective L(θ) + λ‖θ‖² has a strict local minimum at θ = 0 for every λ > 0 when D ≥ 3: the
output is O(‖θ‖^D) there, so L(θ) − L(0) = O(‖θ‖^D) = o(‖θ‖²) while the penalty is λ‖θ‖², and
every small enough θ ≠ 0 has a larger objective than θ = 0 (f = 0, objective L(0)). (For D = 2
the data term has a quadratic part and θ = 0 is a local minimum only for λ large enough.) A fit
reached without L2 has a large norm (about the initialization's), and L-BFGS started from it at
the target λ can follow the penalty's descent direction, shrink every layer at once and end at
f = 0 even when a fitted critical point with a lower objective exists (measured on a depth-16
network of the cnn-bottleneck study, where the ladder reached the fitted minimum, and in the
tests on a depth-6 scalar chain). Continuation (homotopy) in λ follows the path of minimizers
instead, in discrete steps: the first stage at a small λ_1 trades norm for fit slowly, and each
later stage starts at the previous end point, near the next minimizer when the steps λ_{i+1}/λ_i
are small enough (Allgower & Georg, *Numerical Continuation Methods: An Introduction*, Springer
1990, for the method; Jacot 2023, "Implicit bias of large depth networks: a notion of rank for
nonlinear functions", ICLR, arXiv 2209.15055, for the L2 objective of deep networks as
min_f C(f) + λ R(f; D), whose minimizer moves with λ). Nothing here certifies that the end point
is the global minimum, or that the path was followed without a jump; each stage's trajectory
says how it ended.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from torch import nn

from symlab.train.second_order import lbfgs
from symlab.train.trajectory import Data, Loss, Trajectory, mse_loss


def l2_continuation(
    model: nn.Module,
    data: Data,
    lams: Iterable[float],
    *,
    max_iter: int = 1000,
    tol: float = 1e-12,
    loss: Loss = mse_loss,
    record_every: int = 10,
) -> list[Trajectory]:
    """L-BFGS (:func:`symlab.train.lbfgs`) on L(θ) + λ ‖θ‖² for each λ of ``lams`` in turn, each
    stage warm-started at the previous one's end point (module docstring); ``model`` is trained
    in place and ends at the last stage's point (the one at the target λ = ``lams[-1]``).

    Args:
        lams: the ladder, strictly increasing positive finite real numbers (Python or NumPy
            scalars; one value: plain L-BFGS at that λ); e.g. ``numpy.geomspace(lam / 100, lam,
            5)``.
        max_iter, tol, loss, record_every: per stage, as in :func:`symlab.train.lbfgs`.

    Returns the stages' trajectories, in ladder order (their records include the penalty of
    their own λ); a stage that diverges (non-finite objective) ends the ladder, so the list is
    then shorter than ``lams`` and its last trajectory has ``diverged = True``. Cost: the
    stages' L-BFGS iterations, each about 1.2 forward+backward passes.
    """
    if isinstance(lams, str | bytes) or not isinstance(lams, Iterable):
        raise ValueError(f"lams: expected a sequence of positive finite numbers, got {lams!r}")
    ladder = list(lams)
    if not ladder or not all(
        isinstance(lam, numbers.Real) and not isinstance(lam, bool) and 0 < lam < math.inf
        for lam in ladder
    ):
        raise ValueError(f"lams: expected positive finite numbers, got {lams!r}")
    if any(b <= a for a, b in zip(ladder, ladder[1:])):
        raise ValueError(f"lams: expected a strictly increasing ladder, got {lams!r}")
    stages = []
    for lam in ladder:
        stages.append(
            lbfgs(
                model,
                data,
                max_iter=max_iter,
                tol=tol,
                weight_decay=float(lam),
                loss=loss,
                record_every=record_every,
            )
        )
        if stages[-1].diverged:
            break  # nothing to continue from
    return stages
