"""Figures of the ``hidden-symmetries`` study: the fraction of networks at full functional
dimension against depth and input dimension as the bracket [proven at the bound, not proven
below it] (error bars of different curves offset so that none hides another), and the
attribution of the deficit to its mechanisms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure


def _error_bars(cell: pd.DataFrame) -> np.ndarray:
    """Wilson interval as non-negative error-bar lengths (rounding can put p a hair outside)."""
    return np.clip([cell.frac_full - cell.frac_full_lo, cell.frac_full_hi - cell.frac_full], 0, 1)


# how the figures name each sampler
SAMPLER_NAMES = {
    "gaussian": "Gaussian",
    "multiscale": "multi-scale",
    "boundary": "boundary-seeking",
}


def distinct_colors(n: int) -> np.ndarray:
    """n colours of a qualitative palette (tab10), so that adjacent depths are told apart."""
    import matplotlib.pyplot as plt

    return plt.cm.tab10(np.arange(n) % 10)


def _dodge(xs: np.ndarray, n_curves: int) -> np.ndarray:
    """Horizontal offset of each curve's points, centred on the true x, so error bars of curves
    sharing an x stay apart: 0.36 of the smallest spacing of the x values, spread over the curves.
    """
    xs = np.unique(np.asarray(xs, dtype=float))
    spacing = float(np.diff(xs).min()) if len(xs) > 1 else 1.0
    if n_curves < 2:
        return np.zeros(max(n_curves, 1))
    return 0.36 * spacing * (np.arange(n_curves) / (n_curves - 1) - 0.5)


def _fraction_panels(
    table: pd.DataFrame, x: str, panel: str, curve: str, labels: dict[str, str], title: str
):
    """Rows: samplers; columns: values of ``panel``; one curve per value of ``curve``; x = ``x``.

    The curves' points are offset horizontally (see :func:`_dodge`) so that error bars at one x
    do not hide each other; one legend, below the panels, serves the figure. With a single
    value of ``panel`` the samplers are laid out side by side instead (one row).
    """
    import matplotlib.pyplot as plt

    samplers = sorted(table["sampler"].unique())
    panels, curves = sorted(table[panel].unique()), sorted(table[curve].unique())
    colors = distinct_colors(len(curves))
    offsets = _dodge(table[x].to_numpy(), len(curves))
    one_row = len(panels) == 1
    rows, columns = (1, len(samplers)) if one_row else (len(samplers), len(panels))
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(3.3 * columns + 0.6, 2.9 * rows + 1.4),
        squeeze=False,
        sharey=True,
        constrained_layout=True,
    )
    handles = {}
    for i, sampler in enumerate(samplers):
        for j, panel_value in enumerate(panels):
            ax = axes[0, i] if one_row else axes[i, j]
            for color, offset, curve_value in zip(colors, offsets, curves):
                cell = table[
                    (table.sampler == sampler)
                    & (table[panel] == panel_value)
                    & (table[curve] == curve_value)
                ].sort_values(x)
                if cell.empty:
                    continue
                handles[curve_value] = ax.errorbar(
                    cell[x] + offset, cell.frac_full, yerr=_error_bars(cell), marker="o", ms=4,
                    capsize=2, lw=1.4, elinewidth=1, color=color,
                    label=f"{labels[curve]} {curve_value}",
                )  # fmt: skip
                if "frac_full_upper" in cell:
                    # the bracket's upper side: networks not proven below the bound
                    ax.vlines(cell[x] + offset, cell.frac_full, cell.frac_full_upper,
                              color=color, alpha=0.3, lw=5)  # fmt: skip
                    ax.plot(cell[x] + offset, cell.frac_full_upper, ls="", marker="v", ms=4,
                            mfc="none", color=color)  # fmt: skip
            name = SAMPLER_NAMES.get(sampler, sampler)
            ax.set_title(f"{labels[panel]} {panel_value}, {name} inputs", fontsize=9)
            ax.set_xticks(sorted(table[x].unique()))
            ax.set_ylim(-0.04, 1.04)
            ax.grid(alpha=0.3)
            if one_row or i == len(samplers) - 1:
                ax.set_xlabel(labels[f"{x}_axis"])
            if (i if one_row else j) == 0:
                ax.set_ylabel("fraction at full\nfunctional dimension")
    fig.legend(
        handles=[handles[c] for c in curves if c in handles], loc="outside lower center",
        ncols=len(curves), fontsize=8, frameon=False,
    )  # fmt: skip
    fig.suptitle(title, fontsize=10)
    return fig


def plot_figures(rows: pd.DataFrame, table: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """Fraction at full FD vs depth and vs input dimension; deficit attribution scatter."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    labels = {
        "n0": "$n_0$ =",
        "width": "width",
        "depth": "depth",
        "depth_axis": "depth $L$ (hidden layers)",
        "n0_axis": "input dimension $n_0$",
        "width_axis": "hidden width",
        "design": "",
        "n0 = width_axis": "input dimension $n_0$ = hidden width",
    }
    networks = table["networks"]
    per_point = (
        f"{networks.min()}" if networks.min() == networks.max()
        else f"{networks.min()}–{networks.max()}"
    )  # fmt: skip
    no_symmetries = (
        "Fraction of networks at full functional dimension (no hidden symmetries) vs {}\n"
        r"(rank of the parameter Jacobian $= D - \#$hidden neurons)"
        "\n"
    )
    ci = (
        f"{per_point} networks per point (dot: proven at the bound, 95% Wilson interval; pale bar "
        "up to ▽: not proven below it); curves offset horizontally"
    )
    paths = save_figure(
        _fraction_panels(table, "depth", "n0", "width", labels,
                         no_symmetries.format("depth") + ci),
        out_dir,
        "full_fd_vs_depth",
    )  # fmt: skip
    paths += save_figure(
        _fraction_panels(table, "n0", "width", "depth", labels,
                         no_symmetries.format("input dimension") + ci),
        out_dir,
        "full_fd_vs_input_dim",
    )  # fmt: skip
    if table["width"].nunique() > 1:
        paths += save_figure(
            _fraction_panels(table, "width", "n0", "depth", labels,
                             no_symmetries.format("width at a fixed input dimension") + ci),
            out_dir,
            "full_fd_vs_width",
        )  # fmt: skip
    diagonal = table[table["n0"] == table["width"]]
    if diagonal["n0"].nunique() > 1:
        diagonal = diagonal.assign(**{"n0 = width": diagonal["n0"], "design": "diagonal"})
        paths += save_figure(
            _fraction_panels(diagonal, "n0 = width", "design", "depth", labels,
                             no_symmetries.format("input dimension = width (the paper's cells)")
                             + ci),
            out_dir,
            "full_fd_along_diagonal",
        )  # fmt: skip

    samplers, depths = sorted(rows["sampler"].unique()), sorted(rows["depth"].unique())
    colors = distinct_colors(len(depths))
    top = max(1, int(rows["deficit"].max()))
    fig, axes = plt.subplots(
        1, len(samplers), figsize=(3.9 * len(samplers) + 1.3, 4.2), squeeze=False,
        sharex=True, sharey=True, constrained_layout=True,
    )  # fmt: skip
    for ax, sampler in zip(axes[0], samplers):
        sub = rows[rows.sampler == sampler]
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        for color, depth in zip(colors, depths):
            cell = sub[sub.depth == depth]
            ax.scatter(
                cell["deficit"], cell["predicted_deficit"], s=12, alpha=0.6, color=color, lw=0
            )
        deficient = sub[sub["deficit"] > 0]
        explained = int((deficient["predicted_deficit"] == deficient["deficit"]).sum())
        ax.text(
            0.04, 0.96,
            f"fully explained: {explained} of the\n{len(deficient)} networks with a deficit",
            transform=ax.transAxes, va="top", fontsize=8,
        )  # fmt: skip
        ax.set_xlabel(r"observed deficit $D - \#\mathrm{hidden} - \mathrm{rank}$")
        ax.set_title(f"{SAMPLER_NAMES.get(sampler, sampler)} inputs", fontsize=9)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("predicted deficit (mechanisms)")
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, color=c, alpha=0.8, label=f"depth {d}")
        for c, d in zip(colors, depths)
    ] + [
        Line2D([], [], color="k", ls="--", lw=0.8, label="fully explained\n(predicted = observed)")
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(
        "Deficit explained by dead and always-active neurons and unused parameters\n"
        "(one point per network; below the diagonal: part of the deficit unexplained)",
        fontsize=10,
    )
    return paths + save_figure(fig, out_dir, "deficit_attribution")
