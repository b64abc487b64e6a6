"""Functional dimension: the bound, known full-rank and dead-neuron cases, independent ranks."""

import copy

import pytest
import torch
from torch import nn

import symlab.symmetry.scaled_jacobian as scaled_module
from symlab.linalg import numerical_rank, parameter_jacobian
from symlab.nets import linear_layers, mlp, parameter_count
from symlab.symmetry.adaptive_dimension import functional_dimension
from symlab.symmetry.batch_dimension import (
    FDResult,
    _check_bound,
    batch_functional_dimension,
    fd_bound,
)
from symlab.symmetry.samplers import gaussian
from symlab.symmetry.scaled_jacobian import ScaledJacobian


def test_fd_bound_counts_parameters_minus_hidden_neurons():
    assert fd_bound((2, 3, 1)) == (3 * 3 + 1 * 4) - 3 == 10
    assert fd_bound([3, 5, 2]) == (5 * 4 + 2 * 6) - 5 == 27
    assert fd_bound((10, 30, 30, 30, 30, 1)) == 3151 - 120
    assert fd_bound((4, 2)) == 10  # no hidden layer, no scaling symmetry
    for bad in ([3], [3, 0, 1], [2.5, 3]):
        with pytest.raises(ValueError, match="widths"):
            fd_bound(bad)


def random_widths(rng: torch.Generator) -> list[int]:
    depth = int(torch.randint(1, 4, (1,), generator=rng))
    n0 = int(torch.randint(1, 4, (1,), generator=rng))
    hidden = torch.randint(1, 6, (depth,), generator=rng).tolist()
    k = int(torch.randint(1, 3, (1,), generator=rng))
    return [n0, *hidden, k]


