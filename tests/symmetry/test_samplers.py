"""Input samplers for functional dimension: shapes, determinism, the multiscale radii."""

import pytest
import torch

from symlab.symmetry.samplers import SAMPLERS, gaussian, get_sampler, mixture, multiscale


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_seed_determinism(name, dtype):
    sampler = get_sampler(name)
    a = sampler(33, 4, torch.Generator().manual_seed(7), dtype)
    b = sampler(33, 4, torch.Generator().manual_seed(7), dtype)
    c = sampler(33, 4, torch.Generator().manual_seed(8), dtype)
    assert a.shape == (33, 4) and a.dtype == dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sampler(0, 4, torch.Generator().manual_seed(0), dtype).shape == (0, 4)


def test_multiscale_spans_five_decades_and_gaussian_does_not():
    g = torch.Generator().manual_seed(0)
    far = torch.log10(multiscale(20000, 1, g).abs().squeeze(1) / 1.0)
    near = torch.log10(gaussian(20000, 1, g).abs().squeeze(1))
    # log10 |x| = log10 r + log10 |u|: the 10%-90% range covers >= 4 of the 5 decades of r
    assert torch.quantile(far, 0.9) - torch.quantile(far, 0.1) > 3.5
    assert torch.quantile(near, 0.9) - torch.quantile(near, 0.1) < 1.5
    assert far.max() > 2.5 and far.min() < -2.0


def test_multiscale_radius_is_log_uniform_given_direction():
    # in n0 = 400 dimensions |u| / sqrt(n0) ~ 1, so log10(|x| / sqrt(n0)) ~ U(-2, 3)
    x = multiscale(4000, 400, torch.Generator().manual_seed(1))
    log_r = torch.log10(x.norm(dim=1) / 20.0)
    assert log_r.min() > -2.1 and log_r.max() < 3.1
    counts = torch.histc(log_r, bins=5, min=-2, max=3)
    assert counts.min() > 700 and counts.max() < 900


def test_mixture_is_half_multiscale_half_gaussian():
    x = mixture(1001, 3, torch.Generator().manual_seed(2))
    assert x.shape == (1001, 3)
    first = x[:501].norm(dim=1)
    second = x[501:].norm(dim=1)
    assert first.max() > 50 and second.max() < 10


def test_get_sampler_accepts_callables_and_rejects_unknown_names():
    def custom(n_points, n0, generator, dtype):
        return torch.zeros(n_points, n0, dtype=dtype)

    assert get_sampler(custom) is custom
    with pytest.raises(ValueError, match="sampler"):
        get_sampler("uniform")
    with pytest.raises(ValueError, match="n_points"):
        gaussian(-1, 2, torch.Generator())
    with pytest.raises(ValueError, match="n0"):
        multiscale(3, 0, torch.Generator())
