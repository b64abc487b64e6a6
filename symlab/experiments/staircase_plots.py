"""Figures of the ``staircase`` study: coefficient curves with their plateaus, learning time against
d on log–log axes with the fitted slopes, and the time each monomial takes against the number of
new coordinates it adds (plus, for Leap-2 targets, samples/d against log d)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure

FLOOR = 0.5  # where a non-positive increment is drawn on the log axis (samples / d)


def plot_all(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    from symlab.experiments.staircase import TARGETS, fit_target, formula, target_leap

    leaps = {name: target_leap(TARGETS[name]) for name in rows["target"].unique()}
    paths = coefficient_curves(rows, spec, out_dir, leaps)
    paths += scaling(rows, spec, out_dir, leaps, fit_target, formula)
    paths += per_leap_times(rows, spec, out_dir, leaps)
    return paths


def coefficient_curves(rows, spec, out_dir, leaps) -> list[Path]:
    """c_S(t) over samples/d, mean over seeds (thin lines: seeds), one panel per target, at the
    largest and the smallest d."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(rows["target"]))
    cols = min(3, len(names))
    grid_rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        grid_rows, cols, figsize=(4.6 * cols, 3.8 * grid_rows), squeeze=False,
        constrained_layout=True,
    )  # fmt: skip
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        group = rows[rows["target"] == name].sort_values("d")
        order = leaps[name][1]
        for style, r in (("-", group.iloc[-1]), (":", group.iloc[0])):
            x = np.maximum(np.asarray(r["samples"], float), 1) / r["d"]
            c = np.asarray(r["coefficients"], float)  # (T, S, m + controls)
            for k, support in enumerate(r["supports"]):
                color = f"C{order.index(frozenset(support))}"
                label = f"{''.join(f'x{i}' for i in support)} (d = {r['d']})"
                ax.plot(x, c[:, :, k].mean(1), style, color=color, lw=2, label=label)
                if style == "-":
                    ax.plot(x, c[:, :, k], "-", color=color, lw=0.5, alpha=0.35)
            for k in range(len(r["supports"]), c.shape[2]):
                label = "controls (outside the support)" if k == len(r["supports"]) else None
                ax.plot(
                    x,
                    c[:, :, k].mean(1),
                    style,
                    color="grey",
                    lw=1,
                    label=label if style == "-" else None,
                )
        ax.axhline(spec.learn_fraction, color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlim(left=1)
        ax.set_ylim(-0.25, 1.35)
        ax.set_xlabel("samples / d")
        ax.set_ylabel("c_S(t) = E[f_t χ_S]  (target value 1)")
        ax.set_title(
            f"{formula_of(group.iloc[0]['supports'])}  (Leap {leaps[name][0]})", fontsize=9
        )
        ax.legend(fontsize=6, loc="upper left")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"Per-monomial coefficients under online SGD (mean over {spec.seeds} seeds; solid: "
        f"largest d, dotted: smallest d; dashed line: learned at {spec.learn_fraction:g})",
        fontsize=10,
    )
    return save_figure(fig, out_dir, "staircase_coefficients")


def formula_of(supports) -> str:
    return " + ".join("".join(f"x{i}" for i in sorted(s)) for s in supports)


