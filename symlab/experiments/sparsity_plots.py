"""Figures of the ``sparsity`` study (:mod:`symlab.experiments.sparsity`).

``sparsity_width``: (a) the final objective against the width per (task, N) (minimum over seeds,
every seed faint), the plateau onset marked; (b) the width after :func:`symlab.bias.reduce_width`
of the widest sweep nets and of the tight example's nets (trained above N(N+1)) against N, with
N(N+1) and the trained widths; (c) the tight example: the width
after reduction and the trained net's alive neurons against N, with N²/4 and N(N+1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import plain_log_axis, save_figure


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:  # noqa: ANN001
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from symlab.experiments.sparsity import plateau_onsets

    width_rows = rows[rows["part"] == "width"]
    tight = rows[rows["part"] == "tight"]
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.4), constrained_layout=True)
    ax = axes[0]
    colors = plt.get_cmap("tab10")
    if not width_rows.empty:
        onsets = plateau_onsets(width_rows, spec.plateau_rtol)
        for index, ((task, n), group) in enumerate(width_rows.groupby(["task", "n"])):
            best = group.groupby("width")["objective"].min().sort_index()
            ax.plot(group["width"], group["objective"], ".", color=colors(index), alpha=0.3)
            ax.plot(best.index, best.values, "o-", color=colors(index), ms=4,
                    label=f"{task}, N = {n}")  # fmt: skip
            cell = onsets[(onsets["task"] == task) & (onsets["n"] == n)].iloc[0]
            ax.plot([cell["onset"]], [best[cell["onset"]]], "v", ms=11, mfc="none",
                    mec=colors(index), mew=2)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis, sorted(width_rows["width"].unique()))
        ax.legend(fontsize=8, loc="lower left")
    ax.set_xlabel("hidden width (depth 3)")
    ax.set_ylabel(r"final objective $C + \lambda\|\theta\|^2$")
    ax.set_title(f"(a) loss vs width (min over seeds; ▽ plateau onset, λ = {spec.lam:g})",
                 fontsize=10)  # fmt: skip
    ax.grid(True, which="both", alpha=0.25)

    ax = axes[1]
    if not width_rows.empty:
        for index, (task, group) in enumerate(onsets.groupby("task")):
            ax.plot(group["n"], group["reduced_width_widest"], "o-", color=colors(index),
                    label=f"{task}: width after reduce_width")  # fmt: skip
        ax.axhline(
            int(onsets["widest"].max()), color="gray", ls=":", label="trained width (sweeps)"
        )
    if not tight.empty:
        best = tight.loc[tight.groupby("n")["objective"].idxmin()].sort_values("n")
        ax.plot(best["n"], best["reduced_width"], "s-", color="C3",
                label="tight example: after reduce_width")  # fmt: skip
        ax.plot(best["n"], best["trained_width"], "s:", color="C3", mfc="none",
                label="tight example: trained width")  # fmt: skip
    ns = np.array(sorted(rows["n"].unique()))
    if len(ns):
        ax.plot(ns, ns * (ns + 1), "k--", label="N(N+1)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis, list(ns))
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("training points N")
    ax.set_ylabel("neurons per layer (max over layers)")
    ax.set_title("(b) width after reduction vs N (widest sweep nets, tight example)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)

    ax = axes[2]
    if not tight.empty:
        best = tight.loc[tight.groupby("n")["objective"].idxmin()].sort_values("n")
        ns = best["n"].to_numpy()
        ax.plot(ns, best["reduced_width"], "o-", color="C0", label="after reduce_width")
        ax.plot(ns, [max(a) for a in best["alive"]], "s:", color="C1", mfc="none",
                label="alive in the trained net")  # fmt: skip
        ax.plot(ns, ns**2 / 4, "k-", lw=1, label="N²/4 (Prop. 14)")
        ax.plot(ns, best["trained_width"], color="gray", ls=":", label="trained width")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("N (X = I_N, target K_(N/2,N/2))")
    ax.set_ylabel("neurons")
    ax.set_title(f"(c) tight example, least-objective net per N (λ = {spec.tight_lam:g})",
                 fontsize=10)  # fmt: skip
    ax.grid(True, alpha=0.25)
    return save_figure(fig, Path(out_dir), "sparsity_width")
