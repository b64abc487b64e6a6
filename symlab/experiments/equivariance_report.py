"""Summary, checks and figures of the ``equivariance`` study (see its module docstring)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from symlab.engine.experiment import Summary
from symlab.engine.figures import save_figure
from symlab.engine.verdict import Claim, as_records, exponent_outcome, render
from symlab.stats import log_allowance, power_law_fit

GROUP_NAMES = {"signed_permutation": "signed permutations", "rotation": "rotations"}


def lowest_degree(profile: dict[str, float], floor: float = 1e-12) -> int:
    """The lowest degree k with Fourier weight W^k above ``floor`` (weak learnability's degree)."""
    return min(int(k) for k, w in profile.items() if w > floor)


def exact_checks(exact: pd.DataFrame, spec) -> list[Claim]:
    """Equivariance to rounding for the equivariant cases; broken for the masked first layer."""
    checks = []

    def cells(group, architecture):
        sub = exact[(exact["group"] == group) & (exact["architecture"] == architecture)]
        return {r.method: (r.discrepancy, r.moved) for r in sub.itertuples()}

    def listing(values):
        return ", ".join(
            f"{m} {v:.1e} (parameters moved by {mv:.0%})" for m, (v, mv) in values.items()
        )

    signed = cells("signed_permutation", "fc")
    if signed:
        ok = all(v <= spec.rounding for v, _ in signed.values())
        moved = min(mv for _, mv in signed.values()) > 0.01
        checks.append(Claim(
            name="exact:signed_permutation",
            claim="Training a fully connected net with an invariant first-layer law is equivariant "
            "under signed permutations (SGD, Adam, noisy GD with its draws moved by g)",
            measured=f"largest relative discrepancy ‖(W_B g, a_B) − (W_A, a_A)‖/‖θ_A‖ over "
            f"{spec.exact_seeds} coupled pairs: {listing(signed)}",
            statistic=f"rounding threshold {spec.rounding:.0e} in float64",
            outcome="reproduced" if ok and moved else "inconclusive" if ok else "not reproduced",
        ))  # fmt: skip
    masked = cells("signed_permutation", "masked")
    if masked:
        values = [v for v, _ in masked.values()]
        outcome = (
            "reproduced" if min(values) >= spec.broken
            else "not reproduced" if min(values) <= spec.rounding else "inconclusive"
        )  # fmt: skip
        checks.append(Claim(
            name="exact:masked",
            claim="A first layer that is not equivariant (a fixed random 0/1 mask, not moved by g) "
            "breaks the equivariance",
            measured=f"discrepancies {listing(masked)}",
            statistic=f"broken when ≥ {spec.broken:.0e}, rounding when ≤ {spec.rounding:.0e}",
            outcome=outcome,
        ))  # fmt: skip
    rotation = cells("rotation", "fc")
    if rotation:
        expected = {m: m != "adam" for m in rotation}  # [derived]: Adam's update is elementwise
        agree = [(v <= spec.rounding) if eq else (v >= spec.broken) for m, (v, _) in rotation.items()
                 for eq in [expected[m]]]  # fmt: skip
        checks.append(Claim(
            name="exact:rotation",
            claim="[derived] SGD and noisy GD are equivariant under every rotation, Adam only under "
            "signed permutations",
            measured=f"discrepancies under random rotations: {listing(rotation)}",
            statistic=f"equivariant ≤ {spec.rounding:.0e}, broken ≥ {spec.broken:.0e}",
            outcome="reproduced" if all(agree) else "not reproduced",
        ))  # fmt: skip
    return checks


def cell_tests(orbit: pd.DataFrame) -> pd.DataFrame:
    """Per (target, d): medians for f and f∘g, and the Mann–Whitney / KS p-values between them
    (full-learning times; censored runs sit at the budget, i.e. tied at the top)."""
    records = []
    for (target, d), cell in orbit.groupby(["target", "d"], sort=False):
        by = {r.member: r for r in cell.itertuples()}
        if set(by) != {"f", "f∘g"}:
            continue
        f, g = (np.asarray(by[m].full_time, float) for m in ("f", "f∘g"))
        wf, wg = (np.asarray(by[m].weak_time, float) for m in ("f", "f∘g"))
        profile = by["f"].degree_profile
        size = by["f"].orbit_size
        records.append({
            "target": target, "d": d,
            "degree_profile": " ".join(f"W^{k}={w:g}" for k, w in profile.items()),
            "weak_degree": lowest_degree(profile),
            "orbit_size": size, "cross_predictability": 1 / size if size else np.nan,
            "weak_median_f": np.median(wf), "weak_median_fg": np.median(wg),
            "full_median_f": np.median(f), "full_median_fg": np.median(g),
            "full_censored": int(sum(by["f"].full_censored) + sum(by["f∘g"].full_censored)),
            "mannwhitney_p": float(stats.mannwhitneyu(f, g, alternative="two-sided").pvalue),
            "ks_p": ks_pvalue(f, g),
            "budget_samples": by["f"].budget_samples,
        })  # fmt: skip
    return pd.DataFrame.from_records(records)


def ks_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS p-value: exact when scipy can compute it, else (ties from censored runs)
    the asymptotic one, without scipy's warning about the switch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
        return float(stats.ks_2samp(a, b).pvalue)


def orbit_checks(orbit: pd.DataFrame, table: pd.DataFrame, spec) -> list[Claim]:
    checks = []
    tests = 2 * len(table)
    adjusted = min(1.0, tests * float(table[["mannwhitney_p", "ks_p"]].min().min()))
    power = power_check(orbit)
    outcome = "reproduced" if adjusted >= spec.alpha else "not reproduced"
    if outcome == "reproduced" and power is not None and power[1] >= spec.alpha:
        outcome = "inconclusive"  # the same test cannot even tell two different orbits apart
    cells = "; ".join(
        f"{r.target} d={r.d}: MW p={r.mannwhitney_p:.2f}, KS p={r.ks_p:.2f}"
        for r in table.itertuples()
    )
    checks.append(Claim(
        name="orbit:equal_in_law",
        claim="Every member f∘g of an orbit is learned in the same time, in law, by an equivariant "
        "learner (fully connected net, online SGD)",
        measured=f"samples to full learning for f and for f∘g ({spec.orbit_seeds} independent seeds "
        f"each): {cells}",
        statistic=f"two-sided Mann–Whitney and Kolmogorov–Smirnov, Bonferroni over {tests} tests: "
        f"smallest adjusted p = {adjusted:.2f}; power: "
        + (f"the same Mann–Whitney test separates {power[0]} (p = {power[1]:.1e})" if power else "n/a"),
        outcome=outcome,
    ))  # fmt: skip
    dims = sorted(orbit["d"].unique())
    d_allow = log_allowance(min(dims), max(dims))
    for target, cell in orbit.groupby("target", sort=False):
        k_min = lowest_degree(cell.iloc[0]["degree_profile"])
        x = np.concatenate([[r.d] * len(r.weak_time) for r in cell.itertuples()])
        fit = power_law_fit(x, np.maximum(np.concatenate(list(cell["weak_time"])), 1.0),
                            np.concatenate(list(cell["weak_censored"])), n_boot=2000)  # fmt: skip
        predicted = max(k_min - 1, 1)
        checks.append(Claim(
            name=f"weak:{target}", claim=f"{formula(cell.iloc[0])} (lowest degree with Fourier weight "
            f"{k_min}) is weakly learned from d^{predicted} samples",
            measured=fit.sentence("samples to weak learning", "d"),
            statistic=f"f and f∘g pooled; band [{predicted}, {predicted + d_allow:.2f}] allows one "
            f"log d; weak learning = relative test error ≤ {1 - spec.weak_gain:g}",
            outcome=exponent_outcome(fit, predicted, d_allow),
        ))  # fmt: skip
        size = cell.iloc[0]["orbit_size"]
        if size is None or (isinstance(size, float) and np.isnan(size)):
            continue
        k = len(cell.iloc[0]["supports"][0])
        sizes = np.concatenate([[r.orbit_size] * len(r.full_time) for r in cell.itertuples()])
        work = np.concatenate([np.asarray(r.full_time) * r.d for r in cell.itertuples()])
        fit = power_law_fit(sizes, np.maximum(work, 1.0), np.concatenate(list(cell["full_censored"])),
                            n_boot=2000)  # fmt: skip
        predicted = max(k, 2) / k
        allow = np.log(np.log(max(dims)) / np.log(min(dims))) / np.log(max(sizes) / min(sizes))
        checks.append(Claim(
            name=f"orbit_size:{target}", claim=f"The time (samples × d) to learn the degree-{k} parity "
            f"grows like its orbit size C(d, {k})^{predicted:g}",
            measured=fit.sentence("samples × d", "C(d, k)"),
            statistic=f"orbit sizes {sorted(set(int(s) for s in sizes))}; band [{predicted:g}, "
            f"{predicted + allow:.2f}] allows one log d",
            outcome=exponent_outcome(fit, predicted, allow),
        ))  # fmt: skip
    return checks


def power_check(orbit: pd.DataFrame) -> tuple[str, float] | None:
    """Mann–Whitney between the two targets of most different weak degree at the largest d."""
    top = orbit[orbit["d"] == orbit["d"].max()]
    names = list(dict.fromkeys(top["target"]))
    if len(names) < 2:
        return None
    times = {n: np.concatenate(list(top[top["target"] == n]["full_time"])) for n in names}
    a, b = names[0], names[-1]
    return f"{a} from {b} at d = {orbit['d'].max()}", float(
        stats.mannwhitneyu(times[a], times[b], alternative="two-sided").pvalue
    )


def formula(row) -> str:
    terms = []
    for support, c in zip(row["supports"], row["coefficients"], strict=True):
        monomial = "".join(f"x{i}" for i in support)
        terms.append(monomial if abs(c) == 1 else f"{abs(c):g}·{monomial}")
    return " + ".join(terms)


def summarize_all(rows: pd.DataFrame, spec) -> Summary:
    exact = rows[rows["part"] == "exact"]
    orbit_all = rows[rows["part"] == "orbit"].astype({"d": int})
    checks = exact_checks(exact, spec) if len(exact) else []
    table_b = cell_tests(orbit_all) if len(orbit_all) else pd.DataFrame()
    if len(table_b):
        checks += orbit_checks(orbit_all, table_b, spec)
    cols = ["method", "group", "architecture", "discrepancy", "function_discrepancy", "moved"]
    if "discrepancy_independent_noise" in exact:
        cols.append("discrepancy_independent_noise")
    table = pd.concat(
        [exact[cols].assign(part="exact"), table_b.assign(part="orbit")], ignore_index=True
    )
    preamble = (
        f"Part (a): two-layer mean-field nets (d = {spec.exact_dim}, N = {spec.exact_width}, "
        f"{spec.exact_samples} cube points, {spec.exact_steps} steps, float64), coupled runs on x and "
        f"on g·x. Part (b): online SGD (width {spec.width}, batch {spec.batch}, step {spec.lr:g}/d, "
        f"shifted sigmoid s = {spec.sigmoid_shift:g}) on f and on f∘g for d in {spec.orbit_dims}, "
        f"{spec.orbit_seeds} seeds each; budget {spec.budget:g}·d² samples."
    )
    return Summary(
        table=table, verdict=render(checks, preamble), extras={"claims": as_records(checks)}
    )


def plot_all(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    paths = []
    exact = rows[rows["part"] == "exact"]
    if len(exact):
        paths += plot_exact(exact, spec, out_dir)
    orbit = rows[rows["part"] == "orbit"].astype({"d": int})
    if len(orbit):
        paths += plot_orbits(orbit, spec, out_dir)
    return paths


def plot_exact(exact: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """Discrepancy after training per method, architecture and group, against the thresholds."""
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(exact["group"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4), squeeze=False,
                             constrained_layout=True, sharey=True)  # fmt: skip
    methods = list(dict.fromkeys(exact["method"]))
    for ax, group in zip(axes[0], groups, strict=True):
        sub = exact[exact["group"] == group]
        for offset, (arch, marker) in zip(
            (-0.12, 0.12), (("fc", "o"), ("masked", "s")), strict=True
        ):
            part = sub[sub["architecture"] == arch]
            xs = [methods.index(m) + offset for m in part["method"]]
            ax.scatter(xs, np.maximum(part["discrepancy"], 1e-18), marker=marker, s=50,
                       label="fully connected" if arch == "fc" else "fixed random mask on layer 1")  # fmt: skip
            if arch == "fc" and "discrepancy_independent_noise" in part:
                noisy = part.dropna(subset=["discrepancy_independent_noise"])
                ax.scatter([methods.index(m) + 0.3 for m in noisy["method"]],
                           noisy["discrepancy_independent_noise"], marker="x", color="black", s=50,
                           label="noisy GD, draws not moved by g (equal in law only)")  # fmt: skip
        ax.axhline(
            spec.rounding,
            color="green",
            ls="--",
            lw=1,
            label=f"rounding threshold {spec.rounding:.0e}",
        )
        ax.axhline(
            spec.broken, color="red", ls="--", lw=1, label=f"broken threshold {spec.broken:.0e}"
        )
        ax.set_yscale("log")
        ax.set_ylim(1e-18, 10)
        ax.set_xticks(range(len(methods)), methods)
        ax.set_title(f"g among {GROUP_NAMES[group]}", fontsize=10)
        ax.set_ylabel("relative parameter discrepancy" if ax is axes[0][0] else "")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="center left")
    fig.suptitle(
        "Training B on g·x from W_B(0) = W_A(0)gᵀ vs A on x: ‖(W_B g, a_B) − (W_A, a_A)‖ / ‖θ_A‖ "
        f"after training (max over {spec.exact_seeds} seeds)",
        fontsize=10,
    )
    return save_figure(fig, out_dir, "equivariance_exact")


def plot_orbits(orbit: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """ECDFs of learning time for f and f∘g (largest d); time vs orbit size; weak learning vs d."""
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.4), constrained_layout=True)
    top = orbit[orbit["d"] == orbit["d"].max()]
    for index, (_, cell) in enumerate(top.groupby("target", sort=False)):
        for member, style in (("f", "-"), ("f∘g", "--")):
            times = np.sort(np.concatenate(list(cell[cell["member"] == member]["full_time"])))
            left.step(times, np.arange(1, len(times) + 1) / len(times), style, where="post",
                      color=f"C{index}", label=f"{formula(cell.iloc[0])}: {member}")  # fmt: skip
    left.set_xscale("log")
    left.set_xlabel(f"samples to full learning (d = {orbit['d'].max()})")
    left.set_ylabel("fraction of seeds")
    left.set_title("Same law over the orbit: f (solid) vs f∘g (dashed)", fontsize=9)
    left.legend(fontsize=6, loc="center")
    for index, (_, cell) in enumerate(orbit.groupby("target", sort=False)):
        color = f"C{index}"
        f_rows = cell[cell["member"] == "f"].sort_values("d")
        if f_rows.iloc[0]["orbit_size"] is not None and not pd.isna(f_rows.iloc[0]["orbit_size"]):
            for r in cell.itertuples():
                middle.scatter([r.orbit_size] * len(r.full_time), np.asarray(r.full_time) * r.d, s=8,
                               color=color, alpha=0.4, marker="o" if r.member == "f" else "x")  # fmt: skip
            med = [
                np.median(np.concatenate(list(cell[cell["d"] == d]["full_time"]))) * d
                for d in f_rows["d"]
            ]
            middle.plot(f_rows["orbit_size"], med, "-", color=color, label=formula(f_rows.iloc[0]))
        weak = [
            np.median(np.concatenate(list(cell[cell["d"] == d]["weak_time"]))) for d in f_rows["d"]
        ]
        full = [
            np.median(np.concatenate(list(cell[cell["d"] == d]["full_time"]))) for d in f_rows["d"]
        ]
        profile = f_rows.iloc[0]["degree_profile"]
        label = (
            f"{formula(f_rows.iloc[0])} ({', '.join(f'W^{k}={w:g}' for k, w in profile.items())})"
        )
        right.plot(f_rows["d"], weak, "-o", color=color, label=f"weak: {label}")
        right.plot(f_rows["d"], full, ":", color=color, label="full learning (dotted)")
    middle.set_xscale("log")
    middle.set_yscale("log")
    middle.set_xlabel("orbit size C(d, k) (cross-predictability = 1/C)")
    middle.set_ylabel("samples × d to full learning")
    middle.set_title("Parities: time against the orbit size (o: f, x: f∘g)", fontsize=9)
    middle.legend(fontsize=7)
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xlabel("d")
    right.set_ylabel("median samples")
    right.set_title(
        f"Weak learning (error ≤ {1 - spec.weak_gain:g}‖f*‖²) vs full, by degree profile",
        fontsize=9,
    )
    right.legend(fontsize=6)
    for ax in (left, middle, right):
        ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir, "equivariance_orbits")
