"""Study ``ntk-dynamics``: how fast the empirical NTK moves during SGD, and whether Θ_t beats Θ_0.

Reproduces, at CPU size, the measurements of Fort, Dziugaite, Paul, Kharaghani, Roy & Ganguli
(2020), "Deep learning versus kernel learning: an empirical study of loss landscape geometry and
the time evolution of the Neural Tangent Kernel" (NeurIPS 2020): an MLP and a small CNN are trained
with SGD (cross-entropy) on scikit-learn's digits and on a synthetic teacher task, and at
log-spaced steps t we record, on a fixed probe set of train and test points,

- the kernel distance from init  S(Θ_0, Θ_t) = 1 - <Θ_0, Θ_t>_F / (‖Θ_0‖_F ‖Θ_t‖_F),
- the kernel velocity  v(t_i) = S(Θ_{t_{i-1}}, Θ_{t_i}) / (t_i - t_{i-1})  (Fort et al. §4),
- the kernel-target alignment of Θ_t with the one-hot labels (Cristianini et al. 2002),
- the test accuracy of kernel regression with Θ_t (the "NTK_t" kernel machine of Fort et al.),
- the network's own train and test accuracy.

Kernels are traced over the outputs, Θ_t(x, x') = Σ_k ∂f_k(x)/∂θ · ∂f_k(x')/∂θ, one (P, P) matrix
for the P probe points. Cost per record: one empirical NTK on P points (O(P K [FP] + P² K D))
plus one (n x n) solve. Claims checked in :func:`summarize`: the velocity is large early and
decays (early/late ratio > 1, sign test and Wilcoxon over jobs) and the final kernel Θ_T gives a
better kernel machine than Θ_0 (paired Wilcoxon over jobs).

Runs are sorted into three kinds before any statistic: ``diverged`` (non-finite loss or a
constant kernel), ``unstable`` (finite, but training ended less than half-trained after a
collapse or with most ReLUs of a layer dead, see :func:`training_instability`) and stable. The
claims are tested on the stable runs and, so that nothing is hidden, also reported on all finite
runs; figures draw the medians of stable runs and each unstable run as its own thin line
(:mod:`symlab.experiments.ntk_dynamics_plots`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint

from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.verdict import Claim, as_records, render
from symlab.experiments.ntk_dynamics_plots import plot
from symlab.experiments.ntk_dynamics_stability import (
    Instability,
    run_kinds,
    train_state,
    training_instability,
    unstable_cells,
)
from symlab.experiments.ntk_dynamics_verdict import (
    GAIN_EPOCHS,
    LATE_EPOCHS,
    constant_velocity_claim,
    error_ratio,
    kernel_gain_claim,
    late_velocity_slope,
    nearest_record,
    run_statistics,
    velocity_decay_claim,
)

ModelName = Literal["mlp", "cnn"]
TaskName = Literal["digits", "teacher"]


class NTKDynamicsSpec(BaseModel):
    """Grid of (model, task, learning rate, seed) SGD runs with kernel measurements."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelName] = Field(
        ["mlp"], min_length=1, description="architectures: 'mlp' (two hidden layers) and/or 'cnn'"
    )
    tasks: list[TaskName] = Field(
        ["digits"], min_length=1, description="data: 'digits' (sklearn) and/or 'teacher'"
    )
    lrs: list[confloat(gt=0)] = Field([0.1], min_length=1, description="SGD learning rates")
    seeds: conint(ge=1) = Field(2, description="number of network seeds (0, 1, ..., seeds-1)")
    steps: conint(ge=1) = Field(1000, description="SGD steps (mini-batches) per run")
    batch_size: conint(ge=1) = Field(32, description="mini-batch size")
    n_records: conint(ge=3) = Field(
        12, description="log-spaced record steps in [0, steps] (duplicates merged)"
    )
    width: conint(ge=1) = Field(128, description="hidden width of the MLP (two hidden layers)")
    cnn_channels: conint(ge=1) = Field(8, description="channels of both CNN conv layers")
    kernel_train: conint(ge=2) = Field(
        100, description="train points the kernel machine is fitted on"
    )
    kernel_test: conint(ge=1) = Field(
        100, description="test points the kernel machine is scored on"
    )
    ridge: confloat(gt=0) = Field(
        1e-3, description="kernel-regression ridge, relative to the mean diagonal of Θ_t"
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="network dtype")


def record_steps(steps: int, n_records: int) -> list[int]:
    """0 followed by ~n_records-1 log-spaced integers in [1, steps] (duplicates merged)."""
    grid = np.unique(np.round(np.geomspace(1, steps, max(n_records - 1, 1))).astype(int))
    return [0] + [int(s) for s in grid]


