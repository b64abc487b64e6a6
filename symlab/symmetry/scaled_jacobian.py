"""The row- and column-scaled float64 Jacobian whose rank is the batch functional dimension.

Rows of J E_Z|_theta (:func:`symlab.linalg.parameter_jacobian`, float64) scaled to unit norm,
and, for positively homogeneous MLPs, one column per hidden neuron h dropped: the scaling
direction v_h (Grigsby, Lindsey, Rolnick 2023, arXiv 2306.06179; see
:mod:`symlab.symmetry.batch_dimension`) lies in ker J for every sample, so J v_h = 0 makes one
column of h's incoming row (W_l[h], b_l[h]) a combination of the others. The column dropped is
the one with the largest |theta_p| ||J_p|| (the best-conditioned choice: its coefficient in v_h
is theta_p); the dropped columns' coefficient matrix is block-triangular over layers with a
nonzero diagonal, so the rank is unchanged exactly while the matrix loses one column per hidden
neuron. Diagonal scalings of rows and columns do not change the rank either.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from symlab.linalg.jacobian import closed_form_factors, parameter_jacobian, write_jacobian_rows
from symlab.linalg.rank import significant
from symlab.nets import is_mlp, linear_layers


def scaling_columns(model: nn.Module, column_norms: torch.Tensor) -> torch.Tensor:
    """One column per hidden neuron to drop: the largest |theta_p| * ||J_p|| in its incoming row."""
    drop, offset = [], 0
    layers = linear_layers(model)
    for index, layer in enumerate(layers):
        n_out, n_in = layer.weight.shape
        has_bias = layer.bias is not None
        if index < len(layers) - 1:
            # row h of (W_l | b_l) and its column indices in J
            rows = layer.weight.detach().to(torch.float64)
            cols = offset + torch.arange(n_out * n_in).view(n_out, n_in)
            if has_bias:
                rows = torch.cat([rows, layer.bias.detach().to(torch.float64)[:, None]], 1)
                cols = torch.cat([cols, offset + n_out * n_in + torch.arange(n_out)[:, None]], 1)
            score = rows.abs() * column_norms[cols]
            best = score.argmax(dim=1)
            live = score.max(dim=1).values > 0
            drop.append(cols[torch.arange(n_out), best][live])
        offset += n_out * (n_in + int(has_bias))
    return torch.cat(drop) if drop else torch.zeros(0, dtype=torch.long)


class ScaledJacobian:
    """Jacobian rows for new points: float64, rows scaled to unit norm, scaling columns dropped.

    MLPs: J is never formed unscaled. From the closed-form factors
    (:func:`symlab.linalg.jacobian.closed_form_factors`; row (i, k), column (l, h, j) of J is
    g^l[i, k, h] a^{l-1}[i, j]) the row norms are ||J_ik||^2 = sum_l ||g^l_ik||^2
    (||a^{l-1}_i||^2 + [bias]) and the column norms of the row-scaled J are small GEMMs,
    sum_i a^{l-1}[i, j]^2 sum_k w_ik g^l[i, k, h]^2 with w = 1 / ||J_ik||^2; the kept columns
    of the row-scaled J are then written once, by blocks of rows (``BLOCK_BYTES``) that stay in
    cache (on the CPU gathered by ``numpy.take``). Other modules: the Jacobian of
    :func:`symlab.linalg.parameter_jacobian`, row norms along the contiguous axis, the scaled
    column norms by blocks of rows, the kept columns gathered (``numpy.compress`` on the CPU)
    and scaled in place.

    ``drop_zero_columns=True`` also leaves out, for this call only, the columns that are zero
    to working precision on these points (:func:`symlab.linalg.rank.significant` of the scaled
    column norms, the rule by which the Gram routes of :func:`symlab.linalg.numerical_rank`
    zero them anyway: their rank and tol are unchanged, and a dead neuron's columns no longer
    cost Gram, Cholesky and null-space work; not for ``method="svd"``, whose tol counts every
    column of a wide matrix). Only for a rank of this call's rows alone: a Gram grown over
    calls needs the same columns in each.
    """

    def __init__(self, model: nn.Module, reduce: bool):
        self.model, self.reduce, self.keep = model, reduce, None
        self.closed_form = is_mlp(model)

    def __call__(self, x: torch.Tensor, drop_zero_columns: bool = False) -> torch.Tensor:
        if self.closed_form:
            return self._from_factors(x, drop_zero_columns)
        jac = parameter_jacobian(self.model, x, dtype=torch.float64)
        norms = torch.linalg.vector_norm(jac, dim=1)  # the contiguous axis
        rows = significant(norms, max(jac.shape))
        if not bool(rows.all()):
            jac, norms = jac[rows], norms[rows]
        inverse = (1.0 / norms)[:, None]
        column_norms = None
        if (self.keep is None and self.reduce) or drop_zero_columns:
            column_norms = scaled_column_norms(jac, inverse[:, 0] ** 2)
        keep = self._kept(column_norms, jac.shape, drop_zero_columns)
        if bool(keep.all()):
            return jac.mul_(inverse)  # in place: J is this call's own buffer
        if jac.device.type == "cpu":
            kept = torch.from_numpy(np.compress(keep.numpy(), jac.numpy(), axis=1))
        else:
            kept = torch.index_select(jac, 1, torch.nonzero(keep)[:, 0].to(jac.device))
        return kept.mul_(inverse)

    def _from_factors(self, x: torch.Tensor, drop_zero_columns: bool) -> torch.Tensor:
        """The MLP route of the class docstring."""
        activations, cotangents = closed_form_factors(self.model, x)
        biased = [layer.bias is not None for layer in linear_layers(self.model)]
        factors = list(zip(activations, cotangents, biased, strict=True))
        squares = sum((g * g).sum(-1) * ((a * a).sum(-1)[:, None] + bias) for a, g, bias in factors)
        norms = squares.reshape(-1).sqrt()
        width = sum(g.shape[2] * (a.shape[1] + bias) for a, g, bias in factors)
        rows = significant(norms, max(len(norms), width))
        inverse = torch.where(rows, 1.0 / norms, torch.zeros_like(norms)).view(squares.shape)
        cotangents = [g * inverse[:, :, None] for g in cotangents]  # rows scaled to unit norm
        column_norms = factor_column_norms(activations, cotangents, biased)
        keep = self._kept(column_norms, (int(rows.sum()), width), drop_zero_columns)
        jac = _kept_columns(activations, cotangents, biased, keep)
        return jac if bool(rows.all()) else jac[rows]

    def _kept(self, column_norms: torch.Tensor | None, shape: tuple[int, int], drop_zero: bool):
        """The kept columns of a (rows, columns) J: without the scaling columns (chosen on the
        first call) and, with ``drop_zero``, without this call's zero columns."""
        if self.keep is None:
            keep = torch.ones(shape[1], dtype=torch.bool)
            if self.reduce:
                keep[scaling_columns(self.model, column_norms.cpu())] = False
            self.keep = keep
        keep = self.keep
        if drop_zero:  # the kept columns' rule, as the rank route applies it
            keep = keep.clone()
            kept_norms = column_norms.cpu()[keep]
            keep[keep.clone()] = significant(kept_norms, max(shape[0], len(kept_norms)))
        return keep


