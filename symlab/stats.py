"""Small statistics shared by the studies' summaries: binomial intervals and trend tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); (nan, nan) for 0 trials."""
    if trials == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass(frozen=True)
class TrendTest:
    """Direction of a response along one factor, tested within strata of the other factors.

    In each stratum (the other factors held fixed) Spearman's rho between the factor and the
    response is computed over individual runs; strata where rho is undefined (constant response)
    are 'flat'. A two-sided sign test over the non-flat strata says whether one direction
    dominates. ``direction`` is 'decreasing', 'increasing' or 'no clear trend' (p >= alpha).
    """

    factor: str
    n_strata: int
    n_decreasing: int
    n_increasing: int
    n_flat: int
    median_rho: float
    sign_test_p: float
    direction: str

    def sentence(self, response: str) -> str:
        """One clause such as "decreasing in depth (11 of 12 strata, sign test p = 0.003)"."""
        counted = self.n_decreasing + self.n_increasing
        if self.direction == "decreasing":
            lead = f"decreasing in {self.factor} ({self.n_decreasing} of {counted} strata"
        elif self.direction == "increasing":
            lead = f"increasing in {self.factor} ({self.n_increasing} of {counted} strata"
        else:
            lead = (
                f"no clear trend in {self.factor} ({self.n_decreasing} down, "
                f"{self.n_increasing} up, {self.n_flat} flat"
            )
        return f"{response} {lead}, median Spearman rho = {self.median_rho:+.2f}, sign test p = {self.sign_test_p:.2g})"


def stratified_trend(
    frame: pd.DataFrame, factor: str, response: str, strata: list[str], alpha: float = 0.05
) -> TrendTest:
    """Sign test over strata of the Spearman correlation between ``factor`` and ``response``."""
    rhos = []
    n_flat = 0
    for _, group in frame.groupby(strata) if strata else [(None, frame)]:
        if group[factor].nunique() < 2:
            continue
        if group[response].nunique() < 2:
            n_flat += 1
            continue
        rho = stats.spearmanr(group[factor], group[response]).statistic
        if np.isnan(rho) or rho == 0:
            n_flat += 1
        else:
            rhos.append(float(rho))
    n_down = sum(r < 0 for r in rhos)
    n_up = sum(r > 0 for r in rhos)
    p = float(stats.binomtest(n_down, n_down + n_up).pvalue) if rhos else 1.0
    if p < alpha:
        direction = "decreasing" if n_down > n_up else "increasing"
    else:
        direction = "no clear trend"
    return TrendTest(
        factor=factor,
        n_strata=len(rhos) + n_flat,
        n_decreasing=n_down,
        n_increasing=n_up,
        n_flat=n_flat,
        median_rho=float(np.median(rhos)) if rhos else float("nan"),
        sign_test_p=p,
        direction=direction,
    )