def expand(spec: NTKDynamicsSpec) -> list[dict[str, Any]]:
    """One job per (model, task, lr, seed); every job carries the shared fields it needs."""
    shared = spec.model_dump(exclude={"models", "tasks", "lrs", "seeds"})
    return [
        {"model": model, "task": task, "lr": float(lr), "seed": seed, **shared}
        for model in spec.models
        for task in spec.tasks
        for lr in spec.lrs
        for seed in range(spec.seeds)
    ]


def _task(task: str, dtype: torch.dtype):
    from symlab.ntk.data import load_digits_split, teacher_task

    if task == "digits":
        return load_digits_split(dtype=dtype)
    if task == "teacher":
        return teacher_task(dtype=dtype)
    raise ValueError(f"task: expected 'digits' or 'teacher', got {task!r}")


def _network(params: dict[str, Any], n_classes: int, dim: int, dtype: torch.dtype):
    from symlab.nets import mlp
    from symlab.ntk.models import small_cnn

    if params["model"] == "mlp":
        widths = [dim, params["width"], params["width"], n_classes]
        return mlp(widths, "relu", "he", seed=params["seed"], dtype=dtype)
    if params["model"] == "cnn":
        side = math.isqrt(dim)
        return small_cnn(
            n_classes, params["cnn_channels"], image_side=side, seed=params["seed"], dtype=dtype
        )
    raise ValueError(f"model: expected 'mlp' or 'cnn', got {params['model']!r}")


def kernel_machine_accuracy(
    k_probe: torch.Tensor, y_train: torch.Tensor, y_test: torch.Tensor, ridge: float
) -> float:
    """Test accuracy of ridge regression on one-hot labels with the (n+m, n+m) kernel ``k_probe``.

    The first n = len(y_train) rows/columns are the training points, the last m the test points;
    predictions are argmax_k [K_tx (K_xx + ridge * mean(diag K_xx) I)^{-1} Y]_k.
    """
    from symlab.ntk import kernel_regression

    n = len(y_train)
    k = k_probe.to(torch.float64)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    onehot = torch.nn.functional.one_hot(y_train, n_classes).to(torch.float64)
    scale = float(torch.diagonal(k[:n, :n]).mean())
    pred = kernel_regression(k[:n, :n], onehot, k[n:, :n], ridge=ridge * scale)
    return float((pred.argmax(dim=1) == y_test).double().mean())


