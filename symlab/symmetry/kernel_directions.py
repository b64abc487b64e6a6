"""Explicit directions in ker J E_Z forced by dead and always-active neurons of a ReLU MLP.

Grigsby, Lindsey, Rolnick 2023 ("Hidden Symmetries of ReLU Networks", ICML, arXiv 2306.06179,
Sec. 5) trace functional-dimension losses below the bound D - (number of hidden neurons)
(Grigsby, Lindsey, Meyerhoff, Wu 2022, arXiv 2209.04036) to unused activations. This module
builds the directions of :mod:`symlab.symmetry.neuron_mechanisms` (whose docstring derives them): the
coordinate subspace C of the dead neurons' parameters, the positive-scaling direction of every
alive hidden neuron, and a basis of each always-active group's kernel
{(dU, dV, db_{l+1}) : dU V + U dV + db_{l+1} e_last^T = 0}, found by a float64 SVD of the explicit
(n_{l+1} m) x (k(n_{l+1} + m) + n_{l+1}) map (null space: tol = sigma_max * max(shape) * eps). The
rank of the directions uses tol = sigma_max * sqrt(eps) (:func:`_restricted_rank`) and reports
the gap sigma_r / sigma_{r+1}. Flat parameter order W_1, b_1, ..., W_L, b_L (row-major).
Cost: the SVD of a (#directions x D) matrix and of each group's map.

It also finds the parameters unused on Z (:func:`_unused_coordinates`): theta_c whose Jacobian
column dF_k(x)/dtheta_c is exactly zero for every x in Z and every output k. With g^l(x) = dF/dz^l
(K x n_l), the column of W_l[i, j] is g^l_{:, i}(x) a^{l-1}_j(x) and that of b_l[i] is g^l_{:, i}(x),
so W_l[i, j] is unused iff sum_x sum_k |g^l_{k,i}(x)| |a^{l-1}_j(x)| = 0. The test is exact (no
tolerance): it multiplies 0/1 indicators, live^l_i(x) >= [g^l_{:, i}(x) != 0] and
[a^{l-1}_j(x) != 0], in float64, one (n_l x N)(N x n_{l-1}) product per layer. live^l_i(x) = 1 iff
neuron i of layer l is active at x and some path from it to an output runs through neurons active
at x along nonzero weights; live = 0 forces g = 0 (every term of g is a product along such a path),
and for generic weights live = 1 means g != 0. Cost O(N D).
"""

from __future__ import annotations

import torch


def _rank(matrix: torch.Tensor, rtol: float) -> tuple[int, float, float]:
    """Rank with tol = sigma_max * rtol (float64), the tolerance and the gap."""
    if matrix.numel() == 0:
        return 0, 0.0, float("inf")
    s = torch.linalg.svdvals(matrix)
    tol = float(s[0]) * rtol if s[0] > 0 else 0.0
    rank = int((s > tol).sum())
    if rank == 0 or rank == s.numel():
        gap = float("inf")
    else:
        gap = float(s[rank - 1] / s[rank]) if s[rank] > 0 else float("inf")
    return rank, tol, gap


class _Index:
    """Flat parameter positions: W_l[i, j] and b_l[i] for l = 1..L (order W_1, b_1, ..., W_L, b_L)."""

    def __init__(self, widths: list[int]) -> None:
        self.widths, self.w_off, self.b_off, offset = widths, [], [], 0
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
            self.w_off.append(offset)
            self.b_off.append(offset + n_out * n_in)
            offset += n_out * (n_in + 1)
        self.size = offset

    def weight(self, layer: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Positions of W_layer[rows][:, cols] (layer 1-based), shape (len(rows), len(cols))."""
        return self.w_off[layer - 1] + rows[:, None] * self.widths[layer - 1] + cols[None, :]

    def bias(self, layer: int, rows: torch.Tensor) -> torch.Tensor:
        return self.b_off[layer - 1] + rows


def _kron(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Kronecker product a (x) b (torch.kron fails on some column-vector strides)."""
    out = a[:, None, :, None] * b[None, :, None, :]
    return out.reshape(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1])


