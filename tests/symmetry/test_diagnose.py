"""Mechanism diagnosis: flags against forward hooks, predicted deficits against the batch rank
(symlab's functional_dimension and an independent torch.func Jacobian), closed-form dead-neuron
counts, kernel directions inside ker J, the report's table and string, argument validation."""

import pytest
import torch
from jacobian_reference import jacobian as _jacobian
from jacobian_reference import multiscale as _multiscale

from symlab.nets import linear_layers, mlp
from symlab.symmetry import (
    MechanismReport,
    diagnose,
    fd_bound,
    functional_dimension,
    mechanism_kernel,
)

WIDTHS = [3, 6, 5, 2]


def _net(seed=0, dead1=(), dead2=(), always2=(), widths=WIDTHS):
    """A He-init ReLU net with deliberately dead / always-active neurons.

    Layer-1 neuron i dead: zero incoming weights, bias -1 (dead everywhere). Layer-2 neuron i
    dead: all incoming weights <= 0 and bias -0.5 (a^1 >= 0, so z <= -0.5 everywhere); always
    active: incoming weights >= 0 and bias +0.5 (z >= 0.5 everywhere).
    """
    model = mlp(widths, bias_std=0.1, seed=seed)
    layers = linear_layers(model)
    with torch.no_grad():
        for i in dead1:
            layers[0].weight[i], layers[0].bias[i] = 0.0, -1.0
        for i in dead2:
            layers[1].weight[i], layers[1].bias[i] = -layers[1].weight[i].abs(), -0.5
        for i in always2:
            layers[1].weight[i], layers[1].bias[i] = layers[1].weight[i].abs(), 0.5
    return model


@pytest.fixture(scope="module")
def x():
    return _multiscale(300, 3)


def test_flags_match_forward_hooks(x):
    model = _net(seed=4, dead2=(1,), always2=(3,))
    seen = []
    hooks = [
        lin.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
        for lin in linear_layers(model)[:-1]
    ]
    model(x)
    for h in hooks:
        h.remove()
    report = diagnose(model, x)
    for z, never, always, frac, lo, hi in zip(
        seen,
        report.never_active,
        report.always_active,
        report.active_fraction,
        report.min_preactivation,
        report.max_preactivation,
        strict=True,
    ):
        assert torch.equal(never, (z <= 0).all(0)) and torch.equal(always, (z > 0).all(0))
        torch.testing.assert_close(frac, (z > 0).double().mean(0))
        torch.testing.assert_close(lo, z.min(0).values)
        torch.testing.assert_close(hi, z.max(0).values)
    assert report.never_active[1][1] and report.always_active[1][3]
    assert report.n_never_active >= 1 and report.n_always_active >= 1


# (modification, closed-form dead-neuron deficit): a dead neuron in layer l costs n_{l-1} + n_{l+1};
# each edge between dead neurons in adjacent layers is one shared coordinate (-1).
DEAD_CASES = [
    (dict(dead2=(1,)), 6 + 2),
    (dict(dead1=(2,)), 3 + 5),
    (dict(dead1=(2,), dead2=(1,)), (3 + 5) + (6 + 2) - 1),
    (dict(dead1=(0, 2), dead2=(1, 3)), 2 * (3 + 5) + 2 * (6 + 2) - 4),
]


@pytest.mark.parametrize(("change", "expected"), DEAD_CASES)
def test_dead_neuron_deficit_is_predicted_exactly(x, change, expected):
    model = _net(seed=0, **change)
    assert functional_dimension(_net(seed=0), x).deficit == 0  # the intact net has full FD
    report = diagnose(model, x, fd=functional_dimension(model, x))
    assert report.n_never_active == sum(len(v) for v in change.values())
    assert report.dead_deficit == report.predicted_deficit == expected
    assert report.observed_deficit == expected and report.unexplained == 0
    assert report.bound - int(torch.linalg.matrix_rank(_jacobian(model, x))) == expected


