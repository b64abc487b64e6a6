"""Claims of the ``cnn-bottleneck`` study (:mod:`symlab.experiments.cnn_bottleneck`).

On the networks of depth ≥ ``fit_min_depth`` that pass the fit
gate (the others are counted and left out), middle layers = the middle half (L/4 ≤ ℓ ≤ 3L/4):

1. ``kept_frequencies`` (frequencies task): "the middle layers keep only the task's frequencies":
   reproduced when every middle layer of every such network keeps a subset of S ∪ (−S) ∪ {0},
   partly when some do, not reproduced when none do; the median energy fraction on S is
   reported. The constant (frequency 0) is allowed: a bias-free ReLU network passes a signed
   band-limited signal z through its ReLUs at unit gain by riding it on a constant, h = z + c ≥ 0
   (ReLU is then the identity), and the constant costs one frequency per layer where the sign
   trick [z⁺, z⁻] costs a gain of 2 on each of S ∪ (−S);
2. ``norm_slope`` (frequencies task): "‖θ‖² ≈ L × CBN rank": n² × the slope of ‖θ‖² = a L + b_seed
   (95% t interval) against the median middle CBN rank R; reproduced when the interval meets
   [R − 0.5, R + 0.5] and excludes R ± 1, not reproduced when it misses [R − 0.5, R + 0.5],
   opposite when the whole interval is below 0 (the norm falls with depth), inconclusive otherwise;
3. ``digits_bottleneck`` (digits task): "the middle layers keep fewer frequencies than the
   first": reproduced when the median middle count of surviving frequencies is below the first
   layer's in every deep network, partly in some, not reproduced in none.

:func:`polish_words` states the polish recipe (one L-BFGS run or the λ ladder) in the verdict.
"""

from __future__ import annotations

import pandas as pd

from symlab.bias import CBN_RTOL
from symlab.bias.conv_tasks import frequency_set
from symlab.engine.verdict import Claim
from symlab.stats import fit_slope


def _share_outcome(hits: int, total: int) -> str:
    if total == 0:
        return "inconclusive"
    return "reproduced" if hits == total else "partly reproduced" if hits else "not reproduced"


def frequency_claims(deep: pd.DataFrame, spec) -> list[Claim]:
    n = spec.image_size
    kept = frequency_set(spec.frequencies, n)
    hits = int(deep["middle_subset_of_task"].astype(bool).sum())
    per_depth = deep.groupby("depth")["middle_n_surviving"].median()
    surviving = ", ".join(f"L = {int(depth)}: {count:g}" for depth, count in per_depth.items())
    whole = int(deep["middle_keeps_task"].astype(bool).sum()) if "middle_keeps_task" in deep else 0
    kept_claim = Claim(
        "kept_frequencies",
        f"the middle layers keep only the task's {len(kept)} frequencies {kept} (and the "
        "constant (0, 0))",
        f"{hits} of {len(deep)} networks keep a subset of them in every middle layer ({whole} "
        f"keep all of the task's); median surviving frequencies per middle layer by depth "
        f"{surviving}; "
        f"median weight energy on the task's frequencies "
        f"{deep['middle_energy_on_task'].median():.2f}",
        f"CBN rule s > {CBN_RTOL:g} s_max per layer, middle half of the layers, depths >= "
        f"{spec.fit_min_depth}; reproduced when every network's middle layers keep a subset",
        _share_outcome(hits, len(deep)),
    )
    statistic = ("least squares ‖θ‖² = a L + b_seed, n² a with its Student-t 95% interval against "
                 "the median middle CBN rank R; reproduced when it meets R ± 0.5 and excludes R ± 1")  # fmt: skip
    claim = "the parameter norm grows like depth × CBN rank (n² d‖θ‖²/dL = R)"
    try:
        fit = fit_slope(deep["depth"], deep["param_norm_sq"], deep["seed"])
    except ValueError:
        return [kept_claim, Claim("norm_slope", claim, "fewer than two depths to fit", statistic,
                                  "inconclusive")]  # fmt: skip
    rank = float(deep["middle_cbn_rank"].median())
    low, high, slope = fit.low * n**2, fit.high * n**2, fit.slope * n**2
    apart = high < rank - 0.5 or low > rank + 0.5
    singles_out = rank - 1 < low and high < rank + 1
    outcome = "not reproduced" if apart else "reproduced" if singles_out else "inconclusive"
    if high < 0:  # the norm falls with depth
        outcome = "opposite"
    measured = (f"n² × slope = {slope:.2f}, 95% [{low:.2f}, {high:.2f}]; median middle CBN rank "
                f"R = {rank:g}")  # fmt: skip
    return [kept_claim, Claim("norm_slope", claim, measured, statistic, outcome)]


