"""Summary table, verdict and figures of the study ``critical-points``.

Şimşek, Ged, Jacot, Spadaro, Hongler, Gerstner, Brea, "Geometry of the Loss Landscape in
Overparameterized Neural Networks: Symmetries and Invariances" (ICML 2021): :func:`summarize`
tabulates, per (activation, student width m), the fraction of runs reaching zero loss (Wilson 95%
interval), the end-point categories and the counts T(r*, m) of global-minimum subspaces and
G(r* − 1, m) of symmetry-induced saddle subspaces, and tests the paper's claim that zero loss
becomes more likely with overparameterisation h = m − r* (one-sided Spearman correlation over
runs); :func:`plot` draws the zero-loss fraction and end-point types vs h, T and G vs m, and the
condensation run (Luo et al. 2021; Zhou et al. 2022). The jobs themselves are in
:mod:`symlab.experiments.critical_points`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from symlab.critical.counts import count_global_minima_subspaces, count_symmetry_induced_subspaces
from symlab.critical.teacher_student import CATEGORIES
from symlab.engine.experiment import Summary
from symlab.engine.figures import save_figure
from symlab.engine.verdict import Claim, as_records, render
from symlab.stats import wilson_interval

if TYPE_CHECKING:
    from symlab.experiments.critical_points import CriticalPointsSpec

# tiers of an end point's gradient ∞-norm (critical_points.critical_tier); the middle three are
# classified as critical points
CRITICAL_TIERS = ("critical", "polished", "near-critical")
TIERS = ("zero loss", *CRITICAL_TIERS, "not converged")


def _teacher_rows(rows: pd.DataFrame) -> pd.DataFrame:
    if "kind" not in rows:
        return rows
    return rows[rows["kind"] == "teacher_student"]


def summarize(rows: pd.DataFrame, spec: CriticalPointsSpec) -> Summary:
    """Per (activation, m): zero-loss fraction with Wilson 95% interval and category counts; T, G."""
    runs = _teacher_rows(rows)
    r = spec.teacher_width
    records = []
    for (activation, m), cell in runs.groupby(["activation", "m"], sort=True):
        hits, n = int(cell["zero_loss"].sum()), len(cell)
        low, high = wilson_interval(hits, n)
        record = {
            "activation": activation, "m": int(m), "h": int(m) - r, "runs": n,
            "converged": int(cell["converged"].sum()), "zero_loss": hits,
            "fraction_zero_loss": hits / n, "ci_low": low, "ci_high": high,
            "T(r*,m)": count_global_minima_subspaces(r, int(m)),
            "G(r*-1,m)": count_symmetry_induced_subspaces(r - 1, int(m)),
        }  # fmt: skip
        counts = cell["category"].value_counts()
        record.update({c: int(counts.get(c, 0)) for c in CATEGORIES})
        records.append(record)
    table = pd.DataFrame.from_records(records)
    claims = teacher_student_claims(runs, spec)
    saddles = int(runs["category"].str.startswith("symmetry-induced").sum())
    unconverged = ", ".join(
        f"{int((part['category'] == 'not converged').sum())} of {len(part)} {activation}"
        for activation, part in runs.groupby("activation", sort=True)
    )
    tiers = runs["tier"].value_counts() if "tier" in runs else pd.Series(dtype=int)
    tier_text = ", ".join(f"{tier} {int(tiers.get(tier, 0))}" for tier in TIERS)
    preamble = (
        f"Students of teacher width r* = {r} (d = {spec.input_dim}, {spec.n_samples} Gaussian "
        f"inputs, {spec.teachers} teacher(s) × {spec.seeds} seeds per width), trained by L-BFGS, "
        f"Levenberg–Marquardt and damped Newton in float64. End points by gradient tier: "
        f"{tier_text} (critical: g ≤ {spec.grad_tol:g}; polished: g ≤ {spec.near_grad_tol:g} "
        f"and Newton reached {spec.grad_tol:g}; near-critical: g ≤ {spec.near_grad_tol:g} only). "
        f"{saddles} of {len(runs)} end points are symmetry-induced critical points (any tier); "
        f"not converged: {unconverged}. The claims are tested on the activation g, which meets "
        "the paper's assumptions; other activations are in the table and figures."
    )
    verdict = render(claims, preamble)
    extras: dict = {}
    if "kind" in rows and (rows["kind"] == "condensation").any():
        cond = rows[rows["kind"] == "condensation"].iloc[0]
        tracked = list(cond["effective_neurons_tracked"])
        extras["condensation"] = {
            "effective_neurons_start": tracked[0],
            "effective_neurons_max": max(tracked),
            "effective_neurons_final": int(cond["effective_neurons_final"]),
            "width": int(cond["m"]),
        }
        final = int(cond["effective_neurons_final"])
        verdict += (
            f" Condensation: a width-{int(cond['m'])} tanh net from small initialisation ends with "
            f"{final} effective neuron{'' if final == 1 else 's'} (orientation clusters at "
            f"distance 1 − |cos| ≤ 0.01: tanh is odd, so u and −u are one orientation)."
        )
    extras["claims"] = as_records(claims)
    return Summary(table=table, verdict=verdict, extras=extras)


THEORY_ACTIVATION = "g"
SIMSEK = "Şimşek et al. 2021"


def _mild(runs: pd.DataFrame) -> pd.DataFrame:
    """The theory's activation at h ≥ 0 (mild overparameterisation)."""
    return runs[(runs["activation"] == THEORY_ACTIVATION) & (runs["h"] >= 0)]


