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
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, confloat, conint

from symlab.engine.experiment import Experiment, Summary, register
from symlab.engine.figures import save_figure

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
    a constant; the series then hold NaN from that record on (lengths stay fixed).
    """
    from symlab.ntk import empirical_ntk, kernel_alignment, kernel_distance

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
    generator = torch.Generator().manual_seed(10_000 + int(params["seed"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()

    series: dict[str, list[float]] = {
        k: [] for k in ("distance", "velocity", "alignment", "kernel_acc", "net_acc", "train_acc")
    }
    k_init = k_prev = None
    order = torch.randperm(len(data.y_train), generator=generator)
    cursor, step, loss_value, diverged, previous = 0, 0, float("nan"), False, 0
    for target in steps:
        while step < target and not diverged:
            if cursor + params["batch_size"] > len(order):
                order, cursor = torch.randperm(len(data.y_train), generator=generator), 0
            batch = order[cursor : cursor + params["batch_size"]]
            cursor += params["batch_size"]
            optimizer.zero_grad()
            loss = loss_fn(model(data.x_train[batch]), data.y_train[batch])
            loss.backward()
            optimizer.step()
            loss_value, step = float(loss.detach()), step + 1
            diverged = not math.isfinite(loss_value)
        if not diverged:
            k_t = empirical_ntk(model, x_probe, trace=True).detach().to(torch.float64)
            diverged = _collapsed(k_t[:n_kt, :n_kt])
        if diverged:  # keep series lengths fixed; NaN marks points after divergence
            for values in series.values():
                values.append(float("nan"))
            continue
        if k_init is None:
            k_init = k_t
        else:
            series["velocity"].append(float(kernel_distance(k_prev, k_t)) / (target - previous))
        k_prev, previous = k_t, target
        series["distance"].append(float(kernel_distance(k_init, k_t)))
        series["alignment"].append(float(kernel_alignment(k_t[:n_kt, :n_kt], onehot)))
        series["kernel_acc"].append(kernel_machine_accuracy(k_t, y_kt, y_ke, params["ridge"]))
        series["net_acc"].append(_accuracy(model, data.x_test, data.y_test))
        series["train_acc"].append(_accuracy(model, data.x_train, data.y_train))
    series["velocity"] = series["velocity"][: len(steps) - 1]
    series["velocity"] += [float("nan")] * (len(steps) - 1 - len(series["velocity"]))

    velocity = np.asarray(series["velocity"])
    third = max(1, len(velocity) // 3)
    early, late = float(np.mean(velocity[:third])), float(np.mean(velocity[-third:]))
    kernel_acc = np.asarray(series["kernel_acc"])
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
        "final_loss": loss_value,
        "diverged": diverged,
    }


def summarize(rows: pd.DataFrame, spec: NTKDynamicsSpec) -> Summary:
    """Per-cell medians and a verdict on the two claims (sign test + Wilcoxon over all jobs)."""
    from scipy import stats

    cols = [
        "velocity_early",
        "velocity_late",
        "velocity_ratio",
        "kernel_acc_init",
        "kernel_acc_best",
        "kernel_acc_final",
        "alignment_init",
        "alignment_final",
        "distance_final",
        "net_acc_final",
    ]
    ok = rows[~rows["diverged"].astype(bool)]
    table = (
        ok.groupby(["model", "task", "lr"])[cols].median().reset_index()
        if len(ok)
        else pd.DataFrame(columns=["model", "task", "lr", *cols])
    )
    table.insert(3, "n_seeds", ok.groupby(["model", "task", "lr"]).size().values if len(ok) else [])
    n_div = int(rows["diverged"].astype(bool).sum())

    ratio = ok["velocity_ratio"].to_numpy(float)
    ratio = ratio[np.isfinite(ratio)]
    n_up = int((ratio > 1).sum())
    sign_v = stats.binomtest(n_up, len(ratio), 0.5, "greater").pvalue if len(ratio) else math.nan
    wil_v = _wilcoxon(np.log(ratio)) if len(ratio) else math.nan
    gain = (ok["kernel_acc_final"] - ok["kernel_acc_init"]).to_numpy(float)
    gain_best = (ok["kernel_acc_best"] - ok["kernel_acc_init"]).to_numpy(float)
    wil_k = _wilcoxon(gain) if len(gain) else math.nan
    n_better = int((gain > 0).sum())
    claim_v = "holds" if len(ratio) and sign_v < 0.05 and n_up > len(ratio) / 2 else "is not shown"
    claim_k = "holds" if len(gain) and wil_k < 0.05 and np.median(gain) > 0 else "is not shown"
    verdict = (
        f"Over {len(ok)} converged SGD runs ({n_div} diverged and were excluded), the kernel "
        f"velocity was larger in the first third of the log-spaced records than in the last third in "
        f"{n_up}/{len(ratio)} runs (median early/late ratio "
        f"{np.median(ratio) if len(ratio) else math.nan:.3g}; one-sided sign test p = {sign_v:.2g}, "
        f"Wilcoxon on log ratio p = {wil_v:.2g}), so 'velocity is large early and decays' "
        f"{claim_v}. The kernel machine with the final kernel Θ_T beat the one with Θ_0 in "
        f"{n_better}/{len(gain)} runs (median test-accuracy gain "
        f"{np.median(gain) if len(gain) else math.nan:+.3f}, paired one-sided Wilcoxon "
        f"p = {wil_k:.2g}; the best Θ_t over the run gained "
        f"{np.median(gain_best) if len(gain_best) else math.nan:+.3f}, a maximum and so biased up), "
        f"so 'Θ_t beats Θ_0' {claim_k}. Kernels were computed on {spec.kernel_train} train + "
        f"{spec.kernel_test} test probe points and traced over outputs; with {spec.seeds} seeds per "
        f"cell the per-cell medians in the table are indicative only."
    )
    extras = {
        "velocity_sign_p": float(sign_v),
        "velocity_wilcoxon_p": float(wil_v),
        "kernel_gain_wilcoxon_p": float(wil_k),
        "n_diverged": n_div,
    }
    return Summary(table=table, verdict=verdict, extras=extras)


def _wilcoxon(values: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value for median > 0 (1.0 when all values are zero)."""
    from scipy import stats

    values = values[np.isfinite(values)]
    if len(values) == 0 or np.all(values == 0):
        return 1.0
    return float(stats.wilcoxon(values, alternative="greater").pvalue)


