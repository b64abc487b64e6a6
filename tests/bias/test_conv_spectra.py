"""Per-frequency spectra of circular convolutions against the dense matrix of the layer."""

import math

import pytest
import torch
from torch import nn

from symlab.bias import (
    CBN_RTOL,
    activation_frequency_spectra,
    conv_frequency_spectra,
    dense_conv_matrix,
    frequency_matrices,
)

CASES = [  # (kernel, padding, dilation, groups, image size)
    (3, 1, 1, 1, (5, 6)),
    (5, 2, 1, 1, (4, 4)),  # kernel larger than the image: it wraps around
    (3, 2, 2, 1, (6, 5)),
    (3, 1, 1, 2, (5, 5)),
    (1, 0, 1, 1, (3, 4)),
    (4, "same", 1, 1, (5, 5)),  # even kernel, padding="same" (asymmetric)
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel, padding, dilation, groups, size", CASES)
def test_singular_values_are_those_of_the_dense_matrix(
    dtype, kernel, padding, dilation, groups, size
):
    torch.manual_seed(kernel + 10 * groups + dilation)
    conv = nn.Conv2d(4, 6, kernel, padding=padding, dilation=dilation, groups=groups,
                     padding_mode="circular", dtype=dtype)  # fmt: skip
    spectrum = conv_frequency_spectra(conv, size)
    assert spectrum.route == "dft" and spectrum.singular.dtype == dtype
    assert spectrum.singular.shape == (size[0] * size[1], 4)
    dense = torch.linalg.svdvals(dense_conv_matrix(conv, size).double())
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(
        spectrum.all_values().double(), dense[: 4 * size[0] * size[1]], atol=tol * float(dense[0])
    )


def test_frequency_blocks_act_on_the_dft_of_the_input():
    """Labels: DFT(conv(x))(m) = Ŵ(m) DFT(x)(m) at every frequency m (not only the multiset)."""
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False, padding_mode="circular", dtype=torch.float64)
    x = torch.randn(1, 3, 5, 7, dtype=torch.float64)
    y_hat = torch.fft.fft2(conv(x).detach())[0].permute(1, 2, 0).reshape(35, 2)
    x_hat = torch.fft.fft2(x)[0].permute(1, 2, 0).reshape(35, 3)
    w = frequency_matrices(conv, (5, 7))
    assert torch.allclose(torch.einsum("moi,mi->mo", w, x_hat), y_hat, atol=1e-12)


def test_cbn_rank_counts_the_kept_frequencies():
    """A 1-channel layer that is a projection onto frequencies ±(1, 0): CBN rank 2 there."""
    n = 7
    conv = nn.Conv2d(1, 1, n, padding=n // 2, bias=False, padding_mode="circular",
                     dtype=torch.float64)  # fmt: skip
    # the kernel of the projection onto {(1, 0), (−1, 0)}: a cosine along axis 0, padding n/2
    u = torch.arange(n, dtype=torch.float64)
    kernel = torch.cos(2 * math.pi * (u - n // 2) / n)[:, None].expand(n, n) * 2 / n**2
    with torch.no_grad():
        conv.weight.copy_(kernel.flip(0, 1).reshape(1, 1, n, n))  # any phase: only |Ŵ| counts
    spectrum = conv_frequency_spectra(conv, n)
    assert spectrum.cbn_rank() == 2
    assert sorted(spectrum.surviving_frequencies()) == [(1, 0), (6, 0)]
    assert int(spectrum.rank_per_frequency().sum()) == 2
    assert 0 < CBN_RTOL < 1


def test_activation_spectra_are_the_channel_covariance_per_frequency():
    torch.manual_seed(2)
    a = torch.randn(40, 3, 4, 5, dtype=torch.float64)
    spectrum = activation_frequency_spectra(a)
    a_hat = torch.fft.fft2(a, norm="ortho")
    a_hat = a_hat - a_hat.mean(0)
    m = 2 * 5 + 3  # frequency (2, 3)
    cov = torch.einsum("ni,nj->ij", a_hat[:, :, 2, 3], a_hat[:, :, 2, 3].conj()) / 40
    eig = torch.linalg.eigvalsh(cov).flip(0).clamp_min(0).sqrt()
    assert torch.allclose(spectrum.singular[m], eig, atol=1e-12)
    assert spectrum.frequencies[m].tolist() == [2, 3]


def test_non_circular_layers_fall_back_to_the_dense_route_with_a_warning():
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    with pytest.warns(UserWarning, match="padding_mode is 'zeros'"):
        spectrum = conv_frequency_spectra(conv, 4)
    assert spectrum.route == "dense" and spectrum.frequencies is None
    assert torch.allclose(spectrum.all_values(), torch.linalg.svdvals(dense_conv_matrix(conv, 4)))
    with pytest.raises(ValueError, match="route"):
        spectrum.surviving_frequencies()
    with pytest.raises(ValueError, match="^conv: the DFT route needs a circulant layer"):
        conv_frequency_spectra(conv, 4, fallback=False)
    strided = nn.Conv2d(2, 3, 3, padding=1, stride=2, padding_mode="circular")
    with pytest.raises(ValueError, match="stride"):
        conv_frequency_spectra(strided, 4, fallback=False)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: conv_frequency_spectra(nn.Linear(2, 2), 4), "^conv: expected an nn.Conv2d"),
        (
            lambda: conv_frequency_spectra(nn.Conv2d(1, 1, 3, padding_mode="circular"), 0),
            "^image_size",
        ),
        (lambda: conv_frequency_spectra(nn.Conv2d(1, 1, 1), (2, 2, 2)), "^image_size"),
        (lambda: activation_frequency_spectra(torch.zeros(3, 4)), "^activations"),
        (
            lambda: conv_frequency_spectra(nn.Conv2d(1, 1, 1, padding_mode="circular"), 3).cbn_rank(
                1.5
            ),
            "^rtol",
        ),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