def factor_column_norms(
    activations: list[torch.Tensor], cotangents: list[torch.Tensor], biased: list[bool]
) -> torch.Tensor:
    """Column norms of J from its closed-form factors, in J's column order: for layer l,
    ||J_(h, j)||^2 = sum_i a[i, j]^2 sum_k g[i, k, h]^2 (one (n_l, N) x (N, n_{l-1}) GEMM) and
    ||J_(h, bias)||^2 = sum_{i, k} g[i, k, h]^2."""
    squares = []
    for a, g, bias in zip(activations, cotangents, biased, strict=True):
        per_neuron = (g * g).sum(1)  # (N, n_l)
        squares.append((per_neuron.T @ (a * a)).reshape(-1))
        if bias:
            squares.append(per_neuron.sum(0))
    return torch.cat(squares).sqrt()


BLOCK_BYTES = 2**21  # rows of J per block of the kept-column writes (they stay in cache)


def _kept_columns(activations, cotangents, biased, keep: torch.Tensor) -> torch.Tensor:
    """The kept columns of J (rows point-major) from its factors: by blocks of rows written in
    full to a buffer that stays in cache, then gathered to the output (on
    the CPU by ``numpy.take``); all columns kept: written to the output directly."""
    n, k = cotangents[0].shape[:2]
    width, dev = len(keep), cotangents[0].device
    out = torch.empty(n * k, int(keep.sum()), dtype=torch.float64, device=dev)
    whole = bool(keep.all())
    block = max(1, BLOCK_BYTES // (8 * k * width))
    buffer = None if whole else torch.empty(block * k, width, dtype=torch.float64, device=dev)
    picked = torch.nonzero(keep)[:, 0]
    picked = picked.numpy() if dev.type == "cpu" else picked.to(dev)
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = slice(start * k, stop * k)
        target = out[rows] if whole else buffer[: (stop - start) * k]
        write_jacobian_rows(
            [a[start:stop] for a in activations],
            [g[start:stop] for g in cotangents],
            biased,
            target.view(stop - start, k, width),
        )
        if whole:
            continue
        if dev.type == "cpu":
            # "clip" into a contiguous out: no bounds check, no buffer (np.compress buffers)
            np.take(target.numpy(), picked, axis=1, out=out[rows].numpy(), mode="clip")
        else:
            torch.index_select(target, 1, picked, out=out[rows])
    return out


def scaled_column_norms(jac: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sqrt(sum_i w_i J_ij^2) per column j, by blocks of 64 rows that stay in cache."""
    squares = torch.zeros(jac.shape[1], dtype=torch.float64, device=jac.device)
    for start in range(0, jac.shape[0], 64):
        block = jac[start : start + 64]
        squares.addmv_((block * block).T, weights[start : start + 64])
    return squares.sqrt()
