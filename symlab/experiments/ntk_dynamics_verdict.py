"""The claims of the ``ntk-dynamics`` study (Fort et al. 2020, NeurIPS), tested as
:class:`symlab.engine.verdict.Claim`\\ s from per-run series.

- "Within a few epochs the kernel Θ_t, used as a kernel machine, has about 3× lower test error
  than Θ_0" (Fort et al. §4, their Fig. 4): the error ratio R_t = err(Θ_0) / err(Θ_t) per run
  (:func:`error_ratio`; an error of 0 is floored at half a test point, so R is finite), read at
  the record nearest ``GAIN_EPOCHS`` epochs in log time. Over runs, the geometric mean of R and its
  Student-t 95% interval (on log R): reproduced when the interval's lower end is ≥ 2 (about 3×,
  within a factor 1.5), partly reproduced when it is above 1 but below 2 (lower error, not 3×),
  not reproduced when it contains 1, opposite when it lies below 1.
- "The kernel velocity is large early and decays" (Fort et al. §4): first-third vs last-third
  mean velocity per run, one-sided sign test (p < 0.05 and most runs up: reproduced; most runs
  down at p < 0.05 under the reverse test: opposite; else not reproduced).
- "After the early chaotic phase the kernel moves at a roughly constant velocity": on the records
  at or after ``LATE_EPOCHS`` epochs, the slope b of log10 v on log10 t with one intercept per run
  (:func:`symlab.stats.fit_slope`; v(t_i) is placed at √(t_{i−1} t_i)) and its 95% interval;
  constant means |b| ≤ log10 2 ≈ 0.30 (less than a factor 2 per decade of steps): reproduced when
  the interval lies inside that band, not reproduced when it misses it, inconclusive otherwise.
  S = 1 − cos is quadratic in a small angle, so v = S/Δt over log-spaced records (Δt ∝ t) has
  slope +1 for a kernel turning at a constant angular speed and 0 for a random walk: a negative
  slope means the movement slows in either reading.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from symlab.engine.verdict import Claim
from symlab.stats import fit_slope

FORT = "Fort et al. 2020"
GAIN_EPOCHS = 5.0  # "within a few epochs"
PAPER_RATIO = 3.0
LATE_EPOCHS = 3.0  # end of the early chaotic phase (a few epochs)
CONSTANT_BAND = math.log10(2.0)


def error_ratio(kernel_acc, n_test: int) -> np.ndarray:
    """R_t = err_0 / err_t with err = 1 − accuracy floored at 1 / (2 n_test)."""
    floor = 0.5 / n_test
    err = np.maximum(1.0 - np.asarray(kernel_acc, dtype=float), floor)
    return err[0] / err


def nearest_record(steps, epoch_steps: float, epochs: float) -> int:
    """Index of the record step ≥ 1 nearest ``epochs`` epochs in log time."""
    steps = np.asarray(steps, dtype=float)
    target = max(epochs * epoch_steps, 1.0)
    candidates = np.flatnonzero(steps >= 1)
    return int(candidates[np.argmin(np.abs(np.log(steps[candidates] / target)))])


def kernel_gain_claim(ratios, epochs: float, init_errors) -> Claim:
    """Claim that Θ_t's kernel machine has ~3× lower test error than Θ_0's, from per-run ratios
    R = err(Θ_0)/err(Θ_t) read near ``epochs`` epochs (median) and the runs' err(Θ_0)."""
    claim = (
        f"within a few epochs the kernel Θ_t used as a kernel machine has about "
        f"{PAPER_RATIO:g}× lower test error than Θ_0 ({FORT}, §4)"
    )
    ratios = np.asarray(ratios, dtype=float)
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    if len(ratios) < 2:
        return Claim("kernel_gain", claim, f"{len(ratios)} run(s)", "-", "not measured")
    logs = np.log(ratios)
    half = stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    mean, low, high = (
        float(np.exp(v)) for v in (logs.mean(), logs.mean() - half, logs.mean() + half)
    )
    # the claim is a magnitude (~3x); a gain whose whole interval lies below 2x does not reproduce
    # it, even though Θ_t is better: the measured text says so
    if low >= PAPER_RATIO / 1.5:
        outcome = "reproduced"
    elif high < 1:
        outcome = "opposite"
    elif high < PAPER_RATIO / 1.5:
        outcome = "not reproduced"
    elif low > 1:
        outcome = "partly reproduced"  # a gain for sure, and ~3x not excluded
    else:
        outcome = "inconclusive"
    init = np.asarray(init_errors, dtype=float)
    measured = (
        f"err(Θ_0)/err(Θ_t) at ~{epochs:.2g} epochs: geometric mean {mean:.3g}× over {len(ratios)} "
        f"runs (range {ratios.min():.3g}–{ratios.max():.3g}); err(Θ_0) median {np.median(init):.2f}"
        + (
            "; Θ_t is better, but by far less than the paper's ~3×"
            * (1 < low and high < PAPER_RATIO / 1.5)
        )
    )
    statistic = (
        f"95% t-interval of the geometric mean [{low:.3g}, {high:.3g}], against ≥ 2 (3× / 1.5)"
    )
    return Claim("kernel_gain", claim, measured, statistic, outcome)


