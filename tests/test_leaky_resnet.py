"""Leaky ResNets: the forward pass against a hand-written recursion, the step rules against their
formulas, the regularization against per-layer weight decay, and the adaptive rule in training."""

import numpy as np
import pytest
import torch

from symlab.bias import layer_spectra
from symlab.nets.leaky_resnet import (
    STEP_CAP,
    AdaptiveSteps,
    LeakyResNet,
    adaptive_steps,
    equidistant_steps,
    irregular_steps,
)
from symlab.train import gradient_descent, sample_mse_loss

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_the_recursion_written_out_per_input(dtype):
    net = LeakyResNet(3, 5, 2, depth=4, effective_depth=2.5, steps="irregular", seed=1, dtype=dtype)
    x = torch.randn(7, 3, dtype=dtype)
    rho = irregular_steps(4, 0.5).tolist()
    p_in, p_out = net.embed.weight.detach(), net.readout.weight.detach()
    for i in range(7):  # one input at a time, column vectors, the paper's formula
        a = p_in @ x[i]
        for layer, step in zip(net.layers, rho):
            sigma = torch.cat([torch.clamp(a, min=0), torch.ones(1, dtype=dtype)])
            a = (1 - step * 2.5) * a + step * layer.weight.detach() @ sigma
        expected = p_out @ a
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(net(x)[i].detach(), expected, atol=tol, rtol=tol)
    assert not net.embed.weight.requires_grad and not net.readout.weight.requires_grad
    learned = LeakyResNet(3, 5, 2, depth=4, effective_depth=2.5, learn_maps=True)
    assert learned.embed.weight.requires_grad and learned.readout.weight.requires_grad


def test_step_rules():
    torch.testing.assert_close(equidistant_steps(5), torch.full((5,), 0.2, dtype=torch.float64))
    torch.testing.assert_close(irregular_steps(6, 0.0), equidistant_steps(6))
    rho = irregular_steps(10, 0.8)
    assert float(rho.sum()) == pytest.approx(1.0)
    u = (np.arange(10) + 0.5) / 10
    raw = 1 + 0.8 * (0.25 - np.abs(u - 0.5))
    np.testing.assert_allclose(rho.numpy(), raw / raw.sum(), rtol=1e-14)
    assert rho[0] < rho[4] and rho[9] < rho[5]  # finer steps at the ends
    with pytest.raises(ValueError, match="irregularity"):
        irregular_steps(4, 1.0)


def test_bad_input_gets_one_sentence():
    with pytest.raises(ValueError, match="steps: expected rho_l \\* effective_depth < 1"):
        LeakyResNet(3, 4, 2, depth=5, effective_depth=5.0)
    with pytest.raises(ValueError, match="steps: expected one of"):
        LeakyResNet(3, 4, 2, depth=5, effective_depth=1.0, steps="random")
    with pytest.raises(ValueError, match="effective_depth: expected a number >= 0"):
        LeakyResNet(3, 4, 2, depth=5, effective_depth=-1.0)
    with pytest.raises(ValueError, match="width: expected a positive integer"):
        LeakyResNet(3, 0, 2, depth=5, effective_depth=1.0)
    net = LeakyResNet(3, 4, 2, depth=4, effective_depth=1.0)
    with pytest.raises(ValueError, match="steps: expected positive steps summing to 1"):
        net.set_steps(torch.tensor([0.5, 0.5, 0.5, 0.5]))


def _reference_adaptive(reps, rho, depth_tilde, cap):
    """The rule in numpy, with the cap applied by bisection on a water level (an independent route)."""
    a = [r.numpy().astype(float) for r in reps]
    c = np.array(
        [
            np.linalg.norm(a[i + 1] - a[i]) / (rho[i] * np.linalg.norm(a[i + 1]))
            for i in range(len(rho))
        ]
    )
    inv = 1 / c
    limit = cap / depth_tilde
    lo, hi = 0.0, 1e6  # find t with Σ min(t · inv, limit) = 1
    for _ in range(200):
        t = (lo + hi) / 2
        lo, hi = (t, hi) if np.minimum(t * inv, limit).sum() < 1 else (lo, t)
    return np.minimum(t * inv, limit)


