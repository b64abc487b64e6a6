"""Condensation measures against constructed clusters and brute-force pairwise checks."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from symlab.critical.condensation import (
    effective_neuron_count,
    neuron_orientations,
    orientation_clusters,
)


def _net(weights, biases, outputs):
    first, second = (
        nn.Linear(weights.shape[1], weights.shape[0], dtype=torch.float64),
        nn.Linear(weights.shape[0], 1, dtype=torch.float64),
    )
    with torch.no_grad():
        first.weight.copy_(weights)
        first.bias.copy_(biases)
        second.weight.copy_(outputs[None])
        second.bias.zero_()
    return nn.Sequential(first, nn.Tanh(), second)


def _clustered(k=3, per=10, noise=1e-4, seed=0, d=3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g, dtype=torch.float64)
    rows = centres.repeat_interleave(per, 0)
    scales = 0.5 + torch.rand(k * per, 1, generator=g, dtype=torch.float64)
    return scales * (rows + noise * torch.randn(rows.shape, generator=g, dtype=torch.float64)), k


def test_orientation_and_amplitude_formulas():
    w, b, a = (
        torch.tensor([[3.0, 0.0], [0.0, -2.0]]).double(),
        torch.tensor([4.0, 0.0]).double(),
        torch.tensor([0.5, -2.0]).double(),
    )
    u, amplitude = neuron_orientations(_net(w, b, a))
    torch.testing.assert_close(u, torch.tensor([[0.6, 0.0, 0.8], [0.0, -1.0, 0.0]]).double())
    torch.testing.assert_close(amplitude, torch.tensor([2.5, 4.0]).double())


def test_clusters_recover_constructed_orientations_and_satisfy_complete_linkage():
    rows, k = _clustered()
    u = rows / rows.norm(dim=1, keepdim=True)
    labels = orientation_clusters(u, threshold=0.01)
    assert len(np.unique(labels)) == k
    # brute force: every pair within a cluster is within the threshold (complete linkage)
    for i, j in itertools.combinations(range(len(labels)), 2):
        if labels[i] == labels[j]:
            assert 1 - float(u[i] @ u[j]) <= 0.01
    assert (
        len(
            np.unique(
                orientation_clusters(-u[:1].repeat(2, 1) * torch.tensor([[1.0], [-1.0]]).double())
            )
        )
        == 2
    )


def test_effective_neurons_ignore_small_amplitudes():
    rows, k = _clustered(k=2, per=5, d=3)
    stray = torch.tensor([[0.3, -0.9, 0.1]]).double()
    weights = torch.cat([rows, stray])
    outputs = torch.cat([torch.ones(10), torch.tensor([1e-6])]).double()
    model = _net(weights[:, :2], weights[:, 2], outputs)
    assert effective_neuron_count(model) == 2
    assert effective_neuron_count(model, amplitude_fraction=0.0) == 3
    with pytest.raises(ValueError, match="threshold"):
        orientation_clusters(torch.eye(2).double(), threshold=3.0)
    with pytest.raises(ValueError, match="amplitude_fraction"):
        effective_neuron_count(model, amplitude_fraction=1.5)


def test_tanh_sign_flipped_neurons_are_one_orientation():
    """tanh(-w.x - b) = -tanh(w.x + b): flipping (w, b, a) of half the neurons of each cluster
    leaves the tanh function unchanged and must leave 2 effective neurons, not 4; for softplus
    (not odd) the flipped neurons are different functions and count separately."""
    rows, k = _clustered(k=2, per=6, d=3, seed=1)
    flip = torch.tensor([1.0, -1.0] * 6).double()
    outputs = torch.linspace(0.5, 1.5, 12).double()
    plain = _net(rows[:, :2], rows[:, 2], outputs)
    flipped = _net(flip[:, None] * rows[:, :2], flip * rows[:, 2], flip * outputs)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(flipped(x), plain(x), atol=1e-14, rtol=0)
    assert effective_neuron_count(plain) == k
    assert effective_neuron_count(flipped) == k
    assert effective_neuron_count(flipped, signed=True) == 2 * k
    flipped[1] = nn.Softplus()
    assert effective_neuron_count(flipped) == 2 * k


def test_unsigned_clusters_satisfy_complete_linkage_brute_force():
    rows, k = _clustered(k=3, per=8, seed=2)
    signs = torch.where(
        torch.rand(24, generator=torch.Generator().manual_seed(3)) < 0.5, -1.0, 1.0
    ).double()
    u = signs[:, None] * rows / rows.norm(dim=1, keepdim=True)
    labels = orientation_clusters(u, threshold=0.01, signed=False)
    assert len(np.unique(labels)) == k
    assert len(np.unique(orientation_clusters(u, threshold=0.01))) == 2 * k  # signed: ±u differ
    for i, j in itertools.combinations(range(len(labels)), 2):
        if labels[i] == labels[j]:
            assert 1 - abs(float(u[i] @ u[j])) <= 0.01
    pair = torch.stack([u[0], -u[0]])
    assert len(np.unique(orientation_clusters(pair, signed=False))) == 1