# k always-active neurons in layer 2 of (3, 6, 5, 2): the kernel of (dU, dV, db_3) ->
# dU V + U dV + db_3 e^T (U: 2 x k, V: k x 7) has dimension k(2 + 7) + 2 - 14 when k >= 2
# (rank U = 2, so the image is all 2 x 7 matrices); minus the k scalings already in the bound:
# 8k - 12. For k = 1 the image has dimension 14 - 1*6 + 1 = 9, so 11 - 9 - 1 = 1 (bias transfer).
@pytest.mark.parametrize(
    ("always2", "expected"), [((3,), 1), ((3, 4), 8 * 2 - 12), ((0, 3, 4), 8 * 3 - 12)]
)
def test_always_active_deficit_is_predicted(x, always2, expected):
    model = _net(seed=0, always2=always2)
    report = diagnose(model, x, compute_fd=True)
    assert report.n_always_active == len(always2) and report.n_never_active == 0
    assert report.always_active_deficit == report.predicted_deficit == expected
    assert report.observed_deficit == expected and report.unexplained == 0
    assert report.kernel_gap > 1e8


def test_mixed_mechanisms_and_kernel_lies_in_ker_j(x):
    model = _net(seed=2, dead1=(2,), always2=(3, 4))
    jac = _jacobian(model, x)
    kernel = mechanism_kernel(model, x)
    assert kernel.shape[1] == jac.shape[1]
    residual = (jac @ kernel.T).abs().max() / (jac.abs().max() * kernel.abs().max())
    assert residual < 1e-13
    # the directions really are independent: their span has the predicted dimension
    report = diagnose(model, x, compute_fd=True)
    assert int(torch.linalg.matrix_rank(kernel)) == jac.shape[1] - report.predicted_rank
    assert (report.dead_deficit, report.always_active_deficit) == (8, 4)
    assert report.observed_deficit == report.predicted_deficit == 12
    assert report.bound - int(torch.linalg.matrix_rank(jac)) == 12


def test_unexplained_deficit_is_reported_not_hidden(x):
    # seed 4 with two always-active neurons loses rank beyond the mechanisms (restricted image)
    model = _net(seed=4, always2=(3, 4))
    report = diagnose(model, x, compute_fd=True)
    observed = report.bound - int(torch.linalg.matrix_rank(_jacobian(model, x)))
    assert report.observed_deficit == observed
    assert report.predicted_deficit <= observed
    assert report.unexplained == observed - report.predicted_deficit


def test_whole_dead_layer_leaves_rank_k(x):
    model = _net(seed=0, dead2=(0, 1, 2, 3, 4))
    report = diagnose(model, x, compute_fd=True)
    assert report.dead_layers == (2,) and report.predicted_rank == 2
    assert report.observed_rank == 2 and report.unexplained == 0
    with pytest.raises(ValueError, match="inputs: a whole hidden layer is never active"):
        mechanism_kernel(model, x)


def test_one_hidden_layer_and_narrow_layers():
    x = _multiscale(200, 4, seed=1)
    model = _net(seed=1, dead1=(1,), widths=[4, 6, 3])
    report = diagnose(model, x, compute_fd=True)
    assert report.predicted_deficit == report.observed_deficit == 4 + 3
    narrow = diagnose(mlp([4, 2, 5, 1], bias_std=0.1, seed=0), x)
    assert narrow.narrow_layers == (1,)
    frame = narrow.to_frame()
    assert list(frame["narrow_layer"]) == [True] * 2 + [False] * 5


def test_float32_model_gives_the_float64_report(x):
    m64 = _net(seed=0, dead2=(1,), always2=(3,))
    m32 = _net(seed=0, dead2=(1,), always2=(3,))
    m32 = m32.to(torch.float32)
    r64, r32 = diagnose(m64, x), diagnose(m32, x.float())
    assert (r32.predicted_deficit, r32.n_never_active, r32.n_always_active) == (
        r64.predicted_deficit,
        r64.n_never_active,
        r64.n_always_active,
    )
    assert r64.predicted_deficit == 8 + 1


