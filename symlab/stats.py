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


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares slope of y on x, with one intercept per group (fixed effects), and its
    Student-t confidence interval: se² = s² / Σ_i (x_i − x̄_{g(i)})², s² = RSS / (n − 1 − G)."""

    slope: float
    stderr: float
    low: float
    high: float
    dof: int
    intercepts: dict


def fit_slope(x, y, groups=None, confidence: float = 0.95) -> SlopeFit:
    """Fit y_i = a x_i + b_{g(i)} + ε_i by least squares (the within-group estimator: x and y are
    centered in each group, so a = Σ x̃ỹ / Σ x̃²); ``groups`` None puts every point in one group
    (plain linear regression). Needs at least G + 2 points and x varying within some group."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    groups = np.zeros(len(x), dtype=int) if groups is None else np.asarray(groups)
    if x.shape != y.shape or x.ndim != 1 or len(groups) != len(x):
        raise ValueError("x: expected 1-D x, y and groups of one length")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    labels = list(dict.fromkeys(groups.tolist()))
    dof = len(x) - 1 - len(labels)
    x_mean = {g: x[groups == g].mean() for g in labels}
    y_mean = {g: y[groups == g].mean() for g in labels}
    xc = x - np.array([x_mean[g] for g in groups.tolist()])
    yc = y - np.array([y_mean[g] for g in groups.tolist()])
    sxx = float(xc @ xc)
    if dof < 1 or sxx == 0:
        raise ValueError(
            f"x: expected at least {len(labels) + 2} points and x varying within a group, "
            f"got {len(x)} points"
        )
    slope = float(xc @ yc) / sxx
    residual = yc - slope * xc
    stderr = float(np.sqrt(residual @ residual / dof / sxx))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * stderr
    intercepts = {g: float(y_mean[g] - slope * x_mean[g]) for g in labels}
    return SlopeFit(slope, stderr, slope - half, slope + half, dof, intercepts)


@dataclass(frozen=True)
class PairedComparison:
    """b − a over paired observations: mean and Student-t interval of the differences, and the
    two-sided Wilcoxon signed-rank p-value (exact for small n; 1.0 when every difference is 0)."""

    n: int
    mean: float
    low: float
    high: float
    wilcoxon_p: float


def paired_comparison(a, b, confidence: float = 0.95) -> PairedComparison:
    """Paired differences d_i = b_i − a_i (e.g. the same seed under two treatments)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("a: expected two 1-D arrays of one length >= 2 (paired observations)")
    d = b - a
    mean = float(d.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * float(
        d.std(ddof=1) / np.sqrt(len(d))
    )
    p = 1.0 if not np.any(d != 0) else float(stats.wilcoxon(d).pvalue)
    return PairedComparison(len(d), mean, mean - half, mean + half, p)
