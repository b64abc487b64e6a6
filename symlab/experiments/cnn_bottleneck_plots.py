"""Figures of the ``cnn-bottleneck`` study (:mod:`symlab.experiments.cnn_bottleneck`).

``cnn_bottleneck_maps_<task>``: for the deepest first-seed network of each task that passes the
study's fit gate (:func:`converged`; the deepest one when none does), one panel per
conv layer: the largest singular value of Ŵ_ℓ(m) at every frequency m (n × n map, frequency 0 at
the centre), relative to the layer's largest, with the task's frequencies circled.
``cnn_bottleneck_profile``: (a) the CBN rank of each layer against its relative depth for every
network (weights, solid; conv outputs, dashed), (b) ‖θ‖² against depth with the line fitted to
the networks that pass the gate (those the ``norm_slope`` claim uses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure
from symlab.stats import fit_slope


def converged(rows: pd.DataFrame, spec) -> pd.Series:
    """The study's fit gate (train error, last-fifth drop, layer imbalance within the spec's, and
    an objective within 1 + ``max_excess_objective`` of the lowest among the rows of the same
    task and depth: near-optimal parameters);
    with a polish, also an L-BFGS run that reached its tolerance or used at least a fifth of
    ``polish_iters`` iterations, counted over all the stages of a λ ladder (``polish_ladder``;
    a polish that stalls at once leaves the rebalanced first-order end point, whose imbalance
    is 0 by construction and says nothing about the L2 minimum; a last stage that stalls early
    after earlier stages moved has left it). The train error, last-fifth drop and imbalance are
    those of the last stage's end point (at the target λ)."""
    best = rows.groupby(["task", "depth"])["objective"].transform("min")
    gate = (
        (rows["train_error"] <= spec.max_train_error)
        & (rows["last_fifth_drop"] <= spec.max_last_drop)
        & (rows["imbalance"] <= spec.max_imbalance)
        & (rows["objective"] <= (1 + spec.max_excess_objective) * best)
    )
    if getattr(spec, "polish_iters", 0) and "polish_iterations" in rows:
        iterations = rows["polish_iterations"]
        if "polish_ladder" in rows:  # rows stored before the ladder have no such column
            iterations = pd.Series(
                [sum(int(stage[3]) for stage in ladder) if isinstance(ladder, list) and ladder
                 else last for ladder, last in zip(rows["polish_ladder"], iterations)],
                index=rows.index,
            )  # fmt: skip
        used = iterations >= max(spec.polish_iters // 5, 1)
        gate &= used | (rows["polish_stop_reason"] == "tol")
    return gate


def _maps(rows: pd.DataFrame, spec, task: str, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    group = rows[rows["task"] == task]
    fitted = group[converged(group, spec)]
    group = fitted if len(fitted) else group  # the deepest network that passes the gate, if any
    rec = group.sort_values(["depth", "seed"], ascending=[False, True]).iloc[0]
    maps = [np.array(m, dtype=float) for m in rec["top_singular_map"]]
    depth = len(maps)
    cols = min(depth, 6)
    lines = -(-depth // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(2.3 * cols + 1.2, 2.3 * lines + 0.8),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    n = maps[0].shape[0]
    shift = n // 2
    image = None
    for i, ax in enumerate(axes.flat):
        if i >= depth:
            ax.axis("off")
            continue
        values = np.fft.fftshift(maps[i] / maps[i].max())
        image = ax.imshow(values, cmap="magma", vmin=0, vmax=1, origin="lower",
                          extent=(-shift - 0.5, n - shift - 0.5, -shift - 0.5, n - shift - 0.5))  # fmt: skip
        for m1, m2 in rec["task_frequencies"]:
            c1 = (m1 + shift) % n - shift
            c2 = (m2 + shift) % n - shift
            ax.plot(c2, c1, "o", mfc="none", mec="cyan", ms=9, mew=1.3)
        ax.set_title(f"layer {i + 1}", fontsize=9)
        ax.set_xticks([-shift, 0, n - shift - 1])
        ax.set_yticks([-shift, 0, n - shift - 1])
        ax.tick_params(labelsize=7)
        if i % cols == 0:
            ax.set_ylabel("$m_1$", fontsize=8)
        ax.set_xlabel("$m_2$", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label=r"$s_1(\hat W_\ell(m)) / \max_m s_1$")
    circled = " (task frequencies circled)" if len(rec["task_frequencies"]) else ""
    fig.suptitle(f"{task}: top singular value per frequency, depth {depth}, seed {int(rec['seed'])}, "
                 f"train error {rec['train_error']:.2g}{circled}")  # fmt: skip
    return save_figure(fig, out_dir, f"cnn_bottleneck_maps_{task}")


def _profile(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    tasks = list(dict.fromkeys(rows["task"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), constrained_layout=True)
    colors = {"frequencies": "tab:blue", "digits": "tab:red"}
    ax = axes[0]
    fits = converged(rows, spec)
    # the profile of the converged runs (those the claims use); all runs when none converged
    shown = rows[fits] if fits.any() else rows
    which = (
        f"{len(shown)} converged run{'s' * (len(shown) != 1)}"
        if fits.any()
        else "all runs, none converged"
    )
    for task in tasks:
        for _, rec in shown[shown["task"] == task].iterrows():
            depth = int(rec["depth"])
            position = np.arange(1, depth + 1) / depth
            alpha = 0.35 + 0.65 * depth / max(spec.depths)
            ax.plot(position, rec["cbn_rank"], "o-", ms=3, color=colors[task], alpha=alpha)
            ax.plot(position, rec["activation_cbn_rank"], "s--", ms=7, mfc="none",
                    color=colors[task], alpha=alpha * 0.6)  # fmt: skip
    for task in tasks:
        ax.plot([], [], "o-", color=colors[task], label=f"{task}: weights")
        ax.plot([], [], "s--", mfc="none", color=colors[task], label=f"{task}: conv outputs")
    ax.axvspan(0.25, 0.75, color="gray", alpha=0.08, lw=0, label="middle half (the claims)")
    largest = max(
        max(max(r), max(a)) for r, a in zip(shown["cbn_rank"], shown["activation_cbn_rank"])
    )
    if largest > 30:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.5 * largest + 1)  # room above the curves for the legend
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(r"relative depth $\ell / L$")
    zeros = " (0 not shown)" if largest > 30 else ""
    ax.set_ylabel(r"CBN rank: $\#\{s > 0.1\, s_{\max}\}$ over frequencies" + zeros)
    ax.set_title(f"(a) CBN-rank profile, {which} (darker = deeper)", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    ax = axes[1]
    for task in tasks:
        group = rows[rows["task"] == task]
        good = fits[group.index]
        if good.any():
            ax.plot(group["depth"][good], group["param_norm_sq"][good], "o", color=colors[task],
                    label=f"{task}: converged fit")  # fmt: skip
        if (~good).any():
            ax.plot(group["depth"][~good], group["param_norm_sq"][~good], "o", mfc="none",
                    color=colors[task], label=f"{task}: failed the gate (left out of the claims)")  # fmt: skip
        kept = group[good]
        if kept["depth"].nunique() >= 2 and len(kept) >= kept["seed"].nunique() + 2:
            fit = fit_slope(kept["depth"], kept["param_norm_sq"], kept["seed"])
            grid = np.array(sorted(kept["depth"].unique()), dtype=float)
            intercept = float(np.mean(list(fit.intercepts.values())))
            ax.plot(grid, fit.slope * grid + intercept, "-", color=colors[task], alpha=0.7,
                    label=f"{task}: slope over converged runs {fit.slope:.3g} "
                          f"[{fit.low:.3g}, {fit.high:.3g}]")  # fmt: skip
            if task == "frequencies":  # the claim's prediction: slope R / n²
                rank = float(np.median(kept["middle_cbn_rank"]))
                predicted = rank / spec.image_size**2
                centre = float(np.mean(grid))
                ax.plot(grid, fit.slope * centre + intercept + predicted * (grid - centre), ":",
                        color="black", label=f"slope R / n² = {rank:g} / {spec.image_size}² "
                                             f"= {predicted:.3g} (claim)")  # fmt: skip
    ax.set_xticks(sorted(rows["depth"].unique()))
    ax.set_xlabel("depth $L$ (conv layers)")
    ax.set_ylabel(r"$\|\theta\|^2$ after training")
    ax.set_title(f"(b) parameter norm against depth ({int(fits.sum())} of {len(rows)} runs "
                 "converged)", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, frameon=False)
    for a in axes:
        a.grid(True, which="both", alpha=0.25)
    return save_figure(fig, out_dir, "cnn_bottleneck_profile")


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """All figures (module docstring); diverged runs are left out."""
    rows = rows[~rows["diverged"].astype(bool)]
    if rows.empty:
        return []
    out_dir = Path(out_dir)
    paths = _profile(rows, spec, out_dir)
    for task in dict.fromkeys(rows["task"]):
        paths += _maps(rows, spec, task, out_dir)
    return paths
