"""Claims of the ``composition`` study (:mod:`symlab.experiments.composition`).

Jacot, Choi & Wen (ICLR 2025) show scaling laws of deep nets on h∘g whose phase depends on which
of g and h is harder. The rate tested is the paper notes' N^{−r}, r = min(1/2, ν_g/d_in,
ν_h/d_mid): marked unverified there, so every claim names it as the prediction it is. Per
(model, ν_g, ν_h) cell the decay exponent a = −slope of log(test error) on log N (one intercept
per seed, Student-t 95% interval, :func:`symlab.stats.fit_slope`).

1. ``rate_follows_harder_<model>`` (accordion, deep): per pair of cells, the difference of
   measured exponents a_i − a_j (se² = se_i² + se_j², Student-t with the smaller dof). Where the
   predicted exponents differ by more than ``min_gap`` (the harder function got smoother): it
   "agrees" when its interval lies above 0 in the predicted direction (and not within
   ±``min_gap``), is "opposite" below 0, "no difference" within ±``min_gap``. Where they are
   equal (only the easier function changed, or both exceed 1/2): it "agrees" within ±``min_gap``,
   is a "spurious difference" wholly outside it. Other comparisons are open. Reproduced: all
   agree; opposite: more opposite than agreeing; partly: more agreeing than against (opposite,
   no difference, spurious); not reproduced: fewer; inconclusive on a tie (e.g. all open); not
   measured without a pair.
2. ``exponent_<model>`` (all models but shallow): r is the rate of an upper bound on the error
   (the paper's generalization bound, up to log factors), so a decay faster than N^(−r) is
   consistent with it and only a slower one contradicts it. A cell is tested when r > tol
   (``exponent_tolerance``, the slack for log factors: where r <= tol even an error that does not
   decay would meet r − tol), uninformative when its interval's half-width exceeds 0.5,
   consistent when its interval reaches r − tol, inconsistent when it lies wholly below;
   reproduced when every informative tested cell is consistent, partly when some are, not
   reproduced when none; inconclusive when no tested cell is informative; not measured when no
   cell is tested.
3. ``beats_shallow_<model>``: at the largest N, the paired log error ratio log(e_shallow / e_model)
   over (ν_g, ν_h, seed) (mean, Student-t 95% interval, Wilcoxon p; ``symlab.stats``):
   reproduced when the interval lies above 0, opposite below 0, not reproduced within
   ±log(``error_ratio_tolerance``), inconclusive otherwise.

Each exponent is fitted on the cell's learning regime only: the N above the largest N at which
the median relative test error over seeds is at least ``fit_max_error`` (1 by default: a net no
better than predicting the mean is not on a power law; small-N over-fitting above Var(y) would
otherwise add its recovery to the slope). A cell with fewer than ``MIN_FIT_SIZES`` (3) training
sizes left is not fitted, and the claims say so.

The rates are those of trained networks: a model whose median relative drop of the training MSE
over the last fifth of the last stage, at the largest N, exceeds ``max_last_drop`` was still
fitting when stopped, its exponents measure the training budget, and its claims 1 and 2 are
"inconclusive" whatever the intervals say (the measured text keeps them). The whole objective (MSE
+ L2 term) is reported, not gated: under weight decay it keeps falling as the norm shrinks, on a
time scale of 1 / (lr · wd) steps, while the fit has stopped (measured 2026-12-07, paper preset,
N = 10⁴, seed 0: over the last fifth the accordion net at (ν_g, ν_h) = (1.5, 5.5) saw its MSE rise
by 1.5 % while the objective fell by 17.7 %, the shallow net at (1.5, 0.5) 2.2 % and 22.3 %).
Neither is the train error gated: with weight decay a net that does not over-fit keeps a train
error of the order of its test error at large N (the same accordion: train 0.24, test 0.46; three
times the steps per stage 0.26, 0.44; no weight decay 0.10, 0.57; at (1.5, 0.5) train 0.55, test
0.71, no weight decay 0.33, 0.89, blocks 1024 / 128 wide 0.51, 0.72): that train error is where the
regularizer puts it, not a budget that ran out. Rows stored before the drop was recorded are
decided as they are, and the preamble says the convergence was not recorded.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from symlab.engine.verdict import Claim, interval_outcome
from symlab.stats import fit_slope, paired_comparison

DEEP_MODELS = ("accordion", "deep")


def predicted_exponent(nu_g: float, nu_h: float, d_in: int, d_mid: int) -> float:
    """r = min(1/2, ν_g/d_in, ν_h/d_mid) (module docstring; unverified)."""
    return min(0.5, nu_g / d_in, nu_h / d_mid)


def harder(nu_g: float, nu_h: float, d_in: int, d_mid: int) -> str:
    """Which of g, h sets r ("g", "h", "both", or "neither" when 1/2 does)."""
    rg, rh = nu_g / d_in, nu_h / d_mid
    if min(rg, rh) >= 0.5:
        return "neither"
    return "both" if math.isclose(rg, rh) else ("g" if rg < rh else "h")


MIN_FIT_SIZES = 3


def learning_regime(cell: pd.DataFrame, max_error: float) -> list[int]:
    """The training sizes of one cell that enter its fit: those above the largest N whose median
    relative test error over seeds is at least ``max_error`` (module docstring)."""
    medians = cell.groupby("n")["test_error"].median().sort_index()
    above = medians.index[medians.to_numpy() >= max_error]
    return [int(n) for n in medians.index if len(above) == 0 or n > above.max()]


def slope_table(rows: pd.DataFrame, spec) -> pd.DataFrame:
    """One row per (model, ν_g, ν_h): exponent a = −slope on the cell's learning regime, its
    interval and dof, the smallest N fitted (``fit_from``; NaN when fewer than MIN_FIT_SIZES
    sizes are left), the prediction."""
    records = []
    for (model, nu_g, nu_h), cell in rows.groupby(["model", "nu_g", "nu_h"]):
        cell = cell[np.isfinite(cell["test_error"]) & (cell["test_error"] > 0)]
        sizes = learning_regime(cell, spec.fit_max_error)
        fitted = cell[cell["n"].isin(sizes)]
        r = predicted_exponent(nu_g, nu_h, spec.d_in, spec.d_mid)
        record = {"model": model, "nu_g": nu_g, "nu_h": nu_h, "predicted": r,
                  "harder": harder(nu_g, nu_h, spec.d_in, spec.d_mid), "points": len(fitted),
                  "sizes": len(sizes), "fit_from": min(sizes) if sizes else math.nan}  # fmt: skip
        try:
            if len(sizes) < MIN_FIT_SIZES:
                raise ValueError("too few training sizes in the learning regime")
            fit = fit_slope(np.log(fitted["n"]), np.log(fitted["test_error"]), fitted["seed"])
            record.update(exponent=-fit.slope, low=-fit.high, high=-fit.low, stderr=fit.stderr,
                          dof=fit.dof)  # fmt: skip
        except ValueError:
            record.update(exponent=math.nan, low=math.nan, high=math.nan, stderr=math.nan, dof=0)
        records.append(record)
    columns = ["model", "nu_g", "nu_h", "predicted", "harder", "points", "sizes", "fit_from",
               "exponent", "low", "high", "stderr", "dof"]  # fmt: skip
    return pd.DataFrame(records, columns=columns)


def regime_text(slopes: pd.DataFrame, spec) -> str:
    """One sentence on which N entered the fits, for the verdict's preamble."""
    sizes = sorted(spec.n_train)
    parts = []
    for r in slopes.itertuples():
        if r.sizes < MIN_FIT_SIZES:
            parts.append(f"{r.model} {_cell(r)} not fitted ({r.sizes} of {len(sizes)} sizes)")
        elif r.fit_from > sizes[0]:
            parts.append(f"{r.model} {_cell(r)} from N = {r.fit_from:g}")
    if not parts:
        return f" Every cell's fit uses all N (median test error below {spec.fit_max_error:g})."
    return (f" Fits on the learning regime (N above the last median test error >= "
            f"{spec.fit_max_error:g}, at least {MIN_FIT_SIZES} sizes): " + "; ".join(parts)
            + "; the others from the smallest N.")  # fmt: skip


