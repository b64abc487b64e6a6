"""Figures of the ``bottleneck`` study (:mod:`symlab.experiments.bottleneck`).

``bottleneck_rank_and_cost``: (a) the rank profile across layers for every depth (median over
seeds, the rule #{s_i > 10⁻² s_max}; the deepest net's profiles at 10⁻³ and 10⁻¹ shaded as the
rule's sensitivity), (b) ‖θ‖² against depth with the fitted slope, its 95% band and a line of
slope k, (c) ‖θ‖² during training (first seed), so that the plateau the claims rely on is seen.
``bottleneck_spectra``: the deepest first-seed network's weight singular values per layer and
its centered representations' singular values relative to the largest, with the profile's
threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import plain_log_axis, save_figure
from symlab.stats import fit_slope


def _depth_colors(depths: list[int]):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    span = max(len(depths) - 1, 1)
    return {d: cmap(0.05 + 0.85 * i / span) for i, d in enumerate(depths)}


def _rank_and_cost(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    depths = sorted(rows["depth"].unique())
    colors = _depth_colors(depths)
    k = spec.rank
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.4), constrained_layout=True)

    ax = axes[0]
    for depth in depths:
        group = rows[rows["depth"] == depth]
        profile = np.median(np.array(group["rank_profile"].tolist(), dtype=float), axis=0)
        position = np.arange(1, depth) / depth
        ax.plot(position, profile, "o-", ms=3.5, lw=1.6, color=colors[depth])
    deepest = rows[rows["depth"] == depths[-1]]
    position = np.arange(1, depths[-1]) / depths[-1]
    low = np.median(np.array(deepest["rank_profile_high"].tolist(), dtype=float), axis=0)
    high = np.median(np.array(deepest["rank_profile_low"].tolist(), dtype=float), axis=0)
    ax.fill_between(position, low, high, color=colors[depths[-1]], alpha=0.18, lw=0)
    ax.axhline(k, color="crimson", ls="--", lw=1.2)
    ax.axvspan(0.25, 0.75, color="gray", alpha=0.08, lw=0)
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis, [1, 2, 3, 4, 6, 10, 20, 50, 100, 200])
    ax.set_ylim(0.8, spec.width * 1.3)
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"relative depth $\ell / L$ of the hidden layer")
    ax.set_ylabel(r"rank of $Z_\ell$: $\#\{s_i > 10^{-2} s_{\max}\}$ (centered)")
    ax.set_title("(a) rank profile (median over seeds)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)

    ax = axes[1]
    for depth in depths:
        group = rows[rows["depth"] == depth]
        ax.plot(
            group["depth"], group["param_norm_sq"], "o", color=colors[depth], ms=6, mec="k", mew=0.5
        )
    deep = rows[rows["depth"] >= spec.fit_min_depth]
    if deep["depth"].nunique() >= 2 and len(deep) >= deep["seed"].nunique() + 2:
        fit = fit_slope(deep["depth"], deep["param_norm_sq"], deep["seed"])
        b = float(np.mean(list(fit.intercepts.values())))
        grid = np.linspace(min(depths), max(depths), 50)
        centre = float(deep["depth"].mean())
        ax.plot(grid, fit.slope * grid + b, "-", color="black", lw=1.4)
        pivot = fit.slope * centre + b
        ax.fill_between(
            grid, pivot + fit.low * (grid - centre), pivot + fit.high * (grid - centre),
            color="black", alpha=0.12, lw=0,
        )  # fmt: skip
        ax.plot(grid, pivot + k * (grid - centre), "--", color="crimson", lw=1.2)
        ax.set_title(
            f"(b) $\\|\\theta\\|^2$ vs depth: slope {fit.slope:.2f} "
            f"[{fit.low:.2f}, {fit.high:.2f}]",
            fontsize=10,
        )
        ax.axvspan(min(depths) - 0.5, spec.fit_min_depth - 0.5, color="gray", alpha=0.08, lw=0)
    else:
        ax.set_title(r"(b) $\|\theta\|^2$ vs depth (too few depths to fit)", fontsize=10)
    ax.set_xlabel(r"depth $L$ (weight matrices)")
    ax.set_ylabel(r"parameter norm $\|\theta\|^2$ at the end of training")
    ax.grid(True, alpha=0.25)

    ax = axes[2]
    first = rows["seed"].min()
    for rec in rows[rows["seed"] == first].sort_values("depth").itertuples():
        curve = np.array(rec.norm_curve, dtype=float)
        ax.plot(curve[:, 0], curve[:, 1] / rec.depth, "-", color=colors[rec.depth], lw=1.4)
        ax.axvline(spec.steps, color="gray", ls=":", lw=1)
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis, [1, 2, 3, 4, 5, 6, 8, 10, 20, 40, 60, 100, 200, 400])
    ax.set_xlabel("Adam step (dotted: learning rate lowered)")
    ax.set_ylabel(r"$\|\theta\|^2 / L$ during training")
    ax.set_title(f"(c) convergence of the norm (seed {first})", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)

    handles = [
        Line2D([], [], color=colors[d], marker="o", lw=1.6, label=f"$L$ = {d}") for d in depths
    ]
    handles += [
        Line2D([], [], color="crimson", ls="--", lw=1.2, label=f"$k$ = {k} (rank; slope $R^{{(0)}}$)"),
        Line2D([], [], color="black", lw=1.4, label="least-squares fit, 95% band"),
        plt.Rectangle((0, 0), 1, 1, color=colors[depths[-1]], alpha=0.18, lw=0,
                      label=f"$L$ = {depths[-1]} at $10^{{-3}}$ … $10^{{-1}} s_{{\\max}}$"),
        plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.12, lw=0,
                      label="(a) middle half; (b) not fitted"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(
        f"Bottleneck structure: ReLU MLPs of width {spec.width}, $\\lambda$ = {spec.lam:g}, "
        f"$N$ = {spec.n_train}, task of bottleneck rank $k$ = {k}"
    )
    return save_figure(fig, out_dir, "bottleneck_rank_and_cost")


def _spectra(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    depth = int(rows["depth"].max())
    rec = rows[(rows["depth"] == depth)].sort_values("seed").iloc[0]
    k = spec.rank
    weights = [np.asarray(s, dtype=float) for s in rec["weight_sv"]]
    reps = [np.asarray(s, dtype=float) for s in rec["representation_sv"]]
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.4), constrained_layout=True)
    shown = min(8, min(len(s) for s in weights))
    cmap = plt.get_cmap("tab10")
    for i in range(shown):
        values = [s[i] if len(s) > i else np.nan for s in weights]
        style = "-" if i < k else "--"
        axes[0].plot(np.arange(1, depth + 1), values, style, marker="o", ms=3, color=cmap(i),
                     lw=2 if i < k else 1, label=f"$s_{{{i + 1}}}$")  # fmt: skip
    axes[0].axhline(1.0, color="gray", lw=0.8)
    axes[0].set_yscale("log")
    axes[0].set_xlabel(r"layer $\ell$")
    axes[0].set_ylabel(r"singular values of $W_\ell$")
    axes[0].set_title(f"(a) weights $W_\\ell$ (top $k$ = {k} solid)", fontsize=10)
    shown = min(10, min(len(s) for s in reps))
    for i in range(shown):
        values = [s[i] / s[0] if len(s) > i and s[0] > 0 else np.nan for s in reps]
        style = "-" if i < k else "--"
        axes[1].plot(np.arange(1, depth), values, style, marker="o", ms=3, color=cmap(i),
                     lw=2 if i < k else 1, label=f"$s_{{{i + 1}}}$")  # fmt: skip
    axes[1].axhline(1e-2, color="crimson", ls=":", lw=1.2, label=r"rank rule $10^{-2}$")
    axes[1].set_yscale("log")
    axes[1].set_ylim(bottom=1e-6)
    axes[1].set_xlabel(r"hidden layer $\ell$")
    axes[1].set_ylabel(r"$s_i(Z_\ell) / s_1(Z_\ell)$, centered post-ReLU")
    axes[1].set_title(r"(b) hidden representations $Z_\ell$, relative to $s_1$", fontsize=10)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.25)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.suptitle(f"Spectra across layers: depth $L$ = {depth}, seed {int(rec['seed'])}, $k$ = {k}")
    return save_figure(fig, out_dir, "bottleneck_spectra")


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """Both figures (module docstring); diverged runs are left out."""
    rows = rows[~rows["diverged"].astype(bool)]
    if rows.empty:
        return []
    out_dir = Path(out_dir)
    return _rank_and_cost(rows, spec, out_dir) + _spectra(rows, spec, out_dir)
