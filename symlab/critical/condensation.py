"""Condensation: hidden neurons of a wide two-layer net collapsing onto a few input orientations.

Following Luo, Xu, Ma, Zhang (JMLR 2021, "Phase diagram for two-layer ReLU neural networks") and
Zhou et al. (NeurIPS 2022, "Towards understanding the condensation of neural networks at initial
training"), neuron j of f(x) = Σ_j a_j σ(w_j·x + b_j) is described by its orientation
u_j = w̄_j / ‖w̄_j‖ with w̄_j = (w_j, b_j) (the bias folded in) and its amplitude |a_j| ‖w̄_j‖.
A net trained from small initialisation sits near a point embedded from a narrow net (Zhang et al.,
NeurIPS 2021): its neurons form a few clusters of equal orientation. We count them by complete-
linkage hierarchical clustering of the orientations under the cosine distance 1 − u_j·u_k, cut at
``threshold`` (every pair inside a cluster is within it; Martinelli et al. use 0.01), over the
neurons whose amplitude is at least ``amplitude_fraction`` of the largest ("effective neurons").
Orientations are signed (u and −u differ) unless σ is odd (tanh, identity): then neuron
(w, b, a) and (−w, −b, −a) compute the same function (the flip acts on the bias too), so u and
−u are one orientation and the clustering uses the unsigned distance 1 − |u_j·u_k|.
``effective_neuron_count`` picks the distance from the model's activation.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from torch import nn

from symlab.critical.embeddings import is_odd
from symlab.nets.feedforward import activation_of, linear_layers


def neuron_orientations(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, amplitude) of the hidden neurons of a two-layer net: u (m, d̃) unit rows of
    w̄ = [W_1, b_1] (d̃ = d + 1 with a bias), amplitude_j = ‖W_2[:, j]‖ ‖w̄_j‖. Cost O(m d)."""
    layers = linear_layers(model)
    if len(layers) != 2:
        raise ValueError(f"model: expected a two-layer network, got {len(layers)} linear layers")
    w = layers[0].weight.detach()
    if layers[0].bias is not None:
        w = torch.cat([w, layers[0].bias.detach()[:, None]], dim=1)
    norms = torch.linalg.vector_norm(w, dim=1)
    u = w / norms.clamp_min(torch.finfo(w.dtype).tiny)[:, None]
    amplitude = torch.linalg.vector_norm(layers[1].weight.detach(), dim=0) * norms
    return u, amplitude


def orientation_clusters(
    directions: torch.Tensor, threshold: float = 0.01, *, signed: bool = True
) -> np.ndarray:
    """Cluster labels 1..c of unit vectors (rows) by complete linkage on the cosine distance
    1 − u·u' (``signed``) or 1 − |u·u'| (not ``signed``: u and −u are the same orientation, for
    odd σ), cut at ``threshold``. Cost O(m² d̃) time and O(m²) memory."""
    if not 0 < threshold < 2:
        raise ValueError(f"threshold: expected a cosine distance in (0, 2), got {threshold!r}")
    rows = directions.detach().double().cpu().numpy()
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError("directions: expected a non-empty (m, d) matrix")
    if rows.shape[0] == 1:
        return np.ones(1, dtype=int)
    distances = pdist(rows, metric="cosine")  # 1 − cos
    if not signed:
        distances = 1.0 - np.abs(1.0 - distances)
    distances = np.clip(distances, 0.0, None)
    return fcluster(linkage(distances, method="complete"), t=threshold, criterion="distance")


def effective_neuron_count(
    model: nn.Module,
    threshold: float = 0.01,
    amplitude_fraction: float = 0.01,
    *,
    signed: bool | None = None,
) -> int:
    """Number of orientation clusters among neurons with amplitude ≥ fraction · max amplitude:
    the width of the narrow net the wide one is (approximately) embedded from. ``signed=None``
    clusters on 1 − |u·u'| when the hidden activation is odd (tanh, identity) and on 1 − u·u'
    otherwise."""
    if not 0 <= amplitude_fraction < 1:
        raise ValueError(
            f"amplitude_fraction: expected a number in [0, 1), got {amplitude_fraction!r}"
        )
    u, amplitude = neuron_orientations(model)
    keep = amplitude >= amplitude_fraction * amplitude.max()
    if signed is None:
        signed = not is_odd(activation_of(model))
    return int(len(np.unique(orientation_clusters(u[keep], threshold, signed=signed))))