def test_rank_never_exceeds_the_bound_on_hundreds_of_random_networks():
    rng = torch.Generator().manual_seed(0)
    reached = 0
    for index in range(200):
        widths = random_widths(rng)
        activation = ["relu", "leaky_relu"][index % 2]
        init = ["he", "pytorch"][index // 2 % 2]
        model = mlp(
            widths, activation, init=init, bias_std=0.3 if init == "he" else 0.0, seed=index
        )
        bound = fd_bound(widths)
        x = gaussian(3 * bound, widths[0], torch.Generator().manual_seed(index), torch.float64)
        result = functional_dimension(model, x, reduce_scaling=False)
        assert result.bound == bound and result.rank <= bound
        assert result.deficit == bound - result.rank >= 0
        # an independent rank: torch.linalg.matrix_rank of the unscaled generic Jacobian
        if index % 10 == 0:
            reference = torch.linalg.matrix_rank(parameter_jacobian(model, x, method="generic"))
            assert int(reference) <= bound
            assert int(reference) == result.rank
        reached += result.rank == bound
    assert reached > 50  # the bound is attained, so the check above has teeth


@pytest.mark.parametrize("widths", [(2, 3, 1), (3, 5, 2)])
def test_two_layer_networks_reach_their_bound(widths):
    for seed in range(3):
        model = mlp(widths, "relu", init="he", bias_std=0.5, seed=seed)
        result = functional_dimension(model)
        assert isinstance(result, FDResult)
        assert result.rank == result.bound == fd_bound(widths)
        assert result.deficit == 0 and result.saturated == "bound" and not result.ambiguous
        x = gaussian(result.n_points, widths[0], torch.Generator().manual_seed(seed), torch.float64)
        jac = parameter_jacobian(model, x, method="generic")
        assert int(torch.linalg.matrix_rank(jac)) == fd_bound(widths)


@pytest.mark.parametrize("widths", [(5, 4, 3, 2), (4, 4, 4, 1)])
def test_dead_neuron_costs_exactly_its_neighbouring_widths(widths):
    # A layer-2 neuron with negative incoming weights and a very negative bias is off on the
    # whole (non-negative) image of layer 1: its n1 + 1 incoming and n3 outgoing parameters
    # drop out of J, and its scaling direction is no longer a constraint, so the rank loss
    # against the bound is (n1 + 1 + n3) - 1 = n1 + n3.
    for seed in range(2):
        model = mlp(widths, "relu", bias_std=0.5, seed=seed)
        assert functional_dimension(model).rank == fd_bound(widths)
        layer = linear_layers(model)[1]
        with torch.no_grad():
            layer.weight[0] = -layer.weight[0].abs() - 0.1
            layer.bias[0] = -5.0
        expected = widths[1] + widths[3]
        result = functional_dimension(model)
        # the neuron is proven dead on all of R^n0 (non-positive weights on non-negative inputs
        # and a negative bias), so the upper bound drops by the same amount: the value is exact
        assert result.deficit == expected and result.saturated == "exact"
        assert result.upper == result.lower == result.rank and result.exact
        assert result.proof.dead[1][0] and result.proof.n_dead == 1
        x = 3 * gaussian(400, widths[0], torch.Generator().manual_seed(1), torch.float64)
        jac = parameter_jacobian(model, x, method="generic")
        assert int(torch.linalg.matrix_rank(jac)) == fd_bound(widths) - expected
        assert functional_dimension(model, x).deficit == expected


def with_two_dead_neurons(widths: tuple[int, ...]) -> nn.Module:
    """A ReLU MLP whose first two layer-2 neurons are off on all of R^n0 (negative incoming
    weights on the non-negative layer-1 image, bias -5)."""
    model = mlp(widths, "relu", bias_std=0.3, seed=4)
    with torch.no_grad():
        layer = linear_layers(model)[1]
        layer.weight[:2] = -layer.weight[:2].abs() - 0.1
        layer.bias[:2] = -5.0
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dead_neurons_zero_columns_leave_the_batch_rank_unchanged(dtype):
    # two layer-2 neurons off on the whole sample: their incoming columns are exactly zero;
    # the one-shot batch route leaves them out of the rank's matrix, the shared scaled
    # Jacobian of a growing Gram does not, and both give the generic Jacobian's SVD rank
    widths = (3, 8, 8, 2)
    model = with_two_dead_neurons(widths).to(dtype)
    x = gaussian(300, 3, torch.Generator().manual_seed(5), dtype)
    scaled = ScaledJacobian(model, reduce=True)
    dropped = scaled(x, drop_zero_columns=True)
    shared = scaled(x)
    assert shared.shape[1] == fd_bound(widths) + 2  # scaling columns of the 2 dead ones kept
    zero = int((torch.linalg.vector_norm(shared, dim=0) == 0).sum())
    # at least their incoming weights and biases and their outgoing weights
    assert zero >= 2 * (widths[1] + 1) + 2 * widths[3]
    assert dropped.shape[1] == shared.shape[1] - zero
    nonzero = torch.linalg.vector_norm(shared, dim=0) > 0
    assert torch.equal(dropped, shared[:, nonzero])  # the same columns, bit for bit
    reference = int(torch.linalg.matrix_rank(parameter_jacobian(model, x, method="generic")))
    assert numerical_rank(dropped).rank == numerical_rank(shared).rank == reference
    assert batch_functional_dimension(model, x).rank == reference


@pytest.mark.parametrize("block_bytes", [2**21, 3000])
def test_scaled_jacobian_from_factors_equals_the_one_from_the_full_jacobian(
    monkeypatch, block_bytes
):
    # the MLP route (norms from J's factors, kept columns written once by blocks of rows)
    # against scaling and gathering parameter_jacobian's J: the same columns (dropped scaling
    # columns and zero ones), the same rows (zero rows left out), values to rounding; with
    # blocks of a few rows too (3000 bytes), and with the columns chosen on the first call
    monkeypatch.setattr(scaled_module, "BLOCK_BYTES", block_bytes)
    cases = [
        (with_two_dead_neurons((3, 8, 8, 2)), torch.float64),
        (mlp((2, 6, 5, 1), "tanh", bias_std=0.1, seed=1), torch.float64),
        (mlp((3, 4, 4, 3), "leaky_relu", seed=2, bias=False), torch.float64),
        (mlp((4, 7, 2), "relu", bias_std=0.3, seed=3).float(), torch.float32),
    ]
    for model, dtype in cases:
        x = gaussian(
            60, linear_layers(model)[0].in_features, torch.Generator().manual_seed(4), dtype
        )
        x[5] = 0.0  # without biases: a zero row
        for reduce in (True, False):
            for drop in (False, True):
                factors, full = ScaledJacobian(model, reduce), ScaledJacobian(model, reduce)
                full.closed_form = False
                for points in (x, x[:17]):
                    a, b = factors(points, drop), full(points, drop)
                    assert a.shape == b.shape and a.dtype == b.dtype == torch.float64
                    torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
                assert torch.equal(factors.keep, full.keep)


def test_the_svd_rule_keeps_zero_columns_in_its_tolerance():
    # a wide Jacobian (5 points) of a net with dead neurons: the SVD rule's tol counts every
    # column (max(m, n) eps), so the one-shot route must not drop the zero ones for "svd"
    # (the Gram routes zero them anyway, with the same tol either way)
    model = with_two_dead_neurons((3, 8, 8, 1))
    x = gaussian(5, 3, torch.Generator().manual_seed(6), torch.float64)
    shared = ScaledJacobian(model, reduce=True)(x)
    assert shared.shape[0] < shared.shape[1]  # wide
    for method in ("svd", "gram", "auto"):
        reference = numerical_rank(shared, method=method)
        result = batch_functional_dimension(model, x, rank_method=method, compress_regions=False)
        assert result.rank == reference.rank
        assert result.tol == pytest.approx(reference.tol, rel=1e-12, abs=0)


def test_float32_and_float64_models_give_the_same_rank():
    for seed, widths in enumerate([(3, 6, 6, 1), (2, 5, 5, 2), (4, 8, 1)]):
        model64 = mlp(widths, "relu", bias_std=0.2, seed=seed)
        model32 = copy.deepcopy(model64).float()
        r64 = functional_dimension(model64, seed=seed)
        r32 = functional_dimension(model32, seed=seed)
        assert r32.rank == r64.rank and r32.n_points == r64.n_points
        assert r32.singular_values.dtype == torch.float64


def test_batch_fd_equals_matrix_rank_of_generic_jacobian():
    for seed, widths in enumerate([(3, 6, 6, 1), (2, 8, 2), (4, 5, 5, 5, 1), (1, 6, 1)]):
        model = mlp(widths, "relu", bias_std=0.2, seed=seed)
        x = gaussian(60, widths[0], torch.Generator().manual_seed(seed), torch.float64)
        jac = parameter_jacobian(model, x, method="generic")
        s = torch.linalg.svdvals(jac)
        reference = int(torch.linalg.matrix_rank(jac))
        assert s[reference - 1] / s[reference] > 1e6  # well separated
        for rank_method in ["auto", "svd", "gram"]:
            for reduce in [True, False]:
                result = functional_dimension(
                    model, x, rank_method=rank_method, reduce_scaling=reduce
                )
                assert result.rank == reference and result.n_points == 60


def test_scaling_reduction_and_rank_methods_agree_in_the_adaptive_loop():
    for seed, widths in enumerate([(2, 4, 4, 1), (3, 5, 2), (1, 5, 5, 1), (2, 6, 3, 2)]):
        model = mlp(widths, "leaky_relu" if seed % 2 else "relu", bias_std=0.1, seed=seed)
        base = functional_dimension(model, seed=seed)
        for kwargs in [{"reduce_scaling": False}, {"rank_method": "svd"}]:
            other = functional_dimension(model, seed=seed, **kwargs)
            assert (other.rank, other.n_points, other.saturated) == (
                base.rank,
                base.n_points,
                base.saturated,
            )


def test_deep_narrow_input_network_stops_below_the_bound():
    model = mlp((1, 6, 6, 6, 1), "relu", bias_std=0.1, seed=0)
    result = functional_dimension(model)
    # n0 = 1: every region is enumerated, the decisive-set rank is the value and the sample
    # meets it
    assert result.deficit > 0 and result.saturated == "exact" and result.proof.complete
    assert result.rank == result.upper < result.bound
    unproven = functional_dimension(model, proof_regions=0, plateau=True)
    assert unproven.rank == result.rank and unproven.saturated == "plateau"
    assert unproven.upper == unproven.bound and not unproven.exact
    start = functional_dimension(model, max_points=10)
    assert start.saturated == "max_points" and start.n_points == 10
    again = functional_dimension(model)
    assert again.rank == result.rank and again.n_points == result.n_points


def test_tanh_networks_have_no_scaling_bound():
    model = mlp((2, 3, 1), "tanh", bias_std=0.5, seed=0)
    result = functional_dimension(model)
    assert result.bound == parameter_count((2, 3, 1)) == 13
    assert result.rank == 13 and result.saturated == "bound"


class TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3, dtype=torch.float64)
        self.b = nn.Linear(3, 1, dtype=torch.float64)

    def forward(self, x):
        return self.b(torch.relu(self.a(x))) + x.sum(dim=-1, keepdim=True)