def plot(rows: pd.DataFrame, spec: NTKDynamicsSpec, out_dir: Path) -> list[Path]:
    """Velocity (log-log), kernel-machine accuracy (log-x) and distance from init, per model/task.

    One panel per (model, task), one colour per learning rate; curves are medians over seeds.
    Step 0 cannot sit on a log axis, so Θ_0's accuracy is drawn as a dashed horizontal line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = sorted(rows["model"].unique())
    tasks = sorted(rows["task"].unique())
    lrs = sorted(rows["lr"].unique())
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(lrs), 1)))
    ylabels = {
        "velocity": "kernel velocity v (1/step)",
        "kernel_acc": "test accuracy (fraction)",
        "distance": "kernel distance S(Θ_0, Θ_t)",
    }
    titles = {
        "velocity": "NTK velocity v(t_i) = S(Θ_{t_(i-1)}, Θ_{t_i}) / (t_i − t_(i-1)), median over seeds",
        "kernel_acc": "Kernel machine with Θ_t (solid) vs Θ_0 (dashed), and the network (dotted)",
        "distance": "NTK distance from initialisation (median over seeds)",
    }
    paths: list[Path] = []
    for key, ylabel in ylabels.items():
        fig, axes = plt.subplots(
            len(models),
            len(tasks),
            figsize=(4.6 * len(tasks), 3.4 * len(models)),
            squeeze=False,
            constrained_layout=True,
        )
        for (i, model), (j, task) in (
            (mi, tj) for mi in enumerate(models) for tj in enumerate(tasks)
        ):
            ax = axes[i][j]
            cell = rows[(rows["model"] == model) & (rows["task"] == task)]
            for color, lr in zip(colors, lrs, strict=True):
                runs = cell[cell["lr"] == lr]
                if runs.empty:
                    continue
                steps = np.asarray(runs["record_steps"].iloc[0], dtype=float)
                values = np.nanmedian(np.asarray(list(runs[key]), dtype=float), axis=0)
                # velocity[i] belongs to steps[i + 1]; the other series start at step 0
                x, y = steps[1:], (values if key == "velocity" else values[1:])
                ax.plot(x, y, "-o", color=color, ms=3)
                if key == "kernel_acc":
                    net = np.nanmedian(np.asarray(list(runs["net_acc"]), dtype=float), axis=0)
                    ax.plot(x, net[1:], ":", color=color, lw=1.5)
            if key == "kernel_acc" and not cell.empty:
                init = float(np.nanmedian(cell["kernel_acc_init"].to_numpy(float)))
                ax.axhline(init, color="black", ls="--", lw=1)
            ax.set_xscale("log")
            if key == "velocity":
                ax.set_yscale("log")
            ax.set_xlabel("SGD step t (log scale)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{model.upper()} on {task}")
            ax.grid(True, which="both", alpha=0.3)
        handles = [
            Line2D([], [], color=c, marker="o", ms=3, label=f"lr = {lr:g}")
            for c, lr in zip(colors, lrs, strict=True)
        ]
        if key == "kernel_acc":
            handles += [
                Line2D([], [], color="gray", ls="-", label="kernel machine with Θ_t"),
                Line2D([], [], color="black", ls="--", label="kernel machine with Θ_0"),
                Line2D([], [], color="gray", ls=":", label="network (test)"),
            ]
        axes[0][0].legend(handles=handles, fontsize=7)
        fig.suptitle(titles[key])
        paths += save_figure(fig, out_dir, f"ntk_dynamics_{key}")
    return paths


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
    )
)
