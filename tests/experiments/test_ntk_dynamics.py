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
    assert summary.extras["n_diverged"] == 1
    assert "1 diverged" in summary.verdict and len(summary.table) == 1


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
