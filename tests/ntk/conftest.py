"""Shared cases for the NTK tests: small models and the dense torch.func reference kernel."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

from symlab.nets import mlp


def dense_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Reference (N1, N2, K, K): jacrev of the flattened outputs w.r.t. the flat trainable
    parameter vector, J1 J2^T contracted explicitly."""
    named = [(n, p.detach()) for n, p in model.named_parameters() if p.requires_grad]
    flat = torch.cat([p.reshape(-1) for _, p in named])

    def outputs(theta, x):
        params, offset = {}, 0
        for name, p in named:
            params[name] = theta[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return functional_call(model, params, (x,)).reshape(-1)

    j1, j2 = jacrev(outputs)(flat, x1), jacrev(outputs)(flat, x2)
    k = j1.shape[0] // x1.shape[0]
    return (j1 @ j2.T).reshape(x1.shape[0], k, x2.shape[0], k).permute(0, 2, 1, 3)


class SmallCNN(nn.Module):
    """Conv2d + ReLU + flatten + Linear, with a strided, dilated, bias-free second convolution."""

    def __init__(self, dtype):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1, dtype=dtype)
        self.conv2 = nn.Conv2d(3, 2, 2, stride=2, dilation=1, padding=1, bias=False, dtype=dtype)
        self.head = nn.Linear(2 * 3 * 3, 3, dtype=dtype)

    def forward(self, x):
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.flatten(1))


class SharedLayer(nn.Module):
    """One nn.Linear applied twice (weight sharing), then a readout."""

    def __init__(self, dtype):
        super().__init__()
        self.shared = nn.Linear(4, 4, dtype=dtype)
        self.readout = nn.Linear(4, 2, dtype=dtype)

    def forward(self, x):
        return self.readout(torch.tanh(self.shared(torch.tanh(self.shared(x)))))


class SequenceModel(nn.Module):
    """A Linear applied at every position of a (T, I) input (S = T positions), plus a LayerNorm
    (a parameterised layer the structured formula does not cover)."""

    def __init__(self, dtype):
        super().__init__()
        self.embed = nn.Linear(3, 4, dtype=dtype)
        self.norm = nn.LayerNorm(4, dtype=dtype)
        self.readout = nn.Linear(8, 2, dtype=dtype)

    def forward(self, x):
        return self.readout(self.norm(torch.relu(self.embed(x))).flatten(1))


class TiedWeights(nn.Module):
    """A Linear whose weight is also used directly through F.linear (invisible to hooks)."""

    def __init__(self, dtype):
        super().__init__()
        self.layer = nn.Linear(3, 3, dtype=dtype)

    def forward(self, x):
        return F.linear(torch.tanh(self.layer(x)), self.layer.weight)


def make_case(name: str, dtype: torch.dtype, seed: int = 0):
    """(model, x1, x2) for a named case; inputs drawn from a seeded generator."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if name == "mlp_relu_k1":
        model, shape = mlp([4, 6, 5, 1], "relu", bias_std=0.1, seed=seed, dtype=dtype), (4,)
    elif name == "mlp_tanh_k3":
        model, shape = mlp([4, 6, 5, 3], "tanh", bias_std=0.1, seed=seed, dtype=dtype), (4,)
    elif name == "cnn":
        model, shape = SmallCNN(dtype), (2, 5, 5)
    elif name == "shared":
        model, shape = SharedLayer(dtype), (4,)
    elif name == "sequence":
        model, shape = SequenceModel(dtype), (2, 3)
    elif name == "tied":
        model, shape = TiedWeights(dtype), (3,)
    else:
        raise KeyError(name)
    x1 = torch.randn(5, *shape, generator=g).to(dtype)
    x2 = torch.randn(3, *shape, generator=g).to(dtype)
    return model, x1, x2


@pytest.fixture
def reference():
    return dense_ntk


@pytest.fixture
def case():
    return make_case