def _cell(row) -> str:
    return f"(ν_g {row.nu_g:g}, ν_h {row.nu_h:g})"


def _compare(hi, lo, min_gap: float, ordered: bool) -> tuple[str, str]:
    """(kind, text) of one comparison of measured exponents a_hi − a_lo (module docstring)."""
    diff = hi.exponent - lo.exponent
    dof = max(min(hi.dof, lo.dof), 1)
    half = float(stats.t.ppf(0.975, dof)) * math.hypot(hi.stderr, lo.stderr)
    low, high = diff - half, diff + half
    within = -min_gap <= low and high <= min_gap
    if ordered:
        kind = ("no difference" if within else "agrees" if low > 0 else "opposite" if high < 0
                else "open")  # fmt: skip
    else:
        kind = ("agrees" if within else "spurious difference" if low > min_gap or high < -min_gap
                else "open")  # fmt: skip
    text = (f"{_cell(hi)} − {_cell(lo)}: {diff:+.2f} [{low:+.2f}, {high:+.2f}] (predicted "
            f"{hi.predicted - lo.predicted:+.2f}; {kind})")  # fmt: skip
    return kind, text


KINDS = ("agrees", "opposite", "no difference", "spurious difference", "open")


def follows_harder(slopes: pd.DataFrame, model: str, min_gap: float) -> Claim:
    """Claim 1 of the module docstring for ``model``."""
    name, claim = (
        f"rate_follows_harder_{model}",
        f"the {model} net's decay exponent follows the harder of g and h (steeper where the "
        f"harder function is smoother, unchanged where only the easier one changes; predicted "
        f"r = min(1/2, ν_g/d_in, ν_h/d_mid), unverified)",
    )
    statistic = (
        f"per pair of cells: a_i − a_j with a Student-t 95% interval (se² = se_i² + se_j²); "
        f"where r differs by more than {min_gap:g}: agrees when the interval lies above 0 in the "
        f"predicted direction and not within ±{min_gap:g}; where r is equal: agrees within "
        f"±{min_gap:g}, spurious difference when wholly outside it"
    )
    cells = slopes[(slopes["model"] == model) & np.isfinite(slopes["exponent"])]
    counts = dict.fromkeys(KINDS, 0)
    parts = []
    for a, b in itertools.combinations(cells.itertuples(), 2):
        gap = abs(a.predicted - b.predicted)
        if gap > min_gap:
            hi, lo = (a, b) if a.predicted > b.predicted else (b, a)
            kind, text = _compare(hi, lo, min_gap, ordered=True)
        elif math.isclose(a.predicted, b.predicted, rel_tol=1e-12, abs_tol=1e-12):
            kind, text = _compare(a, b, min_gap, ordered=False)
        else:
            continue  # predicted apart by less than the resolution: no claim either way
        counts[kind] += 1
        parts.append(text)
    total = sum(counts.values())
    if total == 0:
        return Claim(name, claim, f"no two cells of {model} with equal or clearly different "
                     "predicted exponents", statistic, "not measured")  # fmt: skip
    agrees, opposite = counts["agrees"], counts["opposite"]
    against = total - agrees - counts["open"]
    if agrees == total:
        outcome = "reproduced"
    elif opposite > agrees:
        outcome = "opposite"
    elif agrees > against:
        outcome = "partly reproduced"
    elif agrees < against:
        outcome = "not reproduced"
    else:
        outcome = "inconclusive"
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    return Claim(name, claim, f"{summary} of {total} comparisons: " + "; ".join(parts), statistic,
                 outcome)  # fmt: skip


