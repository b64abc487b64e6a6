"""Figures of the ``ntk-dynamics`` study (Fort et al. 2020, "Deep learning versus kernel learning").

Four figures, one panel per (model, task) and one colour per learning rate: the kernel velocity,
the kernel-machine accuracy with Θ_t against Θ_0 and the network's own, the kernel distance
from initialisation, and the error ratio err(Θ_0)/err(Θ_t) against epochs. Curves are medians over the *stable* runs of a cell, with a band from the
smallest to the largest stable run (the spread over seeds); unstable runs
(:func:`symlab.experiments.ntk_dynamics_stability.training_instability`) are drawn one by one as
thin lines with a cross at the step where they became unstable, and each panel's title counts
the unstable and diverged runs it leaves out of its medians. One legend serves the whole figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import plain_log_axis, save_figure
from symlab.experiments.ntk_dynamics_stability import run_kinds

YLABELS = {
    "velocity": r"kernel velocity $v$ (1/step)",
    "kernel_acc": "test accuracy (fraction correct)",
    "distance": r"kernel distance $S(\Theta_0, \Theta_t)$",
}
TITLES = {
    "velocity": r"NTK velocity $v(t_i) = S(\Theta_{t_{i-1}}, \Theta_{t_i})\,/\,(t_i - t_{i-1})$",
    "kernel_acc": r"Kernel machine with $\Theta_t$ vs with $\Theta_0$, and the network itself",
    "distance": r"NTK distance from initialisation, $S(\Theta_0, \Theta_t)$",
}
BAND_ALPHA = 0.18


def _curve(key: str, steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y on a log-x axis: velocity[i] belongs to steps[i + 1]; the others start at step 0."""
    return steps[1:], (values[..., :] if key == "velocity" else values[..., 1:])


def _excluded_note(cell: pd.DataFrame, kinds: pd.Series) -> str:
    """'excluded from medians: η = 1: 2 unstable, 2 diverged' ('all runs stable' when none is)."""
    parts = []
    for lr, runs in cell.groupby("lr"):
        n_uns = int((kinds[runs.index] == "unstable").sum())
        n_div = int((kinds[runs.index] == "diverged").sum())
        counts = [f"{n} {kind}" for n, kind in ((n_uns, "unstable"), (n_div, "diverged")) if n]
        if counts:
            parts.append(rf"$\eta$ = {lr:g}: {', '.join(counts)}")
    return "excluded from medians: " + "; ".join(parts) if parts else "all runs stable"


def _median_and_band(ax, x, series, color, style: str, alpha: float = BAND_ALPHA, **kw) -> None:  # noqa: ANN001
    """Median over runs (rows of ``series``) as a line, min–max over runs as a shaded band."""
    ax.plot(x, np.nanmedian(series, axis=0), style, color=color, **kw)
    if len(series) > 1:
        low, high = np.nanmin(series, axis=0), np.nanmax(series, axis=0)
        ax.fill_between(x, low, high, color=color, alpha=alpha, lw=0)


