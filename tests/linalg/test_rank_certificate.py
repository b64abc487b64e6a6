"""The null-space certificate of numerical_rank("auto") against the SVD rule as reference.

The Gram route cannot see singular values between the SVD tolerance (~1e-14 here) and the
square root of the Gram's rounding noise (~1e-8): these tests put singular values there and check
that "auto" still returns the SVD rule's rank, and that "gram" alone gets it wrong.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import symlab.linalg.null_certificate as certificate_module
import symlab.linalg.rank as rank_module
from symlab.linalg import RankResult, numerical_rank, parameter_jacobian
from symlab.linalg.null_certificate import CERTIFICATE_SKETCH
from symlab.linalg.rank import equilibrate_columns
from symlab.nets import mlp

EPS = float(torch.finfo(torch.float64).eps)


@pytest.fixture(autouse=True)
def tridiagonal_route_only(monkeypatch):
    """These tests pin the tridiagonal route's certificate (auto's fallback since the Schur
    route, tested in test_schur_rank.py, is tried first)."""
    monkeypatch.setattr(rank_module, "SCHUR_ROUTE", False)


BLIND_SPOTS = [[1e-9], [1e-10, 1e-11], [1e-9, 1e-10, 1e-11]]


def with_spectrum(m: int, n: int, s: list[float], seed: int) -> torch.Tensor:
    """U diag(s) V^T with Haar-random orthonormal U (m x p), V (n x p), p = len(s)."""
    g = torch.Generator().manual_seed(seed)
    p = len(s)
    u, _ = torch.linalg.qr(torch.randn(m, p, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, p, generator=g, dtype=torch.float64))
    return (u * torch.tensor(s, dtype=torch.float64)) @ v.T


def svd_reference(matrix: torch.Tensor) -> tuple[int, torch.Tensor, float]:
    """The SVD rule on the column-scaled float64 matrix: (rank, singular values, tol)."""
    scaled = equilibrate_columns(matrix.to(torch.float64))
    s = torch.linalg.svdvals(scaled)
    tol = float(s[0]) * max(scaled.shape) * EPS
    return int((s > tol).sum()), s, tol


def spectrum(p: int, blind: list[float], zeros: int) -> list[float]:
    """p singular values: log-spaced in [1e-2, 1], then ``blind``, then ``zeros`` zeros."""
    clear = p - len(blind) - zeros
    return list(np.logspace(0, -2, clear)) + blind + [0.0] * zeros


@pytest.mark.parametrize("blind", BLIND_SPOTS)
@pytest.mark.parametrize(
    "m, n, zeros",
    [
        (80, 30, 0),  # tall, no exact zero: nullity 1-3, exact certificate
        (30, 80, 0),  # wide: Gram of the rows
        (80, 30, 12),  # nullity 13-15 > CERTIFICATE_SKETCH <= n / 2: sketch, then exact
        (30, 80, 20),  # nullity > n / 2: sketch, then the SVD directly
    ],
)
def test_auto_sees_singular_values_in_the_gram_blind_spot(m, n, zeros, blind):
    a = with_spectrum(m, n, spectrum(min(m, n), blind, zeros), seed=len(blind) + zeros)
    expected, s, tol = svd_reference(a)
    assert expected == min(m, n) - zeros  # every blind-spot value is above the SVD tolerance
    assert numerical_rank(a, method="svd").rank == expected
    gram = numerical_rank(a, method="gram")
    # the Gram route alone is wrong here: it counts the blind-spot values as zero, unflagged
    assert gram.rank == expected - len(blind) and not gram.ambiguous
    auto = numerical_rank(a, method="auto")
    assert auto.rank == expected
    assert auto.method == "svd (fallback)"
    # the certificate is an upper bound on sigma_{r+1} / tol, here far above 1
    assert auto.certificate >= float(s[gram.rank]) / tol * (1 - 1e-6) > 1e3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_rows, n", [(40, 24), (15, 40)])
def test_blind_spot_in_an_exactly_representable_matrix(dtype, block_rows, n):
    # an integer rank-9 block (exact in float32) plus one row delta * e, e a 0/1 vector: one
    # singular value about delta * |e outside the row space| / column norm ~ 3e-11, the rest
    # exact zeros. The tiny entries share columns with large ones, so column scaling keeps them
    # tiny. Tall (41 x 24) and wide (16 x 40, Gram of the rows).
    rng = np.random.default_rng(4)
    block = rng.integers(-3, 4, size=(block_rows, 9)) @ rng.integers(-3, 4, size=(9, n))
    extra = 1e-9 * (rng.random(n) < 0.5)
    a = torch.tensor(np.vstack([block, extra]), dtype=dtype)
    expected, s, tol = svd_reference(a)
    assert expected == 10 and float(s[9]) > 1e2 * tol
    assert numerical_rank(a, method="svd").rank == 10
    gram = numerical_rank(a, method="gram")
    assert gram.rank == 9 and not gram.ambiguous  # wrong, and not flagged
    auto = numerical_rank(a, method="auto")
    assert auto.rank == 10 and auto.method == "svd (fallback)" and auto.certificate > 1e2
    assert auto.singular_values.dtype == torch.float64


@pytest.mark.parametrize(
    "m, n, rank",
    [(60, 40, 30), (40, 60, 30), (200, 120, 90), (120, 200, 100), (90, 70, 20)],
)
def test_certificate_passes_without_a_blind_spot(m, n, rank):
    # nullity 10 (exact route), 30 and 20 (sketch route), 50 (> n / 2)
    a = with_spectrum(m, n, list(np.logspace(0, -3, rank)) + [0.0] * (min(m, n) - rank), seed=m)
    expected, s, tol = svd_reference(a)
    auto = numerical_rank(a, method="auto")
    assert expected == auto.rank == rank
    assert auto.method == "gram" and 0 < auto.certificate <= 1
    # sound: an upper bound on sigma_{r+1} / tol, up to the rounding of the products
    slack = 10 * np.sqrt(min(m, n)) * EPS * float(s[0]) / tol
    assert auto.certificate >= float(s[rank]) / tol - slack


@pytest.mark.parametrize(
    "widths, n_points", [((3, 6, 6, 1), 200), ((2, 8, 8, 2), 150), ((4, 10, 1), 100)]
)
def test_certificate_passes_on_network_jacobians(widths, n_points):
    model = mlp(widths, "relu", bias_std=0.1, seed=7)
    x = torch.randn(
        n_points, widths[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    jac = parameter_jacobian(model, x)
    expected, s, tol = svd_reference(jac)
    auto = numerical_rank(jac, method="auto")
    assert auto.rank == expected == numerical_rank(jac, method="svd").rank
    # the scaling null space (one direction per hidden neuron) is certified without an SVD
    assert auto.method == "gram" and auto.certificate <= 1
    assert auto.certificate * tol >= float(s[expected]) - 10 * np.sqrt(jac.shape[1]) * EPS


def test_float32_network_jacobian_follows_the_svd_rule():
    # float32 rounding fills the null space with singular values 1e-7..1e-6, far above the
    # float64 tolerance and mostly inside the Gram's blind spot: the Gram alone counts a few of
    # them (57), the SVD rule all (68); the certificate sees the rest
    model = mlp((3, 6, 6, 1), "relu", bias_std=0.1, seed=7)
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(3))
    jac = parameter_jacobian(model.float(), x.float(), dtype=torch.float32)
    assert jac.dtype == torch.float32
    expected, _, _ = svd_reference(jac)
    assert numerical_rank(jac, method="svd").rank == expected
    assert numerical_rank(jac, method="gram").rank < expected
    auto = numerical_rank(jac, method="auto")
    assert auto.rank == expected and auto.method == "svd (fallback)" and auto.certificate > 1


def test_exact_and_sketched_certificates_agree_in_scale(monkeypatch):
    # nullity 30: sketched by default; the exact value with the sketch switched off is a lower
    # value of the same bound (the sketch over-estimates by at most ~8 sqrt(k) when it is all noise)
    a = with_spectrum(200, 120, list(np.logspace(0, -3, 90)) + [0.0] * 30, seed=11)
    sketched = numerical_rank(a, method="auto")
    monkeypatch.setattr(certificate_module, "CERTIFICATE_SKETCH", 1000)
    exact = numerical_rank(a, method="auto")
    assert sketched.rank == exact.rank == 90
    assert 0 < exact.certificate <= sketched.certificate <= 16 * np.sqrt(30) * exact.certificate
    assert CERTIFICATE_SKETCH < 30


def test_refinement_is_needed_on_a_tilted_null_space(monkeypatch):
    # without the inverse-iteration step the Gram eigenvectors' tilt alone exceeds tol here
    # (nullity 10: the exact certificate, no sketch)
    a = with_spectrum(60, 40, list(np.logspace(0, -3, 30)) + [0.0] * 10, seed=0)
    refined = numerical_rank(a, method="auto")
    monkeypatch.setattr(certificate_module, "CERTIFICATE_STEPS", 0)
    raw = numerical_rank(a, method="auto")
    assert refined.method == "gram" and refined.certificate < 0.1
    assert raw.certificate > 1 and raw.method == "svd (fallback)"
    assert refined.rank == raw.rank == 30


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(2, 50),
    n=st.integers(2, 50),
    kinds=st.lists(st.sampled_from(["clear", "blind", "zero"]), min_size=1, max_size=50),
    seed=st.integers(0, 2**31 - 1),
)
def test_auto_equals_svd_on_random_spectra(m, n, kinds, seed):
    rng = np.random.default_rng(seed)
    p = min(m, n)
    kinds = (kinds * p)[:p]
    if "clear" not in kinds:
        kinds[0] = "clear"
    draw = {"clear": lambda: 10 ** rng.uniform(-3, 0), "blind": lambda: 10 ** rng.uniform(-11, -9)}
    s = sorted((draw[k]() if k in draw else 0.0 for k in kinds), reverse=True)
    s[0] = 1.0  # blind-spot values stay below 1e-9 sigma_max: invisible to the Gram
    a = with_spectrum(m, n, s, seed)
    expected, values, tol = svd_reference(a)
    assert expected == sum(k != "zero" for k in kinds)
    auto = numerical_rank(a, method="auto")
    assert auto.rank == expected == numerical_rank(a, method="svd").rank
    if auto.method == "gram":
        slack = 10 * np.sqrt(p) * EPS * float(values[0]) / tol
        below = float(values[expected]) / tol if expected < p else 0.0
        assert auto.certificate <= 1 and auto.certificate >= below - slack
        assert "blind" not in kinds  # a blind-spot value can never pass the certificate


@pytest.mark.parametrize("n", [1, 2, 7, 60])
@pytest.mark.parametrize("order", ["C", "F"])
def test_tridiagonal_gram_against_the_dense_gram(n, order):
    # G = T^T T = Q S Q^T with Q orthogonal: the factorisation the certificate relies on
    rng = np.random.default_rng(n)
    tall = np.asarray(rng.standard_normal((n + 9, n)), order=order)
    tri = certificate_module.tridiagonal_gram(tall)
    q = tri.apply_q(np.eye(n))
    s = np.diag(tri.d) + np.diag(tri.e, 1) + np.diag(tri.e, -1)
    gram = tall.T @ tall
    np.testing.assert_allclose(q @ s @ q.T, gram, atol=1e-12 * np.abs(gram).max())
    np.testing.assert_allclose(q.T @ q, np.eye(n), atol=1e-13)
    np.testing.assert_allclose(tri.apply_q(q, transpose=True), np.eye(n), atol=1e-13)


def test_certificate_field_defaults_and_edge_cases():
    # the new field has a default: six positional fields still build a RankResult
    old_style = RankResult(1, 0.1, 2.0, torch.ones(1), False, "svd")
    assert old_style.certificate is None
    a = torch.tensor([[1.0, 2.0], [2.0, 4.0], [0.0, 0.0]])
    assert numerical_rank(a, method="svd").certificate is None
    assert numerical_rank(a, method="gram").certificate is None
    auto = numerical_rank(a, method="auto")
    assert auto.rank == 1 and auto.method == "gram" and auto.certificate <= 1
    assert type(auto.certificate) is float  # JSON-serialisable in study rows
    full = numerical_rank(torch.eye(3), method="auto")
    assert full.rank == 3 and full.certificate == 0.0  # nothing in the null space to miss
    assert numerical_rank(torch.zeros(3, 2), method="auto").certificate is None
    # one column, a user tol far above its norm: rank 0, certified on the 1 x 1 Gram
    single = numerical_rank(torch.ones(5, 1), tol=1e3, method="auto")
    assert single.rank == 0 == numerical_rank(torch.ones(5, 1), tol=1e3, method="svd").rank
    assert single.method == "gram" and single.certificate == pytest.approx(1e-3)
    # tol = 0 counts rounding noise as rank in the SVD rule; auto must follow it
    b = with_spectrum(30, 20, [1.0] * 10 + [0.0] * 10, seed=2)
    assert (
        numerical_rank(b, tol=0.0, method="auto").rank
        == numerical_rank(equilibrate_columns(b), tol=0.0, method="svd").rank
    )