def digits_claim(deep: pd.DataFrame, spec) -> Claim:
    first = [r[0] for r in deep["n_surviving"]]
    hits = int(sum(m < f for m, f in zip(deep["middle_n_surviving"], first)))
    more = int(sum(m > f for m, f in zip(deep["middle_n_surviving"], first)))
    measured = ", ".join(
        f"L = {int(r.depth)}: first {f}, middle {r.middle_n_surviving:g}"
        for r, f in zip(deep.itertuples(), first)
    )
    return Claim(
        "digits_bottleneck",
        "on digits the middle layers keep fewer frequencies than the first layer",
        f"surviving frequencies (of 64) {measured}; {hits} of {len(deep)} networks",
        f"CBN rule s > {CBN_RTOL:g} s_max, depths >= {spec.fit_min_depth}; opposite when every "
        "network's middle layers keep more than its first",
        "opposite" if more == len(deep) else _share_outcome(hits, len(deep)),
    )


def study_claims(deep: pd.DataFrame, spec, no_fit: str) -> list[Claim]:
    """The claims of the spec's tasks on the deep networks that passed the fit gate; a task
    without one gets its claims as inconclusive, with ``no_fit`` as the evidence."""
    claims: list[Claim] = []
    if "frequencies" in spec.tasks:
        part = deep[deep["task"] == "frequencies"]
        claims += frequency_claims(part, spec) if not part.empty else [
            Claim("kept_frequencies", "the middle layers keep only the task's frequencies",
                  no_fit, "none", "inconclusive"),
            Claim("norm_slope", "the parameter norm grows like depth × CBN rank", no_fit,
                  "none", "inconclusive"),
        ]  # fmt: skip
    if "digits" in spec.tasks:
        part = deep[deep["task"] == "digits"]
        claims.append(digits_claim(part, spec) if not part.empty else Claim(
            "digits_bottleneck", "on digits the middle layers keep fewer frequencies than the first",
            no_fit, "none", "inconclusive"))  # fmt: skip
    return claims


def polish_words(spec, rows: pd.DataFrame) -> str:
    """The verdict's words on the polish after the first-order phase: the recipe (one L-BFGS
    run at λ, or the ladder of ``polish_stages`` stages at geometric λ from ``polish_from`` to
    λ) and how the runs' L-BFGS (the last stage of a ladder) ended; "" without a polish."""
    if not spec.polish_iters:
        return ""
    recipe = f"up to {spec.polish_iters} L-BFGS iterations on the L2 objective in float64"
    if spec.polish_stages > 1:
        recipe = (f"{spec.polish_stages} L-BFGS stages of up to {spec.polish_iters} iterations "
                  f"on the L2 objective in float64 at geometric λ from {spec.polish_from:g} to "
                  f"{spec.lam:g}, each from the last one's end point")  # fmt: skip
    words = f" at λ = {spec.warm_lam:g}, then the layers rebalanced and {recipe}"
    if "polish_stop_reason" in rows and len(rows):
        ends = rows["polish_stop_reason"].value_counts()
        meaning = {"steps": "used every iteration", "tol": "at the gradient tolerance",
                   "stalled": "stalled (no progress)"}  # fmt: skip
        which = "last stage: " if spec.polish_stages > 1 else ""
        words += (f" ({which}" + ", ".join(f"{n} {meaning.get(r, r)}" for r, n in ends.items())
                  + f"; final gradient ∞-norm up to {rows['polish_grad_norm'].max():.1e}: the L2 "
                  "minimum approached, not certified)")  # fmt: skip
    return words
