"""Taylor split of a training trajectory against finite differences and the exact frozen-gate
expansion of a three-layer ReLU net (Allen-Zhu, Li & Liang 2019, §6)."""

import pytest
import torch
from torch import nn

from symlab.ntk import TaylorSplitTracker, taylor_split, trainable_state
from symlab.train import gradient_descent


def perturb(model, scale, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def three_layer(d=4, m1=30, m2=20, k=2, dtype=torch.float64, seed=0):
    """AZLL's three-layer learner: W and V trained, the output layer a fixed."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, m1), nn.ReLU(), nn.Linear(m1, m2), nn.ReLU(), nn.Linear(m2, k))
    net = net.to(dtype)
    for p in net[4].parameters():
        p.requires_grad_(False)
    net[0].bias.requires_grad_(False)
    net[2].bias.requires_grad_(False)
    return net


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 2e-2)])
def test_terms_match_central_differences_on_a_smooth_net(dtype, tol):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))
    net = net.to(dtype)
    x = torch.randn(12, 3, dtype=dtype)
    p0 = trainable_state(net)
    perturb(net, 0.3)
    pt = trainable_state(net)
    split = taylor_split(net, p0, x)
    h = 1e-4 if dtype == torch.float64 else 3e-2

    def f(s):
        p = {n: p0[n] + s * (pt[n] - p0[n]) for n in p0}
        return torch.func.functional_call(net, p, (x,)).detach().double()

    fd1 = (f(h) - f(-h)) / (2 * h)
    fd2 = (f(h) - 2 * f(0.0) + f(-h)) / (2 * h * h)
    assert torch.allclose(split.first_order.double(), fd1, atol=tol, rtol=tol)
    assert torch.allclose(split.second_order.double(), fd2, atol=tol, rtol=tol)
    assert torch.allclose(split.delta_f.double(), f(1.0) - f(0.0), atol=1e-5)
    assert split.gate_flips is None and split.flip_fraction == {}


def test_frozen_gate_three_layer_net_is_exactly_its_second_order_expansion():
    net = three_layer()
    x = torch.randn(40, 4, dtype=torch.float64)
    w0, v0 = net[0].weight.detach().clone(), net[2].weight.detach().clone()
    b1, b2, a = net[0].bias.detach(), net[2].bias.detach(), net[4].weight.detach()
    p0 = trainable_state(net)
    perturb(net, 1e-4)  # small enough that no gate flips on these inputs
    w1, v1 = net[0].weight.detach() - w0, net[2].weight.detach() - v0
    split = taylor_split(net, p0, x)
    assert all(frac == 0.0 for frac in split.flip_fraction.values())
    # the pseudo network a·D_v(V·D_w(Wx + b1) + b2) expanded by hand
    zw = x @ w0.T + b1
    dw = (zw > 0).double()
    dv = ((dw * zw) @ v0.T + b2 > 0).double()
    first = ((dv * ((dw * (x @ w1.T)) @ v0.T)) + dv * ((dw * zw) @ v1.T)) @ a.T
    second = (dv * ((dw * (x @ w1.T)) @ v1.T)) @ a.T
    scale = float(split.delta_f.abs().max())
    assert torch.allclose(split.first_order, first, atol=1e-12 * max(scale, 1))
    assert torch.allclose(split.second_order, second, atol=1e-20, rtol=1e-10)
    # f(θ_t) − f(θ_0) cancels O(1) outputs: rounding of f is the floor of what is left over
    floor = 1e-14 * float(split.delta_f.abs().max() + 1)
    assert float(split.higher_order.abs().max()) <= floor
    assert float(split.gate_flips.abs().max()) <= floor
    assert split.r2_second == pytest.approx(1.0, abs=1e-9)


def test_gate_flips_carry_the_remainder_of_a_large_move():
    net = three_layer(seed=3)
    x = torch.randn(200, 4, dtype=torch.float64)
    p0 = trainable_state(net)
    perturb(net, 0.5)
    split = taylor_split(net, p0, x)
    # two trained layers: nothing beyond second order except the flipped gates
    assert float(split.higher_order.abs().max()) < 1e-12
    assert max(split.flip_fraction.values()) > 0.05
    total = split.first_order + split.second_order + split.higher_order + split.gate_flips
    assert torch.allclose(total, split.delta_f, atol=1e-12)
    assert 0 < split.flip_share


def test_tracker_records_inside_symlab_train():
    net = three_layer(seed=4)
    x, y = torch.randn(64, 4, dtype=torch.float64), torch.randn(64, 2, dtype=torch.float64)
    tracker = TaylorSplitTracker(net, {"train": x, "test": x[:16]}, every=10)
    gradient_descent(net, (x, y), lr=0.05, steps=30, callback=tracker.callback)
    steps = sorted({r["step"] for r in tracker.records})
    assert steps[-1] >= 20 and {r["split"] for r in tracker.records} == {"train", "test"}
    last = [r for r in tracker.records if r["step"] == steps[-1]]
    assert all(0.9 < r["r2_second"] <= 1.0 for r in last)


def test_bad_trajectory_points_are_refused_with_the_argument_named():
    net = three_layer()
    x = torch.randn(5, 4, dtype=torch.float64)
    p0 = trainable_state(net)
    other = trainable_state(three_layer(m1=31))
    with pytest.raises(ValueError, match="params_t: expected the trainable parameters"):
        taylor_split(net, p0, x, other)
    nan = {n: p.clone() for n, p in p0.items()}
    nan["0.weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="params_0: expected finite parameters"):
        taylor_split(net, nan, x)
    with pytest.raises(TypeError, match="x: expected a floating-point"):
        taylor_split(net, p0, torch.ones(5, 4, dtype=torch.long))


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh, nn.GELU, nn.Softplus, lambda: nn.LeakyReLU(0.2)])
def test_sequential_jet_equals_the_generic_nested_jvp(act):
    from symlab.ntk.taylor_expansion import nested_jvp_terms, sequential_jet

    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 12), act(), nn.Linear(12, 9), act(), nn.Linear(9, 3)).double()
    net[2].bias.requires_grad_(False)
    x = torch.randn(10, 4, dtype=torch.float64)
    p0 = trainable_state(net)
    direction = {n: torch.randn_like(p) for n, p in p0.items()}
    fast = sequential_jet(net, p0, direction, x)
    slow = nested_jvp_terms(net, p0, direction, x)
    for a, b in zip(fast, slow, strict=True):
        assert torch.allclose(a, b, atol=1e-12, rtol=1e-12)


def test_any_module_goes_through_the_generic_route():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.block, self.out = nn.Linear(3, 8), nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x):
            h = torch.tanh(self.inp(x))
            return self.out(h + torch.relu(self.block(h)))

    torch.manual_seed(2)
    net = Residual().double()
    x = torch.randn(9, 3, dtype=torch.float64)
    p0 = trainable_state(net)
    perturb(net, 0.2)
    pt = trainable_state(net)
    split = taylor_split(net, p0, x)
    h = 1e-4

    def f(s):
        p = {n: p0[n] + s * (pt[n] - p0[n]) for n in p0}
        return torch.func.functional_call(net, p, (x,)).detach()

    assert torch.allclose(split.first_order, (f(h) - f(-h)) / (2 * h), atol=1e-6)
    assert torch.allclose(split.second_order, (f(h) - 2 * f(0.0) + f(-h)) / (2 * h * h), atol=1e-5)
    assert split.gate_flips is None  # functional relu: no gate modules to freeze