def exponent_magnitude(slopes: pd.DataFrame, model: str, tolerance: float) -> Claim:
    """Claim 2 of the module docstring for ``model``."""
    name = f"exponent_{model}"
    claim = (f"the {model} net's test error decays at least as fast as N^(−r), r = min(1/2, "
             "ν_g/d_in, ν_h/d_mid) (the notes' rate of the paper's upper bound, unverified; a "
             "faster decay is consistent with a bound)")  # fmt: skip
    statistic = (f"per cell with r > {tolerance:g}: consistent when the exponent's Student-t 95% "
                 f"interval reaches r − {tolerance:g}, inconsistent when it lies wholly below; "
                 "uninformative when its half-width exceeds 0.5")  # fmt: skip
    cells = slopes[(slopes["model"] == model) & np.isfinite(slopes["exponent"])]
    tested = cells[cells["predicted"] > tolerance]
    informative = tested[(tested["high"] - tested["low"]) / 2 <= 0.5]
    consistent = informative["high"] >= informative["predicted"] - tolerance
    parts = [f"{_cell(r)}: {r.exponent:.2f} [{r.low:.2f}, {r.high:.2f}] on N >= {r.fit_from:g} "
             f"vs r = {r.predicted:.2f}"
             + ("" if r.predicted > tolerance else " (not tested: r <= tolerance)")
             for r in cells.itertuples()]  # fmt: skip
    unfitted = slopes[(slopes["model"] == model) & ~np.isfinite(slopes["exponent"])]
    parts += [f"{_cell(r)}: not fitted ({r.sizes} size(s) in the learning regime)"
              for r in unfitted.itertuples()]  # fmt: skip
    hits, total = int(consistent.sum()), len(informative)
    if len(tested) == 0:
        outcome = "not measured"
    elif total == 0:
        outcome = "inconclusive"
    else:
        outcome = (
            "reproduced" if hits == total else "partly reproduced" if hits else "not reproduced"
        )
    measured = (
        f"{hits} of {total} tested cells consistent ({len(tested)} tested, {len(cells)} "
        f"fitted): " + "; ".join(parts)
    )
    return Claim(name, claim, measured, statistic, outcome)


