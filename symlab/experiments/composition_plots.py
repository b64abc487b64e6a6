"""Figure of the ``composition`` study (:mod:`symlab.experiments.composition`).

``composition_scaling``: one panel per (ν_g, ν_h) (rows ν_g, columns ν_h): relative test error
against N on log-log axes for each model, every seed faint, the median over seeds solid with
markers, the fitted exponent a (test error ∝ N^−a, 95% interval, with the smallest N of the
fit when the learning regime starts later) in the legend, and a dashed
grey guide of slope −r, r = min(1/2, ν_g/d_in, ν_h/d_mid) (the unverified prediction), through
the accordion net's (else the first model's) median at the smallest N; a dotted line at
``fit_max_error``: N with median errors above it are left out of the fits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure
from symlab.experiments.composition_verdict import slope_table

COLORS = {"accordion": "tab:blue", "deep": "tab:orange", "shallow": "tab:green"}


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """The figure of the module docstring; diverged runs are left out."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    rows = rows[~rows["diverged"].astype(bool) & (rows["test_error"] > 0)]
    if rows.empty:
        return []
    slopes = slope_table(rows, spec).set_index(["model", "nu_g", "nu_h"])
    nu_g = sorted(rows["nu_g"].unique())
    nu_h = sorted(rows["nu_h"].unique())
    fig, axes = plt.subplots(len(nu_g), len(nu_h), figsize=(4.6 * len(nu_h), 3.8 * len(nu_g)),
                             squeeze=False, sharex=True, constrained_layout=True)  # fmt: skip
    ns = sorted(rows["n"].unique())
    for i, g in enumerate(nu_g):
        for j, h in enumerate(nu_h):
            ax = axes[i, j]
            cell = rows[(rows["nu_g"] == g) & (rows["nu_h"] == h)]
            anchor = None
            for model in [m for m in spec.models if m in set(cell["model"])]:
                part = cell[cell["model"] == model]
                color = COLORS[model]
                for _, seed in part.groupby("seed"):
                    seed = seed.sort_values("n")
                    ax.plot(seed["n"], seed["test_error"], "-", color=color, alpha=0.35, lw=0.9)
                median = part.groupby("n")["test_error"].median()
                fit = slopes.loc[(model, g, h)]
                start = "" if fit["fit_from"] == ns[0] else f" on N ≥ {fit['fit_from']:g}"
                label = (f"{model}: a = {fit['exponent']:.2f} [{fit['low']:.2f}, {fit['high']:.2f}]"
                         f"{start}" if np.isfinite(fit["exponent"])
                         else f"{model}: no fit (under 3 sizes with test error "
                         f"< {spec.fit_max_error:g})")  # fmt: skip
                ax.plot(median.index, median.values, "o-", color=color, lw=1.8, ms=4, label=label)
                if anchor is None or model == "accordion":
                    anchor = (median.index[0], median.values[0])
            r = slopes.loc[(slopes.index.get_level_values(1) == g)
                           & (slopes.index.get_level_values(2) == h), "predicted"].iloc[0]  # fmt: skip
            harder = slopes.loc[(slopes.index.get_level_values(1) == g)
                                & (slopes.index.get_level_values(2) == h), "harder"].iloc[0]  # fmt: skip
            grid = np.array([ns[0], ns[-1]], dtype=float)
            ax.plot(grid, anchor[1] * (grid / anchor[0]) ** -r, "--", color="0.45", lw=1,
                    label=f"guide N^(−{r:.2f}) (predicted r, unverified)")  # fmt: skip
            ax.axhline(spec.fit_max_error, color="0.6", lw=0.8, ls=":",
                       label=f"fit threshold {spec.fit_max_error:g} (1: the mean's error)")  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(ns)
            ax.set_xticklabels([f"{n:g}" for n in ns])
            ax.minorticks_off()
            low, high = ax.get_ylim()  # a panel spanning less than ×4 gets finer ticks
            subs = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0) if high < 4 * low else (
                1.0, 1.5, 2.0, 3.0, 5.0, 7.0)  # fmt: skip
            ax.yaxis.set_major_locator(LogLocator(subs=subs))
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.set_title(f"ν_g = {g:g}, ν_h = {h:g}: harder = {harder}", fontsize=10)
            if i == len(nu_g) - 1:
                ax.set_xlabel("training points N")
            if j == 0:
                ax.set_ylabel("test MSE / Var(y)")
            ax.grid(True, which="major", alpha=0.25)
            ax.legend(fontsize=7, frameon=True, framealpha=0.85, loc="lower left")
    fig.suptitle(f"h∘g, g: R^{spec.d_in} → R^{spec.d_mid}, h: R^{spec.d_mid} → R^{spec.d_out} "
                 f"(Matérn GPs); faint: seeds, solid: median; a = fitted decay exponent [95%]")  # fmt: skip
    return save_figure(fig, Path(out_dir), "composition_scaling")
