"""Shared summary statistics: Wilson intervals, the stratified trend test and censored power-law fits."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import linregress

from symlab.stats import power_law_fit, stratified_trend, wilson_interval


def test_wilson_interval_matches_the_closed_form():
    for k, n in [(0, 10), (3, 10), (10, 10), (37, 50)]:
        z, p = 1.959963984540054, k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        low, high = wilson_interval(k, n)
        assert low == pytest.approx(max(0, centre - half), abs=1e-12)
        assert high == pytest.approx(min(1, centre + half), abs=1e-12)
    assert all(np.isnan(wilson_interval(0, 0)))


def _frame(slope: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for stratum in range(4):
        for depth in range(1, 6):
            for _ in range(12):
                p = 1 / (1 + np.exp(-(slope * (depth - 3))))
                rows.append({"stratum": stratum, "depth": depth, "full": float(rng.random() < p)})
    return pd.DataFrame(rows)


def test_trend_direction_is_recovered_and_null_is_not_significant():
    down = stratified_trend(_frame(-1.5, 0), "depth", "full", ["stratum"])
    assert down.direction == "decreasing" and down.n_decreasing == 4 and down.p_value < 1e-6
    up = stratified_trend(_frame(1.5, 1), "depth", "full", ["stratum"])
    assert up.direction == "increasing" and up.combined_z > 0
    nulls = [stratified_trend(_frame(0.0, s), "depth", "full", ["stratum"]) for s in range(40)]
    assert sum(t.p_value < 0.05 for t in nulls) <= 6  # about 5% false positives at alpha 0.05


def test_constant_response_is_flat_not_a_trend():
    frame = _frame(-1.5, 2).assign(full=1.0)
    trend = stratified_trend(frame, "depth", "full", ["stratum"])
    assert trend.direction == "no clear trend" and trend.n_flat == 4
    assert "does not vary with depth" in trend.sentence("P")


def test_sentences_use_singular_for_one_stratum():
    one = _frame(-1.5, 3)
    one = one[one["stratum"] == 0]
    flat = stratified_trend(one.assign(full=1.0), "depth", "full", ["stratum"])
    assert flat.sentence("P") == "P does not vary with depth (one stratum)"
    down = stratified_trend(one, "depth", "full", ["stratum"])
    assert down.n_decreasing == 1 and "1 stratum down, 0 up, 0 flat" in down.sentence("P")


def test_power_law_fit_matches_least_squares_on_exact_data():
    x = np.repeat([16.0, 32.0, 64.0, 128.0], 5)
    times = 3.0 * x**1.5
    fit = power_law_fit(x, times, n_boot=200)
    reference = linregress(np.log(np.unique(x)), np.log(3.0 * np.unique(x) ** 1.5))
    assert fit.exponent == pytest.approx(reference.slope, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.0, rel=1e-9)
    assert fit.ci_low == pytest.approx(1.5, abs=1e-9) and fit.ci_high == pytest.approx(
        1.5, abs=1e-9
    )
    assert not fit.lower_bound and fit.censored_levels == ()


def test_power_law_fit_interval_covers_the_true_exponent_and_excludes_a_wrong_one():
    rng = np.random.default_rng(0)
    x = np.repeat([16.0, 32.0, 64.0, 128.0], 8)
    covered, excluded = 0, 0
    for _ in range(60):
        times = x**2 * np.exp(0.3 * rng.standard_normal(len(x)))
        fit = power_law_fit(x, times, n_boot=400, seed=int(rng.integers(1 << 30)))
        covered += fit.ci_low <= 2.0 <= fit.ci_high
        excluded += not fit.ci_low <= 1.0 <= fit.ci_high
    assert covered >= 48  # nominal 95%; bootstrap percentile intervals run a little narrow
    assert excluded == 60


def test_power_law_fit_censoring_gives_lower_bounds_never_values():
    x = np.repeat([16.0, 32.0, 64.0], 4)
    times = x**2
    censored = x == 64.0  # the largest d never finished: its times are the budget, a lower bound
    budget = np.where(censored, 1000.0, times)
    fit = power_law_fit(x, budget, censored, n_boot=200)
    assert fit.lower_bound and fit.censored_levels == (64.0,)
    assert fit.exponent < 2.0  # the budget 1000 < 64² bounds the slope from below only
    assert fit.ci_high == np.inf and "≥" in fit.sentence()
    low = power_law_fit(x, budget, x == 16.0, n_boot=200)  # censored at the smallest d
    assert np.isnan(low.exponent) and not low.lower_bound
    with pytest.raises(ValueError, match="x: expected at least two"):
        power_law_fit([2.0, 2.0], [1.0, 2.0])


def test_slope_matches_linregress_and_the_dummy_variable_regression():
    from scipy import stats

    from symlab.stats import fit_slope

    rng = np.random.default_rng(0)
    x = np.repeat(np.arange(4.0, 13.0), 3)
    y = 2.0 * x + 5 + rng.normal(0, 0.5, len(x))
    fit = fit_slope(x, y)
    reference = stats.linregress(x, y)
    assert fit.slope == pytest.approx(reference.slope, rel=1e-12)
    assert fit.stderr == pytest.approx(reference.stderr, rel=1e-10)
    t = stats.t.ppf(0.975, len(x) - 2)
    assert fit.low == pytest.approx(reference.slope - t * reference.stderr, rel=1e-10)
    # three groups with their own intercepts: lstsq with one dummy column per group
    groups = np.tile([0, 1, 2], len(x) // 3)
    y2 = 2.0 * x + np.array([0.0, 10.0, -4.0])[groups] + rng.normal(0, 0.5, len(x))
    design = np.column_stack([x] + [(groups == g).astype(float) for g in range(3)])
    coef, rss, *_ = np.linalg.lstsq(design, y2, rcond=None)
    cov = rss[0] / (len(x) - 4) * np.linalg.inv(design.T @ design)
    fit = fit_slope(x, y2, groups)
    assert fit.slope == pytest.approx(coef[0], rel=1e-10)
    assert fit.stderr == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-8)
    assert fit.intercepts[1] == pytest.approx(coef[2], rel=1e-8)
    assert fit.low < 2.0 < fit.high and fit.dof == len(x) - 4
    # a slope of 2 is not inside the interval of data with slope 3
    assert not fit_slope(x, 3.0 * x + rng.normal(0, 0.1, len(x))).low < 2.0
    with pytest.raises(ValueError, match="x: expected at least"):
        fit_slope([1.0, 2.0], [1.0, 2.0])


def test_paired_comparison_against_scipy():
    from scipy import stats

    from symlab.stats import paired_comparison

    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 0.1, 8)
    b = a + 0.05 + rng.normal(0, 0.01, 8)
    result = paired_comparison(a, b)
    reference = stats.ttest_rel(b, a).confidence_interval(0.95)
    assert result.low == pytest.approx(reference.low, rel=1e-10)
    assert result.high == pytest.approx(reference.high, rel=1e-10)
    assert result.low > 0 and result.wilcoxon_p == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert paired_comparison(a, a).wilcoxon_p == 1.0