def test_report_table_and_string(x):
    model = _net(seed=0, dead1=(2,), always2=(3,))
    report = diagnose(model, x, compute_fd=True)
    assert isinstance(report, MechanismReport)
    frame = report.to_frame()
    assert len(frame) == 11 and list(frame.columns[:4]) == [
        "layer",
        "neuron",
        "never_active",
        "always_active",
    ]
    assert frame.query("layer == 1 and neuron == 2")["never_active"].item()
    assert frame.query("layer == 2 and neuron == 3")["always_active"].item()
    assert frame["never_active"].sum() == report.n_never_active
    text = str(report)
    assert "\n" not in text and f"bound {report.bound}" in text
    assert f"predicted deficit {report.predicted_deficit}" in text and "unexplained 0" in text
    assert report.bound == fd_bound(WIDTHS)


def test_argument_validation(x):
    model = _net(seed=0)
    fd = functional_dimension(model, x)
    bad = [
        (
            lambda: diagnose(mlp(WIDTHS, activation="tanh", seed=0), x),
            "model: diagnose expects a ReLU",
        ),
        (
            lambda: diagnose(mlp([3, 2], seed=0), x),
            "model: diagnose expects a ReLU MLP with at least",
        ),
        (lambda: diagnose(mlp(WIDTHS, seed=0, bias=False), x), "model: diagnose expects every"),
        (lambda: diagnose(torch.nn.Linear(3, 2), x), "model: expected an MLP"),
        (
            lambda: diagnose(model, x[:, :2]),
            r"inputs: expected a finite floating-point tensor of shape \(N >= 1, 3\)",
        ),
        (lambda: diagnose(model, x.long()), "inputs"),
        (lambda: diagnose(model, x[:0]), "inputs"),
        (lambda: diagnose(model, x * float("nan")), "inputs"),
        (lambda: diagnose(model, [[0.0, 1.0, 2.0]]), "inputs"),
        (lambda: diagnose(model, x, fd=fd, compute_fd=True), "fd: pass either"),
        (lambda: diagnose(model, x[:100], fd=fd), "fd: expected an FDResult for this model"),
        (lambda: mechanism_kernel(mlp(WIDTHS, activation="leaky_relu", seed=0), x), "model"),
    ]
    for call, message in bad:
        with pytest.raises(ValueError, match=message):
            call()


def test_an_fd_result_on_other_points_of_the_same_size_is_rejected():
    from symlab.nets import mlp
    from symlab.symmetry import diagnose, functional_dimension

    model = mlp([2, 4, 1], bias_std=0.1, seed=0)
    x = torch.randn(60, 2, dtype=torch.float64)
    fd = functional_dimension(model, x)
    assert diagnose(model, x, fd=fd).observed_rank == fd.rank
    with pytest.raises(ValueError, match="^fd: .*other points"):
        diagnose(model, x + 1.0, fd=fd)


def test_diagnose_separates_sample_counts_from_global_proofs():
    # a neuron dead on the whole input space, and one that a small sample never sees active
    from symlab.symmetry.kernel_proofs import proven_kernel
    from symlab.symmetry.samplers import multiscale

    model = mlp((2, 4, 4, 1), bias_std=0.1, seed=0)
    layers = linear_layers(model)
    with torch.no_grad():
        layers[1].weight[0] = -layers[1].weight[0].abs()
        layers[1].bias[0] = -0.2
    x = multiscale(3, 2, torch.Generator().manual_seed(0), torch.float64)
    report = diagnose(model, x)
    assert bool(report.proven_never_active[1][0]) and report.proven_how == ("regions", "signs")
    # on three points more neurons look dead than are proven dead; every proof holds on them
    assert report.n_never_active > report.n_proven_never_active >= 1
    for sample, proven in zip(report.never_active, report.proven_never_active, strict=True):
        assert bool((sample | ~proven).all())
    assert "proven on all of R^n0" in str(report)
    full = diagnose(model, x, proof=proven_kernel(model, max_regions=4096))
    assert full.proven_how == ("regions", "regions") and full.proven_upper <= report.proven_upper
    frame = full.to_frame()
    assert frame["proven_dead"].sum() == full.n_proven_never_active
