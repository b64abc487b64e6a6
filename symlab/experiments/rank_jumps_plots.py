"""Figures of the ``rank-jumps`` study (:mod:`symlab.experiments.rank_jumps`).

``rank_jumps``: (a) the numerical rank of A against the step for the first task's runs, GD
(dashed) and SGD (solid) from the same starts under the same (λ, η) schedule, the target rank
dotted; (b) the leading singular
values of A along the first SGD run that jumps (or the first run), with the rank threshold
of its largest; (c) the matrix of SGD rank transitions T[i, j] (from rank i to rank j) over
every run, with the counts written in the cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:  # noqa: ANN001
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from symlab.experiments.rank_jumps import transition_counts

    row = rows.sort_values("task_seed").iloc[0]
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.4), constrained_layout=True)
    ax = axes[0]
    colors = plt.get_cmap("tab10")
    shown = min(len(row["sgd_ranks"]), 6)
    offset = 0.06
    for s in range(shown):
        jitter = (s - shown / 2) * offset / shown
        ax.step(row["gd_steps"], np.array(row["gd_ranks"][s]) + jitter, where="post", ls="--",
                color=colors(s), lw=1.2, alpha=0.8)  # fmt: skip
        ax.step(row["sgd_steps"], np.array(row["sgd_ranks"][s]) + jitter, where="post", ls="-",
                color=colors(s), lw=1.6)  # fmt: skip
    ax.axhline(spec.rank, color="k", ls=":", lw=1)
    if spec.anneal_steps:
        ax.axvline(spec.anneal_steps, color="gray", lw=0.8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step (from the GD minimum)")
    ax.set_ylabel(rf"rank of $A$: $\#\{{s_i > {spec.rank_rtol:g}\, s_{{\max}}\}}$")
    end = "; gray line: end of annealing" if spec.anneal_steps else ""
    ax.set_title(
        f"(a) GD dashed, SGD solid, same schedule ({shown} starts; dotted: r* = {spec.rank}{end})",
        fontsize=9,
    )
    ax.grid(True, alpha=0.25)

    ax = axes[1]
    ranks = row["sgd_ranks"]
    pick = next((s for s in range(len(ranks)) if ranks[s][-1] < ranks[s][0]), 0)
    top = min(max(row["start_ranks"]) + 1, len(row["sgd_sv"][pick][0]))
    values = np.array(row["sgd_sv"][pick])[:, :top]
    for i in range(values.shape[1]):
        ax.plot(row["sgd_steps"], values[:, i], lw=1.5, label=f"$s_{i + 1}$")
    gd_values = np.array(row["gd_sv"][pick])[:, :top]
    for i in range(gd_values.shape[1]):
        ax.plot(row["gd_steps"], gd_values[:, i], lw=1, ls="--", color="gray")
    ax.plot(row["sgd_steps"], spec.rank_rtol * values[:, 0], ":", color="k", lw=1,
            label="threshold")  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(max(values.min(), 1e-8) / 2, values.max() * 2)
    ax.set_xlabel("step (from the GD minimum)")
    ax.set_ylabel("singular values of $A$")
    ax.set_title(f"(b) SGD run {pick} (GD from the same start: gray dashed)", fontsize=10)
    ax.legend(fontsize=8, ncol=2, loc="lower left")
    ax.grid(True, which="both", alpha=0.25)

    ax = axes[2]
    sgd = [list(s) for r in rows["sgd_ranks"] for s in r]
    counts = transition_counts(sgd, spec.dim + 1)
    used = sorted({r for seq in sgd for r in seq})
    lo, hi = min(used), max(used)
    sub = counts[lo : hi + 1, lo : hi + 1]
    ax.imshow(sub, cmap="Blues", origin="lower")
    for i in range(sub.shape[0]):
        for j in range(sub.shape[1]):
            if i != j:
                ax.text(j, i, str(sub[i, j]), ha="center", va="center",
                        color="white" if sub[i, j] > sub.max() / 2 else "black")  # fmt: skip
    ticks = list(range(hi - lo + 1))
    ax.set_xticks(ticks, [str(lo + t) for t in ticks])
    ax.set_yticks(ticks, [str(lo + t) for t in ticks])
    ax.set_xlabel("to rank j")
    ax.set_ylabel("from rank i")
    ax.set_title(f"(c) SGD rank transitions ({len(sgd)} runs; above the diagonal: up)", fontsize=10)
    return save_figure(fig, Path(out_dir), "rank_jumps")