def test_generic_modules_need_inputs_and_use_the_parameter_count():
    torch.manual_seed(0)
    model = TwoBranch()
    x = gaussian(40, 2, torch.Generator().manual_seed(0), torch.float64)
    result = functional_dimension(model, x)
    assert result.bound == 13
    jac = parameter_jacobian(model, x)
    assert result.rank == int(torch.linalg.matrix_rank(jac)) <= 10
    with pytest.raises(ValueError, match="inputs"):
        functional_dimension(model)


def test_rank_above_the_bound_is_an_error_and_bad_arguments_raise():
    with pytest.raises(RuntimeError, match="exceeds its upper bound"):
        _check_bound(11, 10)
    model = mlp((2, 3, 1), seed=0)
    with pytest.raises(ValueError, match="rank_method"):
        functional_dimension(model, rank_method="qr")
    with pytest.raises(ValueError, match="sampler"):
        functional_dimension(model, sampler="sobol")
    with pytest.raises(ValueError, match="max_points"):
        functional_dimension(model, max_points=0)
    with pytest.raises(ValueError, match="seed"):
        functional_dimension(model, seed=1.5)


def test_adaptive_gram_decides_tiny_singular_values_on_the_block_or_the_svd(monkeypatch):
    # n0 = 2 with two wide layers: restricted hidden images leave singular values ~1e-7 of the
    # largest, too close to the Gram's rounding floor for its certificate: the deferred block
    # (symlab.linalg.block_rank) decides them, else (route off) the SVD of the stored rows.
    import symlab.symmetry.adaptive_dimension as adaptive

    model = mlp((2, 16, 16, 1), "relu", bias_std=0.1, seed=0)
    auto = functional_dimension(model)
    svd = functional_dimension(model, rank_method="svd")
    assert auto.method == "gram + block" and svd.method == "svd"
    assert auto.rank == svd.rank < auto.bound
    assert (auto.n_points, auto.saturated) == (svd.n_points, svd.saturated)
    assert not auto.ambiguous and 1e6 < auto.gap <= svd.gap * (1 + 1e-6)
    assert 0 < auto.certificate <= 1
    monkeypatch.setattr(adaptive, "BLOCK_ROUTE", False)
    fallback = functional_dimension(model)
    assert fallback.method == "svd (fallback)" and fallback.rank == auto.rank


