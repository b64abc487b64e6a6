"""Figures of the ``ntk-dynamics`` study (Fort et al. 2020, "Deep learning versus kernel learning").

Three figures, one panel per (model, task) and one colour per learning rate: the kernel velocity,
the kernel-machine accuracy with Θ_t against Θ_0 and the network's own, and the kernel distance
from initialisation. Curves are medians over the *stable* runs of a cell; unstable runs
(:func:`symlab.experiments.ntk_dynamics_stability.training_instability`) are drawn one by one as
thin lines with a cross at the step where they became unstable, and each panel's title counts
the unstable and diverged runs it leaves out of its medians.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure
from symlab.experiments.ntk_dynamics_stability import run_kinds

YLABELS = {
    "velocity": "kernel velocity v (1/step)",
    "kernel_acc": "test accuracy (fraction)",
    "distance": "kernel distance S(Θ_0, Θ_t)",
}
TITLES = {
    "velocity": "NTK velocity v(t_i) = S(Θ_{t_(i-1)}, Θ_{t_i}) / (t_i − t_(i-1))",
    "kernel_acc": "Kernel machine with Θ_t (solid) vs Θ_0 (dashed), and the network (dotted)",
    "distance": "NTK distance from initialisation",
}


def _curve(key: str, steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y on a log-x axis: velocity[i] belongs to steps[i + 1]; the others start at step 0."""
    return steps[1:], (values if key == "velocity" else values[1:])


def _excluded_note(cell: pd.DataFrame, kinds: pd.Series) -> str:
    """'excluded from medians: lr = 1: 2 unstable, 2 diverged' (empty when nothing is excluded)."""
    parts = []
    for lr, runs in cell.groupby("lr"):
        n_uns = int((kinds[runs.index] == "unstable").sum())
        n_div = int((kinds[runs.index] == "diverged").sum())
        counts = [f"{n} {kind}" for n, kind in ((n_uns, "unstable"), (n_div, "diverged")) if n]
        if counts:
            parts.append(f"lr = {lr:g}: {', '.join(counts)}")
    return "excluded from medians: " + "; ".join(parts) if parts else "all runs stable"


def plot(rows: pd.DataFrame, spec: object, out_dir: Path) -> list[Path]:
    """Velocity (log-log), kernel-machine accuracy (log-x) and distance from init, per model/task.

    Medians are over the stable runs of each (model, task, lr); unstable runs are thin lines of
    the lr's colour with a cross at their ``unstable_step``, diverged runs are left out (their
    series end in NaN). Step 0 cannot sit on a log axis, so Θ_0's accuracy (median over the
    stable runs of the panel) is a dashed horizontal line. Returns the PNG and SVG paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds = run_kinds(rows)
    models = sorted(rows["model"].unique())
    tasks = sorted(rows["task"].unique())
    lrs = sorted(rows["lr"].unique())
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(lrs), 1)))
    paths: list[Path] = []
    for key, ylabel in YLABELS.items():
        fig, axes = plt.subplots(
            len(models),
            len(tasks),
            figsize=(4.8 * len(tasks), 3.6 * len(models)),
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
                stable = runs[kinds[runs.index] == "stable"]
                if not stable.empty:
                    steps = np.asarray(stable["record_steps"].iloc[0], dtype=float)
                    values = np.nanmedian(np.asarray(list(stable[key]), dtype=float), axis=0)
                    ax.plot(*_curve(key, steps, values), "-o", color=color, ms=3)
                    if key == "kernel_acc":
                        net = np.nanmedian(np.asarray(list(stable["net_acc"]), dtype=float), axis=0)
                        ax.plot(steps[1:], net[1:], ":", color=color, lw=1.5)
                for run in runs[kinds[runs.index] == "unstable"].itertuples():
                    steps = np.asarray(run.record_steps, dtype=float)
                    x, y = _curve(key, steps, np.asarray(getattr(run, key), dtype=float))
                    ax.plot(x, y, "-", color=color, lw=0.8, alpha=0.7)
                    at = np.flatnonzero(x == run.unstable_step)
                    if len(at):
                        ax.plot(x[at], y[at], "x", color=color, ms=7, mew=1.5)
            init = cell.loc[kinds[cell.index] == "stable", "kernel_acc_init"].to_numpy(float)
            if key == "kernel_acc" and len(init):
                ax.axhline(float(np.nanmedian(init)), color="black", ls="--", lw=1)
            ax.set_xscale("log")
            if key == "velocity":
                ax.set_yscale("log")
            ax.set_xlabel("SGD step t (log scale)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{model.upper()} on {task}\n{_excluded_note(cell, kinds)}", fontsize=9)
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
        if (kinds == "unstable").any():
            label = "one unstable run (x: onset)"
            handles.append(Line2D([], [], color="gray", lw=0.8, marker="x", ms=6, label=label))
        axes[0][0].legend(handles=handles, fontsize=7)
        fig.suptitle(f"{TITLES[key]}\nmedian over stable runs; unstable runs drawn singly")
        paths += save_figure(fig, out_dir, f"ntk_dynamics_{key}")
    return paths