def scaling(rows, spec, out_dir, leaps, fit_target, formula) -> list[Path]:
    """Samples to learn every monomial against d (log–log): seeds, medians, censored runs as
    upward triangles at the budget, fitted slope, and the predicted slope max(Leap − 1, 1)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.8), constrained_layout=True)
    for index, name in enumerate(dict.fromkeys(rows["target"])):
        group = rows[rows["target"] == name].sort_values("d")
        color = f"C{index}"
        fit = fit_target(group)
        for r in group.itertuples():
            t, c = np.asarray(r.learned_time, float), np.asarray(r.learned_censored, bool)
            jitter = r.d * np.exp(0.03 * (np.arange(len(t)) - len(t) / 2) / len(t))
            ax.scatter(jitter[~c], t[~c], s=8, color=color, alpha=0.4)
            ax.scatter(jitter[c], t[c], s=22, marker="^", color=color, alpha=0.8)
        finite = np.isfinite(fit.medians)
        levels, medians = np.array(fit.levels), np.array(fit.medians)
        ax.plot(levels[finite], medians[finite], "o", color=color, ms=6)
        leap_value = leaps[name][0]
        predicted = max(leap_value - 1, 1)
        if np.isfinite(fit.exponent):
            grid = np.geomspace(levels.min(), levels.max(), 20)
            bound = "≥ " if fit.lower_bound else ""
            label = (
                f"{formula(group.iloc[0]['supports'])} (Leap {leap_value}): slope {bound}"
                f"{fit.exponent:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}], predicted {predicted}"
            )
            ax.plot(grid, fit.prefactor * grid**fit.exponent, "-", color=color, label=label)
        anchor = medians[finite][0] if finite.any() else np.nan
        if np.isfinite(anchor):
            base = levels[finite][0]
            grid = np.geomspace(base, levels.max(), 20)
            ax.plot(grid, anchor * (grid / base) ** predicted, ":", color=color, lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("input dimension d")
    ax.set_ylabel("samples until every monomial is learned")
    ax.set_title(
        "Learning time vs d: dots = seeds, circles = medians, ▲ = censored (lower bound);\n"
        "solid = fitted power law [95% bootstrap CI], dotted = predicted slope from the first median",
        fontsize=8,
    )
    ax.legend(fontsize=6.5, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir, "staircase_scaling")


def per_leap_times(rows, spec, out_dir, leaps) -> list[Path]:
    """Left: samples each monomial takes to leave its saddle after the previous one left its own
    (escape times, leap ordering) against the number of new coordinates it adds, per d; a monomial
    that escaped first is drawn at the floor. Right: samples/d against log d for each target
    (flat for Leap 1, ∝ log d for Leap 2)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3), constrained_layout=True)
    dims = sorted(rows["d"].unique())
    colors = {d: plt.cm.viridis(i / max(len(dims) - 1, 1)) for i, d in enumerate(dims)}
    for r in rows.itertuples():
        order = leaps[r.target][1]
        sets = [frozenset(s) for s in r.supports]
        times = np.asarray(r.escape_times, float)  # (S, m)
        censored = np.asarray(r.escape_censored, bool)
        seen: set[int] = set()
        previous = np.zeros(len(times))
        for support in order:
            k = sets.index(support)
            new = len(support - seen)
            seen |= support
            increment = (times[:, k] - previous) / r.d
            x = new + 0.08 * (dims.index(r.d) - len(dims) / 2)
            ok, early = ~censored[:, k] & (increment > 0), ~censored[:, k] & (increment <= 0)
            left.scatter([x] * int(ok.sum()), increment[ok], s=10, color=colors[r.d], alpha=0.6)
            left.scatter([x] * int(early.sum()), [FLOOR] * int(early.sum()), s=14, marker="v",
                         color=colors[r.d], alpha=0.6)  # fmt: skip
            previous = np.maximum(previous, times[:, k])
    for d in dims:
        left.scatter([], [], color=colors[d], label=f"d = {d}")
    left.scatter([], [], marker="v", color="grey", label="escaped before the previous one")
    left.set_yscale("log")
    ticks = sorted({len(s) for ss in rows["supports"] for s in ss} | {1, 2, 3})
    left.set_xticks(ticks)
    left.set_xlim(ticks[0] - 0.5, ticks[-1] + 0.5)  # the per-d offsets stay inside
    left.set_xlabel("new coordinates the monomial adds (leap ordering)")
    left.set_ylabel("samples / d after the previous monomial's escape")
    left.set_title(
        f"Time per step (escape: c_S at {spec.escape_fraction:g} of its value), by leap size",
        fontsize=9,
    )
    left.legend(fontsize=7, loc="upper left")
    left.grid(True, which="both", alpha=0.3)
    if all(leaps[name][0] > 2 for name in rows["target"].unique()):
        right.text(0.5, 0.5, "no target of Leap ≤ 2 in this run", ha="center", va="center",
                   transform=right.transAxes)  # fmt: skip
        right.set_axis_off()
        return save_figure(fig, out_dir, "staircase_leaps")
    for index, name in enumerate(dict.fromkeys(rows["target"])):
        if leaps[name][0] > 2:
            continue
        group = rows[rows["target"] == name].sort_values("d")
        med = [
            np.median(np.where(r.learned_censored, np.inf, r.learned_time)) / r.d
            for r in group.itertuples()
        ]
        style = "-o" if leaps[name][0] == 2 else ":."
        right.plot(np.log(group["d"]), med, style, color=f"C{index}",
                   label=f"{formula_of(group.iloc[0]['supports'])} (Leap {leaps[name][0]})")  # fmt: skip
    right.set_ylim(bottom=0)
    right.set_xlabel("log d")
    right.set_ylabel("median samples / d to learn every monomial")
    right.set_title(
        "Leap ≤ 2 targets: samples/d flat for Leap 1, rising linearly in log d for Leap 2 (solid)",
        fontsize=9,
    )
    right.legend(fontsize=7)
    right.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir, "staircase_leaps")