def _collapsed(k: torch.Tensor) -> bool:
    """True for a non-finite kernel, or one that is constant on the probe points (all ReLUs dead,
    only the output bias left): such runs end like a NaN loss ("diverged")."""
    if not bool(torch.isfinite(k).all()):
        return True
    centred = k - k.mean(dim=0, keepdim=True)
    centred = centred - centred.mean(dim=1, keepdim=True)
    return float(centred.abs().max()) <= 1e-12 * float(k.abs().max())


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).double().mean())


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Train one network with SGD and record the kernel and accuracy series at log-spaced steps.

    ``diverged`` is True when the loss or the kernel became non-finite or the kernel collapsed to
    a constant; the series then hold NaN from that record on (lengths stay fixed). A finite run
    is ``unstable`` when :func:`training_instability` flags its full-batch training accuracy
    ``train_acc`` and ``dead_fraction`` (the largest fraction of a ReLU layer's units that died
    since initialisation, :func:`train_state`) against ``chance_acc``; ``unstable_step`` and
    ``unstable_cause`` say when and how. ``train_loss`` is the full-batch training loss.
    """
    from symlab.ntk import KernelTracker, kernel_alignment
    from symlab.train import at_steps, sgd

    dtype = torch.float32 if params["dtype"] == "float32" else torch.float64
    data = _task(params["task"], dtype)
    model = _network(params, data.n_classes, data.x_train.shape[1], dtype)
    n_kt, n_ke = params["kernel_train"], params["kernel_test"]
    if n_kt > len(data.y_train) or n_ke > len(data.y_test):
        raise ValueError("kernel_train: expected probe sizes no larger than the train/test sets")
    x_probe = torch.cat([data.x_train[:n_kt], data.x_test[:n_ke]])
    y_kt, y_ke = data.y_train[:n_kt], data.y_test[:n_ke]
    onehot = torch.nn.functional.one_hot(y_kt, data.n_classes).to(torch.float64)
    steps = record_steps(params["steps"], params["n_records"])
    tracker = KernelTracker(model, x_probe, trace=True)
    names = ("distance", "velocity", "alignment", "kernel_acc", "net_acc", "train_acc")
    series: dict[str, list[float]] = {k: [] for k in (*names, "train_loss", "dead_fraction")}
    alive_init: list[list[torch.Tensor]] = []

    def measure(step: int, model: torch.nn.Module) -> bool:
        """Kernel and accuracy series at a record step; True (stop) when the kernel collapsed."""
        k_t = tracker.kernel().detach().to(torch.float64)
        if _collapsed(k_t[:n_kt, :n_kt]):
            return True
        record = tracker.update(step, kernel=k_t)
        if step > 0:
            series["velocity"].append(record["velocity"])
        series["distance"].append(record["distance_from_init"])
        series["alignment"].append(float(kernel_alignment(k_t[:n_kt, :n_kt], onehot)))
        series["kernel_acc"].append(kernel_machine_accuracy(k_t, y_kt, y_ke, params["ridge"]))
        series["net_acc"].append(_accuracy(model, data.x_test, data.y_test))
        state = train_state(
            model, data.x_train, data.y_train, alive_init[0] if alive_init else None
        )
        alive_init[:] = alive_init or [state.alive]
        series["train_loss"].append(state.loss)
        series["train_acc"].append(state.accuracy)
        series["dead_fraction"].append(state.dead_fraction)
        return False

    trajectory = sgd(
        model, (data.x_train, data.y_train), lr=params["lr"], steps=params["steps"],
        batch_size=params["batch_size"], seed=10_000 + int(params["seed"]),
        loss=torch.nn.functional.cross_entropy, record_every=at_steps(steps), callback=measure,
        callback_every=at_steps(steps),
    )  # fmt: skip
    diverged = trajectory.diverged or trajectory.stop_reason == "callback"
    loss_value = trajectory.final_loss
    for values in series.values():  # keep series lengths fixed; NaN marks points after divergence
        values += [float("nan")] * (len(steps) - len(values))
    series["velocity"] = series["velocity"][: len(steps) - 1]
    series["velocity"] += [float("nan")] * (len(steps) - 1 - len(series["velocity"]))

    velocity = np.asarray(series["velocity"])
    third = max(1, len(velocity) // 3)
    early, late = float(np.mean(velocity[:third])), float(np.mean(velocity[-third:]))
    kernel_acc = np.asarray(series["kernel_acc"])
    chance = float(torch.bincount(data.y_train).max()) / len(data.y_train)
    instability = (
        Instability(False, None, "")
        if diverged
        else training_instability(steps, series["train_acc"], series["dead_fraction"], chance)
    )
    return {
        "record_steps": steps,  # not "steps": that is the job's parameter
        **series,
        "velocity_early": early,
        "velocity_late": late,
        "velocity_ratio": early / late if late > 0 else float("nan"),
        "kernel_acc_init": float(kernel_acc[0]),
        "kernel_acc_best": float(np.nanmax(kernel_acc)),
        "kernel_acc_final": float(kernel_acc[-1]),
        "alignment_init": float(series["alignment"][0]),
        "alignment_final": float(series["alignment"][-1]),
        "distance_final": float(series["distance"][-1]),
        "net_acc_final": float(series["net_acc"][-1]),
        "train_acc_final": float(series["train_acc"][-1]),
        "train_loss_final": float(series["train_loss"][-1]),
        "dead_fraction_final": float(series["dead_fraction"][-1]),
        "chance_acc": chance,
        "epoch_steps": len(data.y_train) / params["batch_size"],
        "final_loss": loss_value,
        "diverged": diverged,
        "unstable": instability.unstable,
        "unstable_step": instability.step,
        "unstable_cause": instability.cause,
    }


def summarize(rows: pd.DataFrame, spec: NTKDynamicsSpec) -> Summary:
    """Per-cell medians over stable runs and a verdict on the two claims (sign test + Wilcoxon).

    Runs are diverged, unstable or stable (:func:`run_kinds`). The table's medians and the
    verdict's tests use the stable runs; the table counts all three kinds per cell, and the
    verdict names the unstable runs and repeats both tests on all finite runs (stable + unstable),
    so the exclusion is visible and its effect can be judged.
    """
    cols = (
        "velocity_early velocity_late velocity_ratio kernel_acc_init kernel_acc_best "
        "kernel_acc_final alignment_init alignment_final distance_final net_acc_final"
    ).split()
    cell_keys = ["model", "task", "lr"]
    kinds = run_kinds(rows)
    stable, finite = rows[kinds == "stable"], rows[kinds != "diverged"]
    counts = pd.crosstab([rows[k] for k in cell_keys], kinds)
    counts = counts.reindex(columns=["stable", "unstable", "diverged"], fill_value=0)
    counts.columns = ["n_stable", "n_unstable", "n_diverged"]
    medians = stable.groupby(cell_keys)[cols].median() if len(stable) else None
    table = (
        counts.join(medians)
        if medians is not None
        else counts.reindex(columns=[*counts.columns, *cols])
    )
    table = table.reset_index()
    n_div, n_uns = int((kinds == "diverged").sum()), int((kinds == "unstable").sum())

    c, a = run_statistics(stable), run_statistics(finite)
    words = {True: "holds", False: "is not shown"}
    dead = {k: rows.loc[kinds == k, "dead_fraction_final"].median() for k in ("stable", "unstable")}
    rule = "ended less than halfway from chance to a fitted training set after a collapse or with "
    rule += "most ReLUs of a layer dead"
    if n_div + n_uns == 0:
        opening = f"All {len(rows)} SGD runs were stable (none diverged; none {rule})."
    else:
        unstable_text = (
            f"{n_uns} were unstable (finite loss, but {rule}: {unstable_cells(rows, kinds)}; "
            f"median fraction of the worst layer's ReLUs dead at the end {dead['unstable']:.2f}, "
            f"vs {dead['stable']:.2f} in stable runs)"
            if n_uns
            else "none was unstable"
        )
        opening = (
            f"Of {len(rows)} SGD runs, {n_div} diverged (non-finite loss or constant kernel) and "
            f"{unstable_text}; these are excluded from the statistics below and from the medians."
        )
    same = c["velocity_holds"] == a["velocity_holds"] and c["kernel_holds"] == a["kernel_holds"]
    all_finite = (
        f" On all {len(finite)} finite runs (unstable included): velocity early > late in "
        f"{a['n_up']}/{a['n_ratio']} (sign test p = {a['sign_p']:.2g}), Θ_T beats Θ_0 in "
        f"{a['n_better']}/{a['n_gain']} (median gain {a['gain_median']:+.3f}, Wilcoxon p = "
        f"{a['wilcoxon_k_p']:.2g}): there the velocity claim {words[a['velocity_holds']]} and "
        f"'Θ_T beats Θ_0' {words[a['kernel_holds']]}, "
        f"{'the same conclusions' if same else 'NOT the same conclusions'} as on the stable runs."
        if n_uns
        else ""
    )
    claims = dynamics_claims(stable, spec)
    preamble = (
        f"{opening} Over the {len(stable)} stable runs the kernel machine with the final kernel "
        f"Θ_T beat Θ_0's in {c['n_better']}/{c['n_gain']} runs (median test-accuracy gain "
        f"{c['gain_median']:+.3f}, paired one-sided Wilcoxon p = {c['wilcoxon_k_p']:.2g}); the "
        f"velocity's early/late ratio had median {c['ratio_median']:.3g} (Wilcoxon on its log "
        f"p = {c['wilcoxon_v_p']:.2g}).{all_finite} Kernels were computed on {spec.kernel_train} "
        f"train + {spec.kernel_test} test probe points and traced over outputs; with "
        f"{spec.seeds} seeds per cell the per-cell medians in the table are indicative only. "
        f"The claims, on the stable runs:"
    )
    verdict = render(claims, preamble)
    extras = {
        "velocity_sign_p": c["sign_p"],
        "velocity_wilcoxon_p": c["wilcoxon_v_p"],
        "kernel_gain_wilcoxon_p": c["wilcoxon_k_p"],
        "velocity_sign_p_all_finite": a["sign_p"],
        "kernel_gain_wilcoxon_p_all_finite": a["wilcoxon_k_p"],
        "n_stable": len(stable),
        "n_unstable": n_uns,
        "n_diverged": n_div,
        "claims": as_records(claims),
    }
    return Summary(table=table, verdict=verdict, extras=extras)


def dynamics_claims(runs: pd.DataFrame, spec: NTKDynamicsSpec) -> list[Claim]:
    """Fort et al.'s three claims on ``runs`` (see :mod:`symlab.experiments.ntk_dynamics_verdict`)."""
    ratios, init_errors, epochs, series, late_start = [], [], [], [], []
    for rec in runs.itertuples():
        steps = np.asarray(rec.record_steps, dtype=float)
        at = nearest_record(steps, rec.epoch_steps, GAIN_EPOCHS)
        ratios.append(error_ratio(rec.kernel_acc, spec.kernel_test)[at])
        init_errors.append(1 - rec.kernel_acc[0])
        epochs.append(steps[at] / rec.epoch_steps)
        series.append((steps, np.asarray(rec.velocity, dtype=float)))
        late_start.append(LATE_EPOCHS * rec.epoch_steps)
    fit, n_points = late_velocity_slope(series, late_start)
    return [
        kernel_gain_claim(ratios, float(np.median(epochs)) if epochs else GAIN_EPOCHS, init_errors),
        velocity_decay_claim(runs["velocity_ratio"].to_numpy(float)),
        constant_velocity_claim(fit, n_points, f"from {LATE_EPOCHS:g} epochs on"),
    ]


EXPERIMENT = register(
    Experiment(
        name="ntk-dynamics",
        description=(
            "Fort et al. 2020: kernel velocity, distance from init, alignment and Θ_t kernel-machine "
            "accuracy during SGD of an MLP and a small CNN on digits and a teacher task."
        ),
        spec_model=NTKDynamicsSpec,
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
        version="3",  # 3: rows carry epoch_steps (the claims read times in epochs)
    )
)