def _per_h(part: pd.DataFrame, mask: pd.Series) -> str:
    return ", ".join(
        f"h = {int(h)}: {int(mask[cell.index].sum())}/{len(cell)}"
        for h, cell in part.groupby("h", sort=True)
    )


def teacher_student_claims(runs: pd.DataFrame, spec: CriticalPointsSpec) -> list[Claim]:
    """The paper's three teacher–student claims, tested on the activation g at h ≥ 0:

    - "only a fraction of initialisations reaches zero loss": reproduced when some h has a
      Wilson 95% upper bound of the zero-loss fraction below 0.9, not reproduced when every h
      has its lower bound at or above 0.9, inconclusive otherwise;
    - "zero loss becomes more likely as h grows": one-sided Spearman test of the zero-loss
      indicator on h (p < 0.05: reproduced; the opposite direction at p < 0.05: opposite;
      not reproduced when the fraction is the same at every h, else inconclusive);
    - "runs that miss zero loss end at symmetry-induced critical points (saddles of a narrower
      net)", often: the fraction of end points that are symmetry-induced (any tier ≤
      ``near_grad_tol``), Wilson interval against 0.1: reproduced when its lower bound is ≥ 0.1,
      not reproduced when its upper bound is < 0.1, inconclusive otherwise; the per-h counts
      (and those at g ≤ ``grad_tol`` only) are in the measurement.
    """
    names = ("zero_loss_fraction", "zero_loss_trend", "symmetry_induced_end_points")
    texts = (
        f"with mild overparameterisation gradient training reaches zero loss only for a "
        f"fraction of initialisations ({SIMSEK})",
        f"zero loss becomes more likely as the overparameterisation h grows ({SIMSEK})",
        f"mildly overparameterised training often ends at symmetry-induced critical points "
        f"(duplicated or zero-output neurons of a narrower critical net; {SIMSEK}; Fukumizu & "
        f"Amari 2000)",
    )
    part = _mild(runs)
    if not len(part):
        reason = f"no run with activation {THEORY_ACTIVATION} at h ≥ 0 in this grid"
        return [Claim(n, c, reason, "-", "not measured") for n, c in zip(names, texts)]
    zero = part["zero_loss"].astype(bool)
    cells = [(int(h), int(zero[cell.index].sum()), len(cell)) for h, cell in part.groupby("h")]
    bounds = [wilson_interval(k, n) for _, k, n in cells]
    if any(high < 0.9 for _, high in bounds):
        fraction = "reproduced"
    elif all(low >= 0.9 for low, _ in bounds):
        fraction = "not reproduced"
    else:
        fraction = "inconclusive"
    cis = "; ".join(f"h = {h}: [{lo:.2f}, {hi:.2f}]" for (h, _, _), (lo, hi) in zip(cells, bounds))
    claims = [
        Claim(names[0], texts[0], f"zero loss {_per_h(part, zero)}",
              f"Wilson 95% intervals {cis}; 'a fraction' = upper bound < 0.9", fraction),
    ]  # fmt: skip
    if zero.nunique() > 1 and part["h"].nunique() > 1:
        up = stats.spearmanr(part["h"], zero, alternative="greater")
        down = stats.spearmanr(part["h"], zero, alternative="less")
        rho, p_up, p_down = float(up.statistic), float(up.pvalue), float(down.pvalue)
        trend = "reproduced" if p_up < 0.05 else "opposite" if p_down < 0.05 else "inconclusive"
    else:
        rho, p_up = 0.0, 1.0
        trend = "not reproduced" if part["h"].nunique() > 1 else "not measured"
    fractions = ", ".join(f"{k / n:.2f}" for _, k, n in cells)
    claims.append(Claim(
        names[1], texts[1], f"zero-loss fraction {fractions} at h = "
        f"{', '.join(str(h) for h, _, _ in cells)} ({len(part)} runs)",
        f"one-sided Spearman ρ = {rho:+.2f}, p = {p_up:.2g}", trend,
    ))  # fmt: skip
    symmetric = part["category"].str.startswith("symmetry-induced")
    strict = (
        symmetric & part["tier"].isin(["critical", "polished"]) if "tier" in part else symmetric
    )
    k, n = int(symmetric.sum()), len(part)
    low, high = wilson_interval(k, n)
    outcome = "reproduced" if low >= 0.1 else "not reproduced" if high < 0.1 else "inconclusive"
    missed = part[~zero]
    kinds = missed["category"].value_counts()
    where = ", ".join(f"{c} {int(v)}" for c, v in kinds.items()) or "none"
    measured = (
        f"{k} of {n} end points symmetry-induced ({_per_h(part, symmetric)}; at g ≤ "
        f"{spec.grad_tol:g}: {_per_h(part, strict)}); the {len(missed)} runs that missed zero "
        f"loss ended as: {where}"
    )
    r = spec.teacher_width
    ratio_text = ", ".join(
        f"{count_symmetry_induced_subspaces(r - 1, r + h) / count_global_minima_subspaces(r, r + h):.2g}"
        for h, _, _ in cells
    )
    if outcome != "reproduced":
        measured += (
            f". Why not here: {int(zero.sum())} of {n} runs reach zero loss with this teacher "
            f"(r* = {spec.teacher_width}, d = {spec.input_dim}) and a second-order optimiser "
            "(L-BFGS, then Newton), which passes saddles that gradient flow from small "
            "initialisation would linger at; the saddle subspaces outnumber the global-minimum "
            f"ones only while G(r*−1, m) > T(r*, m): here G/T = {ratio_text} at h = "
            f"{', '.join(str(h) for h, _, _ in cells)}"
        )
        crowded = [
            h for h, _, _ in cells
            if count_symmetry_induced_subspaces(r - 1, r + h)
            > count_global_minima_subspaces(r, r + h)
        ]  # fmt: skip
        if crowded:
            at = part["h"].isin(crowded)
            measured += (
                f"; even where the saddle subspaces outnumber the minima (h = "
                f"{', '.join(map(str, crowded))}): {int(symmetric[at].sum())} of {int(at.sum())}"
            )
        else:
            measured += (
                " (the preset simsek takes a wider teacher, r* = 10, where G/T > 1 at h ≤ 1)"
            )

    claims.append(Claim(
        names[2], texts[2], measured,
        f"Wilson 95% interval [{low:.3f}, {high:.3f}] of the fraction, against 'often' = 0.1",
        outcome,
    ))  # fmt: skip
    return claims