ALL_ACTIVATIONS = ["relu", "leaky_relu", "identity", "tanh", "softplus", "gelu"]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_fd_bound_of_a_model_is_the_bound_functional_dimension_uses(activation, bias):
    # positively homogeneous activations lose one dimension per hidden neuron (scaling), with
    # or without biases; the others keep D. Before, fd_bound(widths) was D - #hidden always.
    rng = torch.Generator().manual_seed(1)
    reached = 0
    for seed in range(5):
        widths = random_widths(rng)
        model = mlp(widths, activation, bias_std=0.3 if bias else 0.0, seed=seed, bias=bias)
        d = sum(p.numel() for p in model.parameters())
        homogeneous = activation in ("relu", "leaky_relu", "identity")
        bound = fd_bound(model)
        assert bound == (d - sum(widths[1:-1]) if homogeneous else d)
        assert bound == fd_bound(widths, bias=bias, activation=activation)
        result = functional_dimension(model, seed=seed)
        assert result.bound == bound and result.rank <= bound
        x = gaussian(3 * bound, widths[0], torch.Generator().manual_seed(seed), torch.float64)
        reference = torch.linalg.matrix_rank(parameter_jacobian(model, x, method="generic"))
        assert int(reference) <= bound
        reached += result.rank == bound
    if activation != "identity":
        assert reached >= 1  # the bound is attained: it is the right one, not just an upper bound


def test_fd_bound_per_layer_biases_and_activation_modules():
    model = nn.Sequential(
        nn.Linear(3, 4, bias=False, dtype=torch.float64),
        nn.ReLU(),
        nn.Linear(4, 2, dtype=torch.float64),
    )
    assert fd_bound(model) == fd_bound([3, 4, 2], bias=[False, True]) == 12 + 10 - 4
    assert functional_dimension(model).bound == 18
    sigmoid = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    assert fd_bound(sigmoid) == fd_bound([3, 4, 2], activation=nn.Sigmoid()) == 26
    assert fd_bound([3, 4, 2], activation=nn.LeakyReLU(0.2)) == 22
    for call, field in [
        (lambda: fd_bound(model, bias=False), "bias"),
        (lambda: fd_bound(model, activation="tanh"), "activation"),
        (lambda: fd_bound([3, 4, 2], bias=[True]), "bias"),
        (lambda: fd_bound([3, 4, 2], bias=1), "bias"),
        (lambda: fd_bound([3, 4, 2], activation="swish"), "activation"),
        (lambda: fd_bound("34"), "widths"),
    ]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            call()


