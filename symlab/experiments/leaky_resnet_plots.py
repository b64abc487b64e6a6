"""Figures of the ``leaky-resnet`` study (:mod:`symlab.experiments.leaky_resnet`).

``leaky_resnet_spectra``: for one network (the largest L̃ at most 7, the paper's Fig. 1, equidistant
steps, first seed): (a) the singular values of the centered representations A_p along depth
p_ℓ = ρ_1 + … + ρ_ℓ, relative to the largest, with the rank rule's threshold: the jump into a
k*-dimensional space and back; (b) those of the weights W_p; (c) the rank profile along p for
every L̃ (median over seeds) with k*, (d) per layer the cost of identity COI_γ, its nuclear-ratio
proxy and the Hamiltonian rank estimate −(2/L̃)H.
``leaky_resnet_steps``: (a) the adaptive steps ρ_ℓ at the end of training against the layer, every
L̃ (first seed), with the equidistant 1/L and the irregular rule; (b) ρ_ℓ during training for the
largest L̃; (c) the test error of every (seed, L̃) under the three rules, joined per pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import plain_log_axis, save_figure
from symlab.nets.leaky_resnet import STEP_CAP, irregular_steps

RULE_COLORS = {"equidistant": "tab:blue", "irregular": "tab:orange", "adaptive": "tab:green"}


def _depth_colors(values):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("plasma")
    span = max(len(values) - 1, 1)
    return {v: cmap(0.05 + 0.8 * i / span) for i, v in enumerate(values)}


def _positions(steps: list[float]) -> np.ndarray:
    return np.cumsum(np.asarray(steps, dtype=float))


def _spectra(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    depths = sorted(rows["effective_depth"].unique())
    chosen = max([d for d in depths if d <= 7] or depths[:1])
    base = (
        rows[rows["step_rule"] == "equidistant"]
        if "equidistant" in set(rows["step_rule"])
        else rows
    )
    rec = base[base["effective_depth"] == chosen].sort_values("seed").iloc[0]
    p = _positions(rec["steps_final"])
    k = spec.rank
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.3), constrained_layout=True)
    for ax, key, title in (
        (axes[0], "representation_sv", r"(a) representations $A_p$ (centered)"),
        (axes[1], "weight_sv", r"(b) weights $W_p$"),
    ):
        values = [np.asarray(s, dtype=float) for s in rec[key]]
        for i in range(min(8, min(len(s) for s in values))):
            curve = [s[i] / s[0] if s[0] > 0 else np.nan for s in values]
            ax.plot(p, curve, "-" if i < k else "--", marker="o", ms=3, color=cmap(i),
                    lw=2 if i < k else 1, label=f"$s_{{{i + 1}}}$")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel(r"depth $p_\ell = \rho_1 + \dots + \rho_\ell$")
        ax.set_title(title, fontsize=10)
    axes[0].axhline(1e-2, color="crimson", ls=":", lw=1.2, label=r"rank rule $10^{-2}$")
    axes[0].set_ylabel(r"$s_i / s_1$")
    axes[0].legend(fontsize=7, ncol=2, frameon=False, loc="lower left")

    ax = axes[2]
    colors = _depth_colors(depths)
    for lt in depths:
        group = base[base["effective_depth"] == lt]
        profile = np.median(np.array(group["rank_profile"].tolist(), dtype=float), axis=0)
        position = _positions(group.iloc[0]["steps_final"])
        ax.plot(position, profile, "o-", ms=3, color=colors[lt], label=rf"$\tilde L$ = {lt:g}")
    ax.axhline(k, color="crimson", ls="--", lw=1.2, label=f"$k^*$ = {k}")
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis, [1, 2, 3, 4, 6, 10, 20, 50, 100, 200])
    ax.set_ylim(0.8, spec.width * 1.3)
    ax.set_xlabel(r"depth $p_\ell$")
    ax.set_ylabel(r"rank of $A_p$: $\#\{s_i > 10^{-2} s_1\}$")
    ax.set_title(r"(c) rank profile for each $\tilde L$ (median over seeds)", fontsize=10)
    ax.legend(fontsize=7, frameon=False)

    ax = axes[3]
    if "coi" in rec and isinstance(rec["coi"], list):
        p0 = np.concatenate([[0.0], p])  # A_0 … A_L
        ax.plot(p0, rec["coi"], "o-", ms=3, color="black", label=r"COI$_\gamma(A_p)$")
        ax.plot(p0, rec["nuclear_ratio"], "s--", ms=3, color="gray",
                label=r"$\|A_p\|_*^2 / \|A_p\|_F^2$")  # fmt: skip
        ax.plot(p0, rec["hamiltonian_rank"], "^-", ms=3, color="tab:purple",
                label=r"$-(2/\tilde L) H(A_p, B_p)$")  # fmt: skip
        ax.axhline(k, color="crimson", ls="--", lw=1.2)
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel(r"depth $p$")
    ax.set_title(
        rf"(d) cost of identity, proxy, Hamiltonian ($\gamma_0$ = {spec.gamma0:g})", fontsize=10
    )
    ax.legend(fontsize=7, frameon=False)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.25)
    fig.suptitle(
        rf"Leaky ResNet, $L$ = {spec.depth}, width {spec.width}, $\tilde L$ = {chosen:g} "
        rf"(a, b, d: equidistant steps, seed {int(rec['seed'])}); teacher {spec.d_in} → {k} → {spec.d_in}"
    )
    return save_figure(fig, out_dir, "leaky_resnet_spectra")


def _steps(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    depths = sorted(rows["effective_depth"].unique())
    colors = _depth_colors(depths)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3), constrained_layout=True)
    layers = np.arange(1, spec.depth + 1)
    adaptive = rows[rows["step_rule"] == "adaptive"]
    first = rows["seed"].min()
    ax = axes[0]
    for lt in depths:
        sub = adaptive[(adaptive["effective_depth"] == lt) & (adaptive["seed"] == first)]
        if len(sub):
            ax.plot(layers, sub.iloc[0]["steps_final"], "o-", ms=3.5, color=colors[lt],
                    label=rf"adaptive, $\tilde L$ = {lt:g}")  # fmt: skip
    ax.plot(layers, np.full(spec.depth, 1 / spec.depth), "-", color=RULE_COLORS["equidistant"],
            lw=2, label="equidistant $1/L$")  # fmt: skip
    ax.plot(
        layers,
        irregular_steps(spec.depth, spec.irregularity).numpy(),
        "-",
        color=RULE_COLORS["irregular"],
        lw=2,
        label=f"irregular, $a$ = {spec.irregularity:g}",
    )
    ax.axhline(STEP_CAP / max(depths), color="gray", ls=":", lw=1,
               label=rf"cap $0.9 / \tilde L$, $\tilde L$ = {max(depths):g}")  # fmt: skip
    ax.set_xlabel(r"layer $\ell$")
    ax.set_xticks(layers[:: max(1, spec.depth // 10)])
    ax.set_ylabel(r"step $\rho_\ell$ (end of training)")
    ax.set_title(f"(a) layer steps (seed {first})", fontsize=10)
    ax.legend(fontsize=7, frameon=False)

    ax = axes[1]
    sub = adaptive[(adaptive["effective_depth"] == depths[-1]) & (adaptive["seed"] == first)]
    if len(sub) and len(sub.iloc[0]["steps_history"]):
        history = np.array(sub.iloc[0]["steps_history"], dtype=float)
        at = np.asarray(sub.iloc[0]["steps_history_at"], dtype=float)
        keep = np.append(at[1:] != at[:-1], True)  # a phase's end and the next start coincide
        image = ax.pcolormesh(at[keep], np.arange(1, spec.depth + 1), history[keep].T,
                              shading="nearest", cmap="magma")  # fmt: skip
        fig.colorbar(image, ax=ax, label=r"$\rho_\ell$")
    ax.set_xlabel("training step (both phases)")
    ax.set_ylabel(r"layer $\ell$")
    ax.set_title(rf"(b) adaptive steps during training, $\tilde L$ = {depths[-1]:g}", fontsize=10)

    ax = axes[2]
    rules = [r for r in ("equidistant", "irregular", "adaptive") if r in set(rows["step_rule"])]
    for (lt, _seed), group in rows.groupby(["effective_depth", "seed"]):
        values = group.set_index("step_rule")["test_error"]
        xs = [i + 0.08 * (depths.index(lt) - (len(depths) - 1) / 2) for i in range(len(rules))]
        ys = [values.get(r, np.nan) for r in rules]
        ax.plot(xs, ys, "-", color=colors[lt], alpha=0.6, lw=1)
        for x, y, r in zip(xs, ys, rules):
            ax.plot(x, y, "o", color=RULE_COLORS[r], ms=5, mec=colors[lt], mew=1.2)
    ax.set_xticks(range(len(rules)), rules)
    from matplotlib.lines import Line2D

    ax.legend(
        handles=[Line2D([], [], color=colors[lt], lw=1.5, label=rf"$\tilde L$ = {lt:g}") for lt in depths],
        fontsize=7, frameon=False, loc="best",
    )  # fmt: skip
    ax.set_ylabel(r"test error $\frac{1}{N}\sum_i \|f(x_i) - f^*(x_i)\|^2$")
    ax.set_title(r"(c) test error per (seed, $\tilde L$), paired", fontsize=10)
    for ax in axes:
        ax.grid(True, alpha=0.25)
    fig.suptitle(rf"Step rules of the Leaky ResNet ($L$ = {spec.depth}; line colour: $\tilde L$)")
    return save_figure(fig, out_dir, "leaky_resnet_steps")


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """Both figures (module docstring); diverged runs are left out."""
    rows = rows[~rows["diverged"].astype(bool)]
    if rows.empty:
        return []
    out_dir = Path(out_dir)
    return _spectra(rows, spec, out_dir) + _steps(rows, spec, out_dir)
