"""The block route (symlab.linalg.block_rank) against the dense SVD rule, float64.

The matrices have singular values between the SVD rule's tol and the Gram's resolution (about
sqrt(m n u) sigma_max): the Schur count cannot see them and its certificate fails, so the block
T X must decide them. Reference: svdvals of the column-scaled matrix, rank = #{sigma > tol}
(tol = sigma_max max(m, n) eps). The route is float64 only (the adaptive loop's Gram and rows
are float64); a float32 matrix is converted first, as the loop's rows are.
"""

import pytest
import torch

from symlab.linalg.block_rank import block_rank
from symlab.linalg.schur_rank import RowBlocks, gram_lower, schur_certify, schur_count

EPS = float(torch.finfo(torch.float64).eps)


def with_spectrum(m: int, n: int, s: list[float], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, len(s), generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, len(s), generator=g, dtype=torch.float64))
    return (u * torch.tensor(s, dtype=torch.float64)) @ v.T


def scaled_count(matrix: torch.Tensor):
    """(count, inverse column norms, SVD reference rank, reference singular values, tol)."""
    inverse = 1.0 / matrix.norm(dim=0)
    scaled = matrix * inverse
    count = schur_count(gram_lower(scaled), tuple(matrix.shape), None)
    s = torch.linalg.svdvals(scaled)
    tol = float(s[0]) * max(matrix.shape) * EPS
    return count, inverse, int((s > tol).sum()), s, tol


def band_matrix(band: list[float], seed: int, m: int = 1500, n: int = 90) -> torch.Tensor:
    """Rank 70 + len(band): 70 values in [1e-2, 1] and ``band`` (relative to sigma_max)."""
    clear = torch.logspace(0, -2, 70, dtype=torch.float64).tolist()
    return with_spectrum(m, n, clear + band, seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("band", [[1e-7], [3e-6, 1e-8], [1e-6, 1e-7, 1e-9, 1e-10]])
def test_blind_spot_values_decided_as_svd(band, seed):
    matrix = band_matrix(band, seed)
    count, inverse, expected, s, tol = scaled_count(matrix)
    assert expected == 70 + len(band)  # the band is above tol (test premise)
    assert count is not None and count.rank < expected  # the Gram misses the band
    assert schur_certify(count, matrix, inverse, None) is None  # so the certificate fails
    result = block_rank(count, matrix, inverse, None)
    assert result is not None
    rank, got_tol, gap, _, certificate = result
    assert rank == expected
    assert certificate <= 1
    assert got_tol == pytest.approx(tol, rel=1e-4)
    true_gap = float(s[rank - 1] / s[rank])
    assert 1 < gap <= true_gap * (1 + 1e-6)  # a certified lower bound on the gap


def test_row_blocks_and_float32_input_agree():
    matrix = band_matrix([1e-7], 3)
    count, inverse, expected, _, _ = scaled_count(matrix)
    rows = RowBlocks(lambda: iter(torch.split(matrix, 256)), tuple(matrix.shape))
    assert block_rank(count, rows, inverse, None)[0] == expected
    # float32 data: the route runs on the float64 copy (as the adaptive loop's rows)
    single = band_matrix([], 4).to(torch.float32).to(torch.float64)
    count32, inverse32, expected32, _, _ = scaled_count(single)
    result = block_rank(count32, single, inverse32, None)
    assert result is None or result[0] == expected32


@pytest.mark.parametrize("factor", [0.3, 0.9, 1.5, 3.0, 30.0, 1e3])
@pytest.mark.parametrize("seed", [0, 1])
def test_values_near_tol_never_misdecided(factor, seed):
    """A value at factor x tol: the block decides it as the SVD rule or declines (None)."""
    m, n = 1500, 90
    probe = band_matrix([1e-6], seed, m, n)
    tol_rel = max(m, n) * EPS * float(torch.linalg.svdvals(probe)[0])
    matrix = band_matrix([1e-6, factor * tol_rel], seed, m, n)
    count, inverse, expected, _, _ = scaled_count(matrix)
    result = block_rank(count, matrix, inverse, None)
    if result is not None:
        assert result[0] == expected
    if factor >= 30:
        assert result is not None and result[0] == 72
    if 0.9 <= factor <= 1.5:  # within the route's margin of tol: it declines, the SVD decides
        assert result is None


def test_complete_count_passes_through():
    matrix = with_spectrum(400, 30, torch.logspace(0, -1, 30).tolist(), 0)
    count, inverse, expected, _, _ = scaled_count(matrix)
    assert count.complete
    assert block_rank(count, matrix, inverse, None)[0] == expected == 30
