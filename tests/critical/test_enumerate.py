"""Brute-force enumeration vs the closed forms, dimensions by rank, and points checked on data."""

from itertools import product

import pytest
import torch

from symlab.critical import (
    count_global_minima_subspaces,
    count_symmetry_induced_subspaces,
    enumerate_global_minima_subspaces,
    enumerate_symmetry_induced_subspaces,
    sample_point,
    subspace_kinds,
)
from symlab.critical.enumerate import NeuronGroup, Subspace

FAST = [(r, m) for r in range(1, 5) for m in range(1, 7)]
FULL = [(r, m) for r in range(1, 5) for m in range(1, 9)]


def _check_formulas(r, m):
    assert len(enumerate_global_minima_subspaces(r, m)) == count_global_minima_subspaces(r, m)
    assert len(
        enumerate_global_minima_subspaces(r, m, zero_sum_groups=True)
    ) == count_global_minima_subspaces(r, m, zero_sum_groups=True)
    assert len(enumerate_symmetry_induced_subspaces(r, m)) == count_symmetry_induced_subspaces(r, m)


@pytest.mark.parametrize("r, m", FAST)
def test_enumeration_equals_formula(r, m):
    _check_formulas(r, m)


@pytest.mark.slow
@pytest.mark.parametrize("r, m", [rm for rm in FULL if rm not in FAST])
def test_enumeration_equals_formula_full_range(r, m):
    _check_formulas(r, m)


def test_zero_sum_enumeration_matches_naive_labelling():
    # every labelling with free ids 0..m-1 in any order, canonicalised by hand: no first-use trick
    for r, m in [(1, 4), (2, 4), (2, 5), (3, 5)]:
        naive = set()
        for labels in product(
            [("t", i) for i in range(r)] + [("f", k) for k in range(m)], repeat=m
        ):
            if not {("t", i) for i in range(r)} <= set(labels):
                continue
            blocks = {}
            for j, label in enumerate(labels):
                blocks.setdefault(label, []).append(j)
            naive.add(
                frozenset(
                    (tuple(b), label[1] if label[0] == "t" else None) for label, b in blocks.items()
                )
            )
        listed = enumerate_global_minima_subspaces(r, m, zero_sum_groups=True)
        as_sets = {frozenset((g.neurons, g.source) for g in s.groups) for s in listed}
        assert len(as_sets) == len(listed)
        assert as_sets == naive


def test_enumerated_subspaces_are_valid_and_distinct():
    for subspaces, r, zero_sum in [
        (enumerate_global_minima_subspaces(3, 5), 3, False),
        (enumerate_global_minima_subspaces(2, 5, zero_sum_groups=True), 2, True),
        (enumerate_symmetry_induced_subspaces(3, 5), 3, False),
    ]:
        assert len(set(subspaces)) == len(subspaces)
        for s in subspaces:
            neurons = sorted(j for g in s.groups for j in g.neurons)
            assert neurons == list(range(5))
            assert sorted(g.source for g in s.groups if g.source is not None) == list(range(r))
            if not zero_sum:
                assert all(len(g.neurons) == 1 for g in s.groups if g.source is None)


def _contains(subspace: Subspace, weights, heads, w_star, a_star, tol=1e-9) -> bool:
    """Whether (weights, heads) satisfies the defining equations of a global-minima subspace."""
    for group in subspace.groups:
        members = list(group.neurons)
        anchor = w_star[group.source] if group.source is not None else weights[members[0]]
        target = a_star[group.source] if group.source is not None else 0.0
        if (weights[members] - anchor).abs().max() > tol:
            return False
        if abs(float(heads[members].sum()) - float(target)) > tol:
            return False
    return True


