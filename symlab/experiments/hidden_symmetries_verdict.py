"""The claims of the ``hidden-symmetries`` study (Grigsby, Lindsey & Rolnick 2023, ICML), tested as
:class:`symlab.engine.verdict.Claim`\\ s on the per-network indicator "full functional dimension".

The paper reports that the probability of no hidden symmetries decreases with depth and increases
with width and input dimension; its cells vary input dimension and width together (n0 = width).
Each trend is a Stouffer-combined Spearman test within strata of the other factors
(:func:`symlab.stats.stratified_trend`, alpha = 0.05), on the most refined sampler of the grid
(boundary, else multi-scale, else Gaussian: each gives a lower bound on the functional dimension,
the refined one the tightest):

- depth (strata: n0, width): reproduced when P decreases, opposite when it increases;
- the diagonal n0 = width (strata: depth; the paper's design, the headline for width and input
  dimension): reproduced when P increases, opposite when it decreases;
- width at fixed n0 and n0 at fixed width (strata: the other two factors; beyond the paper's
  design, reported separately with their sign): reproduced when P increases, opposite when it
  decreases.

A significant trend whose strata do not mostly agree (no more strata with the expected sign
than with the other one: the combined Z then rests on a few strata) is "partly reproduced", and
the claim says so. No significant trend is "not reproduced"; a grid without two levels of the
factor in some stratum is "not measured".
"""

from __future__ import annotations

import pandas as pd

from symlab.engine.verdict import Claim
from symlab.stats import stratified_trend

GLR = "Grigsby, Lindsey & Rolnick 2023"
SAMPLER_ORDER = ("boundary", "multiscale", "gaussian")


def refined_sampler(rows: pd.DataFrame) -> str:
    """The most refined sampler present in ``rows`` (boundary > multiscale > gaussian)."""
    present = set(rows["sampler"])
    return next(s for s in (*SAMPLER_ORDER, *sorted(present)) if s in present)


def _trend_claim(
    name: str, claim: str, frame: pd.DataFrame, factor: str, strata: list[str], expected: str
) -> Claim:
    trend = stratified_trend(frame, factor, "full", strata)
    label = "input dimension = width" if factor == "n0 = width" else factor
    if not trend.n_strata:
        measured = f"no stratum with two levels of {label} in this grid"
        return Claim(name, claim, measured, "-", "not measured")
    along, against = (
        (trend.n_decreasing, trend.n_increasing)
        if expected == "decreasing"
        else (trend.n_increasing, trend.n_decreasing)
    )
    split = ""
    if trend.direction == expected:
        outcome = "reproduced" if along > against else "partly reproduced"
        if along <= against:
            split = (f"; the strata split ({along} along, {against} against): the combined "
                     "trend rests on a few strata")  # fmt: skip
    elif trend.direction == "no clear trend":
        outcome = "not reproduced"
    else:
        outcome = "opposite"
    levels = frame.groupby(factor)["full"].agg(["mean", "size"])
    means = ", ".join(
        f"{level:g}: {row['mean']:.2f} ({int(row['size'])} networks)"
        for level, row in levels.iterrows()
    )
    measured = f"{trend.sentence('P(full FD)')}; pooled P by {label}: {means}{split}"
    statistic = (
        f"Spearman within {trend.n_strata} strata of {', '.join(strata) or 'none'}, "
        f"Stouffer Z = {trend.combined_z:+.1f}, p = {trend.p_value:.2g}"
    )
    return Claim(name, claim, measured, statistic, outcome)


def hidden_symmetry_claims(rows: pd.DataFrame) -> list[Claim]:
    """The four trend claims (see the module docstring) on the grid's most refined sampler."""
    sampler = refined_sampler(rows)
    frame = rows[rows["sampler"] == sampler].assign(full=lambda f: f["full"].astype(float))
    frame = frame.assign(**{"n0 = width": frame["n0"]})
    diagonal = frame[frame["n0"] == frame["width"]]
    on = f"{sampler} sampler"
    return [
        _trend_claim(
            "depth",
            f"the probability of no hidden symmetries decreases with depth ({GLR}; {on})",
            frame, "depth", ["n0", "width"], "decreasing",
        ),
        _trend_claim(
            "diagonal",
            f"it increases with width and input dimension, varied together as n0 = width "
            f"(the paper's cells; {GLR}; {on})",
            diagonal, "n0 = width", ["depth"], "increasing",
        ),
        _trend_claim(
            "width_fixed_n0",
            f"it increases with width at a fixed input dimension (beyond the paper's design, "
            f"reported with its sign; {on})",
            frame, "width", ["n0", "depth"], "increasing",
        ),
        _trend_claim(
            "n0_fixed_width",
            f"it increases with input dimension at a fixed width (beyond the paper's design; "
            f"{on})",
            frame, "n0", ["width", "depth"], "increasing",
        ),
    ]  # fmt: skip
