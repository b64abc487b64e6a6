"""KernelTracker on a real (small) training loop."""

import math

import pytest
import torch

from symlab.nets import mlp
from symlab.ntk import KernelTracker, empirical_ntk, kernel_alignment, kernel_distance


def _train(tracker, model, x, y, steps, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    tracker.update(0)
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        tracker.update(step)


def test_tracker_records_kernel_dynamics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True))
    model = mlp([3, 16, 16, 1], "tanh", seed=0)
    probe, targets = x[:6], y[:6]
    tracker = KernelTracker(model, probe, targets, every=2, max_records=100)
    _train(tracker, model, x, y, steps=12)
    frame = tracker.to_frame()
    assert list(frame["step"]) == [0, 2, 4, 6, 8, 10, 12]
    assert {"distance_from_init", "velocity", "alignment", "kernel_norm", "kernel_trace"} <= set(
        frame.columns
    )
    assert frame["distance_from_init"].iloc[0] == 0.0 and math.isnan(frame["velocity"].iloc[0])
    assert frame["distance_from_init"].iloc[-1] > 0
    # recompute every metric independently from the kept kernels
    steps, kernels = zip(*tracker.history, strict=True)
    assert list(steps) == list(frame["step"])
    for i in range(1, len(kernels)):
        assert frame["distance_from_init"].iloc[i] == pytest.approx(
            kernel_distance(kernels[0], kernels[i])
        )
        assert frame["velocity"].iloc[i] == pytest.approx(
            kernel_distance(kernels[i - 1], kernels[i]) / (steps[i] - steps[i - 1])
        )
        assert frame["alignment"].iloc[i] == pytest.approx(kernel_alignment(kernels[i], targets))
    final = empirical_ntk(model, probe, method="jacobian")
    torch.testing.assert_close(tracker.kernel_last, final)
    assert frame["kernel_trace"].iloc[-1] == pytest.approx(float(torch.einsum("nnkk->", final)))


def test_tracker_memory_is_bounded():
    x = torch.randn(4, 2, dtype=torch.float64)
    model = mlp([2, 8, 1], seed=1)
    tracker = KernelTracker(model, x, max_records=3)
    _train(tracker, model, x, torch.zeros(4, 1, dtype=torch.float64), steps=10)
    assert len(tracker.records) == 11
    assert len(tracker.history) <= 3
    assert tracker.history[0][0] == 0
    assert "alignment" not in tracker.records[0]
    plain = KernelTracker(model, x)
    plain.update(0)
    plain.update(1)
    assert plain.history == [] and plain.kernel_init is not None


def test_tracker_bad_arguments():
    model = mlp([2, 3, 1], seed=0)
    x = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="every"):
        KernelTracker(model, x, every=0)
    with pytest.raises(ValueError, match="targets"):
        KernelTracker(model, x, torch.zeros(3))
    tracker = KernelTracker(model, x)
    tracker.update(5)
    with pytest.raises(ValueError, match="step"):
        tracker.update(5)
