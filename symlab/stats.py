"""Small statistics shared by the studies' summaries: binomial intervals and trend tests."""

from __future__ import annotations

import math
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
class PowerLawFit:
    """A fitted law T ≈ C·x^exponent from per-run times at a few levels of x (e.g. learning time
    against the dimension d), with a bootstrap confidence interval and right-censoring.

    ``levels``, ``medians`` and ``censored_levels``: per level of x, the median time over its runs
    (a run that never finished counts as +inf, so the median is +inf, a lower bound only, when at
    least half the runs are censored). ``exponent`` is the least-squares slope of log median on
    log x when no median is censored (``lower_bound`` False). When only levels above the mean of
    log x are censored, replacing their medians by the censoring times can only lower the slope, so
    that slope is reported with ``lower_bound`` True; otherwise ``exponent`` is NaN. The interval
    is the percentile bootstrap over runs, resampled within each level (censored replicates count
    as ±inf, so the interval is open-ended when censoring is likely)."""

    exponent: float
    ci_low: float
    ci_high: float
    prefactor: float
    lower_bound: bool
    levels: tuple[float, ...]
    medians: tuple[float, ...]
    censored_levels: tuple[float, ...]
    n_boot: int
    confidence: float

    def sentence(self, quantity: str = "time", factor: str = "d") -> str:
        """One clause: "time ∝ d^1.02 (95% CI [0.91, 1.13])" or the lower bound."""
        ci = f"{100 * self.confidence:g}% CI [{self.ci_low:.2f}, {self.ci_high:.2f}]"
        if self.lower_bound:
            censored = ", ".join(f"{v:g}" for v in self.censored_levels)
            return (
                f"{quantity} ∝ {factor}^p with p ≥ {self.exponent:.2f} (censored at {factor} = "
                f"{censored}; {ci})"
            )
        if not np.isfinite(self.exponent):
            return f"{quantity}: no exponent (censored at low {factor}; {ci})"
        return f"{quantity} ∝ {factor}^{self.exponent:.2f} ({ci})"


def power_law_fit(
    x, times, censored=None, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> PowerLawFit:
    """Fit ``times ≈ C·x^p`` on the per-level medians of right-censored runs (see
    :class:`PowerLawFit`). ``x``, ``times`` and ``censored`` (True: the run never finished and its
    time is a lower bound) are per run; at least two levels of x are needed."""
    x = np.asarray(x, dtype=float)
    times = np.asarray(times, dtype=float)
    censored = np.zeros(len(x), bool) if censored is None else np.asarray(censored, dtype=bool)
    if not (len(x) == len(times) == len(censored)) or len(x) == 0:
        raise ValueError("times: expected x, times and censored of the same, positive length")
    if np.any(x <= 0) or np.any(times <= 0):
        raise ValueError("times: expected positive x and positive times (a log-log fit)")
    levels = np.unique(x)
    if len(levels) < 2:
        raise ValueError(f"x: expected at least two distinct levels, got {levels.tolist()}")
    values = np.where(censored, np.inf, times)
    groups = [values[x == level] for level in levels]
    medians = np.array([np.median(g) for g in groups])
    log_x = np.log(levels)
    centred = log_x - log_x.mean()

    def slopes(log_medians: np.ndarray) -> np.ndarray:  # rows of replicates → OLS slopes
        with np.errstate(invalid="ignore"):
            finite = np.where(np.isfinite(log_medians), log_medians, 0.0)
            slope = (finite - finite.mean(-1, keepdims=True)) @ centred / (centred @ centred)
        up = (~np.isfinite(log_medians) & (centred > 0)).any(-1)
        down = (~np.isfinite(log_medians) & (centred <= 0)).any(-1)
        return np.where(up & ~down, np.inf, np.where(down, -np.inf, slope))

    with np.errstate(divide="ignore"):
        log_medians = np.log(medians)
    censored_levels = ~np.isfinite(log_medians)
    bounded = np.log(np.array([np.median(times[x == level]) for level in levels]))
    lower_bound = bool(censored_levels.any() and np.all(centred[censored_levels] > 0))
    if not censored_levels.any() or lower_bound:
        fit = np.polyfit(log_x, bounded, 1)
        exponent, prefactor = float(fit[0]), float(np.exp(fit[1]))
    else:
        exponent, prefactor = float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boot = np.column_stack(
        [np.median(rng.choice(g, size=(n_boot, len(g)), replace=True), axis=1) for g in groups]
    )
    with np.errstate(divide="ignore"):
        replicate = slopes(np.log(boot))
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicate, [tail, 1 - tail], method="inverted_cdf")
    return PowerLawFit(
        exponent=exponent,
        ci_low=float(low),
        ci_high=float(high),
        prefactor=prefactor,
        lower_bound=lower_bound,
        levels=tuple(float(v) for v in levels),
        medians=tuple(float(v) for v in medians),
        censored_levels=tuple(float(v) for v in levels[censored_levels]),
        n_boot=int(n_boot),
        confidence=float(confidence),
    )


def log_allowance(low: float, high: float) -> float:
    """How much one factor log x adds to a log–log slope fitted over [low, high]:
    log(log high / log low) / log(high / low) (Θ̃ laws hide such factors)."""
    if not 1 < low < high:
        raise ValueError(f"low: expected 1 < low < high, got {low!r} and {high!r}")
    return math.log(math.log(high) / math.log(low)) / math.log(high / low)


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
