"""Small networks for tangent-kernel studies: a CNN on 8x8 images and a two-layer NTK-parameterised net.

- :func:`small_cnn` is the convolutional model of the ``ntk-dynamics`` study (Fort et al. 2020 use
  ResNets on CIFAR; this is its CPU-sized stand-in for 8x8 digits).
- :class:`TwoLayerNTK` is f(x) = a^T relu(W x) / sqrt(m) with W, a standard Gaussian (the NTK
  parameterisation of Jacot et al. 2018), whose tangent kernel converges to a fixed kernel and
  stays nearly constant during training as the width m grows (Lee et al. 2019).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import skip_init


def small_cnn(
    n_classes: int = 10,
    channels: int = 8,
    *,
    image_side: int = 8,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> nn.Sequential:
    """conv3x3(1->c) - ReLU - conv3x3(c->c) - ReLU - avgpool2 - linear(c * (side/2)^2 -> n_classes).

    Takes flat inputs (N, side^2) and reshapes them to (N, 1, side, side), so it is a drop-in
    replacement for an MLP on 8x8 digits. Weights are He-normal, N(0, 2 / fan_in), biases zero,
    all drawn from one generator seeded by ``seed`` (None: a seed drawn from torch's global
    generator, so ``torch.manual_seed`` makes it reproducible; the global generator is advanced
    by that one draw, never reseeded; with a seed it is not used at all). Parameters:
    c(9 + 1) + c(9c + 1) + (c side^2 / 4 + 1) n_classes.
    """
    if int(n_classes) < 1 or int(channels) < 1:
        raise ValueError(
            f"channels: expected positive n_classes and channels, got {n_classes} and {channels}"
        )
    if int(image_side) < 2 or int(image_side) % 2:
        raise ValueError(f"image_side: expected an even integer >= 2, got {image_side}")
    side = int(image_side)
    if seed is None:  # one draw from torch's global generator (honours torch.manual_seed), as
        seed = int(torch.randint(0, 2**62, (1,)))  # symlab.nets.mlp; never reseed it
    generator = torch.Generator().manual_seed(int(seed))
    # skip_init: no default initialisation, which would draw from the global generator
    model = nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        skip_init(nn.Conv2d, 1, channels, 3, padding=1, dtype=dtype),
        nn.ReLU(),
        skip_init(nn.Conv2d, channels, channels, 3, padding=1, dtype=dtype),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        skip_init(nn.Linear, channels * (side // 2) ** 2, n_classes, dtype=dtype),
    )
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.Conv2d | nn.Linear):
                fan_in = module.weight[0].numel()
                # He-normal weights, zero biases: a scale where SGD at lr ~ 0.1 is stable.
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator, dtype=dtype)
                    * math.sqrt(2.0 / fan_in)
                )
                module.bias.zero_()
    return model


class TwoLayerNTK(nn.Module):
    """f(x) = a^T relu(W x) / sqrt(m), W (m x d) and a (m) standard Gaussian (NTK parameterisation).

    With inputs on the unit sphere the tangent kernel Θ(x, x') = <∇_θ f(x), ∇_θ f(x')> is O(1)
    in m and moves by O(1/sqrt(m)) during gradient descent on the MSE (Jacot et al. 2018;
    Lee et al. 2019), which is the regime where the linearised model predicts training exactly.
    Cost of a forward pass: O(N m d).
    """

    def __init__(
        self, dim: int, width: int, *, seed: int = 0, dtype: torch.dtype = torch.float64
    ) -> None:
        super().__init__()
        if int(dim) < 1 or int(width) < 1:
            raise ValueError(f"width: expected positive dim and width, got {dim} and {width}")
        generator = torch.Generator().manual_seed(int(seed))
        self.width = int(width)
        self.weight = nn.Parameter(torch.randn(width, dim, generator=generator, dtype=dtype))
        self.readout = nn.Parameter(torch.randn(width, generator=generator, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(x @ self.weight.T)
        return (hidden @ self.readout / math.sqrt(self.width)).unsqueeze(-1)
