"""effective_rank (Roy & Vetterli 2007) and stable_rank against their definitions."""

import math

import pytest
import torch

from symlab.linalg import effective_rank, stable_rank


def entropy_rank(values: list[float]) -> float:
    total = sum(values)
    return math.exp(-sum(v / total * math.log(v / total) for v in values if v > 0))


def test_effective_rank_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        s = torch.rand(7, generator=g, dtype=torch.float64)
        assert effective_rank(s) == pytest.approx(entropy_rank(s.tolist()), rel=1e-12)
    assert effective_rank([2.0, 2.0, 2.0, 0.0]) == pytest.approx(3.0)
    assert effective_rank([5.0]) == pytest.approx(1.0)
    assert effective_rank([1.0, 1e-300]) == pytest.approx(1.0)
    s = torch.tensor([3.0, 1.0, 0.5])
    assert effective_rank(s) == pytest.approx(effective_rank(10 * s))
    assert 1.0 < effective_rank(s) < 3.0


def test_stable_rank_is_frobenius_over_spectral_norm():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(9, 6, generator=g, dtype=torch.float64)
    s = torch.linalg.svdvals(a)
    expected = float(torch.linalg.matrix_norm(a) ** 2 / torch.linalg.matrix_norm(a, ord=2) ** 2)
    assert stable_rank(s) == pytest.approx(expected, rel=1e-12)
    assert 1.0 <= stable_rank(s) <= 6.0
    assert stable_rank([1.0, 1.0, 0.0]) == pytest.approx(2.0)
    assert stable_rank([4.0, 2.0]) == pytest.approx(1.25)


@pytest.mark.parametrize("func", [effective_rank, stable_rank])
def test_bad_spectra_raise(func):
    for bad in ([], [0.0, 0.0], [1.0, -0.5], [[1.0]], [float("nan")]):
        with pytest.raises(ValueError, match="singular_values"):
            func(bad)
