"""The certified Schur route of numerical_rank("auto") against the dense SVD rule (float64).

Reference: svdvals of the column-scaled float64 matrix, rank = #{sigma > sigma_max max(m, n) eps}.
The route must either return that rank with a gap that is a true lower bound on sigma_r /
sigma_{r+1}, or decline (None: the tridiagonal route and then the SVD decide).
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import symlab.linalg.deferred_cholesky as cholesky_module
import symlab.linalg.rank as rank_module
import symlab.linalg.schur_certificate as certificate_module
import symlab.linalg.schur_rank as schur_module
from symlab.linalg import numerical_rank, parameter_jacobian
from symlab.linalg.deferred_cholesky import (
    deferred_cholesky,
    local_pivoted,
    pivoted_cholesky,
    symmetric_from_lower,
)
from symlab.linalg.rank import equilibrate_columns
from symlab.linalg.schur_rank import RowBlocks, gram_lower, schur_certify, schur_count
from symlab.nets import mlp

EPS = float(torch.finfo(torch.float64).eps)


def with_spectrum(m: int, n: int, s: list[float], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = len(s)
    u, _ = torch.linalg.qr(torch.randn(m, p, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, p, generator=g, dtype=torch.float64))
    return (u * torch.tensor(s, dtype=torch.float64)) @ v.T


def svd_reference(matrix: torch.Tensor) -> tuple[int, float]:
    """(rank, sigma_r / sigma_{r+1}) of the SVD rule on the column-scaled float64 matrix."""
    scaled = equilibrate_columns(matrix.to(torch.float64))
    s = torch.linalg.svdvals(scaled)
    rank = int((s > float(s[0]) * max(scaled.shape) * EPS).sum())
    gap = float("inf") if rank == len(s) else float(s[rank - 1] / s[rank])
    return rank, gap


def check_against_svd(matrix: torch.Tensor) -> rank_module.RankResult | None:
    fast = rank_module._schur_route(matrix.to(torch.float64), None, rank_module.GAP_THRESHOLD)
    expected, gap = svd_reference(matrix)
    if fast is not None:
        assert fast.rank == expected
        if gap < 1e12:  # beyond, both are rounding-limited
            assert fast.gap <= gap * (1 + 1e-6)  # a lower bound on the true gap
        assert fast.certificate <= 1 and fast.method == "gram"
    assert numerical_rank(matrix).rank == expected
    return fast


def _check_deferred_factor(gram, shift, thresholds, positive, factorize=deferred_cholesky):
    """factorize(gram, shift, *thresholds) (deferred_cholesky or pivoted_cholesky) against dense
    algebra: the kept block's factor is lower triangular and reproduces G - mu I on the kept
    rows, the Schur complement equals the dense one, and (Haynsworth) the positive eigenvalues of
    G - mu I are the kept block's plus the Schur complement's, ``positive`` in all. Returns
    (factor, kept, rest, schur)."""
    factor, kept, rest, schur = factorize(gram, shift, *thresholds)
    n = gram.shape[0]
    a = symmetric_from_lower(gram) - shift * torch.eye(n, dtype=torch.float64)
    k, p = torch.tensor(kept), torch.tensor(rest)
    low = factor[k, : len(kept)]
    assert torch.allclose(low, torch.tril(low))
    torch.testing.assert_close(low @ low.T, a[k][:, k], atol=1e-12, rtol=0)
    torch.testing.assert_close(low @ factor[p, : len(kept)].T, a[k][:, p], atol=1e-12, rtol=0)
    dense = a[p][:, p] - a[p][:, k] @ torch.linalg.solve(a[k][:, k], a[k][:, p])
    torch.testing.assert_close(schur, dense, atol=1e-10, rtol=0)
    count = int((torch.linalg.eigvalsh(a) > 0).sum())
    assert count == len(kept) + int((torch.linalg.eigvalsh(schur) > 0).sum()) == positive
    return factor, kept, rest, schur


@pytest.mark.parametrize("whole", [1024, 0], ids=["one dpstrf", "deferred blocks"])
@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(2, 60),
    n=st.integers(2, 60),
    kinds=st.lists(st.sampled_from(["clear", "zero"]), min_size=1, max_size=60),
    seed=st.integers(0, 2**31 - 1),
)
def test_schur_route_equals_the_svd_rule_on_random_spectra(whole, m, n, kinds, seed):
    # both factorizations of the count: one dpstrf up to WHOLE_PIVOTING_MAX columns, else blocks
    with pytest.MonkeyPatch.context() as patch:  # per example (hypothesis and fixtures)
        patch.setattr(schur_module, "WHOLE_PIVOTING_MAX", whole)
        check_random_spectrum(m, n, kinds, seed)


def check_random_spectrum(m, n, kinds, seed):
    rng = np.random.default_rng(seed)
    p = min(m, n)
    kinds = (kinds * p)[:p]
    kinds[0] = "clear"
    s = sorted((10 ** rng.uniform(-3, 0) if k == "clear" else 0.0 for k in kinds), reverse=True)
    fast = check_against_svd(with_spectrum(m, n, s, seed))
    assert fast is not None  # clear spectra (gap >= 1e13) are certified without a fallback


@pytest.mark.parametrize("blind", [[1e-9], [1e-10, 1e-11]])
def test_schur_route_declines_singular_values_in_the_gram_blind_spot(blind):
    # sigma in (tol, ~1e-8 sigma_max) is rounding noise to the Gram: the certificate must fail
    s = list(np.logspace(0, -2, 25)) + blind + [0.0] * 3
    a = with_spectrum(90, len(s), s, seed=len(blind))
    assert rank_module._schur_route(a, None, rank_module.GAP_THRESHOLD) is None
    assert numerical_rank(a).rank == svd_reference(a)[0] == 25 + len(blind)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_schur_route_on_duplicated_zero_and_scaled_columns(dtype):
    g = torch.Generator().manual_seed(3)
    t = torch.randn(150, 40, generator=g, dtype=dtype)
    a = torch.cat([t, t[:, :7], torch.zeros(150, 4, dtype=dtype), 2 * t[:, 5:6]], 1)
    if dtype == torch.float64:  # sums are exact to ~1e-16 only in float64
        a = torch.cat([a, t[:, :3] @ torch.ones(3, 2, dtype=dtype)], 1)
    fast = check_against_svd(a)
    assert fast is not None and fast.rank == 40


def test_float32_rounding_of_a_dependency_is_rank_not_noise():
    # a float32 sum of columns is off by ~1e-8: above the float64 tol, so the SVD rule counts
    # it; the Gram cannot see it, so the Schur route must decline and the fallback count it
    g = torch.Generator().manual_seed(3)
    t = torch.randn(150, 40, generator=g, dtype=torch.float32)
    a = torch.cat([t, t[:, :3] @ torch.ones(3, 1)], 1)
    assert check_against_svd(a) is None
    assert numerical_rank(a).rank == 41


def test_schur_route_near_rank_deficient_column_goes_to_the_fallback_or_is_right():
    g = torch.Generator().manual_seed(4)
    t = torch.randn(120, 30, generator=g, dtype=torch.float64)
    for size in (1e-3, 1e-6, 1e-9, 1e-12, 0.0):
        extra = t[:, :1] + size * torch.randn(120, 1, generator=g, dtype=torch.float64)
        check_against_svd(torch.cat([t, extra], 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "widths, n", [((3, 6, 6, 1), 200), ((4, 8, 8, 8, 2), 150), ((5, 10, 1), 300)]
)
def test_schur_route_on_network_jacobians(widths, n, dtype):
    model = mlp(widths, "relu", init="he", bias_std=0.1, seed=1).to(dtype)
    x = torch.randn(n, widths[0], generator=torch.Generator().manual_seed(2), dtype=dtype)
    fast = check_against_svd(parameter_jacobian(model, x, dtype=torch.float64))
    assert fast is not None


def test_wide_matrices_use_the_rows():
    a = with_spectrum(20, 70, list(np.logspace(0, -2, 15)) + [0.0] * 5, seed=5)
    fast = check_against_svd(a)
    assert fast is not None and fast.rank == 15


def test_pivoted_cholesky_and_schur_complement_against_dense_algebra():
    # L L^T = (G - mu I)_KK, the rest's rows = L^-1 (G - mu I)_{K,P}, schur = the Schur complement
    t = with_spectrum(80, 50, list(np.logspace(0, -4, 35)) + [0.0] * 15, seed=6)
    gram = gram_lower(t)
    factor, kept, _, _ = _check_deferred_factor(gram, 1e-12, (1e-6,), positive=35)


def test_non_finite_input_is_refused_in_one_sentence():
    a = torch.randn(30, 10, dtype=torch.float64)
    a[3, 4] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        numerical_rank(a)


def test_device_loop_of_the_pivoted_block_equals_lapack_dpstrf():
    # the loop that runs on CUDA, checked on the CPU against LAPACK and dense algebra
    t = with_spectrum(60, 40, list(np.logspace(0, -3, 30)) + [0.0] * 10, seed=7)
    block = t.T @ t
    order_l, chol_l = local_pivoted(block, 1e-9, lapack=True)
    order_t, chol_t = local_pivoted(block, 1e-9, lapack=False)
    assert order_l.tolist() == order_t.tolist() and len(order_t) == 30
    torch.testing.assert_close(chol_t, chol_l, atol=1e-12, rtol=0)
    sub = block[order_t][:, order_t]
    torch.testing.assert_close(chol_t @ chol_t.T, sub, atol=1e-12, rtol=0)


@pytest.mark.parametrize("block", [7, 16])
def test_deferred_cholesky_over_several_blocks_against_dense_algebra(monkeypatch, block):
    # the left-looking loop across blocks, deferred columns in early blocks included
    monkeypatch.setattr(cholesky_module, "CHOLESKY_BLOCK", block)
    t = with_spectrum(90, 60, list(np.logspace(0, -4, 40)) + [0.0] * 20, seed=8)
    t = t[:, torch.randperm(60, generator=torch.Generator().manual_seed(1))]
    gram = gram_lower(t)
    factor, kept, _, _ = _check_deferred_factor(gram, 1e-12, (1e-6, 1e-2), positive=40)
    assert bool((factor[torch.tensor(kept), : len(kept)].diagonal() ** 2 > 1e-6).all())


def test_one_pivoted_cholesky_against_dense_algebra_and_the_deferred_blocks():
    # the whole Gram by one dpstrf: the same contract as the deferred blocks, its upper
    # triangle never read, its pivots all above the stop, and the same count
    t = with_spectrum(90, 60, list(np.logspace(0, -4, 40)) + [0.0] * 20, seed=8)
    t = t[:, torch.randperm(60, generator=torch.Generator().manual_seed(1))]
    gram = gram_lower(t)
    poisoned = torch.where(torch.ones(60, 60).tril().bool(), gram, float("nan"))
    factor, kept, rest, schur = _check_deferred_factor(
        poisoned.nan_to_num(0.0), 1e-12, (1e-6,), positive=40, factorize=pivoted_cholesky
    )
    again = pivoted_cholesky(poisoned, 1e-12, 1e-6)
    assert again[1] == kept and again[2] == rest
    torch.testing.assert_close(again[3], schur, rtol=0, atol=0)
    assert bool((factor[torch.tensor(kept), : len(kept)].diagonal() ** 2 > 1e-6).all())
    _check_deferred_factor(gram, 1e-12, (1e-6, 1e-2), positive=40)  # the same count


def test_the_count_takes_one_dpstrf_up_to_its_size_and_the_blocks_beyond(monkeypatch):
    # the route each size takes, with the same count either way
    t = with_spectrum(120, 80, list(np.logspace(0, -3, 70)) + [0.0] * 10, seed=12)
    gram = gram_lower(t / torch.linalg.vector_norm(t, dim=0))
    calls = []
    for name in ("pivoted_cholesky", "deferred_cholesky"):
        original = getattr(schur_module, name)
        monkeypatch.setattr(
            schur_module, name, lambda *a, f=original, n=name: calls.append(n) or f(*a)
        )
    counts = []
    for whole in (80, 79):
        monkeypatch.setattr(schur_module, "WHOLE_PIVOTING_MAX", whole)
        counts.append(schur_count(gram, tuple(t.shape), None).rank)
    assert calls == ["pivoted_cholesky", "deferred_cholesky"] and counts == [70, 70]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_count_and_certificate_from_row_blocks_equal_the_svd_rule(dtype):
    # the adaptive loop's use: a Gram accumulated block by block, certified with row blocks
    model = mlp((3, 8, 8, 1), "relu", init="he", bias_std=0.1, seed=2).to(dtype)
    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(3), dtype=dtype)
    a = parameter_jacobian(model, x, dtype=torch.float64)
    expected, gap = svd_reference(a)
    gram = torch.zeros(a.shape[1], a.shape[1], dtype=torch.float64)
    for rows in torch.split(a, 97):
        gram += gram_lower(rows.contiguous())
    norms = gram.diagonal().sqrt()
    inverse = torch.where(norms > norms.max() * 400 * EPS, 1 / norms, torch.zeros_like(norms))
    scaled = gram * inverse[:, None] * inverse[None, :]
    count = schur_count(scaled, tuple(a.shape), None)
    assert count is not None and count.rank <= expected  # a certified lower count
    blocks = RowBlocks(lambda: iter(torch.split(a, 97)), tuple(a.shape))
    from_blocks = schur_certify(count, blocks, inverse, None)
    from_tensor = schur_certify(count, a, inverse, None)
    assert from_blocks is not None and from_blocks[0] == expected < a.shape[1]
    assert from_blocks[2] <= gap * (1 + 1e-6)  # a lower bound on the true gap
    assert from_blocks[:2] == from_tensor[:2] and from_blocks[3] == from_tensor[3]
    # the certificate is ||T X|| / tol at rounding level: the blocks' summation order moves it
    # (by 1-10 % on an AMD CPU with MKL, not at all on an Intel one), never past 1
    assert from_blocks[4] <= 1 and from_tensor[4] <= 1
    assert from_blocks[4] == pytest.approx(from_tensor[4], rel=0.5)


def test_a_singular_value_in_the_blind_spot_fails_the_row_block_certificate():
    s = list(np.logspace(0, -2, 25)) + [1e-10] + [0.0] * 3
    a = with_spectrum(90, len(s), s, seed=9)
    norms = torch.linalg.vector_norm(a, dim=0)
    t = a / norms
    count = schur_count(gram_lower(t), tuple(a.shape), None)
    assert count is not None and count.rank == 25  # 1e-10 is below the Gram's resolution
    blocks = RowBlocks(lambda: iter(torch.split(a, 40)), tuple(a.shape))
    assert schur_certify(count, blocks, 1 / norms, None) is None  # so the SVD decides
    assert svd_reference(a)[0] == 26


def test_lower_triangle_product_and_lanczos_against_dense_algebra():
    # G v from the lower triangle only: the upper one holds garbage that must not be read
    t = with_spectrum(400, 300, list(np.logspace(0, -3, 250)) + [0.0] * 50, seed=10)
    gram = gram_lower(t)
    full = symmetric_from_lower(gram)
    below = torch.ones(300, 300, dtype=torch.bool).tril()
    poisoned = torch.where(below, gram, torch.full_like(gram, float("nan")))
    v = torch.randn(300, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    product = schur_module.lower_product(poisoned)
    torch.testing.assert_close(product(v), full @ v, rtol=0, atol=1e-13)
    # a Rayleigh-Ritz value: never above lambda_max, close to it even on this clustered top
    top = float(torch.linalg.eigvalsh(full)[-1])
    assert top * 0.98 <= schur_module.lanczos_lambda_max(gram) <= top * (1 + 1e-12)
    # a separated top eigenvalue (as on network Jacobians): to 1e-5 or better
    separated = with_spectrum(400, 300, [1.0] + list(np.logspace(-0.5, -3, 249)), seed=11)
    top = float(torch.linalg.svdvals(separated)[0]) ** 2
    estimate = schur_module.lanczos_lambda_max(gram_lower(separated))
    assert top * (1 - 1e-5) <= estimate <= top * (1 + 1e-12)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_lanczos_on_tiny_and_low_rank_grams_equals_the_dense_top(n):
    # an invariant Krylov subspace (rank 1, n = 1) stops the iteration with the exact value
    t = with_spectrum(30, n, [3.0] + [0.0] * (n - 1), seed=n)
    top = float(torch.linalg.svdvals(t)[0]) ** 2
    assert schur_module.lanczos_lambda_max(gram_lower(t)) == pytest.approx(top, rel=1e-12)


def test_lower_triangle_scaling_equals_the_full_products_bit_for_bit():
    t = with_spectrum(90, 70, list(np.logspace(0, -3, 60)) + [0.0] * 10, seed=12)
    gram = gram_lower(t)
    d = 1 / gram.diagonal().sqrt()
    d[3] = 0.0  # a dropped column
    full = gram * d[:, None] * d[None, :]
    for rows in (1, 8, 32, 100):
        out = schur_module.scale_lower(gram, d, rows=rows)
        assert torch.equal(torch.tril(out), torch.tril(full))
    in_place = gram.clone()
    assert schur_module.scale_lower(in_place, d, out=in_place) is in_place
    assert torch.equal(torch.tril(in_place), torch.tril(full))


def _near_the_shift(seed: int) -> tuple[torch.Tensor, int]:
    """A matrix with five singular values whose squares sit within +-10 % of the count's shift
    mu (schur_count's formula), 20 clear ones and 3 zeros: (matrix, SVD rule's rank)."""
    m, n = 90, 28
    clear = list(np.logspace(0, -2, 20))
    u = EPS / 2
    tol = max(m, n) * EPS
    mu = schur_module.SHIFT_MARGIN * (tol**2 + (m + n) * u * 1.05 * sum(c * c for c in clear))
    near = [float(np.sqrt(mu * f)) for f in (0.9, 0.95, 1.0, 1.05, 1.1)]
    a = with_spectrum(m, n, clear + near + [0.0] * 3, seed)
    return a, svd_reference(a)[0]


@pytest.mark.parametrize("seed", range(6))
def test_an_ambiguous_count_is_refused_or_kept_as_a_lower_count_never_certified(seed):
    a, expected = _near_the_shift(seed)
    gram = gram_lower(a)
    lower = schur_count(gram, tuple(a.shape), None, refuse_ambiguous=False)
    assert lower is not None and lower.rank <= expected  # a certified lower count
    assert lower.rank >= 20  # the clear singular values are counted
    default = schur_count(gram, tuple(a.shape), None)
    if lower.ambiguous:
        assert default is None  # the default refuses what the lower count leaves out
        ones = torch.ones(a.shape[1], dtype=torch.float64)
        assert schur_certify(lower, a, ones, None) is None  # nothing certifies it
        from symlab.linalg.block_rank import block_rank

        assert block_rank(lower, a, ones, None) is None
    else:
        assert default is not None and default.rank == lower.rank


def test_the_near_shift_matrices_do_put_eigenvalues_in_the_margin():
    # the test above is not vacuous: most of its matrices have an ambiguous count
    ambiguous = [
        schur_count(gram_lower(a), tuple(a.shape), None, refuse_ambiguous=False).ambiguous
        for a, _ in map(_near_the_shift, range(6))
    ]
    assert sum(k > 0 for k in ambiguous) >= 3


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    clear=st.integers(5, 30),
    near=st.integers(1, 8),
    spread=st.floats(0.01, 0.5),
    zeros=st.integers(0, 5),
)
def test_a_lower_count_never_exceeds_the_svd_rule(seed, clear, near, spread, zeros):
    # singular values whose squares straddle the count's shift mu (within +-spread), with clear
    # ones above and zeros below: with refuse_ambiguous=False the count is always a lower bound
    # on the SVD rule's rank, and counts every clear value
    rng = np.random.default_rng(seed)
    m, n = 120, clear + near + zeros
    big = list(np.logspace(0, -rng.uniform(0, 3), clear))
    u, tol = EPS / 2, max(m, n) * EPS
    mu = schur_module.SHIFT_MARGIN * (tol**2 + (m + n) * u * 1.05 * sum(c * c for c in big))
    small = list(np.sqrt(mu * (1 + spread * rng.uniform(-1, 1, near))))
    a = with_spectrum(m, n, big + small + [0.0] * zeros, seed % 1000)
    expected = svd_reference(a)[0]
    count = schur_count(gram_lower(a), tuple(a.shape), None, refuse_ambiguous=False)
    assert count is not None and clear <= count.rank <= expected


@pytest.mark.parametrize("zeros", [5, 15])  # nullity <= 12: all columns; > 12: a sketch
def test_the_certificate_stops_at_the_first_refinement_step_that_passes(monkeypatch, zeros):
    s = list(np.logspace(0, -3, 45)) + [0.0] * zeros
    a = with_spectrum(400, len(s), s, seed=13)
    norms = torch.linalg.vector_norm(a, dim=0)
    count = schur_count(gram_lower(a / norms), tuple(a.shape), None)
    assert count is not None and not count.complete
    exact = count.null_rest.shape[1] <= certificate_module.CERTIFICATE_SKETCH
    bounds = []
    products = certificate_module.NullRefinement.products

    def recording(self, x, adjoint):
        residual, back = products(self, x, adjoint)
        if exact:
            bounds.append(float(torch.linalg.matrix_norm(residual, ord=2)))
        else:
            factor = certificate_module.SKETCH_ALPHA * np.sqrt(2 / np.pi)
            bounds.append(factor * float(residual.norm(dim=0).max()))
        return residual, back

    monkeypatch.setattr(certificate_module.NullRefinement, "products", recording)
    rank, tol, _, _, certificate = schur_certify(count, a, 1 / norms, None)
    assert rank == svd_reference(a)[0] == 45
    assert len(bounds) >= 2  # the shifted factor's first guess is not enough
    assert all(bound > tol for bound in bounds[:-1]) and bounds[-1] <= tol
    assert certificate == pytest.approx(bounds[-1] / tol, rel=1e-12)


@pytest.mark.parametrize("blocks", [False, True])
def test_a_step_expected_to_pass_that_fails_takes_its_adjoint_product_after_all(
    monkeypatch, blocks
):
    # every step from the third on computes T x alone (EXPECT_PASS huge): each failed check
    # then needs T^T (T x) from a second read of A, and the refinement must be the same, step
    # by step (a wrong or missing adjoint product stalls it)
    s = list(np.logspace(0, -3, 45)) + [0.0] * 15
    a = with_spectrum(400, len(s), s, seed=14)
    norms = torch.linalg.vector_norm(a, dim=0)
    count = schur_count(gram_lower(a / norms), tuple(a.shape), None)
    count.tol /= 100  # a stricter check: more steps, some past the expected pass
    matrix = RowBlocks(lambda: iter(torch.split(a, 70)), tuple(a.shape)) if blocks else a
    residuals: list[float] = []
    products = certificate_module.NullRefinement.products

    def recording(self, x, adjoint):
        residual, back = products(self, x, adjoint)
        residuals.append(float(residual.norm()))
        return residual, back

    monkeypatch.setattr(certificate_module.NullRefinement, "products", recording)
    reference = schur_certify(count, matrix, 1 / norms, None)
    steps, residuals[:] = list(residuals), []
    calls = []
    adjoint = certificate_module.NullRefinement.adjoint
    monkeypatch.setattr(certificate_module, "EXPECT_PASS", 1e300)
    monkeypatch.setattr(
        certificate_module.NullRefinement,
        "adjoint",
        lambda self, residual: calls.append(1) or adjoint(self, residual),
    )
    forced = schur_certify(count, matrix, 1 / norms, None)
    assert len(calls) >= 3  # expected passes failed
    assert len(residuals) == len(steps)
    assert residuals[:3] == pytest.approx(steps[:3], rel=1e-9, abs=0)  # above rounding level
    # each failed expected pass moved y: no step repeats its predecessor's residual
    assert all(new != old for old, new in zip(residuals, residuals[1:], strict=False))
    assert forced[:2] == reference[:2] and forced[3] == reference[3] and forced[4] <= 1


@pytest.mark.parametrize("fortran", [False, True])
@pytest.mark.parametrize("transpose", [False, True])
def test_lower_triangular_solve_against_the_dense_inverse(fortran, transpose):
    g = torch.Generator().manual_seed(15)
    a = torch.randn(60, 60, generator=g, dtype=torch.float64)
    lower = torch.linalg.cholesky(a @ a.T / 60 + torch.eye(60, dtype=torch.float64))
    # the upper triangle must not be read: 1e300 there would show in the solution
    poisoned = (lower + torch.triu(torch.full_like(lower, 1e300), 1)).contiguous()
    poisoned = poisoned.T.contiguous().T if fortran else poisoned
    assert poisoned.numpy().flags.f_contiguous == fortran
    rhs = torch.randn(60, 7, generator=g, dtype=torch.float64)
    inverse = torch.linalg.inv(lower)
    expected = (inverse.T if transpose else inverse) @ rhs
    solved = cholesky_module.lower_triangular_solve(poisoned, rhs, transpose)
    torch.testing.assert_close(solved, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("nullity", [3, 7])
def test_zero_columns_padding_the_certificate_products_change_no_result(monkeypatch, nullity):
    # the CPU products take blocks of PRODUCT_WIDTH columns (zero-padded): the residuals, hence
    # the certificate, are those of the unpadded products to rounding, and the rank is the same
    s = list(np.logspace(0, -2, 40)) + [0.0] * nullity
    a = with_spectrum(120, len(s), s, seed=13)
    t = a / torch.linalg.vector_norm(a, dim=0)
    count = schur_count(gram_lower(t), tuple(t.shape), None)
    ones = torch.ones(t.shape[1], dtype=torch.float64)
    results = {}
    for width in (1, 4, 8):
        monkeypatch.setattr(certificate_module, "PRODUCT_WIDTH", width)
        results[width] = schur_certify(count, t, ones, None)
    assert certificate_module._padding(torch.zeros(5, nullity)) == (-nullity) % 8 == 8 - nullity
    for width in (4, 8):
        assert results[width][:4] == results[1][:4] and results[1][0] == 40
        assert results[width][4] == pytest.approx(results[1][4], rel=1e-6)