def plot(rows: pd.DataFrame, spec: object, out_dir: Path) -> list[Path]:
    """Velocity and distance from init (log-log), kernel-machine accuracy (log-x), per model/task.

    Medians are over the stable runs of each (model, task, lr), with a min–max band over those
    runs; unstable runs are thin lines of the lr's colour with a cross at their
    ``unstable_step``, diverged runs are left out (their series end in NaN). Step 0 cannot sit on
    a log axis, so Θ_0's accuracy (median over the stable runs of the panel, band min–max) is a
    dashed horizontal line. One legend, outside the panels, per figure. Returns the PNG and SVG
    paths.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds = run_kinds(rows)
    models = sorted(rows["model"].unique())
    tasks = sorted(rows["task"].unique())
    lrs = sorted(rows["lr"].unique())
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(lrs), 1)))
    seeds = rows.groupby(["model", "task", "lr"]).size()
    n_seeds = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    paths: list[Path] = []
    for key, ylabel in YLABELS.items():
        fig, axes = plt.subplots(
            len(models),
            len(tasks),
            figsize=(4.6 * len(tasks) + 2.2, 3.5 * len(models) + 0.6),
            squeeze=False,
            constrained_layout=True,
        )
        for (i, model), (j, task) in (
            (mi, tj) for mi in enumerate(models) for tj in enumerate(tasks)
        ):
            ax = axes[i][j]
            cell = rows[(rows["model"] == model) & (rows["task"] == task)]
            init = cell.loc[kinds[cell.index] == "stable", "kernel_acc_init"].to_numpy(float)
            if key == "kernel_acc" and len(init):
                ax.axhline(float(np.nanmedian(init)), color="black", ls="--", lw=1)
                if len(init) > 1:
                    ax.axhspan(np.nanmin(init), np.nanmax(init), color="black", alpha=0.08, lw=0)
            for color, lr in zip(colors, lrs, strict=True):
                runs = cell[cell["lr"] == lr]
                stable = runs[kinds[runs.index] == "stable"]
                if not stable.empty:
                    steps = np.asarray(stable["record_steps"].iloc[0], dtype=float)
                    x, series = _curve(key, steps, np.asarray(list(stable[key]), dtype=float))
                    _median_and_band(ax, x, series, color, "-o", ms=3, lw=1.6)
                    if key == "kernel_acc":
                        net = np.asarray(list(stable["net_acc"]), dtype=float)[:, 1:]
                        _median_and_band(ax, steps[1:], net, color, ":", BAND_ALPHA / 2, lw=1.6)
                for run in runs[kinds[runs.index] == "unstable"].itertuples():
                    steps = np.asarray(run.record_steps, dtype=float)
                    x, y = _curve(key, steps, np.asarray(getattr(run, key), dtype=float))
                    ax.plot(x, y, "-", color=color, lw=0.8, alpha=0.8)
                    at = np.flatnonzero(x == run.unstable_step)
                    if len(at):
                        ax.plot(x[at], y[at], "x", color=color, ms=7, mew=1.8)
            ax.set_xscale("log")
            if key in ("velocity", "distance"):
                ax.set_yscale("log")
            if i == len(models) - 1:
                ax.set_xlabel(r"SGD step $t$")
            if j == 0:
                ax.set_ylabel(ylabel)
            ax.set_title(f"{model.upper()} on {task}\n{_excluded_note(cell, kinds)}", fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
            ax.grid(True, which="minor", alpha=0.1)
        handles = [
            Line2D([], [], color=c, marker="o", ms=3, label=rf"$\eta$ = {lr:g}")
            for c, lr in zip(colors, lrs, strict=True)
        ]
        if key == "kernel_acc":
            handles += [
                Line2D([], [], color="gray", ls="-", label=r"kernel machine with $\Theta_t$"),
                Line2D([], [], color="black", ls="--", label=r"kernel machine with $\Theta_0$"),
                Line2D([], [], color="gray", ls=":", label="network"),
            ]
        handles.append(
            Patch(color="gray", alpha=2 * BAND_ALPHA, lw=0, label="min–max over stable seeds")
        )
        if (kinds == "unstable").any():
            handles.append(
                Line2D([], [], color="gray", lw=0.8, marker="x", ms=6, mew=1.8,
                       label="one unstable run\n(× at onset)")
            )  # fmt: skip
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
        fig.suptitle(
            f"{TITLES[key]}\nmedian over the stable runs of {n_seeds} seeds per learning rate "
            r"$\eta$; unstable runs drawn singly",
            fontsize=11,
        )
        paths += save_figure(fig, out_dir, f"ntk_dynamics_{key}")
    return paths + plot_error_ratio(rows, out_dir)


def plot_error_ratio(rows: pd.DataFrame, out_dir: Path) -> list[Path]:
    """err(Θ_0)/err(Θ_t) of the kernel machine against epochs, one panel per (model, task): each
    stable run faint, the median per learning rate bold, the paper's ~3× and 1× (no gain) as
    horizontal lines, the epoch where the claim is read as a vertical line."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from symlab.experiments.ntk_dynamics_verdict import GAIN_EPOCHS, PAPER_RATIO, error_ratio

    stable_rows = rows[run_kinds(rows) == "stable"]
    models, tasks = sorted(rows["model"].unique()), sorted(rows["task"].unique())
    lrs = sorted(rows["lr"].unique())
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(lrs), 1)))
    fig, axes = plt.subplots(
        len(models), len(tasks), figsize=(4.6 * len(tasks) + 2.2, 3.5 * len(models) + 0.6),
        squeeze=False, constrained_layout=True, sharey=True,
    )  # fmt: skip
    for (i, model), (j, task) in ((mi, tj) for mi in enumerate(models) for tj in enumerate(tasks)):
        ax = axes[i][j]
        cell = stable_rows[(stable_rows["model"] == model) & (stable_rows["task"] == task)]
        for color, lr in zip(colors, lrs, strict=True):
            runs = cell[cell["lr"] == lr]
            curves = []
            for run in runs.itertuples():
                epochs = np.asarray(run.record_steps, dtype=float)[1:] / run.epoch_steps
                ratio = error_ratio(run.kernel_acc, run.kernel_test)[1:]
                ax.plot(epochs, ratio, "-", color=color, lw=0.7, alpha=0.35)
                curves.append(ratio)
            if curves:
                ax.plot(epochs, np.nanmedian(curves, axis=0), "-o", color=color, ms=3, lw=1.8)
        ax.axhline(PAPER_RATIO, color="tab:red", ls="--", lw=1)
        ax.axhline(1.0, color="black", ls=":", lw=1)
        ax.axvline(GAIN_EPOCHS, color="gray", ls="-.", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis, [0.5, 0.7, 1, 1.5, 2, 3, 5, 10])
        init = cell["kernel_acc_init"].to_numpy(float)
        err0 = rf"err($\Theta_0$) median {1 - np.nanmedian(init):.2f}" if len(init) else "no run"
        ax.set_title(f"{model.upper()} on {task}: {err0}", fontsize=9)
        if i == len(models) - 1:
            ax.set_xlabel("epochs (SGD steps / steps per epoch)")
        if j == 0:
            ax.set_ylabel(r"$\mathrm{err}(\Theta_0)\,/\,\mathrm{err}(\Theta_t)$")
        ax.grid(True, which="major", alpha=0.3)
    handles = [
        Line2D([], [], color=c, marker="o", ms=3, lw=1.8, label=rf"$\eta$ = {lr:g} (median)")
        for c, lr in zip(colors, lrs, strict=True)
    ] + [
        Line2D([], [], color="gray", lw=0.7, alpha=0.5, label="one stable run"),
        Line2D([], [], color="tab:red", ls="--", lw=1, label=f"Fort et al.: ~{PAPER_RATIO:g}x"),
        Line2D([], [], color="black", ls=":", lw=1, label="no gain (1x)"),
        Line2D([], [], color="gray", ls="-.", lw=1, label=f"claim read at {GAIN_EPOCHS:g} epochs"),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(
        r"Test error of the kernel machine with $\Theta_0$ over that with $\Theta_t$"
        "\n(stable runs; an error of 0 counts as half a test point)",
        fontsize=11,
    )
    return save_figure(fig, out_dir, "ntk_dynamics_error_ratio")