@pytest.mark.parametrize("depth_tilde", [0.5, 3.0])
def test_adaptive_rule_against_its_formula(depth_tilde):
    g = torch.Generator().manual_seed(0)
    reps = [torch.randn(20, 4, generator=g, dtype=torch.float64)]
    scales = [0.05, 0.01, 0.4, 0.02, 0.03, 0.3]  # how far each layer moves the representation
    for scale in scales:
        reps.append(reps[-1] + scale * torch.randn(20, 4, generator=g, dtype=torch.float64))
    rho = torch.tensor([0.1, 0.2, 0.2, 0.2, 0.2, 0.1], dtype=torch.float64)
    new = adaptive_steps(reps, rho, depth_tilde)
    np.testing.assert_allclose(
        new.numpy(), _reference_adaptive(reps, rho.numpy(), depth_tilde, STEP_CAP), rtol=1e-9
    )
    assert float(new.sum()) == pytest.approx(1.0)
    assert float(new.max()) * depth_tilde <= STEP_CAP + 1e-12
    # the fast layers (large moves per unit step) get the small steps: order of ρ_ℓ / move_ℓ
    order = np.argsort(rho.numpy() / np.array(scales))
    if depth_tilde == 0.5:  # no cap binds
        np.testing.assert_array_equal(np.argsort(new.numpy()), order)
    if depth_tilde == 3.0:  # the cap binds: several layers sit at cap / L̃
        assert int((new > STEP_CAP / depth_tilde - 1e-12).sum()) >= 2
    with pytest.raises(ValueError, match="representations: expected L \\+ 1 = 7"):
        adaptive_steps(reps[:-1], rho, depth_tilde)


def test_regularization_equals_per_layer_weight_decay_and_follows_the_adaptive_steps():
    torch.manual_seed(0)
    x, y = torch.randn(30, 3, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64)
    lam = 0.05
    nets = [
        LeakyResNet(3, 6, 2, depth=5, effective_depth=2.0, steps="irregular", seed=3)
        for _ in range(2)
    ]
    rho = nets[0].steps
    groups = [
        {"params": [f"layers.{i}.weight"], "weight_decay": lam * float(rho[i]) / (2 * 2.0)}
        for i in range(5)
    ]
    a = gradient_descent(
        nets[0],
        (x, y),
        lr=0.05,
        steps=5,
        loss=sample_mse_loss,
        penalty=lambda m: m.regularization(lam),
    )
    b = gradient_descent(
        nets[1], (x, y), lr=0.05, steps=5, loss=sample_mse_loss, param_groups=groups
    )
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-13)
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(p, q, atol=1e-13, rtol=0)
    # with the adaptive callback the steps change during training and the penalty reads them
    net = LeakyResNet(3, 6, 2, depth=5, effective_depth=2.0, seed=3)
    rule = AdaptiveSteps(x)
    run = gradient_descent(
        net, (x, y), lr=0.05, steps=20, loss=sample_mse_loss,
        penalty=lambda m: m.regularization(lam), callback=rule, callback_every=5,
    )  # fmt: skip
    assert [s for s, _ in rule.history] == [0, 5, 10, 15, 20]
    assert not torch.allclose(net.steps, equidistant_steps(5))
    torch.testing.assert_close(net.steps, torch.tensor(rule.history[-1][1], dtype=torch.float64))
    net.set_steps(
        torch.tensor(rule.history[-2][1], dtype=torch.float64)
    )  # the end point is recorded, then called back
    with torch.no_grad():
        expected = sample_mse_loss(net(x), y) + net.regularization(lam)
    assert run.final_loss == pytest.approx(float(expected), rel=1e-12)


def test_layer_spectra_read_the_leaky_layers():
    net = LeakyResNet(3, 6, 2, depth=4, effective_depth=1.0, seed=0)
    x = torch.randn(40, 3, dtype=torch.float64)
    spectra = layer_spectra(net, x)
    names = [s.name for s in spectra]
    assert names == ["embed", "layers.0", "layers.1", "layers.2", "layers.3", "readout"]
    reps = net.representations(x)
    for spectrum, rep in zip(spectra[1:5], reps[1:]):
        torch.testing.assert_close(
            spectrum.representation, torch.linalg.svdvals(rep.detach()), atol=1e-9, rtol=1e-7
        )
    torch.testing.assert_close(
        spectra[1].weight, torch.linalg.svdvals(net.layers[0].weight.detach())
    )
