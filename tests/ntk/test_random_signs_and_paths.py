"""AZLL's random-sign cancellation (Lemma 6.10) and the path decomposition of small networks."""

import itertools

import pytest
import torch
from torch import nn

from symlab.games import path_count, path_decomposition
from symlab.ntk import random_sign_cancellation


def three_layer(d=4, m1=12, m2=10, k=1, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(d, m1), nn.ReLU(), nn.Linear(m1, m2), nn.ReLU(), nn.Linear(m2, k)
    ).double()


def test_frozen_gate_average_is_exact_over_all_sign_patterns():
    net = three_layer(m1=8)
    x = torch.randn(20, 4, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    w1 = 0.1 * torch.randn(8, 4, generator=g, dtype=torch.float64)
    v1 = 0.1 * torch.randn(10, 8, generator=g, dtype=torch.float64)
    result = random_sign_cancellation(net, w1, v1, x, draws=[1])
    # brute force: the frozen-gate network averaged over all 2^8 sign matrices
    from symlab.ntk.random_signs import three_layer_output

    layers = (net[0], net[2], net[4])
    w0, v0 = net[0].weight.detach(), net[2].weight.detach()
    z1 = x @ w0.T + net[0].bias
    dw = (z1 > 0).double()
    dv = ((dw * z1) @ v0.T + net[2].bias > 0).double()
    total = 0
    for signs in itertools.product([-1.0, 1.0], repeat=8):
        s = torch.tensor(signs, dtype=torch.float64)
        with torch.no_grad():
            total = total + three_layer_output(
                layers, w0 + s[:, None] * w1, v0 + v1 * s, x, (dw, dv)
            )
    with torch.no_grad():
        f0 = net(x)
    assert torch.allclose(total / 256, f0 + result.cross_term, atol=1e-12)
    assert result.first_order_norm > 0.1  # one draw is far from the average


def test_monte_carlo_error_falls_with_draws_and_the_real_net_tracks_the_frozen_one():
    net = three_layer(m1=64, m2=64, seed=2)
    x = torch.nn.functional.normalize(torch.randn(100, 4, dtype=torch.float64), dim=1)
    g = torch.Generator().manual_seed(3)
    w1 = 0.05 * torch.randn(64, 4, generator=g, dtype=torch.float64)
    v1 = 0.05 * torch.randn(64, 64, generator=g, dtype=torch.float64)
    r = random_sign_cancellation(net, w1, v1, x, draws=[1, 16, 256], seed=0)
    assert r.error_frozen[-1] < r.error_frozen[0] / 6  # ~ S^{-1/2}: 16x fewer at 256 draws
    assert r.error_network[-1] < 0.5 * r.error_network[0]


def test_random_sign_bad_input():
    net = three_layer()
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="w_change, v_change: expected shapes"):
        random_sign_cancellation(net, torch.zeros(3, 3), torch.zeros(10, 12), x)
    with pytest.raises(ValueError, match="model: expected nn.Sequential"):
        random_sign_cancellation(nn.Linear(4, 1), torch.zeros(1, 4), torch.zeros(1, 1), x)


@pytest.mark.parametrize("act", [nn.ReLU, nn.Identity, lambda: nn.LeakyReLU(0.1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_paths_sum_to_the_forward_pass(act, dtype):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), act(), nn.Linear(4, 4), act(), nn.Linear(4, 2)).to(dtype)
    x = torch.randn(7, 3, dtype=dtype)
    dec = path_decomposition(net, x)
    assert dec.values.shape == (7, path_count(net))
    assert (
        path_count(net) == 3 * 4 * 4 * 2 + 4 * 4 * 2 + 4 * 2 + 2
    )  # the 96 input paths + bias paths
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    with torch.no_grad():
        assert torch.allclose(dec.outputs(), net(x), atol=tol)


def test_one_path_value_by_hand():
    net = nn.Sequential(
        nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False)
    ).double()
    x = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    dec = path_decomposition(net, x)
    w1, w2 = net[0].weight.detach(), net[2].weight.detach()
    gate = (x @ w1.T > 0).double()[0]
    for p in range(dec.values.shape[1]):
        i, j, k = dec.units[p].tolist()
        expected = x[0, i] * w1[j, i] * gate[j] * w2[k, j]
        assert float(dec.values[0, p]) == pytest.approx(float(expected), abs=1e-15)
    assert not bool(dec.starts_at_bias.any())


def test_path_enumeration_refuses_large_nets_and_other_modules():
    big = nn.Sequential(
        nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
    )
    with pytest.raises(ValueError, match="max_paths"):
        path_decomposition(big, torch.randn(2, 100))
    with pytest.raises(ValueError, match="ReLU, LeakyReLU or Identity"):
        path_decomposition(
            nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1)), torch.randn(2, 2)
        )
