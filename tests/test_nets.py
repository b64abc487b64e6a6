"""symlab.nets.mlp: initialisations, argument checks, what counts as an MLP."""

import pytest
import torch
from torch import nn

from symlab.linalg import parameter_jacobian
from symlab.nets import is_mlp, mlp, parameter_count


def test_he_init_statistics_and_parameter_count():
    net = mlp([200, 300, 1], bias_std=0.5, seed=0)
    w, b = net[0].weight.detach(), net[0].bias.detach()
    assert abs(float(w.std()) - (2 / 200) ** 0.5) < 0.005
    assert abs(float(b.std()) - 0.5) < 0.1
    assert sum(p.numel() for p in net.parameters()) == parameter_count([200, 300, 1])
    assert net[0].weight.dtype == torch.float64


def test_pytorch_init_is_uniform_in_the_fan_in_bound():
    net = mlp([50, 40, 3], init="pytorch", seed=1, dtype=torch.float32)
    bound = 50**-0.5
    w, b = net[0].weight.detach(), net[0].bias.detach()
    assert float(w.abs().max()) <= bound and float(b.abs().max()) <= bound
    assert net[0].weight.dtype == torch.float32


def test_seed_is_reproducible_and_none_honours_torch_manual_seed():
    a, b = mlp([3, 4, 1], seed=7), mlp([3, 4, 1], seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    torch.manual_seed(0)
    c = mlp([3, 4, 1])
    torch.manual_seed(0)
    d = mlp([3, 4, 1])
    assert all(torch.equal(p, q) for p, q in zip(c.parameters(), d.parameters()))


@pytest.mark.parametrize("init", ["he", "pytorch", "custom"])
def test_one_seed_gives_one_network_in_every_precision(init):
    """float32 weights are the float64 weights of the same seed, rounded (not another draw)."""
    kwargs = dict(init=init, seed=3, **({"bias_std": 0.3} if init == "he" else {}))
    wide, narrow = mlp([5, 7, 2], **kwargs), mlp([5, 7, 2], dtype=torch.float32, **kwargs)
    for p, q in zip(wide.parameters(), narrow.parameters()):
        assert q.dtype == torch.float32 and torch.equal(p.detach().float(), q.detach())


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(widths=[3]), "widths"),
        (dict(widths=[3.7, 2]), "widths"),
        (dict(widths=[3, 0, 1]), "widths"),
        (dict(widths=[3, 1], activation="bogus"), "activation"),
        (dict(widths=[3, 2, 1], init="xavier"), "init"),
        (dict(widths=[3, 2, 1], bias_std=-1.0), "bias_std"),
        (dict(widths=[3, 2, 1], init="pytorch", bias_std=0.1), "bias_std"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        mlp(**kwargs)


def test_mixed_activations_are_not_an_mlp_and_take_the_generic_route():
    mixed = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    slopes = nn.Sequential(
        nn.Linear(3, 4), nn.LeakyReLU(0.1), nn.Linear(4, 4), nn.LeakyReLU(0.5), nn.Linear(4, 1)
    )
    assert not is_mlp(mixed) and not is_mlp(slopes)
    assert is_mlp(mlp([3, 4, 4, 1], activation="leaky_relu", slope=0.2))
    x = torch.randn(20, 3)
    for model in (mixed, slopes):
        jac = parameter_jacobian(model.double(), x.double())
        ref = parameter_jacobian(model.double(), x.double(), method="generic")
        assert torch.allclose(jac, ref, atol=1e-12)