# how the figures name each activation and colour each end-point category
ACTIVATION_NAMES = {
    "g": r"$g(z) = \mathrm{sigmoid}(4z) + \mathrm{softplus}(z)$",
    "softplus": "softplus",
    "tanh": "tanh",
    "relu": "ReLU",
}
ACTIVATION_STYLES = (("black", "o"), ("tab:blue", "s"), ("tab:purple", "^"), ("tab:cyan", "D"))
CATEGORY_COLORS = {
    "global minimum": "#2ca02c",
    "global minimum (other)": "#98df8a",
    "symmetry-induced saddle": "#ff7f0e",
    "symmetry-induced minimum": "#d62728",
    "other saddle": "#9467bd",
    "other minimum": "#8c564b",
    "not converged": "#c7c7c7",
}


def _activation_name(activation: str) -> str:
    return ACTIVATION_NAMES.get(activation, activation)


def plot(rows: pd.DataFrame, spec: CriticalPointsSpec, out_dir: Path) -> list[Path]:
    """Zero-loss fraction vs h (with category composition), T and G vs m, condensation."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = summarize(rows, spec).table
    r, paths = spec.teacher_width, []
    h_axis = r"overparameterisation $h = m - r^*$ (neurons)"

    groups = list(table.groupby("activation", sort=True))
    fig, axes = plt.subplots(
        1, 1 + len(groups), figsize=(4.6 + 3.4 * len(groups) + 1.8, 4.2),
        constrained_layout=True, gridspec_kw={"width_ratios": [1.35] + [1] * len(groups)},
    )  # fmt: skip
    left, bars = axes[0], axes[1:]
    hs = sorted(table["h"].unique())
    left.axvspan(min(hs) - 0.5, -0.5, color="gray", alpha=0.12, lw=0)
    left.text(min(hs) - 0.4, 1.0, "$m < r^*$", fontsize=8, va="top", color="dimgray")
    for index, (activation, part) in enumerate(groups):
        part = part.sort_values("h")
        # Wilson bounds can miss the estimate by rounding (~1e-16) at 0 and 1: clip to >= 0
        err = np.clip(
            [
                part["fraction_zero_loss"] - part["ci_low"],
                part["ci_high"] - part["fraction_zero_loss"],
            ],
            0.0,
            None,
        )
        shift = 0.08 * (index - (len(groups) - 1) / 2)  # dodge overlapping error bars
        color, marker = ACTIVATION_STYLES[index % len(ACTIVATION_STYLES)]
        left.errorbar(
            part["h"] + shift, part["fraction_zero_loss"], yerr=err, marker=marker, ms=5,
            capsize=3, color=color, label=_activation_name(activation),
        )  # fmt: skip
    runs = table["runs"]
    per_point = f"{runs.min()}" if runs.min() == runs.max() else f"{runs.min()}–{runs.max()}"
    left.set(xlabel=h_axis, ylabel="fraction of runs at zero loss", ylim=(-0.05, 1.05),
             xlim=(min(hs) - 0.5, max(hs) + 0.5), xticks=hs)  # fmt: skip
    left.set_title(
        f"Zero loss vs overparameterisation ($r^* = {r}$, $d = {spec.input_dim}$)\n"
        f"{per_point} runs per point, Wilson 95% CI",
        fontsize=10,
    )
    left.legend(title="activation", fontsize=8, title_fontsize=8, loc="lower right")
    left.grid(alpha=0.3)
    shown: list[str] = []
    for ax, (activation, part) in zip(bars, groups):
        part = part.sort_values("h")
        bottom = np.zeros(len(part))
        for category in CATEGORIES:
            values = part[category].to_numpy() / part["runs"].to_numpy()
            if values.any():
                ax.bar(part["h"], values, bottom=bottom, width=0.7,
                       color=CATEGORY_COLORS.get(category, "gray"))  # fmt: skip
                bottom += values
                if category not in shown:
                    shown.append(category)
        ax.set(xlabel=r"$h = m - r^*$", xticks=part["h"], ylim=(0, 1))
        short = "$g$" if activation == "g" else _activation_name(activation)
        ax.set_title(f"End-point types, {short}", fontsize=10)
    bars[0].set_ylabel("fraction of runs")
    for ax in bars[1:]:
        ax.tick_params(labelleft=False)
    handles = [
        Patch(color=CATEGORY_COLORS.get(c, "gray"), label=c) for c in CATEGORIES if c in shown
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False,
               title="end-point type", title_fontsize=8)  # fmt: skip
    paths += save_figure(fig, out_dir, "zero_loss_fraction")

    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    ms = np.arange(r, r + max(spec.max_overparameterization, 8) + 1)
    ax.semilogy(
        ms,
        [count_global_minima_subspaces(r, int(m)) for m in ms],
        "o-",
        label=rf"$T(r^*{{=}}{r}, m)$: global-minimum subspaces",
    )
    for rr in range(max(1, r - 2), r):
        ax.semilogy(
            ms,
            [count_symmetry_induced_subspaces(rr, int(m)) for m in ms],
            "s--",
            label=rf"$G({rr}, m)$: saddle subspaces per width-{rr} critical point",
        )
    ax.set(
        xlabel="student width $m$ (neurons)",
        ylabel="number of affine subspaces",
        title="Counts of critical subspaces (Şimşek et al. 2021)",
        xticks=ms,
    )
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=8)
    paths += save_figure(fig, out_dir, "subspace_counts")

    if "kind" in rows and (rows["kind"] == "condensation").any():
        cond = rows[rows["kind"] == "condensation"].iloc[0]
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
        left.plot(cond["steps_tracked"], cond["effective_neurons_tracked"], "o-", ms=4, color="C0")
        left.set(
            xlabel="Adam step", title=f"Condensation, width-{int(cond['m'])} tanh net, small init"
        )
        left.set_ylabel("effective neurons (orientation clusters)", color="C0")
        left.tick_params(axis="y", colors="C0")
        left.yaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_ylim(bottom=0)
        left.grid(alpha=0.3)
        twin = left.twinx()
        twin.semilogy(cond["steps_tracked"], cond["loss_tracked"], color="C1")
        twin.set_ylabel("training loss (MSE)", color="C1")
        twin.tick_params(axis="y", which="both", colors="C1")
        left.legend(
            handles=[
                Line2D([], [], color="C0", marker="o", ms=4, label="effective neurons (left)"),
                Line2D([], [], color="C1", label="training loss (right)"),
            ],
            loc="upper right", fontsize=8,
        )  # fmt: skip
        # tanh is odd: (w, b) and (−w, −b) are one orientation, so fold the angle modulo π
        angle = np.asarray(cond["orientation_angle"], dtype=float)
        right.scatter(np.mod(angle + np.pi / 2, np.pi) - np.pi / 2, cond["amplitude"], s=12)
        right.set(
            xlabel=r"orientation $\mathrm{atan2}(b_j, w_j)$ mod $\pi$ (rad)",
            ylabel=r"amplitude $|a_j|\,\|(w_j, b_j)\|$",
            title=r"Neurons after training (one point each; $\pm(w_j, b_j)$ fold together)",
            yscale="log",
            xlim=(-np.pi / 2, np.pi / 2),
            xticks=[-np.pi / 2, -np.pi / 4, 0, np.pi / 4, np.pi / 2],
            xticklabels=[r"$-\pi/2$", r"$-\pi/4$", "0", r"$\pi/4$", r"$\pi/2$"],
        )
        right.grid(alpha=0.3)
        paths += save_figure(fig, out_dir, "condensation")
    return paths
