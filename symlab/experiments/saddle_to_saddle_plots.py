"""Figures of the ``saddle-to-saddle`` study.

- ``saddle_to_saddle_traces_L{depth}``: for small / medium / large init, the train and test errors
  (top) and the leading singular values of A_θ (bottom) against the step on log-log axes; the
  plateaus found by the detector shaded and labelled with their rank (first init seed), the
  target's singular values and the rank threshold dotted, the other seeds thin, and for two
  layers the self-consistent dynamics of Tu et al. dashed.
- ``saddle_to_saddle_phase``: over (γ_σ², γ_w), the minimum test error, the stable rank at that
  point, log₁₀ of the largest distance between GD and the self-consistent dynamics, and the steps
  to the minimum (Tu et al. 2024, Fig. 2), with the lines σ²w = d (lazy above) and σ⁴w = 1
  (init noise larger than the target above).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure

INIT_ORDER = ("small", "medium", "large")


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:  # noqa: ANN001
    """All figures of the study (those whose part was run)."""
    paths: list[Path] = []
    traces = rows[rows["part"] == "trace"]
    for depth in sorted(traces["depth"].unique()):
        paths += plot_traces(traces[traces["depth"] == depth], spec, Path(out_dir))
    cells = rows[rows["part"] == "cell"]
    if not cells.empty:
        paths += plot_phase(cells, spec, Path(out_dir))
    return paths


def plot_traces(traces: pd.DataFrame, spec, out_dir: Path) -> list[Path]:  # noqa: ANN001
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    depth = int(traces["depth"].iloc[0])
    k = spec.rank
    inits = [i for i in INIT_ORDER if i in set(traces["init"])]
    fig, axes = plt.subplots(2, len(inits), figsize=(4.6 * len(inits), 7.2), squeeze=False,
                             sharex="col", constrained_layout=True)  # fmt: skip
    colors = plt.cm.viridis(np.linspace(0, 0.9, k + 3))
    for col, init in enumerate(inits):
        rec = traces[traces["init"] == init].iloc[0]
        steps = np.asarray(rec["steps"], dtype=float)
        keep = steps >= 1
        top, bottom = axes[0, col], axes[1, col]
        for seed, (train, test) in enumerate(zip(rec["train_error"], rec["test_error"])):
            lw, alpha = (1.8, 1.0) if seed == 0 else (0.8, 0.45)
            top.plot(steps[keep], np.asarray(train)[keep], "-", color="black", lw=lw, alpha=alpha)
            top.plot(steps[keep], np.asarray(test)[keep], "--", color="tab:red", lw=lw, alpha=alpha)
        for p in rec["plateaus"][0]:
            for ax in (top, bottom):
                ax.axvspan(p["start"], p["end"], color="tab:blue", alpha=0.12, lw=0)
            top.annotate(f"rank {p['rank']}", (np.sqrt(p["start"] * p["end"]), p["loss"]),
                         textcoords="offset points", xytext=(0, -11), ha="center", fontsize=8,
                         color="tab:blue")  # fmt: skip
        spectra = np.asarray(rec["singular_values"])  # (seeds, records, k + 3)
        for i in range(spectra.shape[2]):
            for seed in range(spectra.shape[0]):
                lw, alpha = (1.6, 1.0) if seed == 0 else (0.7, 0.4)
                bottom.plot(
                    steps[keep], spectra[seed, keep, i], color=colors[i], lw=lw, alpha=alpha
                )
        if len(rec["sc_singular_values"]):
            sc = np.asarray(rec["sc_singular_values"])
            for i in range(sc.shape[1]):
                bottom.plot(steps[keep], sc[keep, i], "--", color="black", lw=0.9)
        for s in rec["target_singular_values"][:k]:
            bottom.axhline(s, color="gray", ls=":", lw=1)
        threshold = spec.rank_threshold * rec["target_singular_values"][k - 1]
        bottom.axhline(threshold, color="tab:blue", ls="-.", lw=1)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
        n_s2s = sum(rec["saddle_to_saddle"])
        top.set_title(
            f"{init} init: ε = {rec['scale']:.0e}, σ² = {rec['variance']:.2g}\n"
            f"plateau ranks {rec['plateau_ranks'][0] or 'none'}; saddle-to-saddle in "
            f"{n_s2s}/{len(rec['saddle_to_saddle'])} inits",
            fontsize=9,
        )
        bottom.set_xlabel(r"GD step $t$")
    axes[0, 0].set_ylabel(r"error per entry")
    axes[1, 0].set_ylabel(r"singular values of $A_\theta = W_L\cdots W_1$")
    handles = [
        Line2D([], [], color="black", lw=1.8, label="train error (observed entries)"),
        Line2D([], [], color="tab:red", ls="--", lw=1.8, label=r"test error $\|A-A^*\|_F^2/d^2$"),
        Patch(color="tab:blue", alpha=0.12, label="plateau (detector, first init)"),
        *[Line2D([], [], color=colors[i], lw=1.6, label=f"$s_{i + 1}(A_\\theta)$")
          for i in range(k + 3)],
        Line2D([], [], color="gray", ls=":", lw=1, label=r"$s_i(A^*)$"),
        Line2D([], [], color="tab:blue", ls="-.", lw=1,
               label=f"rank threshold {spec.rank_threshold:g}" + r"$\,s_k(A^*)$"),
        Line2D([], [], color="gray", lw=0.7, alpha=0.4, label="other inits"),
    ]  # fmt: skip
    if depth == 2:
        handles.append(Line2D([], [], color="black", ls="--", lw=0.9,
                              label="self-consistent dynamics (Tu et al.;\n"
                                    "theory for w ≫ d), first init"))  # fmt: skip
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(
        f"Depth {depth} linear net, width {int(traces['width'].iloc[0])}: completing "
        f"{spec.trace_observed:g} of a rank-{k} {spec.dim}×{spec.dim} target "
        f"($s_i \\propto {spec.trace_spectrum_ratio:g}^{{i-1}}$)"
    )
    return save_figure(fig, out_dir, f"saddle_to_saddle_traces_L{depth}")


def plot_phase(cells: pd.DataFrame, spec, out_dir: Path) -> list[Path]:  # noqa: ANN001
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    table = cells.groupby(["gamma_sigma2", "gamma_w"]).median(numeric_only=True).reset_index()
    gs = np.sort(table["gamma_sigma2"].unique())
    gw = np.sort(table["gamma_w"].unique())
    sr_star = float(table["target_stable_rank"].median())
    panels = [
        ("min_test_error", r"minimum test error $\|A-A^*\|_F^2/d^2$", "viridis", False),
        ("stable_rank", rf"stable rank at the minimum (sr$(A^*)$ = {sr_star:.2f})", "magma", False),
        (
            "sc_distance_max",
            r"$\log_{10}\,\mathrm{max}_t\,\|A^{GD}_t-A^{SC}_t\|_F/\|A^*\|_F$",
            "cividis",
            True,
        ),
        ("best_step", "GD steps to the minimum", "plasma", False),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 9), constrained_layout=True)
    for ax, (column, title, cmap, log) in zip(axes.flat, panels):
        grid = table.pivot(index="gamma_w", columns="gamma_sigma2", values=column)
        values = grid.reindex(index=gw, columns=gs).to_numpy(float)
        if log:
            values = np.log10(np.maximum(values, 1e-16))
        mesh = ax.pcolormesh(_edges(gs), _edges(gw), values, cmap=cmap, shading="flat")
        fig.colorbar(mesh, ax=ax)
        x = np.linspace(_edges(gs)[0], _edges(gs)[-1], 50)
        ax.plot(x, 1 - x, color="white", lw=2)  # σ²w = d
        ax.plot(x, 1 - spec.active_margin - x, color="white", lw=1.2, ls="--")
        ax.plot(x, -2 * x, color="tab:red", lw=2)  # σ⁴w = 1
        ax.set_xlim(_edges(gs)[0], _edges(gs)[-1])
        ax.set_ylim(_edges(gw)[0], _edges(gw)[-1])
        ax.set_xlabel(r"$\gamma_{\sigma^2}$  ($\sigma^2 = d^{\gamma_{\sigma^2}}$)")
        ax.set_ylabel(r"$\gamma_w$  ($w = d^{\gamma_w}$)")
        ax.set_title(title, fontsize=10)
    handles = [
        Line2D([], [], color="white", lw=2, label=r"$\sigma^2 w = d$ (lazy above, active below)"),
        Line2D(
            [],
            [],
            color="white",
            lw=1.2,
            ls="--",
            label=rf"$\gamma_{{\sigma^2}}+\gamma_w = {1 - spec.active_margin:g}$ "
            "(verdict's active cells below, with $\\sigma^4 w \\leq 1$)",
        ),
        Line2D(
            [], [], color="tab:red", lw=2, label=r"$\sigma^4 w = 1$ (init noise > target above)"
        ),
    ]
    leg = fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9)
    leg.get_frame().set_facecolor("lightgray")
    fig.suptitle(
        f"Two-layer linear nets on $A^* + E$ (d = {spec.dim}, rank {spec.rank}, noise "
        f"{spec.noise:g}): Tu et al.'s phase diagram"
    )
    return save_figure(fig, out_dir, "saddle_to_saddle_phase")


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around sorted grid centres (half a spacing outside the ends)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.05, centres[0] + 0.05])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])
