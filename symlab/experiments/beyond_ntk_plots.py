"""Figures of the ``beyond-ntk`` study (:mod:`symlab.experiments.beyond_ntk`).

``beyond_ntk_errors``: test error (MSE / Var y) against N (at the study's width) and against the
width (at ``n_fixed``), per method, log–log; medians over seeds of the validated runs, each seed
faint underneath. ``beyond_ntk_taylor``: over training, the part of the test-point function change
that the first-order (NTK) term leaves unexplained, 1 − R²₁, and the part left by first + second
order, 1 − R²₂, with the fraction of ReLU gates flipped since init (mean over layers), for both
nets at (n_fixed, width). ``beyond_ntk_signs``: AZLL Lemma 6.10's random-sign average against the
number of sign draws, for the trained three-layer nets' weight changes, with the frozen-gate
network (which cancels the first-order terms exactly in expectation, error ∝ S^{-1/2}).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure

COLORS = {
    "three_layer": "#1b5e9e",
    "two_layer": "#d9731a",
    "last_layer": "#6a9f3b",
    "ntk": "#8e3b8e",
}
LABELS = {"three_layer": "3-layer net", "two_layer": "2-layer net", "last_layer": "last layer (CK)",
          "ntk": "finite-width NTK"}  # fmt: skip


def _errors(best: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    targets = list(spec.targets)
    fig, axes = plt.subplots(len(targets), 2, figsize=(11, 4.1 * len(targets)), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    for row, target in enumerate(targets):
        sweeps = (("n_train", "width", spec.width, "training points N"),
                  ("width", "n_train", spec.n_fixed, "hidden width m"))  # fmt: skip
        for col, (axis_key, fixed_key, fixed, label) in enumerate(sweeps):
            ax = axes[row][col]
            part = best[(best["target"] == target) & (best[fixed_key] == fixed)]
            for method in spec.methods:
                group = part[part["method"] == method]
                if group.empty:
                    continue
                for _, seed_rows in group.groupby("seed"):
                    seed_rows = seed_rows.sort_values(axis_key)
                    ax.plot(seed_rows[axis_key], seed_rows["test_error"], color=COLORS[method],
                            alpha=0.25, lw=0.8)  # fmt: skip
                med = group.groupby(axis_key)["test_error"].median()
                ax.plot(med.index, med.values, "o-", color=COLORS[method], lw=2, ms=5,
                        label=LABELS[method])  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            values = sorted(part[axis_key].unique())
            ax.set_xticks(values)
            ax.set_xticklabels([str(int(v)) for v in values])
            ax.minorticks_off()
            ax.set_xlabel(label)
            ax.set_ylabel("test error, MSE / Var(y)")
            fixed_name = "width" if fixed_key == "width" else "N"
            seeds = int(part["seed"].nunique()) if not part.empty else 0
            ax.set_title(
                f"target '{target}': {fixed_name} = {fixed} ({seeds} seeds, faint)", fontsize=10
            )
            ax.grid(True, which="both", alpha=0.25)
            ax.legend(fontsize=8, loc="best")
    return save_figure(fig, out_dir, "beyond_ntk_errors")


def _curves(frame: pd.DataFrame, column: str) -> list[tuple[np.ndarray, np.ndarray]]:
    curves = []
    for records in frame["split_curve"]:
        test = [r for r in records if r["split"] == "test" and r["step"] > 0]
        if test:
            steps = np.array([r["step"] for r in test], dtype=float)
            if column == "flips":
                keys = [k for k in test[0] if k.startswith("flips[")]
                values = np.array([np.mean([r[k] for k in keys]) for r in test])
            else:
                values = 1 - np.array([r[column] for r in test], dtype=float)
            curves.append((steps, values))
    return curves


def _taylor(best: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    part = best[(best["n_train"] == spec.n_fixed) & (best["width"] == spec.width)
                & best["method"].isin(["three_layer", "two_layer"])]  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.1), constrained_layout=True)
    for method in ("three_layer", "two_layer"):
        group = part[part["method"] == method]
        for column, style, name in (("r2_first", "-", "1 − R²₁ (after the NTK term)"),
                                    ("r2_second", "--", "1 − R²₂ (after 1st + 2nd order)")):  # fmt: skip
            for i, (steps, values) in enumerate(_curves(group, column)):
                axes[0].plot(steps, np.clip(values, 1e-6, None), style, color=COLORS[method],
                             alpha=0.9 if i == 0 else 0.3, lw=1.6 if i == 0 else 0.8,
                             label=f"{LABELS[method]}: {name}" if i == 0 else None)  # fmt: skip
        for i, (steps, values) in enumerate(_curves(group, "flips")):
            axes[1].plot(steps, values, color=COLORS[method], alpha=0.9 if i == 0 else 0.3,
                         lw=1.6 if i == 0 else 0.8, label=LABELS[method] if i == 0 else None)  # fmt: skip
    ax = axes[0]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("SGD step")
    ax.set_ylabel(r"unexplained fraction $\|\Delta f - T\|^2 / \|\Delta f\|^2$ (test)")
    ax.set_title(
        f"Taylor split of Δf (N = {spec.n_fixed}, width {spec.width}; seed 0 bold)", fontsize=10
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[1]
    ax.set_xscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("fraction of ReLU gates flipped since init (test)")
    ax.set_title("gate flips (mean over hidden layers)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
    return save_figure(fig, out_dir, "beyond_ntk_taylor")


def _signs(best: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    part = best[(best["method"] == "three_layer") & (best["n_train"] == spec.n_fixed)]
    part = part[part["sign_error_frozen"].apply(lambda v: isinstance(v, list) and len(v) > 0)]
    fig, ax = plt.subplots(figsize=(6, 4.2), constrained_layout=True)
    draws = np.array(spec.sign_draws, dtype=float)
    widths = sorted(part["width"].unique())
    cmap = plt.get_cmap("viridis")
    for i, width in enumerate(widths):
        color = cmap(0.1 + 0.8 * i / max(len(widths) - 1, 1))
        group = part[part["width"] == width]
        frozen = np.median(np.array(group["sign_error_frozen"].tolist(), dtype=float), axis=0)
        real = np.median(np.array(group["sign_error_network"].tolist(), dtype=float), axis=0)
        ax.plot(draws, frozen, "o--", color=color, lw=1.2, ms=4, label=f"m = {width}: frozen gates")
        ax.plot(draws, real, "s-", color=color, lw=1.8, ms=4, label=f"m = {width}: real network")
    if len(part):
        ref = np.median(np.array(part["sign_error_frozen"].tolist(), dtype=float)[:, 0])
        ax.plot(
            draws, ref / np.sqrt(draws), color="gray", lw=0.8, ls=":", label=r"$\propto S^{-1/2}$"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(draws)
    ax.set_xticklabels([str(int(d)) for d in draws])
    ax.minorticks_off()
    ax.set_xlabel("sign draws S")
    ax.set_ylabel(r"$\|\bar f_S - (f_0 + a D_v V' D_w W' x)\| / \|a D_v V' D_w W' x\|$")
    ax.set_title(f"random-sign cancellation (trained W', V'; N = {spec.n_fixed})", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, out_dir, "beyond_ntk_signs")


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """The study's three figures (module docstring)."""
    from symlab.experiments.beyond_ntk import best_runs

    best = best_runs(rows)
    paths = _errors(best, spec, out_dir)
    if best["method"].isin(["three_layer", "two_layer"]).any():
        paths += _taylor(best, spec, out_dir)
    if "sign_error_frozen" in best and (best["method"] == "three_layer").any():
        paths += _signs(best, spec, out_dir)
    return paths
