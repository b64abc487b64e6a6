"""Shared summary statistics: Wilson intervals and the stratified trend test."""

import numpy as np
import pandas as pd
import pytest

from symlab.stats import stratified_trend, wilson_interval


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
