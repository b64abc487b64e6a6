"""The claims of the ``ntk-optimizers`` study, tested as :class:`symlab.engine.verdict.Claim`\\ s.

- GD and heavy ball (Lee et al. 2019; Polyak 1964): in the kernel regime the network's training
  error decays at the rate the initial NTK predicts. Per seed s the fitted residual factor of the
  network ρ_s^net and of the prediction ρ_s^NTK give d_s = ρ_s^net / ρ_s^NTK − 1; the claim is
  reproduced when the Student-t 95% interval of the mean of d_s over seeds lies inside
  [−tolerance, tolerance], not reproduced when it misses that band, inconclusive otherwise
  (one seed: the point estimate decides, and the statistic says so).
- Nesterov with β_k = k/(k+3) (Nesterov 1983; Su, Boyd & Candès 2016): "may converge only
  sublinearly", E_t = O(1/t²) in the worst case. That is an upper bound; with a positive-definite
  NTK the scheme decays geometrically, residual ~ t^(−3/2) (1 − ηλ_min)^(t/2), i.e.
  E_t ~ t^(−3) q^t with q = 1 − ηλ_min. :func:`compare_decay_models` fits, on the window
  t ∈ [max(10, end/20), end], the power law log E = a + p log t, the geometric law
  log E = a + t log q, and the theory's product log E = a + p log t + t log q, with a Student-t
  interval for log q in the product (ordinary least squares; consecutive residuals are
  correlated, so the interval is optimistic). The claim "only sublinear" is not reproduced when
  the interval of q lies below 1 (a geometric factor is present: faster than any power law),
  reproduced when it contains 1 and p ≤ −2 (a power law at least as fast as the bound),
  not reproduced when it contains 1 and p > −2 (slower than the bound); each by a majority of
  seeds (the median p), inconclusive at a tie; the pure models' residual sums of squares are reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from symlab.engine.verdict import Claim


@dataclass(frozen=True)
class DecayModels:
    """Fits of log E_t on a window of iterations: pure power law, pure geometric law, and the
    product E ≈ C t^p q^t with a Student-t interval [q_low, q_high] for q."""

    n_points: int
    power_rss: float
    geometric_rss: float
    power_exponent: float  # p of the pure power law E ~ t^p
    geometric_factor: float  # q of the pure geometric law E ~ q^t
    product_exponent: float  # p of the product t^p q^t
    product_factor: float  # q of the product
    product_factor_low: float
    product_factor_high: float

    @property
    def geometric(self) -> bool:
        """True when the product's interval of q lies below 1 (a geometric factor is present)."""
        return self.product_factor_high < 1