def beats_shallow(rows: pd.DataFrame, model: str, ratio_tolerance: float) -> Claim:
    """Claim 3 of the module docstring for ``model``."""
    name = f"beats_shallow_{model}"
    largest = int(rows["n"].max())
    claim = (f"with g reducing the dimension, the {model} net reaches a lower test error than the "
             f"shallow net at the largest N = {largest}")  # fmt: skip
    tol = math.log(ratio_tolerance)
    statistic = (f"paired over (ν_g, ν_h, seed): mean log(e_shallow / e_{model}) with a Student-t 95% "
                 f"interval and the Wilcoxon signed-rank p; reproduced when the interval lies above log {ratio_tolerance:g}, "
                 f"partly when above 0 only, not reproduced within ±log {ratio_tolerance:g}")  # fmt: skip
    at = rows[(rows["n"] == largest) & np.isfinite(rows["test_error"])]
    keys = ["nu_g", "nu_h", "seed"]
    pairs = at[at["model"] == model].merge(
        at[at["model"] == "shallow"], on=keys, suffixes=("", "_s")
    )
    if len(pairs) < 2:
        return Claim(name, claim, f"{len(pairs)} paired run(s) at N = {largest}", statistic,
                     "inconclusive")  # fmt: skip
    test = paired_comparison(np.log(pairs["test_error"]), np.log(pairs["test_error_s"]))
    # partly: lower for sure, but by less than the tolerance's factor
    outcome = interval_outcome(test.low, test.high, band=tol, reproduced_above=tol)
    wins = int((pairs["test_error"] < pairs["test_error_s"]).sum())
    measured = (f"e_shallow / e_{model} = ×{math.exp(test.mean):.2f} (95% [×{math.exp(test.low):.2f}, "
                f"×{math.exp(test.high):.2f}], Wilcoxon p = {test.wilcoxon_p:.2g}); {model} lower in "
                f"{wins} of {len(pairs)} pairs")  # fmt: skip
    return Claim(name, claim, measured, statistic, outcome)