@pytest.mark.parametrize("zero_sum", [False, True])
def test_no_enumerated_subspace_contains_another(zero_sum):
    # a generic point of each piece lies in that piece only: the pieces are the maximal ones
    gen = torch.Generator().manual_seed(0)
    w_star = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    a_star = torch.randn(2, generator=gen, dtype=torch.float64)
    subspaces = enumerate_global_minima_subspaces(2, 4, zero_sum_groups=zero_sum)
    for s in subspaces:
        weights, heads = sample_point(s, w_star, a_star, generator=gen)
        assert [t for t in subspaces if _contains(t, weights, heads, w_star, a_star)] == [s]


def _constraint_rank(subspace: Subspace, d: int, k: int, outgoing: torch.Tensor):
    """Rank of the linear part of the subspace's defining equations in (W (m, d), A (m, K))."""
    m = subspace.width
    n_params = m * d + m * k

    def w(j, c):
        return j * d + c

    def a(j, c):
        return m * d + j * k + c

    rows = []
    for group in subspace.groups:
        members = list(group.neurons)
        for c in range(d):
            if group.source is not None:  # w_j = w_source* for every member
                for j in members:
                    row = torch.zeros(n_params, dtype=torch.float64)
                    row[w(j, c)] = 1
                    rows.append(row)
            else:  # shared free vector: w_j = w_first
                for j in members[1:]:
                    row = torch.zeros(n_params, dtype=torch.float64)
                    row[w(j, c)], row[w(members[0], c)] = 1, -1
                    rows.append(row)
        for c in range(k):  # sum of outgoing weights fixed (to a_source* or 0)
            row = torch.zeros(n_params, dtype=torch.float64)
            for j in members:
                row[a(j, c)] = 1
            rows.append(row)
        if subspace.family == "symmetry-induced":  # a_j in span(a_source)
            u = outgoing[group.source] / outgoing[group.source].norm()
            projector = torch.eye(k, dtype=torch.float64) - torch.outer(u, u)
            for j in members:
                for c in range(k):
                    row = torch.zeros(n_params, dtype=torch.float64)
                    row[a(j, 0) : a(j, 0) + k] = projector[c]
                    rows.append(row)
    s = torch.linalg.svdvals(torch.stack(rows))
    tol = s[0] * max(len(rows), n_params) * torch.finfo(torch.float64).eps
    rank = int((s > tol).sum())
    gap = float(s[rank - 1] / s[rank]) if rank < len(s) else float("inf")
    return n_params - rank, gap


