"""Matrix completion as a data set of observed entries, so that minibatch SGD samples entries.

The observed entries (i, j) of a d×d :class:`symlab.bias.MatrixTask` become N samples: input
x = e_j ∈ R^d and target row [Y_ij e_i, e_i] ∈ R^{2d} (the value and the one-hot row it sits in).
A network f with f(x) = A x (:class:`symlab.bias.DeepLinearNetwork`) outputs the column A e_j, and
:func:`entry_loss` reads its i-th coordinate:

    loss(batch) = (N / B) · ½ Σ_{b in batch} (A_{i_b j_b} − Y_{i_b j_b})²,

so the full batch gives C(A) = ½ ‖M ⊙ (A − Y)‖_F² (the objective of :mod:`symlab.bias.linear_net`)
and a minibatch of B entries an unbiased estimate of it (Wang & Jacot, ICLR 2024, arXiv 2305.16038:
SGD on matrix completion samples observed entries).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from symlab.bias.linear_net import MatrixTask


def entry_data(task: MatrixTask) -> tuple[Tensor, Tensor]:
    """(x, y) with one sample per observed entry (module docstring), in the task's dtype."""
    if task.mask is None:
        mask = torch.ones_like(task.observations, dtype=torch.bool)
    else:
        mask = task.mask
    index = torch.nonzero(mask)
    eye = torch.eye(task.dim, dtype=task.observations.dtype)
    values = task.observations[index[:, 0], index[:, 1]]
    rows = eye[index[:, 0]]
    return eye[index[:, 1]], torch.cat([rows * values[:, None], rows], dim=1)


def entry_loss(n_entries: int) -> Callable[[Tensor, Tensor], Tensor]:
    """(N / B) · ½ Σ_b (f(x_b)_{i_b} − Y_b)² for N = ``n_entries`` observed entries (module
    docstring)."""
    if isinstance(n_entries, bool) or not isinstance(n_entries, int) or n_entries < 1:
        raise ValueError(f"n_entries: expected a positive integer, got {n_entries!r}")

    def loss(output: Tensor, target: Tensor) -> Tensor:
        d = output.shape[-1]
        if target.shape[-1] != 2 * d or target.shape[:-1] != output.shape[:-1]:
            raise ValueError(
                f"data: expected entry targets of shape {(*output.shape[:-1], 2 * d)}, got "
                f"{tuple(target.shape)}"
            )
        rows = target[..., d:]
        residual = (output * rows).sum(-1) - target[..., :d].sum(-1)
        return 0.5 * n_entries * residual.square().mean()

    return loss