def _still_learning(claim: Claim, drop: float, largest: int) -> Claim:
    """Claim 1 or 2 of a model still fitting at the largest N, made inconclusive (module
    docstring)."""
    return dataclasses.replace(
        claim,
        measured=(
            f"not decided: the training MSE still fell by {drop:.1%} over the last fifth "
            f"of the last stage (median at N = {largest}), so the exponents are the training "
            f"budget's; as measured: {claim.measured} (would be {claim.outcome})"
        ),  # fmt: skip
        outcome="inconclusive",
    )


def verdict(rows: pd.DataFrame, slopes: pd.DataFrame, spec) -> tuple[list[Claim], str]:
    """The claims of the module docstring and the verdict's preamble."""
    finite = rows[~rows["diverged"].astype(bool)]
    models = [m for m in spec.models if m in set(finite["model"])]
    largest = finite[finite["n"] == finite["n"].max()] if len(finite) else finite
    medians = largest.groupby("model")[["train_error", "test_error"]].median()
    fit_at_largest = (
        ", ".join(
            f"{m} {medians.loc[m, 'train_error']:.2g} (test {medians.loc[m, 'test_error']:.2g})"
            for m in models
        )
        or "none"
    )
    recorded = "last_fifth_drop" in largest and largest["last_fifth_drop"].notna().any()
    drops = largest.groupby("model")["last_fifth_drop"].median() if recorded else None
    learning = [m for m in models if recorded and drops.get(m, 0.0) > spec.max_last_drop]
    largest_n = int(finite["n"].max()) if len(finite) else 0

    def rate_claim(claim: Claim, model: str) -> Claim:
        if model not in learning:
            return claim
        return _still_learning(claim, drops[model], largest_n)

    deep = [m for m in DEEP_MODELS if m in models]
    claims = [rate_claim(follows_harder(slopes, m, spec.min_gap), m) for m in deep]
    claims += [rate_claim(exponent_magnitude(slopes, m, spec.exponent_tolerance), m) for m in deep]
    if "shallow" in models:
        claims += [beats_shallow(finite, m, spec.error_ratio_tolerance) for m in deep]
    if not recorded:
        caveat = ("; the training MSE's last-fifth drop was not recorded (rows from before it "
                  "was), so whether the nets had stopped fitting is not known")  # fmt: skip
    else:
        caveat = "; median drop over the last fifth of the last stage, training MSE: " + ", ".join(
            f"{m} {drops[m]:.1%}" for m in models if m in drops
        )
        if "objective_last_fifth_drop" in largest:
            objective = largest.groupby("model")["objective_last_fifth_drop"].median()
            caveat += "; objective (MSE + L2 term): " + ", ".join(
                f"{m} {objective[m]:.1%}" for m in models if m in objective
            )
        if learning:
            whose = "their" if len(learning) > 1 else "its"
            caveat += (f" ({', '.join(learning)} above {spec.max_last_drop:.0%}: still fitting, "
                       f"{whose} rate claims are inconclusive)")  # fmt: skip
    shallow = slopes[slopes["model"] == "shallow"]
    shallow_text = "; ".join(f"{_cell(r)} {r.exponent:.2f} [{r.low:.2f}, {r.high:.2f}]"
                             if np.isfinite(r.exponent) else f"{_cell(r)} not fitted"
                             for r in shallow.itertuples())  # fmt: skip
    preamble = (
        f"h∘g with Matérn GPs g: R^{spec.d_in} → R^{spec.d_mid}, h: R^{spec.d_mid} → R^{spec.d_out} "
        f"({spec.sampler} sampler, data seed {spec.data_seed}), ν_g in {spec.nu_g}, ν_h in {spec.nu_h}; "
        f"N in {spec.n_train}, {spec.n_test} test points, {spec.seeds} seed(s); "
        f"{len(rows) - len(finite)} diverged run(s) left out; median relative train error at the "
        f"largest N {fit_at_largest}{caveat}. Exponents are −slope of log test error on log N."
        + regime_text(slopes, spec)
        + (f" Shallow net's exponents: {shallow_text}." if len(shallow) else "")
    )
    return claims, preamble
