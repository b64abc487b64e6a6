"""Layer spectra by forward hooks against dense references: captured outputs and reshaped weights."""

import math

import pytest
import torch
from torch import nn

from symlab.bias import (
    bottleneck_profile,
    effective_rank,
    layer_spectra,
    nuclear_ratio,
    numerical_rank,
    stable_rank,
)

DTYPES = [torch.float32, torch.float64]


def _reference_outputs(model, x):
    """Outputs of every leaf module, captured by replaying the Sequential by hand."""
    outs = []
    for module in model:
        x = module(x)
        outs.append(x.detach().double().reshape(len(x), -1))
    return outs


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_spectra_match_svdvals_of_the_outputs_and_weights(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 4), nn.Tanh(), nn.Linear(4, 3))
    model = model.to(dtype)
    x = torch.randn(50, 6, dtype=dtype)
    spectra = layer_spectra(model, x)
    assert [s.name for s in spectra] == ["0", "1", "2", "3", "4"]
    tol = 1e-7  # the Gram route's documented accuracy, ~1e-8 s_max absolute
    for spectrum, z in zip(spectra, _reference_outputs(model, x)):
        expected = torch.linalg.svdvals(z)
        centered = torch.linalg.svdvals(z - z.mean(0))
        scale = float(expected[0])
        torch.testing.assert_close(spectrum.representation, expected, atol=tol * scale, rtol=1e-6)
        torch.testing.assert_close(spectrum.centered, centered, atol=tol * scale, rtol=1e-6)
    for index in (0, 2, 4):
        expected = torch.linalg.svdvals(model[index].weight.double())
        torch.testing.assert_close(spectra[index].weight, expected)
    assert spectra[1].weight is None


def test_conv_weights_are_reshaped_and_fewer_points_than_features_use_the_other_gram():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 36, 2)
    )
    model = model.double()
    x = torch.randn(7, 2, 6, 6, dtype=torch.float64)  # N = 7 < 180 features
    spectra = layer_spectra(model, x)
    expected_w = torch.linalg.svdvals(model[0].weight.reshape(5, -1))
    torch.testing.assert_close(spectra[0].weight, expected_w)
    z = model[0](x).detach().reshape(7, -1)
    torch.testing.assert_close(
        spectra[0].representation, torch.linalg.svdvals(z), atol=1e-7 * float(z.norm()), rtol=1e-7
    )
    torch.testing.assert_close(
        spectra[0].centered[:6],
        torch.linalg.svdvals(z - z.mean(0))[:6],
        atol=1e-7 * float(z.norm()),
        rtol=1e-7,
    )


def test_soft_ranks_on_known_spectra():
    s = torch.tensor([3.0, 3.0, 3.0, 0.0])
    assert numerical_rank(s) == 3 and numerical_rank(s, atol=3.0) == 0
    assert numerical_rank(torch.tensor([1.0, 1e-3, 1e-5]), rtol=1e-4) == 2
    assert nuclear_ratio(s) == pytest.approx(3.0) and effective_rank(s) == pytest.approx(3.0)
    assert stable_rank(s) == pytest.approx(3.0)
    spread = torch.tensor([4.0, 2.0, 1.0])
    assert 1 < nuclear_ratio(spread) < 3 and nuclear_ratio(spread) == pytest.approx(49 / 21)
    assert effective_rank(spread) == pytest.approx(
        math.exp(-sum(p * math.log(p) for p in (4 / 7, 2 / 7, 1 / 7)))
    )


def test_bottleneck_profile_finds_a_planted_bottleneck_and_reports_its_sensitivity():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(10, 3), nn.Linear(3, 12), nn.ReLU(), nn.Linear(12, 10)).double()
    x = torch.randn(200, 10, dtype=torch.float64)
    profile = bottleneck_profile(model, x)
    assert profile["layer"] == ["0", "1", "2", "3"]
    assert profile["rank"][0] == 3 and profile["rank"][1] == 3  # a linear image of 3 dimensions
    assert profile["rank"][2] > 3  # ReLU lifts it
    assert profile["rtol"] == [1e-3, 1e-2, 1e-1]
    assert all(
        lo >= mid >= hi
        for lo, mid, hi in zip(
            profile["rank_low_threshold"], profile["rank"], profile["rank_high_threshold"]
        )
    )
    assert profile["weight_rank"][:2] == [3, 3] and profile["weight_rank"][2] is None


def test_bad_input_gets_one_sentence():
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match="^inputs: expected a batch the model accepts"):
        layer_spectra(model, torch.randn(5, 7))
    with pytest.raises(ValueError, match="^rtol: expected a positive threshold"):
        numerical_rank(torch.ones(3), rtol=0.0)
    with pytest.raises(ValueError, match="^rtol: expected a threshold in"):
        bottleneck_profile(model, torch.randn(5, 4), rtol=-1.0)

    class Opaque(nn.Module):
        def forward(self, x):
            return x * 2

    class Pair(nn.Module):
        def forward(self, x):
            return {"double": x * 2}

    with pytest.raises(ValueError, match="^model: expected at least one leaf module"):
        layer_spectra(Pair(), torch.randn(5, 4))
    assert len(layer_spectra(Opaque(), torch.randn(5, 4))) == 1  # the model itself is its leaf


def test_leaves_select_a_subset_of_the_same_spectra():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    model = model.double()
    x = torch.randn(30, 4, dtype=torch.float64)
    full = {s.name: s for s in layer_spectra(model, x)}
    relu = layer_spectra(model, x, leaves=(nn.ReLU,))
    assert [s.name for s in relu] == ["1", "3"]
    for s in relu:
        torch.testing.assert_close(s.centered, full[s.name].centered)
    mixed = layer_spectra(model, x, leaves=[nn.ReLU, "4"])
    assert [s.name for s in mixed] == ["1", "3", "4"]
    torch.testing.assert_close(mixed[-1].weight, full["4"].weight)
    assert [s.name for s in layer_spectra(model, x, leaves="2")] == ["2"]
    with pytest.raises(ValueError, match="leaves: no leaf module is named '9'"):
        layer_spectra(model, x, leaves=["9"])
    with pytest.raises(ValueError, match="leaves: expected module types and/or leaf names"):
        layer_spectra(model, x, leaves=[3])
    with pytest.raises(ValueError, match="leaves: expected a selection that matches"):
        layer_spectra(model, x, leaves=(nn.Tanh,))