def _null_space(matrix: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis (rows) of ker matrix, float64, tol = sigma_max * max(shape) * eps."""
    _, s, vh = torch.linalg.svd(matrix, full_matrices=True)
    tol = float(s.max()) * max(matrix.shape) * torch.finfo(torch.float64).eps if s.numel() else 0.0
    return vh[int((s > tol).sum()) :]


def _kernel_directions(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    dead: list[torch.Tensor],
    always: list[torch.Tensor],
    scalings_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of the dead coordinates C, rows = scaling + always-active kernel directions)."""
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    index, n_hidden = _Index(widths), len(widths) - 2
    coords = torch.zeros(index.size, dtype=torch.bool)
    alive = [torch.arange(widths[0])]
    for layer in range(1, n_hidden + 1):
        alive.append(torch.nonzero(~dead[layer - 1]).flatten())
        for i in torch.nonzero(dead[layer - 1]).flatten():
            i1 = i.reshape(1)
            coords[index.weight(layer, i1, torch.arange(widths[layer - 1]))] = True
            coords[index.bias(layer, i1)] = True
            coords[index.weight(layer + 1, torch.arange(widths[layer + 1]), i1)] = True
    alive.append(torch.arange(widths[-1]))
    flat = torch.cat([torch.cat([w.reshape(-1), b]) for w, b in zip(weights, biases, strict=True)])
    rows = []
    for layer in range(1, n_hidden + 1):
        everything_before = torch.arange(widths[layer - 1])
        for i in alive[layer]:
            i1 = i.reshape(1)
            v = torch.zeros(index.size, dtype=torch.float64)
            incoming = torch.cat(
                [index.weight(layer, i1, everything_before).flatten(), index.bias(layer, i1)]
            )
            outgoing = index.weight(layer + 1, torch.arange(widths[layer + 1]), i1).flatten()
            v[incoming], v[outgoing] = flat[incoming], -flat[outgoing]
            rows.append(v)
    if not scalings_only:
        for layer in range(1, n_hidden + 1):
            group = torch.nonzero(always[layer - 1]).flatten()
            if group.numel() == 0:
                continue
            prev, nxt = alive[layer - 1], alive[layer + 1]
            u = weights[layer][nxt][:, group]  # (n, k)
            v = torch.cat([weights[layer - 1][group][:, prev], biases[layer - 1][group, None]], 1)
            n, m = u.shape[0], v.shape[1]
            bias_map = torch.zeros(n * m, n, dtype=torch.float64)
            bias_map[torch.arange(n) * m + (m - 1), torch.arange(n)] = 1.0
            linear_map = torch.cat(
                [
                    _kron(torch.eye(n, dtype=torch.float64), v.T),  # dU V
                    _kron(u, torch.eye(m, dtype=torch.float64)),  # U dV
                    bias_map,  # db_{l+1} e_last^T
                ],
                dim=1,
            )
            positions = torch.cat(
                [
                    index.weight(layer + 1, nxt, group).flatten(),
                    torch.cat(
                        [index.weight(layer, group, prev), index.bias(layer, group)[:, None]], 1
                    ).flatten(),
                    index.bias(layer + 1, nxt),
                ]
            )
            for x in _null_space(linear_map):
                direction = torch.zeros(index.size, dtype=torch.float64)
                direction[positions] = x
                rows.append(direction)
    stacked = torch.stack(rows) if rows else torch.zeros(0, index.size, dtype=torch.float64)
    return coords, stacked


def _unused_coordinates(
    weights: list[torch.Tensor], inputs: torch.Tensor, pre: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """(flat mask (D,) of the unused parameters, per-layer masks of W_l, per-layer masks of b_l).

    ``weights``: float64 W_1..W_L; ``inputs``: Z (N, n0) float64; ``pre``: hidden pre-activations
    z^1..z^{L-1}, each (N, n_l). A parameter is flagged iff its Jacobian column vanishes on Z for
    every output by the exact indicator test of the module docstring.
    """
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    index = _Index(widths)
    n_points = inputs.shape[0]
    # live[l-1] (N, n_l): indicator of g^l_{:, i}(x) possibly nonzero; at the output g^L = I.
    live = [torch.ones(n_points, widths[-1], dtype=torch.float64)]
    for w, z in zip(reversed(weights[1:]), reversed(pre), strict=True):
        reaches = (live[0] @ (w != 0).to(torch.float64)) > 0
        live.insert(0, (reaches & (z > 0)).to(torch.float64))
    # factors a^{l-1}_j(x) != 0: the input coordinates, then the hidden activations relu(z) > 0
    nonzero = [(inputs != 0).to(torch.float64)] + [(z > 0).to(torch.float64) for z in pre]
    mask = torch.zeros(index.size, dtype=torch.bool)
    unused_weights, unused_biases = [], []
    for layer, (g, a) in enumerate(zip(live, nonzero, strict=True), start=1):
        w_unused = (g.T @ a) == 0  # sums of 0/1 products: exactly zero iff every term is zero
        b_unused = g.sum(0) == 0
        n_in, n_out = widths[layer - 1], widths[layer]
        start = index.w_off[layer - 1]
        mask[start : start + n_out * n_in] = w_unused.reshape(-1)
        mask[index.b_off[layer - 1] : index.b_off[layer - 1] + n_out] = b_unused
        unused_weights.append(w_unused)
        unused_biases.append(b_unused)
    return mask, unused_weights, unused_biases


KERNEL_RTOL = torch.finfo(torch.float64).eps ** 0.5


def _restricted_rank(coords: torch.Tensor, rows: torch.Tensor) -> tuple[int, float, float]:
    """Rank of the kernel directions ``rows`` off the coordinates ``coords`` (unit-norm rows),
    its tolerance and gap. The tolerance is sigma_max * sqrt(eps) (``KERNEL_RTOL``), not the
    rounding level: a direction built twice (an always-active group's null space holds its
    neurons' scalings again) comes out with a singular value at rounding level, 5.8e-15 against
    the usual sigma_max * max(shape) * eps = 5.0e-15 on one (1, 3, 3, 2) net with MKL on an AMD
    CPU (below it on an Intel one). Counting only directions independent by more than sqrt(eps)
    can only under-count the kernel, so the upper bound D - |C| - rank built on it stays an upper
    bound and a predicted deficit is never overstated."""
    restricted = rows[:, ~coords]
    norms = torch.linalg.vector_norm(restricted, dim=1)
    restricted = restricted[norms > 0] / norms[norms > 0, None]
    return _rank(restricted, KERNEL_RTOL)