def decay_window(end: int) -> tuple[int, int]:
    """The late window [max(10, end // 20), end] of the model comparison."""
    end = int(end)
    return max(10, end // 20), end


def compare_decay_models(errors, start: int, end: int, confidence: float = 0.95) -> DecayModels:
    """Least-squares fits of log E_t on t ∈ [start, end] (t ≥ 1, E_t > 0 and finite; at least 6
    such points): a + p log t, a + t log q and a + p log t + t log q (see the module docstring)."""
    errors = np.asarray(errors, dtype=float)
    t = np.arange(len(errors), dtype=float)
    keep = (t >= max(start, 1)) & (t <= end) & np.isfinite(errors) & (errors > 0)
    if keep.sum() < 6:
        raise ValueError(f"errors: expected at least 6 positive values in [{start}, {end}]")
    t, log_e = t[keep], np.log(errors[keep])

    def fit(*columns: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        design = np.column_stack([np.ones_like(t), *columns])
        coef = np.linalg.lstsq(design, log_e, rcond=None)[0]
        rss = float(np.sum((log_e - design @ coef) ** 2))
        dof = max(len(t) - design.shape[1], 1)
        cov = rss / dof * np.linalg.inv(design.T @ design)
        return coef, rss, np.sqrt(np.diag(cov)) * stats.t.ppf(0.5 + confidence / 2, dof)

    power, power_rss, _ = fit(np.log(t))
    geometric, geometric_rss, _ = fit(t)
    product, _, half = fit(np.log(t), t)
    return DecayModels(
        n_points=len(t),
        power_rss=power_rss,
        geometric_rss=geometric_rss,
        power_exponent=float(power[1]),
        geometric_factor=float(np.exp(geometric[1])),
        product_exponent=float(product[1]),
        product_factor=float(np.exp(product[2])),
        product_factor_low=float(np.exp(product[2] - half[2])),
        product_factor_high=float(np.exp(product[2] + half[2])),
    )


def relative_difference_interval(
    measured, predicted, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of d_s = measured_s / predicted_s − 1 over seeds and its Student-t interval
    ((mean, nan, nan) for one seed)."""
    d = np.asarray(measured, dtype=float) / np.asarray(predicted, dtype=float) - 1
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(d) < 2:
        return float(d[0]), float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


RATE_CLAIMS = {
    "gd": "gradient descent on the wide network converges at the rate of its linearised model, "
    "residual factor → 1 − ηλ_min (Jacot et al. 2018; Lee et al. 2019)",
    "heavy_ball": "heavy ball with Polyak's step and momentum converges at the accelerated rate "
    "(√κ − 1)/(√κ + 1) the NTK predicts (Polyak 1964; kernel regime of Lee et al. 2019)",
}


def rate_claim(optimizer: str, measured, predicted, tolerance: float, curve_errors=None) -> Claim:
    """Claim that the network's fitted residual factor per iteration matches the NTK prediction
    within ``tolerance`` (relative), from per-seed fitted factors (see the module docstring)."""
    mean, low, high = relative_difference_interval(measured, predicted)
    n = int(np.isfinite(np.asarray(measured, float) / np.asarray(predicted, float)).sum())
    band = f"[−{100 * tolerance:g}%, +{100 * tolerance:g}%]"
    if n == 0:
        outcome, interval = "not measured", "no finite fit"
    elif n == 1:
        outcome = "reproduced" if abs(mean) <= tolerance else "not reproduced"
        interval = f"one seed, no interval: {100 * mean:+.3g}%"
    else:
        interval = (
            f"mean {100 * mean:+.3g}%, 95% t-interval [{100 * low:+.3g}%, {100 * high:+.3g}%]"
        )
        if -tolerance <= low and high <= tolerance:
            outcome = "reproduced"
        elif high < -tolerance or low > tolerance:
            outcome = "not reproduced"
        else:
            outcome = "inconclusive"
    measured_text = (
        f"fitted residual factor {np.nanmedian(np.asarray(measured, float)):.5g} on the network vs "
        f"{np.nanmedian(np.asarray(predicted, float)):.5g} predicted (medians over {n} seeds)"
    )
    if curve_errors is not None and len(curve_errors):
        curve = np.asarray(curve_errors, dtype=float)
        measured_text += (
            f"; median |E_net/E_NTK − 1| per seed {', '.join(f'{100 * v:.2g}%' for v in curve)}"
        )
    statistic = f"relative difference of the factors over seeds: {interval}, against {band}"
    return Claim(f"{optimizer}_rate", RATE_CLAIMS[optimizer], measured_text, statistic, outcome)


NESTEROV_CLAIM = (
    "Nesterov's scheme with β_k = k/(k+3) may converge only sublinearly, E_t = O(1/t²) in the "
    "worst case (Nesterov 1983; Su, Boyd & Candès 2016)"
)


def nesterov_claim(fits: list[DecayModels], theory_factor: float | None = None) -> Claim:
    """Claim that Nesterov's training error decays only sublinearly, as t^p with p ≤ −2 (see the
    module docstring for the fits and outcomes), from one fit per seed; ``theory_factor`` is the
    predicted geometric factor (1 − ηλ_min) of E_t, reported beside the fitted one."""
    if not fits:
        return Claim("nesterov_decay", NESTEROV_CLAIM, "no run", "-", "not measured")
    n = len(fits)
    n_geo = sum(f.geometric for f in fits)
    exponents = np.array([f.product_exponent for f in fits])
    if n_geo > n / 2:
        outcome = "not reproduced"
        reading = (
            f"geometric (linear) convergence in {n_geo} of {n} seeds, faster than the sublinear "
            "rate the worst-case bound allows (the bound holds, loosely)"
        )
    elif n_geo < n / 2 and np.median(exponents) <= -2:
        outcome = "reproduced"
        reading = f"power-law decay with p ≤ −2, no geometric factor in {n - n_geo} of {n} seeds"
    elif n_geo < n / 2:
        outcome, reading = "not reproduced", "power-law decay slower than t^−2: the bound fails"
    else:
        outcome, reading = "inconclusive", f"a geometric factor in {n_geo} of {n} seeds"
    theory = f" (theory 1 − ηλ_min = {theory_factor:.5g})" if theory_factor else ""
    per_seed = ", ".join(
        f"{f.product_factor:.5g} [{f.product_factor_low:.5g}, {f.product_factor_high:.5g}]"
        for f in fits
    )
    measured = (
        f"{reading}; E_t ≈ C t^p q^t: q per seed {per_seed}{theory}, p median "
        f"{np.median(exponents):.3g} (theory −3); pure power law p median "
        f"{np.median([f.power_exponent for f in fits]):.3g}"
    )
    ratio = ", ".join(f"{f.power_rss / max(f.geometric_rss, 1e-300):.3g}" for f in fits)
    statistic = (
        f"least squares of log E_t over the late window (median "
        f"{int(np.median([f.n_points for f in fits]))} iterations), 95% t-intervals of q; "
        f"RSS(power law)/RSS(geometric) of the pure models per seed {ratio}"
    )
    return Claim("nesterov_decay", NESTEROV_CLAIM, measured, statistic, outcome)
