"""The ntk-dynamics study at tiny size: pipeline, series sanity, and the init kernel machine
against an independent dense torch.func reference."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call, jacrev

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import symlab
from symlab.engine.experiment import get_experiment
from symlab.experiments.ntk_dynamics import NTKDynamicsSpec, record_steps
from symlab.experiments.ntk_dynamics_stability import train_state, training_instability
from symlab.nets import flatten_params, mlp, unflatten_params
from symlab.ntk import kernel_distance
from symlab.ntk.data import load_digits_split, teacher_task
from symlab.ntk.models import small_cnn

TINY = dict(
    models=["mlp", "cnn"],
    tasks=["digits", "teacher"],
    lrs=[0.1],
    seeds=1,
    steps=8,
    batch_size=16,
    n_records=4,
    width=16,
    cnn_channels=2,
    kernel_train=20,
    kernel_test=15,
)


def _run(spec):
    study = get_experiment("ntk-dynamics")
    jobs = study.expand(spec)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in jobs])
    return study, jobs, rows


def test_pipeline_tiny(tmp_path):
    study = get_experiment("ntk-dynamics")
    spec = study.spec_model(**TINY, dtype="float32")
    study, jobs, rows = _run(spec)
    assert len(jobs) == 4
    steps = record_steps(8, 4)
    assert steps == [0, 1, 3, 8]
    for row in rows.itertuples():
        assert row.record_steps == steps
        for key in ("distance", "alignment", "kernel_acc", "net_acc", "train_acc"):
            assert len(getattr(row, key)) == len(steps)
        assert len(row.velocity) == len(steps) - 1
        assert row.distance[0] == 0.0
        assert all(0.0 <= d <= 2.0 for d in row.distance)
        assert all(v >= 0 and math.isfinite(v) for v in row.velocity)
        # distance from init at the first record is the first velocity times its step gap
        assert row.distance[1] == pytest.approx(row.velocity[0] * (steps[1] - steps[0]), rel=1e-9)
        assert all(0.0 <= a <= 1.0 for a in row.kernel_acc + row.net_acc + row.alignment)
        assert not row.diverged and math.isfinite(row.final_loss)
        # SGD moves the kernel
        assert row.distance[-1] > 0
    summary = study.summarize(rows, spec)
    assert len(summary.table) == 4 and "velocity_ratio" in summary.table
    assert "sign test" in summary.verdict and "Wilcoxon" in summary.verdict
    names = [c["name"] for c in summary.extras["claims"]]
    assert names == ["kernel_gain", "velocity_decays", "constant_late_velocity"]
    paths = study.plot(rows, spec, tmp_path)
    names = {p.name for p in paths}
    for key in ("velocity", "kernel_acc", "distance"):
        assert f"ntk_dynamics_{key}.png" in names and f"ntk_dynamics_{key}.svg" in names
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)


def _dense_trace_kernel(model, x):
    """Σ_k J_k J_kᵀ from a dense torch.func Jacobian of all outputs w.r.t. the flat parameters."""
    flat = flatten_params(model)

    def outputs(theta):
        return functional_call(model, unflatten_params(model, theta), (x,))

    jac = jacrev(outputs)(flat)  # (N, K, D)
    return torch.einsum("nkd,mkd->nm", jac, jac).double()


@pytest.mark.parametrize(
    "dtype, task, model_name",
    [
        ("float32", "digits", "mlp"),
        ("float64", "digits", "mlp"),
        ("float32", "teacher", "mlp"),
        ("float64", "teacher", "mlp"),
        ("float64", "digits", "cnn"),
        ("float32", "teacher", "cnn"),
    ],
)
def test_init_kernel_machine_matches_dense_reference(dtype, task, model_name):
    params = {
        **NTKDynamicsSpec(**TINY).model_dump(),
        "model": model_name,
        "task": task,
        "lr": 0.1,
        "seed": 3,
        "dtype": dtype,
        "steps": 2,
        "n_records": 3,
    }
    for key in ("models", "tasks", "lrs", "seeds"):
        params.pop(key)
    row = get_experiment("ntk-dynamics").run_job(params)
    torch_dtype = torch.float32 if dtype == "float32" else torch.float64
    data = (
        load_digits_split(dtype=torch_dtype)
        if task == "digits"
        else teacher_task(dtype=torch_dtype)
    )
    if model_name == "mlp":
        model = mlp([64, 16, 16, data.n_classes], "relu", "he", seed=3, dtype=torch_dtype)
    else:
        model = small_cnn(data.n_classes, 2, seed=3, dtype=torch_dtype)
    n, m = params["kernel_train"], params["kernel_test"]
    x = torch.cat([data.x_train[:n], data.x_test[:m]])
    k = _dense_trace_kernel(model, x)
    y = torch.nn.functional.one_hot(data.y_train[:n], data.n_classes).double()
    ridge = params["ridge"] * float(torch.diagonal(k[:n, :n]).mean())
    alpha = torch.linalg.solve(k[:n, :n] + ridge * torch.eye(n, dtype=torch.float64), y)
    pred = (k[n:, :n] @ alpha).argmax(dim=1)
    assert row["kernel_acc"][0] == pytest.approx(float((pred == data.y_test[:m]).double().mean()))
    assert row["kernel_acc_init"] == row["kernel_acc"][0]
    # centred kernel-target alignment <HKH, HYYᵀH> / (‖HKH‖ ‖HYYᵀH‖), H = I - 11ᵀ/n
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    kc, yc = h @ k[:n, :n] @ h, h @ (y @ y.T) @ h
    align = float((kc * yc).sum() / (kc.norm() * yc.norm()))
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert row["alignment"][0] == pytest.approx(align, abs=tol)
    # the network's own initial test accuracy
    with torch.no_grad():
        acc = float((model(data.x_test).argmax(1) == data.y_test).double().mean())
    assert row["net_acc"][0] == pytest.approx(acc)


def test_divergence_is_flagged_and_excluded():
    spec = NTKDynamicsSpec(**{**TINY, "models": ["mlp"], "tasks": ["digits"], "lrs": [0.1, 1e6]})
    study, _, rows = _run(spec)
    bad = rows[rows["lr"] == 1e6].iloc[0]
    assert bool(bad["diverged"]) and not bool(rows[rows["lr"] == 0.1].iloc[0]["diverged"])
    assert len(bad["kernel_acc"]) == 4 and len(bad["velocity"]) == 3
    assert math.isnan(bad["kernel_acc"][-1]) and bad["distance"][0] == 0.0
    summary = study.summarize(rows, spec)
    assert summary.extras["n_diverged"] == 1 and summary.extras["n_unstable"] == 0
    assert "1 diverged" in summary.verdict and len(summary.table) == 2
    cell = summary.table.set_index("lr").loc[1e6]
    assert (cell["n_stable"], cell["n_diverged"]) == (0, 1) and math.isnan(cell["kernel_acc_final"])
    assert not bool(bad["unstable"]) and bad["unstable_step"] is None


def test_velocity_matches_library_kernel_velocity():
    from symlab.ntk import empirical_ntk, kernel_velocity

    k0 = empirical_ntk(mlp([3, 5, 2], seed=0), torch.randn(6, 3, dtype=torch.float64), trace=True)
    k1 = k0 + 0.1 * torch.eye(6, dtype=torch.float64)
    k2 = k1 + 0.3 * torch.ones(6, 6, dtype=torch.float64)
    ours = [kernel_distance(k0, k1) / 2, kernel_distance(k1, k2) / 5]
    assert np.allclose(kernel_velocity([k0, k1, k2], [0, 2, 7]).numpy(), ours)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "ntk-dynamics"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(NTKDynamicsSpec.model_fields)
    spec = NTKDynamicsSpec(**values)
    assert len(get_experiment("ntk-dynamics").expand(spec)) == (
        len(spec.models) * len(spec.tasks) * len(spec.lrs) * spec.seeds
    )


def test_spec_rejects_bad_fields():
    with pytest.raises(ValueError, match="unknown"):
        NTKDynamicsSpec(unknown=1)
    with pytest.raises(ValueError, match="lrs"):
        NTKDynamicsSpec(lrs=[-0.1])
    with pytest.raises(ValueError, match="models"):
        NTKDynamicsSpec(models=["resnet"])


def _reference_instability(steps, acc, dead, chance):
    """The documented rule, written out record by record: (unstable, step, cause)."""
    half = chance + (1 - chance) / 2
    if acc[-1] >= half:
        return False, None, ""
    for i in range(len(acc) - 2, -1, -1):  # walk back to the last half-trained record
        if acc[i] >= half:
            return True, steps[i + 1], "collapse"
    if dead[-1] >= 0.5:
        i = len(dead) - 1
        while i > 0 and dead[i - 1] >= 0.5:
            i -= 1
        return True, steps[i], "dead-relus"
    return False, None, ""


@pytest.mark.parametrize(
    "acc, dead, expected",
    [
        # learns, then falls back to chance and stays there (the paper preset's lr = 1 MLP)
        ([0.1, 0.5, 0.97, 0.9, 0.15, 0.15], [0, 0, 0.1, 0.2, 0.97, 0.99], (True, 40, "collapse")),
        # dips below half-trained mid-run and recovers: stable
        ([0.1, 0.6, 0.12, 0.3, 0.9, 0.99], [0, 0.1, 0.6, 0.55, 0.3, 0.3], (False, None, "")),
        # never half-trained, a layer dead for good from step 40 (a brief death at 5): stalled
        (
            [0.1, 0.1, 0.2, 0.3, 0.31, 0.31],
            [0, 0.32, 0.68, 0.4, 0.9, 0.96],
            (True, 40, "dead-relus"),
        ),
        # slow but healthy: never half-trained, no layer dead
        ([0.1, 0.12, 0.2, 0.3, 0.4, 0.5], [0, 0, 0.01, 0.02, 0.02, 0.03], (False, None, "")),
        # without ReLUs (dead fraction NaN) only a collapse is detected
        ([0.1, 0.1, 0.2, 0.3, 0.31, 0.31], [math.nan] * 6, (False, None, "")),
        # exactly half-trained at the end counts as trained (h = 0.55 for chance 0.1)
        ([0.1, 0.9, 0.9, 0.9, 0.9, 0.55], [0, 0, 0, 0.9, 0.9, 0.9], (False, None, "")),
    ],
)
def test_training_instability_on_hand_made_series(acc, dead, expected):
    steps = [0, 1, 5, 20, 40, 100]
    result = training_instability(steps, acc, dead, chance=0.1)
    assert (result.unstable, result.step, result.cause) == expected
    assert expected == _reference_instability(steps, acc, dead, 0.1)


def test_training_instability_rejects_bad_input():
    with pytest.raises(ValueError, match="train_acc"):
        training_instability([0, 1, 2], [0.1, 0.2], [0.0, 0.0], 0.1)
    with pytest.raises(ValueError, match="train_acc"):
        training_instability([0, 1], [0.1, math.nan], [0.0, 0.0], 0.1)
    with pytest.raises(ValueError, match="chance"):
        training_instability([0, 1], [0.1, 0.2], [0.0, 0.0], 1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_train_state_counts_units_killed_since_init(dtype):
    data = load_digits_split(dtype=dtype)
    model = mlp([64, 12, 10, 10], "relu", "he", seed=1, dtype=dtype)
    x, y = data.x_train[:300], data.y_train[:300]
    init = train_state(model, x, y)
    assert init.dead_fraction == 0.0
    lin1, lin2, lin3 = (m for m in model if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        lin2.bias[:4] = -1e4  # kill 4 of the 10 units of the second hidden layer
        lin1.bias[:2] = -1e4  # and 2 of the 12 of the first
    state = train_state(model, x, y, init.alive)
    # independent reference: the hidden layers written out by hand
    with torch.no_grad():
        h1 = torch.relu(x @ lin1.weight.T + lin1.bias)
        h2 = torch.relu(h1 @ lin2.weight.T + lin2.bias)
        logits = h2 @ lin3.weight.T + lin3.bias
    died = []
    for before, h in zip(init.alive, (h1, h2), strict=True):
        now = (h > 0).any(dim=0)
        died.append(float((before & ~now).sum() / before.sum()))
    assert died[1] >= 0.4 and died[0] >= 2 / 12
    assert state.dead_fraction == pytest.approx(max(died))
    expected_loss = float(torch.nn.functional.cross_entropy(logits.double(), y))
    assert state.loss == pytest.approx(expected_loss, rel=1e-5 if dtype == torch.float32 else 1e-12)
    assert state.accuracy == float((logits.argmax(1) == y).double().mean())
    assert math.isnan(train_state(torch.nn.Linear(64, 10, dtype=dtype), x, y).dead_fraction)


# MLP on digits at SGD learning rates 0.3 (stable), 1 and 2 (where real runs collapse, die or
# diverge); small enough to run in ~2 s, large enough for the instabilities of the paper preset
UNSTABLE_SWEEP = dict(
    models=["mlp"],
    tasks=["digits"],
    lrs=[0.3, 1.0, 2.0],
    seeds=4,
    steps=150,
    batch_size=32,
    n_records=8,
    width=32,
    kernel_train=20,
    kernel_test=15,
)


def test_unstable_runs_are_flagged_counted_and_excluded(tmp_path):
    from scipy import stats

    spec = NTKDynamicsSpec(**UNSTABLE_SWEEP)
    study, _, rows = _run(spec)
    data = load_digits_split(dtype=torch.float32)
    chance = float(np.bincount(data.y_train.numpy()).max() / len(data.y_train))
    for row in rows.itertuples():
        if row.diverged:
            assert not row.unstable and pd.isna(row.unstable_step)
            continue
        assert row.chance_acc == pytest.approx(chance)
        expected = _reference_instability(
            row.record_steps, row.train_acc, row.dead_fraction, chance
        )
        step = None if pd.isna(row.unstable_step) else int(row.unstable_step)
        assert (row.unstable, step, row.unstable_cause) == expected
        assert row.train_acc_final == row.train_acc[-1] and row.dead_fraction[0] == 0.0
    assert not rows.loc[rows["lr"] == 0.3, "unstable"].any()
    causes = set(rows.loc[rows["unstable"].astype(bool), "unstable_cause"])
    assert causes == {"collapse", "dead-relus"}  # both kinds happen in real runs here
    unstable = rows[rows["unstable"].astype(bool)]
    assert (unstable["train_acc_final"] < chance + (1 - chance) / 2).all()

    summary = study.summarize(rows, spec)
    diverged = rows["diverged"].astype(bool)
    stable = rows[~diverged & ~rows["unstable"].astype(bool)]
    finite = rows[~diverged]
    table = summary.table.set_index("lr")
    for lr, cell in rows.groupby("lr"):
        n_uns = int((cell["unstable"].astype(bool) & ~cell["diverged"].astype(bool)).sum())
        n_div = int(cell["diverged"].astype(bool).sum())
        assert (table.loc[lr, "n_unstable"], table.loc[lr, "n_diverged"]) == (n_uns, n_div)
        assert table.loc[lr, "n_stable"] == len(cell) - n_uns - n_div
        kept = stable[stable["lr"] == lr]["kernel_acc_final"]
        if len(kept):
            assert table.loc[lr, "kernel_acc_final"] == pytest.approx(kept.median())
    assert summary.extras["n_unstable"] == len(unstable) == table["n_unstable"].sum()
    assert summary.extras["n_stable"] == len(stable)
    assert f"{len(unstable)} were unstable" in summary.verdict
    for row in unstable.itertuples():
        assert f"{row.unstable_cause} at step {int(row.unstable_step)}" in summary.verdict
    assert f"Over the {len(stable)} stable runs" in summary.verdict
    assert f"On all {len(finite)} finite runs" in summary.verdict
    # the verdict's tests use the stable runs; the all-finite repeat uses stable + unstable
    for runs, key in ((stable, "velocity_sign_p"), (finite, "velocity_sign_p_all_finite")):
        ratio = runs["velocity_ratio"].to_numpy(float)
        p = stats.binomtest(int((ratio > 1).sum()), len(ratio), 0.5, "greater").pvalue
        assert summary.extras[key] == pytest.approx(p)
    paths = study.plot(rows, spec, tmp_path)
    assert len(paths) == 8 and all(p.stat().st_size > 1000 for p in paths)


def test_kernel_gain_claim_against_the_papers_threefold_ratio():
    from symlab.experiments.ntk_dynamics_verdict import error_ratio, kernel_gain_claim

    # ratios are err(Θ_0)/err(Θ_t); a perfect Θ_t is floored at half a test point
    assert error_ratio([0.7, 0.9, 1.0], 100).tolist() == pytest.approx([1.0, 3.0, 60.0])
    init = [0.3] * 4
    assert kernel_gain_claim([3.2, 2.9, 3.5, 3.1], 5, init).outcome == "reproduced"
    smaller = kernel_gain_claim([1.3, 1.4, 1.35, 1.3], 5, init)  # better, not ~3x
    assert smaller.outcome == "not reproduced" and "far less" in smaller.measured
    assert kernel_gain_claim([1.3, 3.5, 1.8, 3.0], 5, init).outcome == "partly reproduced"
    assert kernel_gain_claim([0.8, 3.5, 1.1, 2.5], 5, init).outcome == "inconclusive"
    assert kernel_gain_claim([1.0, 1.05, 0.97, 1.02], 5, init).outcome == "not reproduced"
    assert kernel_gain_claim([0.5, 0.6, 0.55, 0.5], 5, init).outcome == "opposite"
    assert kernel_gain_claim([3.0], 5, init[:1]).outcome == "not measured"


def test_velocity_claims_on_constant_and_decaying_series():
    from symlab.experiments.ntk_dynamics_verdict import (
        constant_velocity_claim,
        late_velocity_slope,
        velocity_decay_claim,
    )

    rng = np.random.default_rng(0)
    steps = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], dtype=float)
    mid = np.sqrt(np.maximum(steps[:-1], 0.5) * steps[1:])

    def runs(exponent):
        return [(steps, 1e-3 * mid**exponent * np.exp(0.05 * rng.standard_normal(len(mid))))
                for _ in range(4)]  # fmt: skip

    fit, n = late_velocity_slope(runs(0.0), [30.0] * 4)
    assert constant_velocity_claim(fit, n, "late").outcome == "reproduced"
    fit, n = late_velocity_slope(runs(-1.0), [30.0] * 4)
    assert abs(fit.slope + 1) < 0.1
    assert constant_velocity_claim(fit, n, "late").outcome == "not reproduced"
    fit, n = late_velocity_slope(runs(0.0), [1e6] * 4)
    assert fit is None and constant_velocity_claim(fit, n, "late").outcome == "not measured"
    assert velocity_decay_claim([3.0, 2.0, 5.0, 1.5, 2.5, 4.0]).outcome == "reproduced"
    assert velocity_decay_claim([0.3, 0.5, 0.2, 0.6, 0.4, 0.1]).outcome == "opposite"
    assert velocity_decay_claim([0.9, 1.1, 1.2, 0.8]).outcome == "not reproduced"