def velocity_decay_claim(early_late_ratios) -> Claim:
    """Claim that the velocity is larger early than late, from per-run early/late ratios."""
    claim = f"the kernel velocity is large early in training and decays ({FORT}, §4)"
    ratio = np.asarray(early_late_ratios, dtype=float)
    ratio = ratio[np.isfinite(ratio)]
    if not len(ratio):
        return Claim("velocity_decays", claim, "no finite run", "-", "not measured")
    n_up = int((ratio > 1).sum())
    p_up = stats.binomtest(n_up, len(ratio), 0.5, "greater").pvalue
    p_down = stats.binomtest(n_up, len(ratio), 0.5, "less").pvalue
    outcome = "reproduced" if p_up < 0.05 else "opposite" if p_down < 0.05 else "not reproduced"
    return Claim(
        "velocity_decays",
        claim,
        f"mean velocity of the first third of the log-spaced records above the last third's in "
        f"{n_up}/{len(ratio)} runs (median ratio {np.median(ratio):.3g})",
        f"one-sided sign test p = {p_up:.2g}",
        outcome,
    )


def late_velocity_slope(series: list[tuple[np.ndarray, np.ndarray]], start: list[float]):
    """Fit log10 v = b log10 t + a_run over records t ≥ start (per run); ``series`` holds per
    run (record steps, velocities), velocity i belonging to the interval (t_i, t_{i+1}].
    Returns the :class:`symlab.stats.SlopeFit` and the number of points, or (None, n)."""
    xs, ys, groups = [], [], []
    for run, ((steps, velocity), first) in enumerate(zip(series, start)):
        steps = np.asarray(steps, dtype=float)
        velocity = np.asarray(velocity, dtype=float)
        mid = np.sqrt(np.maximum(steps[:-1], 0.5) * steps[1:])
        keep = (steps[:-1] >= first) & np.isfinite(velocity) & (velocity > 0)
        xs += list(np.log10(mid[keep]))
        ys += list(np.log10(velocity[keep]))
        groups += [run] * int(keep.sum())
    try:
        return fit_slope(xs, ys, groups), len(xs)
    except ValueError:
        return None, len(xs)


def constant_velocity_claim(fit, n_points: int, late_from: str) -> Claim:
    """Claim that the late velocity is roughly constant: the slope's interval against ±log10 2."""
    claim = f"after the early chaotic phase the kernel moves at a roughly constant velocity ({FORT}, §4)"
    if fit is None:
        return Claim(
            "constant_late_velocity", claim, f"{n_points} late records", "-", "not measured"
        )
    band = CONSTANT_BAND
    if -band <= fit.low and fit.high <= band:
        outcome = "reproduced"
    elif fit.high < -band or fit.low > band:
        outcome = "not reproduced"
    else:
        outcome = "inconclusive"
    factor = 10**fit.slope
    measured = (
        f"late slope of log10 v on log10 t {fit.slope:+.2f} (v changes ×{factor:.2g} per decade of "
        f"steps) over {n_points} records {late_from}"
    )
    statistic = (
        f"least squares with one intercept per run, 95% t-interval [{fit.low:+.2f}, {fit.high:+.2f}] "
        f"({fit.dof} dof), against constant = |slope| ≤ log10 2 = {band:.2f}; S is 1 − cosine, "
        "so on these log-spaced records a constant angular speed would give slope +1 and a "
        "random walk 0"
    )
    return Claim("constant_late_velocity", claim, measured, statistic, outcome)


def run_statistics(runs: pd.DataFrame) -> dict[str, Any]:
    """The two claims' statistics over ``runs``: velocity early/late and the Θ_T - Θ_0 gain."""
    ratio = runs["velocity_ratio"].to_numpy(float)
    ratio = ratio[np.isfinite(ratio)]
    n_up = int((ratio > 1).sum())
    sign_p = stats.binomtest(n_up, len(ratio), 0.5, "greater").pvalue if len(ratio) else math.nan
    gain = (runs["kernel_acc_final"] - runs["kernel_acc_init"]).to_numpy(float)
    gain = gain[np.isfinite(gain)]
    gain_best = (runs["kernel_acc_best"] - runs["kernel_acc_init"]).to_numpy(float)
    wil_k = wilcoxon_greater(gain) if len(gain) else math.nan
    return {
        "n_up": n_up,
        "n_ratio": len(ratio),
        "ratio_median": float(np.median(ratio)) if len(ratio) else math.nan,
        "sign_p": float(sign_p),
        "wilcoxon_v_p": wilcoxon_greater(np.log(ratio)) if len(ratio) else math.nan,
        "n_better": int((gain > 0).sum()),
        "n_gain": len(gain),
        "gain_median": float(np.median(gain)) if len(gain) else math.nan,
        "gain_best_median": float(np.nanmedian(gain_best)) if len(gain_best) else math.nan,
        "wilcoxon_k_p": wil_k,
        "velocity_holds": bool(len(ratio) and sign_p < 0.05 and n_up > len(ratio) / 2),
        "kernel_holds": bool(len(gain) and wil_k < 0.05 and np.median(gain) > 0),
    }


def wilcoxon_greater(values: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value for median > 0 (1.0 when all values are zero)."""
    values = values[np.isfinite(values)]
    if len(values) == 0 or np.all(values == 0):
        return 1.0
    return float(stats.wilcoxon(values, alternative="greater").pvalue)