@pytest.mark.parametrize(
    ("widths", "activation", "rank_method"),
    [
        ((3, 5, 4, 2), "relu", "auto"),
        ((2, 16, 16, 1), "relu", "auto"),
        ((2, 4, 3, 1), "tanh", "svd"),
    ],
)
def test_adaptive_rank_is_the_batch_rank_on_its_points(widths, activation, rank_method):
    model = mlp(widths, activation, bias_std=0.1, seed=0)
    fd = functional_dimension(model, rank_method=rank_method)
    batch = batch_functional_dimension(model, fd.points, rank_method=rank_method)
    assert batch.rank == fd.rank and batch.bound == fd.bound == fd_bound(model)
    assert batch.n_points == len(fd.points) and batch.points is not None
    assert batch.saturated == ("bound" if batch.rank == batch.bound else "batch")
    # explicit inputs: functional_dimension is the batch function
    via_adaptive = functional_dimension(model, fd.points, rank_method=rank_method)
    assert (via_adaptive.rank, via_adaptive.regions, via_adaptive.method) == (
        batch.rank,
        batch.regions,
        batch.method,
    )


def test_batch_functional_dimension_checks_its_arguments():
    model = mlp((2, 3, 1), seed=0)
    x = torch.randn(10, 2, dtype=torch.float64)
    for bad in (x[:, :1], x[:0], x.long(), x.numpy()):
        with pytest.raises(ValueError, match="^inputs: "):
            batch_functional_dimension(model, bad)
    with pytest.raises(ValueError, match="^rank_method: "):
        batch_functional_dimension(model, x, rank_method="qr")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adaptive_count_on_the_accumulated_gram_is_certified_against_the_svd(dtype, monkeypatch):
    # below the bound, the rank comes from the accumulated Gram's count and one certificate
    # (no recomputed Jacobian); it equals the dense SVD rule on the differentiated points,
    # whether the rows are stored or recomputed by blocks for the certificate
    import symlab.symmetry.adaptive_dimension as adaptive

    model = mlp((3, 6, 6, 6, 1), "relu", bias_std=0.1, seed=1).to(dtype)
    fd = functional_dimension(model, seed=1)
    svd = batch_functional_dimension(model, fd.points, rank_method="svd")
    assert fd.method == "gram" and fd.certificate is not None and 0 < fd.certificate <= 1
    assert fd.rank == svd.rank < fd.bound and fd.gap <= svd.gap * (1 + 1e-6)
    monkeypatch.setattr(adaptive, "ROW_STORE_BYTES", 0)
    assert functional_dimension(model, seed=1).rank == fd.rank
    # a certificate that cannot pass sends the final rank to the deferred block, and a block
    # that cannot decide to the SVD of the stored rows
    monkeypatch.setattr(adaptive, "ROW_STORE_BYTES", 2**30)
    monkeypatch.setattr(adaptive, "schur_certify", lambda *args: None)
    block = functional_dimension(model, seed=1)
    assert block.method == "gram + block" and block.rank == fd.rank
    monkeypatch.setattr(adaptive, "block_rank", lambda *args: None)
    fallback = functional_dimension(model, seed=1)
    assert fallback.method == "svd (fallback)" and fallback.rank == fd.rank


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_uncertified_budget_stop_reports_a_lower_bound_on_the_sample_rank(dtype, monkeypatch):
    # certify_budget_stop=False: a max_points stop below the upper bound keeps the certified
    # count (same sample, same points), never above the dense SVD rule's rank on those points
    import symlab.symmetry.adaptive_dimension as adaptive

    model = mlp((3, 6, 6, 6, 1), "relu", bias_std=0.1, seed=1).to(dtype)
    # within CERTIFY_WITHIN of the upper bound (3 below it here) the count is certified anyway
    near = functional_dimension(model, seed=1, certify_budget_stop=False)
    monkeypatch.setattr(adaptive, "CERTIFY_WITHIN", 2)
    certified = functional_dimension(model, seed=1)  # the default certifies any stop
    assert near.method == certified.method != "gram (count)" and near.rank == certified.rank
    count = functional_dimension(model, seed=1, certify_budget_stop=False)
    svd = batch_functional_dimension(model, count.points, rank_method="svd")
    assert certified.saturated == count.saturated == "max_points"
    assert torch.equal(count.points, certified.points)
    assert count.method == "gram (count)" and count.certificate is None
    assert count.rank <= certified.rank == svd.rank < count.upper
    assert count.deficit == count.bound - count.rank and not count.exact
    # a stop at the proven bound is certified either way
    small = mlp((2, 3, 1), "relu", bias_std=0.1, seed=0).to(dtype)
    at_bound = functional_dimension(small, certify_budget_stop=False)
    assert at_bound.saturated == "bound" and at_bound.method != "gram (count)"


