"""Columns that are zero up to rounding must not become rank after column equilibration."""

import pytest
import torch
from torch import nn

from symlab.linalg import numerical_rank, parameter_jacobian
from symlab.symmetry import functional_dimension


@pytest.mark.parametrize("method", ["auto", "gram", "svd"])
def test_a_column_of_rounding_noise_is_not_rank(method):
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    noise = x[:, :1] * 0.1 * 3 - x[:, :1] * 0.3  # analytically zero, ~1e-17 in floating point
    assert 0 < float(noise.abs().max()) < 1e-15
    matrix = torch.cat([x, noise, 1e-20 * x[:, 1:]], dim=1)
    assert numerical_rank(matrix, method=method).rank == 2
    assert int(torch.linalg.matrix_rank(matrix)) == 2


def test_functional_dimension_of_a_model_with_analytically_zero_gradients():
    # LayerNorm output summed with equal weights is constant: the first layer's gradient is 0.
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1)).double()
    with torch.no_grad():
        model[2].weight.fill_(1.0)
    x = torch.randn(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    reference = int(torch.linalg.matrix_rank(parameter_jacobian(model, x, method="generic")))
    assert reference == 4  # LayerNorm's 4 biases... and the output bias, minus the constant sum
    for method in ("auto", "gram", "svd"):
        assert functional_dimension(model, x, rank_method=method).rank == reference