@pytest.mark.parametrize("k", [1, 2])
def test_dimensions_by_rank(k):
    d = 3
    outgoing = torch.randn(4, k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for r, m in [(1, 3), (2, 4), (3, 4)]:
        for zero_sum in (False, True):
            by_free = {}
            for s in enumerate_global_minima_subspaces(r, m, zero_sum_groups=zero_sum):
                dim, gap = _constraint_rank(s, d, k, outgoing)
                assert gap > 1e6
                assert dim == s.dimension(d, output_dim=k)
                by_free.setdefault((s.free_groups, dim), 0)
                by_free[(s.free_groups, dim)] += 1
            kinds = subspace_kinds(r, m, d, zero_sum_groups=zero_sum, output_dim=k)
            assert by_free == {(q.free_groups, q.dimension): q.count for q in kinds}
        for s in enumerate_symmetry_induced_subspaces(r, m):
            dim, gap = _constraint_rank(s, d, k, outgoing)
            assert gap > 1e6 and dim == m - r == s.dimension(d, output_dim=k)


# ---------------------------------------------------------------- numerical checks on data
def _net(weights, heads, x):
    return torch.nn.functional.softplus(x @ weights.T) @ heads


def _loss(weights, heads, x, y):
    return 0.5 * ((_net(weights, heads, x) - y) ** 2).mean()


def _grad(weights, heads, x, y):
    weights, heads = weights.clone().requires_grad_(), heads.clone().requires_grad_()
    loss = _loss(weights, heads, x, y)
    gw, ga = torch.autograd.grad(loss, (weights, heads))
    return float(loss.detach()), float(torch.cat([gw.reshape(-1), ga.reshape(-1)]).abs().max())


def _teacher(r, d=2, n=80, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w_star = 2 * torch.randn(r, d, generator=gen, dtype=torch.float64)
    a_star = 2 * torch.randn(r, generator=gen, dtype=torch.float64)
    return x, w_star, a_star, _net(w_star, a_star, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("zero_sum", [False, True])
def test_global_minima_points_have_zero_loss_and_gradient(dtype, zero_sum):
    x, w_star, a_star, y = _teacher(2)
    x, w_star, a_star, y = (t.to(dtype) for t in (x, w_star, a_star, y))
    eps = torch.finfo(dtype).eps
    gen = torch.Generator().manual_seed(1)
    for m in (2, 3, 4):
        for s in enumerate_global_minima_subspaces(2, m, zero_sum_groups=zero_sum):
            weights, heads = sample_point(s, w_star, a_star, generator=gen)
            assert weights.dtype == dtype
            loss, grad = _grad(weights, heads, x, y)
            assert loss <= 100 * eps**2 and grad <= 100 * eps
            if s.free_groups:  # control: a free group whose outgoing sum is not 0 breaks it
                j = next(g for g in s.groups if g.source is None).neurons[0]
                heads = heads.clone()
                heads[j] += 0.5
                assert _grad(weights, heads, x, y)[0] > 1e-4


def _newton_critical_point(x, y, width, seed):
    """A critical point of the width-``width`` net: L-BFGS, then Newton steps (float64)."""
    gen = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    theta = torch.randn(width * d + width, generator=gen, dtype=torch.float64)

    def loss_of(t):
        return _loss(t[: width * d].reshape(width, d), t[width * d :], x, y)

    theta.requires_grad_()
    opt = torch.optim.LBFGS(
        [theta], max_iter=500, tolerance_grad=1e-12, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = loss_of(theta)
        loss.backward()
        return loss

    opt.step(closure)
    theta = theta.detach()
    for _ in range(20):
        g = torch.func.grad(loss_of)(theta)
        if g.abs().max() < 1e-15:
            break
        theta = theta - torch.linalg.solve(torch.func.hessian(loss_of)(theta), g)
    return theta[: width * d].reshape(width, d), theta[width * d :]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_symmetry_induced_points_are_critical_not_minimal():
    x, _, _, y = _teacher(3, seed=2)
    w2, a2 = _newton_critical_point(x, y, 2, seed=3)
    narrow_loss, narrow_grad = _grad(w2, a2, x, y)
    assert narrow_grad < 1e-13 and narrow_loss > 1e-6  # a non-global critical point
    gen = torch.Generator().manual_seed(4)
    for m in (2, 3, 4):
        for s in enumerate_symmetry_induced_subspaces(2, m):
            weights, heads = sample_point(s, w2, a2, generator=gen)
            loss, grad = _grad(weights, heads, x, y)
            assert abs(loss - narrow_loss) < 1e-13 and grad < 1e-12
    # controls: a zero-type neuron with free incoming weights is not critical (Şimşek et al.), and
    # neither is a duplicate group whose betas do not sum to 1
    zero_type = Subspace(
        "global-minima", 3, (NeuronGroup((0,), 0), NeuronGroup((1,), 1), NeuronGroup((2,), None))
    )
    weights, heads = sample_point(zero_type, w2, a2, generator=gen)
    assert _grad(weights, heads, x, y)[1] > 1e-6
    weights, heads = sample_point(
        enumerate_symmetry_induced_subspaces(2, 3)[0], w2, a2, generator=gen
    )
    assert _grad(weights, heads * 1.1, x, y)[1] > 1e-6


def test_bad_input():
    with pytest.raises(ValueError, match="m: expected an integer >= 1"):
        enumerate_global_minima_subspaces(2, 0)
    with pytest.raises(ValueError, match="r: expected an integer >= 1"):
        enumerate_symmetry_induced_subspaces(0, 3)
