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
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class TrendTest:
    """Direction of a response along one factor, tested within strata of the other factors.

    In each stratum (the other factors held fixed) Spearman's rho between the factor and the
    response is computed over individual runs, with its two-sided p-value; strata where the
    response is constant carry no information ('flat') and are left out. The strata are combined
    by Stouffer's method on signed z-scores, z_i = sign(rho_i) * Phi^-1(1 - p_i / 2),
    Z = sum z_i / sqrt(k) (Whitlock 2005), so a consistent small effect over many strata counts.
    ``direction`` is 'decreasing', 'increasing' or 'no clear trend' (combined p >= alpha).
    """

    factor: str
    n_strata: int
    n_decreasing: int
    n_increasing: int
    n_flat: int
    median_rho: float
    combined_z: float
    p_value: float
    direction: str

    def sentence(self, response: str) -> str:
        """One clause such as "P decreases with depth (11 of 12 strata, Stouffer p = 0.003)"."""
        if self.n_decreasing + self.n_increasing == 0:
            if self.n_flat == 1:
                return f"{response} does not vary with {self.factor} (one stratum)"
            return f"{response} does not vary with {self.factor} in any of {self.n_flat} strata"
        stratum = "stratum" if self.n_decreasing == 1 else "strata"
        counts = (
            f"{self.n_decreasing} {stratum} down, {self.n_increasing} up, {self.n_flat} flat; "
            f"median Spearman rho {self.median_rho:+.2f}, Stouffer Z = {self.combined_z:+.1f}, "
            f"p = {self.p_value:.2g}"
        )
        if self.direction == "decreasing":
            return f"{response} decreases with {self.factor} ({counts})"
        if self.direction == "increasing":
            return f"{response} increases with {self.factor} ({counts})"
        return f"{response} shows no clear trend with {self.factor} ({counts})"


def stratified_trend(
    frame: pd.DataFrame, factor: str, response: str, strata: list[str], alpha: float = 0.05
) -> TrendTest:
    """Stouffer-combined Spearman test of ``response`` against ``factor`` within ``strata``."""
    rhos, zs = [], []
    n_flat = 0
    for _, group in frame.groupby(strata) if strata else [(None, frame)]:
        if group[factor].nunique() < 2:
            continue
        if group[response].nunique() < 2:
            n_flat += 1
            continue
        result = stats.spearmanr(group[factor], group[response])
        rho, p = float(result.statistic), float(result.pvalue)
        if np.isnan(rho):
            n_flat += 1
            continue
        rhos.append(rho)
        zs.append(np.sign(rho) * stats.norm.isf(max(p, 1e-300) / 2))
    combined = float(np.sum(zs) / np.sqrt(len(zs))) if zs else 0.0
    p_value = float(2 * stats.norm.sf(abs(combined))) if zs else 1.0
    if p_value < alpha:
        direction = "decreasing" if combined < 0 else "increasing"
    else:
        direction = "no clear trend"
    return TrendTest(
        factor=factor,
        n_strata=len(rhos) + n_flat,
        n_decreasing=sum(r < 0 for r in rhos),
        n_increasing=sum(r > 0 for r in rhos),
        n_flat=n_flat,
        median_rho=float(np.median(rhos)) if rhos else float("nan"),
        combined_z=combined,
        p_value=p_value,
        direction=direction,
    )