def test_an_ambiguous_count_keeps_counting_as_a_lower_bound(monkeypatch):
    # (2, 20, 20, 1), Gaussian inputs: at the first doubling a Schur eigenvalue sits within its
    # rounding of the shift. That count leaves it out (a lower bound) and the next doublings
    # count again, so the budget stop reports a count never above the dense SVD rule's rank on
    # the same points, and the certified stop needs no SVD of all the rows. (A rounding
    # accident of the deferred blocks' factor: one dpstrf of these 501 columns has none.)
    import symlab.linalg.schur_rank as schur_module
    import symlab.symmetry.adaptive_dimension as adaptive

    monkeypatch.setattr(schur_module, "WHOLE_PIVOTING_MAX", 0)

    counts = []

    def recorded(*args, **kwargs):
        count = schur_count(*args, **kwargs)
        counts.append(count)
        return count

    from symlab.linalg.schur_rank import schur_count

    monkeypatch.setattr(adaptive, "schur_count", recorded)
    model = mlp((2, 20, 20, 1), "relu", init="he", bias_std=0.1, seed=7)
    lower = functional_dimension(
        model, sampler="gaussian", seed=7, max_points=40000, certify_budget_stop=False
    )
    assert counts[0].ambiguous > 0 and all(c is not None for c in counts)
    assert [c.rank for c in counts] == sorted(c.rank for c in counts)  # the sample only grows
    svd = batch_functional_dimension(model, lower.points, rank_method="svd")
    assert lower.method == "gram (count)" and lower.saturated == "max_points"
    assert lower.rank <= svd.rank < lower.upper
    certified = functional_dimension(model, sampler="gaussian", seed=7, max_points=40000)
    assert certified.method in ("gram", "gram + block") and certified.rank == svd.rank


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_skipped_counts_change_nothing_but_the_work(dtype, monkeypatch):
    # a capped network's counts rise by shrinking steps far below its upper bound: the doublings
    # where no stop is possible skip the count; the final sample, its count and every reported
    # field are those of counting at every doubling
    import symlab.symmetry.adaptive_dimension as adaptive
    from symlab.linalg.schur_rank import schur_count

    calls = []

    def recorded(*args, **kwargs):
        calls.append(args[1][0])  # rows counted
        return schur_count(*args, **kwargs)

    monkeypatch.setattr(adaptive, "schur_count", recorded)
    model = mlp((2, 20, 20, 1), "relu", init="he", bias_std=0.1, seed=7).to(dtype)
    kwargs = dict(sampler="gaussian", seed=7, max_points=40000, certify_budget_stop=False)
    skipping = functional_dimension(model, **kwargs)
    skipped_calls = list(calls)
    calls.clear()
    monkeypatch.setattr(adaptive, "COUNT_WAIT_FACTOR", float("inf"))
    every = functional_dimension(model, **kwargs)
    assert len(skipped_calls) < len(calls) and skipped_calls[-1] == calls[-1]
    assert (skipping.rank, skipping.upper, skipping.saturated, skipping.method) == (
        every.rank,
        every.upper,
        every.saturated,
        every.method,
    )
    assert torch.equal(skipping.points, every.points) and skipping.n_points == every.n_points
    # networks that stop at their bound or nearer it: the same result
    for widths, seed in (((2, 4, 4, 1), 0), ((3, 8, 8, 1), 0), ((2, 10, 10, 10, 1), 7)):
        net = mlp(widths, "relu", bias_std=0.1, seed=seed).to(dtype)
        monkeypatch.setattr(adaptive, "COUNT_WAIT_FACTOR", float("inf"))
        every = functional_dimension(net, max_points=40000)
        monkeypatch.setattr(adaptive, "COUNT_WAIT_FACTOR", 4)
        skipping = functional_dimension(net, max_points=40000)
        assert (skipping.rank, skipping.saturated) == (every.rank, every.saturated)
